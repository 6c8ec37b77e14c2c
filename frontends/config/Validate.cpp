//===- Validate.cpp - Every validation rule of the job schema -------------===//
//
// Rules of reference §1.3 (per section), §1.4 (cross-section construction
// checks and the ordered validate(world_size)) and the config-level rules of
// §1.5, plus the checks KempnerForge leaves to a crash at build time (odd
// head_dim, cp > 1, unknown registry names). Within one section the first
// failing rule wins, as a raising __post_init__ would; different sections
// are all reported, like a compiler reporting every broken declaration.
//
//===----------------------------------------------------------------------===//

#include "frontends/config/Config.h"
#include "frontends/config/Schema.h"
#include "frontends/registry/Registry.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace forge::config {
namespace {

std::string num(int64_t v) { return std::to_string(v); }
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string quoteList(const std::vector<std::string> &v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i)
    out += (i ? ", '" : "'") + v[i] + "'";
  return out + "]";
}

class Checker {
public:
  explicit Checker(ConfigLoader &l) : l_(l), c_(l.config()) {}

  void run() {
    model();
    train();
    optimizer();
    scheduler();
    data();
    eval();
    distributed();
    checkpoint();
    metrics();
    profiling();
    if (c_.vision_encoder)
      visionEncoder();
    if (c_.adapter)
      adapter();
    if (c_.vlm)
      vlm();
    if (c_.video)
      video();
    if (!l_.hasErrors())
      job();
  }

private:
  void err(const std::string &path, const std::string &msg) {
    l_.error(path, msg);
  }

  void model() {
    const ModelConfig &m = c_.model;
    if (m.dim <= 0 || m.n_layers <= 0 || m.n_heads <= 0) {
      std::string key = m.dim <= 0        ? "dim"
                        : m.n_layers <= 0 ? "n_layers"
                                          : "n_heads";
      return err(
          "model." + key,
          "[model] dim, n_layers, and n_heads must be positive (got dim=" +
              num(m.dim) + ", n_layers=" + num(m.n_layers) +
              ", n_heads=" + num(m.n_heads) + ")");
    }
    if (m.vocab_size <= 0)
      return err("model.vocab_size",
                 "[model] vocab_size must be positive, got " +
                     num(m.vocab_size));
    if (m.kvHeads() <= 0)
      return err("model.n_kv_heads",
                 "[model] n_kv_heads must be positive, got " +
                     num(m.kvHeads()));
    if (m.dim % m.n_heads != 0)
      return err("model.n_heads", "[model] n_heads (" + num(m.n_heads) +
                                      ") must divide dim (" + num(m.dim) + ")");
    if (m.n_heads % m.kvHeads() != 0)
      return err("model.n_kv_heads", "[model] n_kv_heads (" + num(m.kvHeads()) +
                                         ") must divide n_heads (" +
                                         num(m.n_heads) + ")");
    // KempnerForge asserts this only when RoPE is built.
    if (m.headDim() % 2 != 0)
      return err("model.n_heads",
                 "[model] head_dim = dim / n_heads = " + num(m.headDim()) +
                     " must be even for rotary embeddings");
    if (m.ffn_hidden_dim && *m.ffn_hidden_dim <= 0)
      return err("model.ffn_hidden_dim",
                 "[model] ffn_hidden_dim must be positive, got " +
                     num(*m.ffn_hidden_dim));
    if (!m.ffn_hidden_dim && m.ffn_dim_multiplier <= 0)
      return err("model.ffn_dim_multiplier",
                 "[model] ffn_dim_multiplier must be positive, got " +
                     num(m.ffn_dim_multiplier));
    if (m.max_seq_len <= 0)
      return err("model.max_seq_len",
                 "[model] max_seq_len must be positive, got " +
                     num(m.max_seq_len));
    if (m.norm_eps <= 0)
      return err("model.norm_eps",
                 "[model] norm_eps must be positive, got " + num(m.norm_eps));
    if (m.rope_theta <= 0)
      return err("model.rope_theta",
                 "[model] rope_theta must be positive, got " +
                     num(m.rope_theta));
    if (m.init_std <= 0)
      return err("model.init_std",
                 "[model] init_std must be positive, got " + num(m.init_std));
    if (m.num_experts < 0)
      return err("model.num_experts",
                 "[model] num_experts must be >= 0 (0 = dense), got " +
                     num(m.num_experts));
    if (m.isMoe()) {
      if (m.moe_top_k <= 0)
        return err("model.moe_top_k",
                   "[model] moe_top_k must be positive when num_experts > 0, "
                   "got " +
                       num(m.moe_top_k));
      if (m.moe_top_k > m.num_experts)
        return err("model.moe_top_k", "[model] moe_top_k (" + num(m.moe_top_k) +
                                          ") must be <= num_experts (" +
                                          num(m.num_experts) + ")");
      if (m.moe_frequency <= 0)
        return err("model.moe_frequency",
                   "[model] moe_frequency must be positive, got " +
                       num(m.moe_frequency));
      if (m.moe_sequence_aux_loss_weight < 0)
        return err("model.moe_sequence_aux_loss_weight",
                   "[model] moe_sequence_aux_loss_weight must be non-negative, "
                   "got " +
                       num(m.moe_sequence_aux_loss_weight));
      if (m.moe_expert_ffn_multiplier <= 0)
        return err("model.moe_expert_ffn_multiplier",
                   "[model] moe_expert_ffn_multiplier must be positive, got " +
                       num(m.moe_expert_ffn_multiplier));
      if (m.moe_router_z_loss_weight < 0)
        return err(
            "model.moe_router_z_loss_weight",
            "[model] moe_router_z_loss_weight must be non-negative, got " +
                num(m.moe_router_z_loss_weight));
      if (m.moe_shared_experts < 0)
        return err("model.moe_shared_experts",
                   "[model] moe_shared_experts must be >= 0, got " +
                       num(m.moe_shared_experts));
      if (m.moe_capacity_factor < 0)
        return err(
            "model.moe_capacity_factor",
            "[model] moe_capacity_factor must be >= 0 (0 = no dropping), "
            "got " +
                num(m.moe_capacity_factor));
      // Not an error: the router itself (scores, selection, weights, its
      // losses and gradients) is KempnerForge's; only the bias's extra
      // update outside the gradient is missing, and the user is told.
      if (m.moe_router == "sigmoid_topk")
        l_.warning("model.moe_router",
                   "moe_router = 'sigmoid_topk': forge does not yet apply "
                   "KempnerForge's load-balancing update of the expert bias "
                   "(the expert_ema buffer and moe_bias_schedule): the bias "
                   "trains through its gradient only, so routing will drift "
                   "from a KempnerForge run of this job");
    }
  }

  void train() {
    const TrainConfig &t = c_.train;
    const std::pair<const char *, int64_t> ints[] = {
        {"batch_size", t.batch_size},
        {"seq_len", t.seq_len},
        {"max_steps", t.max_steps},
        {"grad_accum_steps", t.grad_accum_steps}};
    for (auto &[k, v] : ints)
      if (v <= 0)
        return err(std::string("train.") + k, std::string("[train] ") + k +
                                                  " must be positive, got " +
                                                  num(v));
    if (t.grad_clip_norm <= 0)
      return err("train.grad_clip_norm",
                 "[train] grad_clip_norm must be positive, got " +
                     num(t.grad_clip_norm) + " (clipping cannot be disabled)");
    if (t.ce_chunk_size < 0)
      return err("train.ce_chunk_size",
                 "[train] ce_chunk_size must be >= 0 (0 = 4096), got " +
                     num(t.ce_chunk_size));
    if (t.z_loss_weight < 0)
      return err("train.z_loss_weight",
                 "[train] z_loss_weight must be non-negative, got " +
                     num(t.z_loss_weight));
  }

  void optimizer() {
    const OptimizerConfig &o = c_.optimizer;
    if (o.lr <= 0)
      return err("optimizer.lr",
                 "[optimizer] lr must be positive, got " + num(o.lr));
    if (o.weight_decay < 0)
      return err("optimizer.weight_decay",
                 "[optimizer] weight_decay must be non-negative, got " +
                     num(o.weight_decay));
    for (double b : o.betas)
      if (!(b >= 0 && b < 1))
        return err("optimizer.betas",
                   "[optimizer] betas must be in [0, 1), got [" +
                       num(o.betas[0]) + ", " + num(o.betas[1]) + "]");
    if (!(o.muon_momentum > 0 && o.muon_momentum < 1))
      return err("optimizer.muon_momentum",
                 "[optimizer] muon_momentum must be in (0, 1), got " +
                     num(o.muon_momentum));
    if (o.muon_ns_steps <= 0)
      return err("optimizer.muon_ns_steps",
                 "[optimizer] muon_ns_steps must be positive, got " +
                     num(o.muon_ns_steps));
    if (o.schedule_free_warmup_steps < 0)
      return err("optimizer.schedule_free_warmup_steps",
                 "[optimizer] schedule_free_warmup_steps must be non-negative, "
                 "got " +
                     num(o.schedule_free_warmup_steps));
    if (o.eps <= 0)
      return err("optimizer.eps",
                 "[optimizer] eps must be positive, got " + num(o.eps));
    if (o.muon_adam_lr && *o.muon_adam_lr <= 0)
      return err("optimizer.muon_adam_lr",
                 "[optimizer] muon_adam_lr must be positive, got " +
                     num(*o.muon_adam_lr));
  }

  void scheduler() {
    const SchedulerConfig &s = c_.scheduler;
    if (s.warmup_steps < 0)
      return err("scheduler.warmup_steps",
                 "[scheduler] warmup_steps must be non-negative, got " +
                     num(s.warmup_steps));
    if (!(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1))
      return err("scheduler.min_lr_ratio",
                 "[scheduler] min_lr_ratio must be in [0, 1], got " +
                     num(s.min_lr_ratio));
    if (s.rex_alpha <= 0)
      return err("scheduler.rex_alpha",
                 "[scheduler] rex_alpha must be positive, got " +
                     num(s.rex_alpha));
    if (s.decay_steps && *s.decay_steps < 0)
      return err("scheduler.decay_steps",
                 "[scheduler] decay_steps must be >= 0 (0 or unset = the "
                 "remaining steps), got " +
                     num(*s.decay_steps));
    if (s.stable_steps && *s.stable_steps < 0)
      return err("scheduler.stable_steps",
                 "[scheduler] stable_steps must be >= 0, got " +
                     num(*s.stable_steps));
  }

  void data() {
    const DataConfig &d = c_.data;
    for (size_t i = 0; i < d.datasets.size(); ++i) {
      const DatasetSource &s = d.datasets[i];
      std::string p = "data.datasets[" + std::to_string(i) + "]";
      if (s.weight <= 0)
        return err(p + ".weight",
                   "[[data.datasets]] #" + std::to_string(i) +
                       ": dataset weight must be positive, got " +
                       num(s.weight));
    }
    for (size_t i = 0; i < d.phases.size(); ++i) {
      const TrainingPhase &ph = d.phases[i];
      std::string p = "data.phases[" + std::to_string(i) + "]";
      std::string what = "[[data.phases]] #" + std::to_string(i) + ": ";
      if (ph.start_step < 0)
        return err(p + ".start_step",
                   what + "start_step must be >= 0, got " + num(ph.start_step));
      if (ph.lr_scale <= 0)
        return err(p + ".lr_scale",
                   what + "lr_scale must be positive, got " + num(ph.lr_scale));
      for (auto &[name, w] : ph.dataset_weights)
        if (w < 0)
          return err(p + ".dataset_weights." + name,
                     what + "dataset_weights['" + name +
                         "'] must be non-negative, got " + num(w));
    }
    if (d.num_workers < 0)
      return err("data.num_workers",
                 "[data] num_workers must be non-negative, got " +
                     num(d.num_workers));
    if (d.prefetch_factor < 1)
      return err("data.prefetch_factor",
                 "[data] prefetch_factor must be >= 1, got " +
                     num(d.prefetch_factor));
    if (d.mix_temperature <= 0)
      return err("data.mix_temperature",
                 "[data] mix_temperature must be positive, got " +
                     num(d.mix_temperature));
    for (size_t i = 0; i < d.datasets.size(); ++i) {
      const DatasetSource &s = d.datasets[i];
      if (s.path.empty() && s.hf_name.empty())
        return err("data.datasets[" + std::to_string(i) + "]",
                   "[[data.datasets]] #" + std::to_string(i) + " '" + s.name +
                       "' must have either path or hf_name");
    }
    for (size_t i = 1; i < d.phases.size(); ++i)
      if (d.phases[i].start_step <= d.phases[i - 1].start_step)
        return err("data.phases[" + std::to_string(i) + "].start_step",
                   "data.phases start_steps must be strictly monotonically "
                   "increasing (phase #" +
                       std::to_string(i) + " starts at " +
                       num(d.phases[i].start_step) + " after " +
                       num(d.phases[i - 1].start_step) + ")");
    if (d.anneal_start_step < 0)
      return err("data.anneal_start_step",
                 "[data] anneal_start_step must be non-negative, got " +
                     num(d.anneal_start_step));
    if (!d.phases.empty() && d.anneal_start_step > 0)
      return err(
          "data.anneal_start_step",
          "[data] cannot use both data.phases and data.anneal_start_step; "
          "express the anneal as a phase");
    // Names in phases and anneal_weights must name a dataset (KempnerForge
    // silently ignores a misspelt name).
    std::vector<std::string> names;
    for (const DatasetSource &s : d.datasets)
      names.push_back(s.name);
    std::set<std::string> seen;
    for (size_t i = 0; i < d.datasets.size(); ++i)
      if (!d.datasets[i].name.empty() &&
          !seen.insert(d.datasets[i].name).second)
        return err("data.datasets[" + std::to_string(i) + "].name",
                   "[[data.datasets]] name '" + d.datasets[i].name +
                       "' is used twice");
    auto checkNames = [&](const std::map<std::string, double> &weights,
                          const std::string &path, const std::string &what) {
      for (auto &[name, w] : weights)
        if (std::find(names.begin(), names.end(), name) == names.end()) {
          std::string msg = what + " names unknown dataset '" + name +
                            "'; datasets: " + quoteList(names);
          std::string near = closestMatch(name, names);
          if (!near.empty())
            msg += " (did you mean '" + near + "'?)";
          err(path + "." + name, msg);
          return false;
        }
      return true;
    };
    for (size_t i = 0; i < d.phases.size(); ++i)
      if (!checkNames(d.phases[i].dataset_weights,
                      "data.phases[" + std::to_string(i) + "].dataset_weights",
                      "[[data.phases]] #" + std::to_string(i) +
                          " dataset_weights"))
        return;
    if (!checkNames(d.anneal_weights, "data.anneal_weights",
                    "[data] anneal_weights"))
      return;
    // Reference §1.5: packing needs the EOS id, read from the tokenizer.
    if (d.pack_sequences && d.tokenizer_path.empty())
      return err("data.pack_sequences",
                 "[data] pack_sequences = true needs data.tokenizer_path (the "
                 "EOS id separates documents)");
    bool usesHf = (d.hf_dataset_name && !d.hf_dataset_name->empty());
    for (const DatasetSource &s : d.datasets)
      usesHf = usesHf || !s.hf_name.empty();
    if (usesHf && d.tokenizer_path.empty())
      return err("data.tokenizer_path",
                 "[data] Hugging Face datasets need data.tokenizer_path to "
                 "tokenize text");
  }

  void eval() {
    const EvalConfig &e = c_.eval;
    if (e.interval <= 0)
      return err("eval.interval",
                 "[eval] eval interval must be positive, got " +
                     num(e.interval));
    if (e.steps <= 0)
      return err("eval.steps",
                 "[eval] eval steps must be positive, got " + num(e.steps));
  }

  void distributed() {
    const DistributedConfig &d = c_.distributed;
    if (d.dp_shard == 0 || d.dp_shard < -1)
      return err("distributed.dp_shard",
                 "[distributed] dp_shard must be -1 (auto) or positive, got " +
                     num(d.dp_shard));
    const std::pair<const char *, int64_t> dims[] = {
        {"dp_replicate", d.dp_replicate},
        {"tp", d.tp},
        {"pp", d.pp},
        {"cp", d.cp},
        {"ep", d.ep}};
    for (auto &[k, v] : dims)
      if (v < 1)
        return err(std::string("distributed.") + k,
                   std::string("[distributed] ") + k + " must be >= 1, got " +
                       num(v));
    // KempnerForge declares cp but its mesh omits it, so cp > 1 fails late.
    if (d.cp > 1)
      return err("distributed.cp",
                 "[distributed] cp = " + num(d.cp) +
                     ": context parallelism is not supported yet; use cp = 1");
    if (d.nccl_timeout_sec <= 0)
      return err("distributed.nccl_timeout_sec",
                 "[distributed] nccl_timeout_sec must be positive, got " +
                     num(d.nccl_timeout_sec));
    // Reference §1.5: more stages than layers cannot be split.
    if (d.pp > c_.model.n_layers && c_.model.n_layers > 0)
      return err("distributed.pp", "[distributed] pp (" + num(d.pp) +
                                       ") must be <= model.n_layers (" +
                                       num(c_.model.n_layers) + ")");
  }

  void checkpoint() {
    const CheckpointConfig &c = c_.checkpoint;
    if (c.interval <= 0)
      return err("checkpoint.interval",
                 "[checkpoint] interval must be positive, got " +
                     num(c.interval));
    if (c.dyn_ckpt_window) {
      const DynamicCheckpointWindow &w = *c.dyn_ckpt_window;
      if (w.start < 0)
        return err("checkpoint.dyn_ckpt_window.start",
                   "dyn_ckpt_window.start must be >= 0, got " + num(w.start));
      if (w.stop < w.start)
        return err("checkpoint.dyn_ckpt_window.stop",
                   "dyn_ckpt_window.stop (" + num(w.stop) +
                       ") must be >= start (" + num(w.start) + ")");
    }
  }

  void metrics() {
    if (c_.metrics.log_interval <= 0)
      return err("metrics.log_interval",
                 "[metrics] log_interval must be positive, got " +
                     num(c_.metrics.log_interval));
  }

  void profiling() {
    const ProfilingConfig &p = c_.profiling;
    // Checked even when profiling is off, as in KempnerForge.
    if (p.end_step <= p.start_step)
      return err("profiling.end_step",
                 "[profiling] end_step (" + num(p.end_step) +
                     ") must be greater than start_step (" + num(p.start_step) +
                     ")");
  }

  void visionEncoder() {
    const VisionEncoderConfig &v = *c_.vision_encoder;
    if (v.feature_dim < 0)
      return err("vision_encoder.feature_dim",
                 "vision_encoder.feature_dim must be non-negative, got " +
                     num(v.feature_dim));
    if (v.num_tokens < 0)
      return err("vision_encoder.num_tokens",
                 "vision_encoder.num_tokens must be non-negative, got " +
                     num(v.num_tokens));
  }

  void adapter() {
    const AdapterConfig &a = *c_.adapter;
    if (a.hidden_dim < 0)
      return err("adapter.hidden_dim",
                 "adapter.hidden_dim must be non-negative, got " +
                     num(a.hidden_dim));
    if (a.pool_window <= 0)
      return err("adapter.pool_window",
                 "adapter.pool_window must be positive, got " +
                     num(a.pool_window));
    if (a.pool_heads <= 0)
      return err("adapter.pool_heads",
                 "adapter.pool_heads must be positive, got " +
                     num(a.pool_heads));
  }

  static bool hasDuplicates(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) != v.end();
  }

  /// Shared rule of mot_modalities and moma_modalities.
  bool modalitiesOk(const std::vector<std::string> &mods,
                    const std::string &key) {
    std::string path = "vlm." + key;
    auto has = [&](const char *m) {
      return std::find(mods.begin(), mods.end(), m) != mods.end();
    };
    std::string got = " (got " + quoteList(mods) + ")";
    if (mods.size() < 2) {
      err(path, "vlm." + key + " must list at least 2 modalities" + got);
      return false;
    }
    if (!has("text")) {
      err(path, "vlm." + key + " must include 'text'" + got);
      return false;
    }
    if (!has("image")) {
      err(path, "vlm." + key + " must include 'image'" + got);
      return false;
    }
    if (hasDuplicates(mods)) {
      err(path, "vlm." + key + " must not contain duplicates" + got);
      return false;
    }
    return true;
  }

  void vlm() {
    const VlmConfig &v = *c_.vlm;
    if (v.max_text_len <= 0)
      return err("vlm.max_text_len", "vlm.max_text_len must be positive, got " +
                                         num(v.max_text_len));
    for (size_t i = 1; i < v.freeze_schedule.size(); ++i)
      if (v.freeze_schedule[i].start_step <=
          v.freeze_schedule[i - 1].start_step)
        return err("vlm.freeze_schedule[" + std::to_string(i) + "].start_step",
                   "vlm.freeze_schedule start_steps must be strictly monotonic "
                   "(stage #" +
                       std::to_string(i) + " starts at " +
                       num(v.freeze_schedule[i].start_step) + " after " +
                       num(v.freeze_schedule[i - 1].start_step) + ")");
    // Reference §1.5 checks freeze aliases only at save/resume; checking them
    // here catches a typo before the job starts.
    std::vector<std::string> aliases;
    for (auto &[alias, patterns] : v.module_patterns)
      aliases.push_back(alias);
    auto checkSpecs = [&](const std::vector<FreezeSpec> &specs,
                          const std::string &path) {
      for (size_t i = 0; i < specs.size(); ++i)
        if (!v.module_patterns.count(specs[i].module)) {
          std::string msg =
              "freeze spec module '" + specs[i].module +
              "' is not a known module alias; known: " + quoteList(aliases);
          std::string near = closestMatch(specs[i].module, aliases);
          if (!near.empty())
            msg += " (did you mean '" + near + "'?)";
          err(path + "[" + std::to_string(i) + "].module", msg);
          return false;
        }
      return true;
    };
    if (!checkSpecs(v.freeze, "vlm.freeze"))
      return;
    for (size_t i = 0; i < v.freeze_schedule.size(); ++i)
      if (!checkSpecs(v.freeze_schedule[i].specs,
                      "vlm.freeze_schedule[" + std::to_string(i) + "].specs"))
        return;
    if (v.arch == "cross_attention") {
      if (v.cross_attention_every_n_layers <= 0)
        return err("vlm.cross_attention_every_n_layers",
                   "vlm.cross_attention_every_n_layers must be positive, got " +
                       num(v.cross_attention_every_n_layers));
      if (v.cross_attention_n_heads < 0)
        return err("vlm.cross_attention_n_heads",
                   "vlm.cross_attention_n_heads must be non-negative, got " +
                       num(v.cross_attention_n_heads));
      if (v.cross_attention_n_kv_heads < 0)
        return err("vlm.cross_attention_n_kv_heads",
                   "vlm.cross_attention_n_kv_heads must be non-negative, got " +
                       num(v.cross_attention_n_kv_heads));
    } else if (v.arch == "mot") {
      if (!modalitiesOk(v.mot_modalities, "mot_modalities"))
        return;
      if (v.mot_image_n_heads < 0)
        return err("vlm.mot_image_n_heads",
                   "vlm.mot_image_n_heads must be non-negative, got " +
                       num(v.mot_image_n_heads));
      if (v.mot_image_n_kv_heads < 0)
        return err("vlm.mot_image_n_kv_heads",
                   "vlm.mot_image_n_kv_heads must be non-negative, got " +
                       num(v.mot_image_n_kv_heads));
      if (v.mot_warm_start_from_text && v.mot_warm_start_path.empty())
        return err("vlm.mot_warm_start_from_text",
                   "vlm.mot_warm_start_from_text = true requires "
                   "vlm.mot_warm_start_path");
    } else if (v.arch == "moma") {
      if (!modalitiesOk(v.moma_modalities, "moma_modalities"))
        return;
      std::vector<std::string> missing, unknown;
      for (const std::string &m : v.moma_modalities)
        if (!v.moma_experts_per_modality.count(m))
          missing.push_back(m);
      for (auto &[m, n] : v.moma_experts_per_modality)
        if (std::find(v.moma_modalities.begin(), v.moma_modalities.end(), m) ==
            v.moma_modalities.end())
          unknown.push_back(m);
      if (!missing.empty())
        return err("vlm.moma_experts_per_modality",
                   "vlm.moma_experts_per_modality is missing entries for " +
                       quoteList(missing));
      if (!unknown.empty())
        return err("vlm.moma_experts_per_modality",
                   "vlm.moma_experts_per_modality has unknown modality keys " +
                       quoteList(unknown) +
                       "; modalities: " + quoteList(v.moma_modalities));
      for (auto &[m, n] : v.moma_experts_per_modality)
        if (n <= 0)
          return err("vlm.moma_experts_per_modality." + m,
                     "vlm.moma_experts_per_modality['" + m +
                         "'] must be positive, got " + num(n) +
                         "; for dense per-modality FFNs use arch='mot'");
      if (v.moma_capacity_factor < 0)
        return err("vlm.moma_capacity_factor",
                   "vlm.moma_capacity_factor must be >= 0, got " +
                       num(v.moma_capacity_factor));
    }
  }

  void video() {
    const VideoConfig &v = *c_.video;
    if (v.max_samples < 0)
      return err("video.max_samples",
                 "video.max_samples must be >= 0 (0 = all), got " +
                     num(v.max_samples));
    if (v.min_frames < 1)
      return err("video.min_frames",
                 "video.min_frames must be >= 1, got " + num(v.min_frames));
    if (v.max_frames < 1)
      return err("video.max_frames",
                 "video.max_frames must be >= 1, got " + num(v.max_frames));
    if (v.min_frames > v.max_frames)
      return err("video.min_frames", "video.min_frames (" + num(v.min_frames) +
                                         ") must be <= max_frames (" +
                                         num(v.max_frames) + ")");
    if (v.fps <= 0)
      return err("video.fps", "video.fps must be positive, got " + num(v.fps));
    if (v.frame_size <= 0)
      return err("video.frame_size",
                 "video.frame_size must be positive, got " + num(v.frame_size));
  }

  /// JobConfig.__post_init__ (reference §1.4, construction checks) and the
  /// config-level build checks of §1.5.
  void job() {
    if (c_.vlm && !c_.vision_encoder)
      return err("vlm", "[vlm] is set but [vision_encoder] is missing; a VLM "
                        "needs a vision encoder");
    if (c_.video && !c_.vlm)
      return err("video", "[video] is set but [vlm] is missing; video training "
                          "needs a VLM");
    if (c_.vision_encoder) {
      const VisionEncoderConfig &v = *c_.vision_encoder;
      const registry::VisionEncoderEntry *e =
          registry::visionEncoders().find(v.type);
      if (e && e->hfBacked && (v.feature_dim > 0 || v.num_tokens > 0))
        l_.warning("vision_encoder.type",
                   "vision_encoder.type '" + v.type +
                       "' reads its sizes from the checkpoint; the overrides "
                       "feature_dim=" +
                       num(v.feature_dim) + ", num_tokens=" +
                       num(v.num_tokens) + " are used as given");
    }
    if (c_.vlm) {
      int64_t required = 0;
      if (!requiredResidual(required))
        return;
      if (required > 0 && c_.model.max_seq_len < required)
        return err("model.max_seq_len",
                   "model.max_seq_len (" + num(c_.model.max_seq_len) +
                       ") insufficient for VLM: needs " + num(required) +
                       " (image tokens + vlm.max_text_len)");
      const VlmConfig &v = *c_.vlm;
      if (v.arch == "mot") {
        int64_t textHeads = c_.model.n_heads;
        int64_t imageHeads =
            v.mot_image_n_heads ? v.mot_image_n_heads : textHeads;
        int64_t textKv = c_.model.kvHeads();
        int64_t imageKv =
            v.mot_image_n_kv_heads ? v.mot_image_n_kv_heads : textKv;
        if (imageHeads != textHeads || imageKv != textKv)
          return err(v.mot_image_n_heads ? "vlm.mot_image_n_heads"
                                         : "vlm.mot_image_n_kv_heads",
                     "MoT v1 requires equal head counts: image " +
                         num(imageHeads) + "/" + num(imageKv) + " vs text " +
                         num(textHeads) + "/" + num(textKv) +
                         " (heads/kv heads)");
      }
      if (c_.adapter && c_.adapter->type == "attentional_pool" &&
          c_.vision_encoder->feature_dim > 0 &&
          c_.vision_encoder->feature_dim % c_.adapter->pool_heads != 0)
        return err("adapter.pool_heads",
                   "adapter.pool_heads (" + num(c_.adapter->pool_heads) +
                       ") must divide vision_encoder.feature_dim (" +
                       num(c_.vision_encoder->feature_dim) + ")");
      // Reference §1.5: the image data path tokenizes captions/prompts.
      if (c_.data.tokenizer_path.empty())
        return err("data.tokenizer_path",
                   "a VLM job needs data.tokenizer_path (text is tokenized "
                   "on the fly)");
      if (!c_.video &&
          (!c_.data.hf_dataset_name || c_.data.hf_dataset_name->empty()))
        return err("data.hf_dataset_name",
                   "an image VLM job needs data.hf_dataset_name (the image "
                   "dataset)");
    }
  }

public:
  /// Image tokens + text tokens of the residual stream, or 0 when the encoder
  /// token count is probed at build (num_tokens = 0). False on an adapter
  /// error (already reported).
  bool requiredResidual(int64_t &required) {
    required = 0;
    if (!c_.vlm || !c_.vision_encoder || c_.vision_encoder->num_tokens <= 0)
      return true;
    const AdapterConfig &a = c_.adapter ? *c_.adapter : AdapterConfig{};
    const registry::AdapterEntry *ad = registry::adapters().find(a.type);
    if (!ad)
      return true;
    registry::TokenCount tc =
        ad->outputNumTokens(c_.vision_encoder->num_tokens, a.pool_window);
    if (!tc.error.empty()) {
      err("vision_encoder.num_tokens", "adapter '" + a.type + "': " + tc.error);
      return false;
    }
    int64_t frames = c_.video ? c_.video->max_frames : 1;
    const registry::VlmArchEntry *arch =
        registry::vlmArchs().find(c_.vlm->arch);
    int64_t image = arch && arch->imageTokensInResidual ? frames * tc.count : 0;
    required = image + c_.vlm->max_text_len;
    return true;
  }

private:
  ConfigLoader &l_;
  JobConfig &c_;
};

} // namespace

bool ConfigLoader::finalize() {
  // KempnerForge resolves n_kv_heads at construction, so a later overlay that
  // changes n_heads keeps the old value (the "sticky" quirk, reference §1.6).
  // forge resolves it once, after every overlay.
  if (!cfg_.model.n_kv_heads)
    cfg_.model.n_kv_heads = cfg_.model.n_heads;
  if (cfg_.vlm && !cfg_.adapter)
    cfg_.adapter.emplace();
  if (cfg_.vlm) {
    // Each arch adds its module alias (reference §1.2).
    auto &mp = cfg_.vlm->module_patterns;
    if (cfg_.vlm->arch == "cross_attention" && !mp.count("cross_attention"))
      mp["cross_attention"] = {"transformer.cross_attention_layers",
                               "transformer.cross_attention_layers.*"};
    if (cfg_.vlm->arch == "mot" && !mp.count("mot"))
      mp["mot"] = {"transformer.layers", "transformer.layers.*"};
    if (cfg_.vlm->arch == "moma" && !mp.count("moma"))
      mp["moma"] = {"transformer.layers", "transformer.layers.*"};
  }
  if (hasErrors())
    return false;
  Checker(*this).run();
  return !hasErrors();
}

bool ConfigLoader::validate(int64_t worldSize) {
  const JobConfig &c = cfg_;
  const DistributedConfig &d = c.distributed;
  const ModelConfig &m = c.model;
  auto fail = [&](const std::string &path, const std::string &msg) {
    error(path, msg);
    return false;
  };
  if (worldSize <= 0)
    return fail("distributed",
                "world size must be positive, got " + num(worldSize));
  // 1. The mesh must tile the world.
  int64_t others = d.dp_replicate * d.tp * d.pp * d.cp * d.ep;
  int64_t shard = d.dp_shard;
  if (shard == -1) {
    if (worldSize % others != 0)
      return fail("distributed.dp_shard",
                  "world_size (" + num(worldSize) +
                      ") not divisible by dp_replicate*tp*pp*cp*ep (" +
                      num(others) + ")");
    shard = worldSize / others;
  }
  int64_t product = d.dp_replicate * shard * d.tp * d.pp * d.cp * d.ep;
  if (product != worldSize)
    return fail("distributed",
                "Parallelism dimensions (dp_replicate " + num(d.dp_replicate) +
                    " x dp_shard " + num(shard) + " x tp " + num(d.tp) +
                    " x pp " + num(d.pp) + " x cp " + num(d.cp) + " x ep " +
                    num(d.ep) + " = " + num(product) +
                    ") do not match world_size (" + num(worldSize) + ")");
  // 2.
  if (c.train.seq_len > m.max_seq_len)
    return fail("train.seq_len", "train.seq_len (" + num(c.train.seq_len) +
                                     ") exceeds model.max_seq_len (" +
                                     num(m.max_seq_len) + ")");
  // 3.
  if (m.tie_embeddings && d.pp > 1)
    return fail("model.tie_embeddings",
                "Tied embeddings are not supported with pipeline parallelism "
                "(pp = " +
                    num(d.pp) +
                    "): the embedding and the head live on "
                    "different stages");
  // 4.
  if (c.eval.enabled && c.eval.dataset_path.empty() &&
      (!c.eval.hf_dataset_name || c.eval.hf_dataset_name->empty()))
    return fail("eval.enabled", "eval.enabled is True but no eval data source "
                                "is configured: set eval.dataset_path or "
                                "eval.hf_dataset_name");
  // 5. (MoE + compile_model warning) does not apply: forge always compiles.
  // 6, 7.
  if (d.tp > 1 && m.n_heads % d.tp != 0)
    return fail("distributed.tp", "n_heads (" + num(m.n_heads) +
                                      ") must be divisible by tp (" +
                                      num(d.tp) + ")");
  if (d.tp > 1 && m.kvHeads() % d.tp != 0)
    return fail("distributed.tp", "n_kv_heads (" + num(m.kvHeads()) +
                                      ") must be divisible by tp (" +
                                      num(d.tp) + ")");
  // 8.
  if (c.train.mixed_precision == "fp8" && d.tp > 1)
    return fail("train.mixed_precision",
                "FP8 + Tensor Parallelism is not yet supported (tp = " +
                    num(d.tp) + ")");
  // 9.
  if (m.isMoe() && d.pp > 1)
    return fail("distributed.pp",
                "MoE + Pipeline Parallelism is not supported (pp = " +
                    num(d.pp) + ", num_experts = " + num(m.num_experts) + ")");
  // 10, 11.
  if (d.ep > 1 && !m.isMoe())
    return fail("distributed.ep",
                "ep > 1 requires an MoE model (num_experts > 0)");
  if (d.ep > 1 && m.num_experts % d.ep != 0)
    return fail("distributed.ep", "num_experts (" + num(m.num_experts) +
                                      ") must be divisible by ep (" +
                                      num(d.ep) + ")");
  // 12.
  if (c.vlm) {
    int64_t required = 0;
    if (!Checker(*this).requiredResidual(required))
      return false;
    if (required > 0 && c.train.seq_len < required)
      return fail("train.seq_len", "train.seq_len (" + num(c.train.seq_len) +
                                       ") insufficient for VLM: needs " +
                                       num(required) +
                                       " (image tokens + vlm.max_text_len)");
  }
  // 13.
  if (c.vlm && d.pp > 1)
    return fail(
        "distributed.pp",
        "VLM + Pipeline Parallelism is not supported (pp = " + num(d.pp) + ")");
  bool moma = c.vlm && c.vlm->arch == "moma";
  // 14, 15.
  if (moma && m.num_experts > 0)
    return fail("model.num_experts",
                "MoMa + model.num_experts > 0 is rejected: MoMa's experts "
                "replace the text MoE (num_experts = " +
                    num(m.num_experts) + ")");
  if (moma && d.ep > 1)
    return fail(
        "distributed.ep",
        "MoMa + Expert Parallelism is not supported (ep = " + num(d.ep) + ")");
  // 16. (MoMa + compile_model warning) does not apply: forge always compiles.
  // 17.
  if (moma && c.train.activation_checkpointing == "full")
    warning("train.activation_checkpointing",
            "activation_checkpointing = 'full' with MoMa: KempnerForge makes "
            "this a no-op for MoMa blocks, so memory use will differ from a "
            "KempnerForge run of this job");
  return true;
}

} // namespace forge::config
