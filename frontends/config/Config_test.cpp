//===- Config_test.cpp - Every schema rule, loader behaviour and config ---===//

#include "frontends/config/Config.h"
#include "frontends/model/ModelSummary.h"
#include "frontends/registry/Registry.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

using namespace forge;
using namespace forge::config;

namespace {

/// Loads `toml` (as job.toml), applies `overrides`, finalizes and, when that
/// succeeds, validates at `world` (0 = the job's default).
struct Loaded {
  ConfigLoader loader;
  std::string all; ///< every diagnostic, one per line
  bool ok = false;
};

Loaded load(const std::string &toml,
            const std::vector<std::string> &overrides = {}, int64_t world = 0) {
  Loaded r;
  bool ok = r.loader.loadString(toml, "job.toml");
  for (const std::string &o : overrides)
    if (ok)
      ok = r.loader.applyOverride(o, "--" + o);
  if (ok)
    ok = r.loader.finalize();
  if (ok)
    ok = r.loader.validate(world ? world : r.loader.defaultWorldSize());
  for (const Diagnostic &d : r.loader.diagnostics())
    r.all += d.str() + "\n";
  r.ok = ok;
  return r;
}

const char kSmall[] = R"([model]
dim = 256
n_layers = 4
n_heads = 4
vocab_size = 1000
max_seq_len = 512

[train]
seq_len = 512
)";

const char kVlm[] = R"([model]
dim = 256
n_layers = 4
n_heads = 4
vocab_size = 1000
max_seq_len = 1024

[train]
seq_len = 576

[data]
tokenizer_path = "tok"
hf_dataset_name = "images"

[vision_encoder]
type = "random"
feature_dim = 384
num_tokens = 64
)";

struct RuleCase {
  const char *name;
  std::string toml;
  std::vector<std::string> overrides;
  int64_t world;
  const char *expect; ///< substring of the error (or warning) text
};

std::string small(const std::string &extra) { return kSmall + extra; }
std::string vlm(const std::string &extra) { return kVlm + extra; }

std::vector<RuleCase> ruleCases() {
  return {
      // §1.3 ModelConfig, in the reference's order.
      {"model_dim_positive",
       "[model]\ndim = 0\n",
       {},
       0,
       "dim, n_layers, and n_heads must be positive"},
      {"model_layers_positive",
       "[model]\nn_layers = -1\n",
       {},
       0,
       "dim, n_layers, and n_heads must be positive"},
      {"model_heads_positive",
       "[model]\nn_heads = 0\n",
       {},
       0,
       "dim, n_layers, and n_heads must be positive"},
      {"model_vocab_positive",
       "[model]\nvocab_size = 0\n",
       {},
       0,
       "vocab_size must be positive"},
      {"model_kv_positive",
       "[model]\nn_kv_heads = 0\n",
       {},
       0,
       "n_kv_heads must be positive"},
      {"model_heads_divide_dim",
       "[model]\nn_heads = 17\n",
       {},
       0,
       "job.toml:2:11: error: [model] n_heads (17) must divide dim (4096)"},
      {"model_kv_divide_heads",
       "[model]\nn_kv_heads = 5\n",
       {},
       0,
       "n_kv_heads (5) must divide n_heads (32)"},
      {"model_head_dim_even",
       "[model]\ndim = 12\nn_heads = 4\n",
       {},
       0,
       "head_dim = dim / n_heads = 3 must be even"},
      {"model_sdpa_backend",
       "[model]\nsdpa_backend = \"fast\"\n",
       {},
       0,
       "sdpa_backend: 'fast' is not one of: auto, flash, efficient, cudnn, "
       "math"},
      {"model_top_k_positive",
       "[model]\nnum_experts = 4\nmoe_top_k = 0\n",
       {},
       0,
       "moe_top_k must be positive when num_experts > 0"},
      {"model_top_k_le_experts",
       "[model]\nnum_experts = 4\nmoe_top_k = 5\n",
       {},
       0,
       "moe_top_k (5) must be <= num_experts (4)"},
      {"model_moe_frequency",
       "[model]\nnum_experts = 4\nmoe_frequency = 0\n",
       {},
       0,
       "moe_frequency must be positive"},
      {"model_seq_aux_nonneg",
       "[model]\nnum_experts = 4\nmoe_sequence_aux_loss_weight = -1.0\n",
       {},
       0,
       "moe_sequence_aux_loss_weight must be non-negative"},
      {"model_bias_schedule",
       "[model]\nmoe_bias_schedule = \"exp\"\n",
       {},
       0,
       "moe_bias_schedule: 'exp' is not one of: constant, cosine_decay, "
       "linear_warmup"},
      {"model_expert_mult",
       "[model]\nnum_experts = 4\nmoe_expert_ffn_multiplier = 0.0\n",
       {},
       0,
       "moe_expert_ffn_multiplier must be positive"},
      {"model_router_z",
       "[model]\nnum_experts = 4\nmoe_router_z_loss_weight = -0.1\n",
       {},
       0,
       "moe_router_z_loss_weight must be non-negative"},
      {"model_num_experts_nonneg",
       "[model]\nnum_experts = -1\n",
       {},
       0,
       "num_experts must be >= 0"},
      {"model_router_registry",
       "[model]\nmoe_router = \"topk\"\n",
       {},
       0,
       "moe_router: 'topk' is not one of: softmax_topk, sigmoid_topk"},
      {"model_activation",
       "[model]\nactivation = \"swish\"\n",
       {},
       0,
       "activation: 'swish' is not one of: silu, gelu, relu, swiglu"},
      {"model_norm_type",
       "[model]\nnorm_type = \"rmsnrm\"\n",
       {},
       0,
       "(did you mean 'rmsnorm'?)"},
      {"model_model_type",
       "[model]\nmodel_type = \"gpt\"\n",
       {},
       0,
       "model_type: 'gpt' is not one of: transformer"},
      // §1.3 TrainConfig.
      {"train_batch",
       "[train]\nbatch_size = 0\n",
       {},
       0,
       "[train] batch_size must be positive"},
      {"train_seq_len",
       "[train]\nseq_len = 0\n",
       {},
       0,
       "[train] seq_len must be positive"},
      {"train_max_steps",
       "[train]\nmax_steps = 0\n",
       {},
       0,
       "[train] max_steps must be positive"},
      {"train_accum",
       "[train]\ngrad_accum_steps = 0\n",
       {},
       0,
       "[train] grad_accum_steps must be positive"},
      {"train_clip",
       "[train]\ngrad_clip_norm = 0.0\n",
       {},
       0,
       "grad_clip_norm must be positive"},
      {"train_precision",
       "[train]\nmixed_precision = \"int8\"\n",
       {},
       0,
       "mixed_precision: 'int8' is not one of: bf16, fp16, fp32, fp8"},
      {"train_ac",
       "[train]\nactivation_checkpointing = \"partial\"\n",
       {},
       0,
       "is not one of: none, full, selective"},
      {"train_loss",
       "[train]\nloss_fn = \"mse\"\n",
       {},
       0,
       "loss_fn: 'mse' is not one of: cross_entropy, chunked_cross_entropy"},
      // §1.3 OptimizerConfig.
      {"opt_lr", "[optimizer]\nlr = 0.0\n", {}, 0, "lr must be positive"},
      {"opt_wd",
       "[optimizer]\nweight_decay = -0.1\n",
       {},
       0,
       "weight_decay must be non-negative"},
      {"opt_betas",
       "[optimizer]\nbetas = [0.9, 1.0]\n",
       {},
       0,
       "betas must be in [0, 1)"},
      {"opt_muon_momentum",
       "[optimizer]\nmuon_momentum = 1.0\n",
       {},
       0,
       "muon_momentum must be in (0, 1)"},
      {"opt_ns_steps",
       "[optimizer]\nmuon_ns_steps = 0\n",
       {},
       0,
       "muon_ns_steps must be positive"},
      {"opt_sf_warmup",
       "[optimizer]\nschedule_free_warmup_steps = -1\n",
       {},
       0,
       "schedule_free_warmup_steps must be non-negative"},
      {"opt_name",
       "[optimizer]\nname = \"sgd\"\n",
       {},
       0,
       "name: 'sgd' is not one of: adamw, lion, schedule_free_adamw, muon"},
      // §1.3 SchedulerConfig.
      {"sched_warmup",
       "[scheduler]\nwarmup_steps = -1\n",
       {},
       0,
       "warmup_steps must be non-negative"},
      {"sched_min_lr",
       "[scheduler]\nmin_lr_ratio = 1.5\n",
       {},
       0,
       "min_lr_ratio must be in [0, 1]"},
      {"sched_wsd_type",
       "[scheduler]\nwsd_decay_type = \"exp\"\n",
       {},
       0,
       "wsd_decay_type: 'exp' is not one of: cosine, linear, sqrt"},
      {"sched_rex",
       "[scheduler]\nrex_alpha = 0.0\n",
       {},
       0,
       "rex_alpha must be positive"},
      {"sched_name",
       "[scheduler]\nname = \"step\"\n",
       {},
       0,
       "is not one of: cosine, linear, wsd, constant, rex, none"},
      // §1.3 DatasetSource, TrainingPhase, DataConfig.
      {"dataset_weight",
       "[[data.datasets]]\npath = \"a\"\nweight = 0.0\n",
       {},
       0,
       "dataset weight must be positive, got 0"},
      {"phase_start",
       "[[data.phases]]\nstart_step = -1\n",
       {},
       0,
       "start_step must be >= 0"},
      {"phase_lr_scale",
       "[[data.phases]]\nlr_scale = 0.0\n",
       {},
       0,
       "lr_scale must be positive"},
      {"phase_weights",
       "[[data.datasets]]\npath = \"a\"\nname = \"a\"\n[[data.phases]]\n"
       "dataset_weights = { a = -1.0 }\n",
       {},
       0,
       "dataset_weights['a'] must be non-negative"},
      {"data_workers",
       "[data]\nnum_workers = -1\n",
       {},
       0,
       "num_workers must be non-negative"},
      {"data_prefetch",
       "[data]\nprefetch_factor = 0\n",
       {},
       0,
       "prefetch_factor must be >= 1"},
      {"data_temperature",
       "[data]\nmix_temperature = 0.0\n",
       {},
       0,
       "mix_temperature must be positive"},
      {"data_source_needs_path",
       "[[data.datasets]]\nname = \"web\"\n",
       {},
       0,
       "'web' must have either path or hf_name"},
      {"data_phases_increasing",
       "[[data.phases]]\nstart_step = 10\n[[data.phases]]\nstart_step = 10\n",
       {},
       0,
       "data.phases start_steps must be strictly monotonically increasing"},
      {"data_anneal_nonneg",
       "[data]\nanneal_start_step = -5\n",
       {},
       0,
       "anneal_start_step must be non-negative"},
      {"data_phases_and_anneal",
       "[data]\nanneal_start_step = 5\n[[data.phases]]\nstart_step = 0\n",
       {},
       0,
       "cannot use both data.phases and data.anneal_start_step"},
      {"data_phase_unknown_dataset",
       "[[data.datasets]]\npath = \"a\"\nname = \"web\"\n[[data.phases]]\n"
       "dataset_weights = { wbe = 1.0 }\n",
       {},
       0,
       "names unknown dataset 'wbe'; datasets: ['web'] (did you mean 'web'?)"},
      {"data_pack_needs_tokenizer",
       "[data]\npack_sequences = true\n",
       {},
       0,
       "pack_sequences = true needs data.tokenizer_path"},
      {"data_hf_needs_tokenizer",
       "[data]\nhf_dataset_name = \"wikitext\"\n",
       {},
       0,
       "Hugging Face datasets need data.tokenizer_path"},
      // §1.3 EvalConfig.
      {"eval_interval",
       "[eval]\ninterval = 0\n",
       {},
       0,
       "eval interval must be positive"},
      {"eval_steps",
       "[eval]\nsteps = 0\n",
       {},
       0,
       "eval steps must be positive"},
      // §1.3 DistributedConfig.
      {"dist_dp_shard_zero",
       "[distributed]\ndp_shard = 0\n",
       {},
       0,
       "dp_shard must be -1 (auto) or positive"},
      {"dist_dp_shard_neg",
       "[distributed]\ndp_shard = -2\n",
       {},
       0,
       "dp_shard must be -1 (auto) or positive"},
      {"dist_dp_replicate",
       "[distributed]\ndp_replicate = 0\n",
       {},
       0,
       "dp_replicate must be >= 1"},
      {"dist_tp", "[distributed]\ntp = 0\n", {}, 0, "tp must be >= 1"},
      {"dist_pp", "[distributed]\npp = 0\n", {}, 0, "pp must be >= 1"},
      {"dist_cp", "[distributed]\ncp = 0\n", {}, 0, "cp must be >= 1"},
      {"dist_ep", "[distributed]\nep = 0\n", {}, 0, "ep must be >= 1"},
      {"dist_cp_unsupported",
       "[distributed]\ncp = 2\n",
       {},
       0,
       "context parallelism is not supported yet"},
      {"dist_pp_schedule",
       "[distributed]\npp_schedule = \"zb\"\n",
       {},
       0,
       "pp_schedule: 'zb' is not one of: 1f1b, gpipe, interleaved_1f1b"},
      {"dist_pp_layers",
       small("[distributed]\npp = 8\n"),
       {},
       0,
       "pp (8) must be <= model.n_layers (4)"},
      // §1.3 CheckpointConfig, DynamicCheckpointWindow.
      {"ckpt_interval",
       "[checkpoint]\ninterval = 0\n",
       {},
       0,
       "[checkpoint] interval must be positive"},
      {"ckpt_window_start",
       "[checkpoint.dyn_ckpt_window]\nstart = -1\n",
       {},
       0,
       "dyn_ckpt_window.start must be >= 0"},
      {"ckpt_window_stop",
       "[checkpoint.dyn_ckpt_window]\nstart = 10\nstop = 5\n",
       {},
       0,
       "dyn_ckpt_window.stop (5) must be >= start (10)"},
      {"ckpt_window_strategy",
       "[checkpoint]\ndyn_ckpt_window = { strategy = \"fib\" }\n",
       {},
       0,
       "strategy: 'fib' is not one of: power2"},
      {"ckpt_async",
       "[checkpoint]\nasync_mode = \"threads\"\n",
       {},
       0,
       "async_mode: 'threads' is not one of: disabled, async, "
       "async_with_pinned_mem"},
      {"ckpt_export_dtype",
       "[checkpoint]\nexport_dtype = \"fp16\"\n",
       {},
       0,
       "export_dtype: 'fp16' is not one of: float32, bfloat16"},
      // §1.3 Metrics, Profiling.
      {"metrics_interval",
       "[metrics]\nlog_interval = 0\n",
       {},
       0,
       "log_interval must be positive"},
      {"profiling_window",
       "[profiling]\nstart_step = 8\nend_step = 8\n",
       {},
       0,
       "end_step (8) must be greater than start_step (8)"},
      // §1.3 VisionEncoder, Adapter.
      {"encoder_type",
       "[vision_encoder]\ntype = \"dino\"\n",
       {},
       0,
       "[vision_encoder] type: 'dino' is not one of: random, siglip2, clip"},
      {"encoder_feature_dim",
       "[vision_encoder]\nfeature_dim = -1\n",
       {},
       0,
       "vision_encoder.feature_dim must be non-negative"},
      {"encoder_num_tokens",
       "[vision_encoder]\nnum_tokens = -1\n",
       {},
       0,
       "vision_encoder.num_tokens must be non-negative"},
      {"adapter_type",
       "[adapter]\ntype = \"qformer\"\n",
       {},
       0,
       "is not one of: mlp_2layer, linear, avgpool, attentional_pool"},
      {"adapter_hidden",
       "[adapter]\nhidden_dim = -1\n",
       {},
       0,
       "adapter.hidden_dim must be non-negative"},
      {"adapter_activation",
       "[adapter]\nactivation = \"tanh\"\n",
       {},
       0,
       "activation: 'tanh' is not one of: gelu, silu, relu"},
      {"adapter_window",
       "[adapter]\npool_window = 0\n",
       {},
       0,
       "adapter.pool_window must be positive"},
      {"adapter_heads",
       "[adapter]\npool_heads = 0\n",
       {},
       0,
       "adapter.pool_heads must be positive"},
      // §1.3 VLM base and arch variants.
      {"vlm_arch",
       vlm("[vlm]\narch = \"perceiver\"\n"),
       {},
       0,
       "arch: 'perceiver' is not one of: joint_decoder, cross_attention, mot, "
       "moma"},
      {"vlm_text_len",
       vlm("[vlm]\nmax_text_len = 0\n"),
       {},
       0,
       "vlm.max_text_len must be positive"},
      {"vlm_freeze_schedule",
       vlm("[vlm]\nfreeze_schedule = [{ start_step = 20, specs = [] }, "
           "{ start_step = 10, specs = [] }]\n"),
       {},
       0,
       "vlm.freeze_schedule start_steps must be strictly monotonic"},
      {"vlm_freeze_alias",
       vlm("[vlm]\nfreeze = [{ module = \"adaptor\", frozen = true }]\n"),
       {},
       0,
       "module 'adaptor' is not a known module alias; known: ['adapter', "
       "'transformer', 'vision_encoder'] (did you mean 'adapter'?)"},
      {"ca_every",
       vlm("[vlm]\narch = \"cross_attention\"\ncross_attention_every_n_layers "
           "= 0\n"),
       {},
       0,
       "cross_attention_every_n_layers must be positive"},
      {"ca_heads",
       vlm("[vlm]\narch = \"cross_attention\"\ncross_attention_n_heads = -1\n"),
       {},
       0,
       "cross_attention_n_heads must be non-negative"},
      {"ca_kv_heads",
       vlm("[vlm]\narch = \"cross_attention\"\ncross_attention_n_kv_heads = "
           "-1\n"),
       {},
       0,
       "cross_attention_n_kv_heads must be non-negative"},
      {"ca_key_needs_arch",
       vlm("[vlm]\ncross_attention_n_heads = 4\n"),
       {},
       0,
       "unknown key 'cross_attention_n_heads' in [vlm]"},
      {"mot_two",
       vlm("[vlm]\narch = \"mot\"\nmot_modalities = [\"text\"]\n"),
       {},
       0,
       "vlm.mot_modalities must list at least 2 modalities"},
      {"mot_text",
       vlm("[vlm]\narch = \"mot\"\nmot_modalities = [\"image\", \"audio\"]\n"),
       {},
       0,
       "vlm.mot_modalities must include 'text'"},
      {"mot_image",
       vlm("[vlm]\narch = \"mot\"\nmot_modalities = [\"text\", \"audio\"]\n"),
       {},
       0,
       "vlm.mot_modalities must include 'image'"},
      {"mot_dupes",
       vlm("[vlm]\narch = \"mot\"\nmot_modalities = [\"text\", \"image\", "
           "\"text\"]\n"),
       {},
       0,
       "vlm.mot_modalities must not contain duplicates"},
      {"mot_heads",
       vlm("[vlm]\narch = \"mot\"\nmot_image_n_heads = -1\n"),
       {},
       0,
       "vlm.mot_image_n_heads must be non-negative"},
      {"mot_kv_heads",
       vlm("[vlm]\narch = \"mot\"\nmot_image_n_kv_heads = -1\n"),
       {},
       0,
       "vlm.mot_image_n_kv_heads must be non-negative"},
      {"mot_warm_start",
       vlm("[vlm]\narch = \"mot\"\nmot_warm_start_from_text = true\n"),
       {},
       0,
       "requires vlm.mot_warm_start_path"},
      {"mot_equal_heads",
       vlm("[vlm]\narch = \"mot\"\nmot_image_n_heads = 2\n"),
       {},
       0,
       "MoT v1 requires equal head counts"},
      {"moma_modalities",
       vlm("[vlm]\narch = \"moma\"\nmoma_modalities = [\"image\"]\n"),
       {},
       0,
       "vlm.moma_modalities must list at least 2 modalities"},
      {"moma_missing",
       vlm("[vlm]\narch = \"moma\"\nmoma_experts_per_modality = { image = 2 "
           "}\n"),
       {},
       0,
       "vlm.moma_experts_per_modality is missing entries for ['text']"},
      {"moma_unknown",
       vlm("[vlm]\narch = \"moma\"\nmoma_experts_per_modality = { image = 2, "
           "text = 2, "
           "audio = 2 }\n"),
       {},
       0,
       "has unknown modality keys ['audio']"},
      {"moma_positive",
       vlm("[vlm]\narch = \"moma\"\nmoma_experts_per_modality = { image = 0, "
           "text = 2 }\n"),
       {},
       0,
       "must be positive, got 0; for dense per-modality FFNs use arch='mot'"},
      {"moma_capacity",
       vlm("[vlm]\narch = \"moma\"\nmoma_capacity_factor = -1.0\n"),
       {},
       0,
       "vlm.moma_capacity_factor must be >= 0"},
      // §1.3 VideoConfig.
      {"video_dataset",
       "[video]\ndataset_type = \"kinetics\"\n",
       {},
       0,
       "dataset_type: 'kinetics' is not one of: webvid"},
      {"video_sampling",
       "[video]\nsampling_policy = \"random\"\n",
       {},
       0,
       "sampling_policy: 'random' is not one of: uniform"},
      {"video_split",
       "[video]\nsplit = \"test\"\n",
       {},
       0,
       "split: 'test' is not one of: train, validation"},
      {"video_max_samples",
       "[video]\nmax_samples = -1\n",
       {},
       0,
       "video.max_samples must be >= 0"},
      {"video_min_frames",
       "[video]\nmin_frames = 0\n",
       {},
       0,
       "video.min_frames must be >= 1"},
      {"video_max_frames",
       "[video]\nmax_frames = 0\n",
       {},
       0,
       "video.max_frames must be >= 1"},
      {"video_frame_order",
       "[video]\nmin_frames = 8\nmax_frames = 4\n",
       {},
       0,
       "video.min_frames (8) must be <= max_frames (4)"},
      {"video_fps",
       "[video]\nfps = 0.0\n",
       {},
       0,
       "video.fps must be positive"},
      {"video_frame_size",
       "[video]\nframe_size = 0\n",
       {},
       0,
       "video.frame_size must be positive"},
      // Checks forge adds where KempnerForge fails late or not at all.
      {"forge_ffn_hidden",
       "[model]\nffn_hidden_dim = 0\n",
       {},
       0,
       "[model] ffn_hidden_dim must be positive, got 0"},
      {"forge_ffn_mult",
       "[model]\nffn_dim_multiplier = -1.0\n",
       {},
       0,
       "[model] ffn_dim_multiplier must be positive"},
      {"forge_max_seq_len",
       "[model]\nmax_seq_len = 0\n",
       {},
       0,
       "[model] max_seq_len must be positive"},
      {"forge_norm_eps",
       "[model]\nnorm_eps = 0.0\n",
       {},
       0,
       "[model] norm_eps must be positive"},
      {"forge_rope_theta",
       "[model]\nrope_theta = -1.0\n",
       {},
       0,
       "[model] rope_theta must be positive"},
      {"forge_init_std",
       "[model]\ninit_std = 0.0\n",
       {},
       0,
       "[model] init_std must be positive"},
      {"forge_shared_experts",
       "[model]\nnum_experts = 4\nmoe_shared_experts = -1\n",
       {},
       0,
       "[model] moe_shared_experts must be >= 0"},
      {"forge_capacity",
       "[model]\nnum_experts = 4\nmoe_capacity_factor = -0.5\n",
       {},
       0,
       "[model] moe_capacity_factor must be >= 0"},
      {"forge_ce_chunk",
       "[train]\nce_chunk_size = -1\n",
       {},
       0,
       "[train] ce_chunk_size must be >= 0"},
      {"forge_z_loss",
       "[train]\nz_loss_weight = -1.0\n",
       {},
       0,
       "[train] z_loss_weight must be non-negative"},
      {"forge_eps",
       "[optimizer]\neps = 0.0\n",
       {},
       0,
       "[optimizer] eps must be positive"},
      {"forge_muon_adam_lr",
       "[optimizer]\nmuon_adam_lr = 0.0\n",
       {},
       0,
       "[optimizer] muon_adam_lr must be positive"},
      {"forge_decay_steps",
       "[scheduler]\ndecay_steps = -1\n",
       {},
       0,
       "[scheduler] decay_steps must be >= 0"},
      {"forge_stable_steps",
       "[scheduler]\nstable_steps = -1\n",
       {},
       0,
       "[scheduler] stable_steps must be >= 0"},
      {"forge_nccl_timeout",
       "[distributed]\nnccl_timeout_sec = 0\n",
       {},
       0,
       "[distributed] nccl_timeout_sec must be positive"},
      {"forge_dataset_names",
       "[[data.datasets]]\npath = \"a\"\nname = \"web\"\n"
       "[[data.datasets]]\npath = \"b\"\nname = \"web\"\n",
       {},
       0,
       "[[data.datasets]] name 'web' is used twice"},
      {"forge_anneal_names",
       "[data]\nanneal_start_step = 5\nanneal_weights = { code = 1.0 }\n"
       "[[data.datasets]]\npath = \"a\"\nname = \"web\"\n",
       {},
       0,
       "[data] anneal_weights names unknown dataset 'code'"},
      // §1.4 JobConfig construction checks.
      {"job_vlm_needs_encoder",
       small("[vlm]\n"),
       {},
       0,
       "[vlm] is set but [vision_encoder] is missing"},
      {"job_video_needs_vlm",
       small("[video]\n"),
       {},
       0,
       "[video] is set but [vlm] is missing"},
      {"job_vlm_max_seq_len",
       vlm("[vlm]\nmax_text_len = 1000\n"),
       {},
       0,
       "model.max_seq_len (1024) insufficient for VLM: needs 1064"},
      {"job_hf_encoder_warning",
       vlm("[vlm]\n").replace(vlm("").find("type = \"random\""), 15,
                              "type = \"siglip2\""),
       {},
       0,
       "warning: vision_encoder.type 'siglip2' reads its sizes"},
      {"job_avgpool_square",
       vlm("[adapter]\ntype = \"avgpool\"\n[vlm]\n"),
       {"vision_encoder.num_tokens=60"},
       0,
       "avgpool needs a square token grid, got 60 tokens"},
      {"job_attnpool_window",
       vlm("[adapter]\ntype = \"attentional_pool\"\npool_window = 3\n"
           "pool_heads = 4\n[vlm]\n"),
       {},
       0,
       "grid side (8) to be divisible by pool_window (3)"},
      {"job_attnpool_heads",
       vlm("[adapter]\ntype = \"attentional_pool\"\npool_heads = 5\n[vlm]\n"),
       {},
       0,
       "adapter.pool_heads (5) must divide vision_encoder.feature_dim (384)"},
      {"job_vlm_tokenizer",
       vlm("[vlm]\n"),
       {"data.tokenizer_path=", "data.hf_dataset_name=None"},
       0,
       "a VLM job needs data.tokenizer_path"},
      {"job_vlm_image_dataset",
       vlm("[vlm]\n"),
       {"data.hf_dataset_name=None"},
       0,
       "an image VLM job needs data.hf_dataset_name"},
      // §1.4 validate(world_size), in order.
      {"v1_product",
       "[distributed]\ndp_shard = 2\ntp = 2\n",
       {},
       8,
       "Parallelism dimensions (dp_replicate 1 x dp_shard 2 x tp 2 x pp 1 x cp "
       "1 x ep 1 = 4) do not match world_size (8)"},
      {"v1_divisible",
       "[distributed]\ntp = 4\n",
       {},
       6,
       "world_size (6) not divisible by dp_replicate*tp*pp*cp*ep (4)"},
      {"v2_seq_len",
       "[train]\nseq_len = 4096\n",
       {},
       0,
       "train.seq_len (4096) exceeds model.max_seq_len (2048)"},
      {"v3_tied_pp",
       "[model]\ntie_embeddings = true\n[distributed]\npp = 2\n",
       {},
       0,
       "Tied embeddings are not supported with pipeline parallelism"},
      {"v4_eval_source",
       "[eval]\nenabled = true\n",
       {},
       0,
       "eval.enabled is True but no eval data source"},
      {"v6_heads_tp",
       "[model]\nn_heads = 32\nn_kv_heads = 8\n[distributed]\ntp = 3\n",
       {},
       0,
       "n_heads (32) must be divisible by tp (3)"},
      {"v7_kv_tp",
       "[model]\nn_kv_heads = 2\n[distributed]\ntp = 4\n",
       {},
       0,
       "n_kv_heads (2) must be divisible by tp (4)"},
      {"v8_fp8_tp",
       "[train]\nmixed_precision = \"fp8\"\n[distributed]\ntp = 2\n",
       {},
       0,
       "FP8 + Tensor Parallelism is not yet supported"},
      {"v9_moe_pp",
       "[model]\nnum_experts = 4\n[distributed]\npp = 2\n",
       {},
       0,
       "MoE + Pipeline Parallelism is not supported"},
      {"v10_ep_dense",
       "[distributed]\nep = 2\n",
       {},
       0,
       "ep > 1 requires an MoE model (num_experts > 0)"},
      {"v11_ep_divides",
       "[model]\nnum_experts = 6\n[distributed]\nep = 4\n",
       {},
       0,
       "num_experts (6) must be divisible by ep (4)"},
      {"v12_vlm_seq_len",
       vlm("[vlm]\n"),
       {"train.seq_len=512"},
       0,
       "train.seq_len (512) insufficient for VLM: needs 576"},
      {"v13_vlm_pp",
       vlm("[vlm]\n[distributed]\npp = 2\n"),
       {},
       0,
       "VLM + Pipeline Parallelism is not supported"},
      {"v14_moma_experts",
       vlm("[vlm]\narch = \"moma\"\n"),
       {"model.num_experts=4"},
       0,
       "MoMa + model.num_experts > 0 is rejected"},
      {"v15_moma_ep",
       vlm("[vlm]\narch = \"moma\"\n[distributed]\nep = 2\n"),
       {},
       0,
       "ep > 1 requires an MoE model"},
      {"sigmoid_router_balancing",
       "[model]\nnum_experts = 4\nmoe_top_k = 2\nmoe_router = "
       "\"sigmoid_topk\"\n",
       {},
       0,
       "warning: moe_router = 'sigmoid_topk': forge does not yet apply "
       "KempnerForge's load-balancing update of the expert bias"},
      {"v17_moma_ac",
       vlm("[vlm]\narch = \"moma\"\n"),
       {"train.activation_checkpointing=full"},
       0,
       "warning: activation_checkpointing = 'full' with MoMa"},
  };
}

class RuleTest : public testing::TestWithParam<RuleCase> {};

TEST_P(RuleTest, TriggersWithMessage) {
  const RuleCase &c = GetParam();
  Loaded r = load(c.toml, c.overrides, c.world);
  std::string expect = c.expect;
  EXPECT_NE(r.all.find(expect), std::string::npos)
      << "expected: " << expect << "\ngot:\n"
      << r.all;
  if (expect.find("warning:") == std::string::npos) {
    EXPECT_FALSE(r.ok);
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, RuleTest, testing::ValuesIn(ruleCases()),
                         [](const testing::TestParamInfo<RuleCase> &i) {
                           return std::string(i.param.name);
                         });

//===--------------------------------------------------------------------===//
// Loader behaviour
//===--------------------------------------------------------------------===//

TEST(Loader, DefaultsMatchKempnerForge) {
  Loaded r = load("");
  ASSERT_TRUE(r.ok) << r.all;
  const JobConfig &c = r.loader.config();
  EXPECT_EQ(c.model.dim, 4096);
  EXPECT_EQ(c.model.kvHeads(), 32);
  EXPECT_EQ(c.model.ffnHiddenDim(), 11008);
  EXPECT_EQ(c.optimizer.betas[1], 0.95);
  EXPECT_EQ(c.scheduler.warmup_steps, 2000);
  EXPECT_EQ(c.distributed.dp_shard, -1);
  EXPECT_EQ(c.checkpoint.async_mode, "disabled");
  EXPECT_FALSE(c.vlm.has_value());
}

TEST(Loader, KvHeadsFollowHeadsAfterOverlays) {
  // KempnerForge keeps n_kv_heads = 32 here (sticky quirk); forge does not.
  Loaded r = load("[model]\ndim = 1024\nn_heads = 16\n");
  ASSERT_TRUE(r.ok) << r.all;
  EXPECT_EQ(r.loader.config().model.kvHeads(), 16);
  Loaded cli = load("", {"model.n_heads=64"});
  ASSERT_TRUE(cli.ok) << cli.all;
  EXPECT_EQ(cli.loader.config().model.kvHeads(), 64);
}

TEST(Loader, UnknownKeySuggestsClosest) {
  Loaded r = load("[model]\nn_kv_head = 8\n");
  EXPECT_NE(r.all.find("job.toml:2:1: error: unknown key 'n_kv_head' in "
                       "[model]; did you mean 'n_kv_heads'?"),
            std::string::npos)
      << r.all;
  EXPECT_NE(r.all.find("Valid keys: dim, n_layers"), std::string::npos);
}

TEST(Loader, UnknownTableAndNestedKeys) {
  Loaded r = load("[hooks]\nx = 1\n");
  EXPECT_NE(r.all.find("unknown table [hooks]"), std::string::npos) << r.all;
  Loaded n = load("[[data.datasets]]\npath = \"a\"\nwieght = 2.0\n");
  EXPECT_NE(n.all.find("unknown key 'wieght' in [data.datasets[0]]; did you "
                       "mean 'weight'?"),
            std::string::npos)
      << n.all;
  Loaded w = load("[checkpoint.dyn_ckpt_window]\nstratgy = \"power2\"\n");
  EXPECT_NE(w.all.find("did you mean 'strategy'?"), std::string::npos) << w.all;
}

TEST(Loader, NoSilentCoercion) {
  Loaded f = load("[model]\ndim = 3.7\n");
  EXPECT_NE(f.all.find("job.toml:2:7: error: [model] dim: expected an integer, "
                       "got a float (3.7); forge does not truncate"),
            std::string::npos)
      << f.all;
  Loaded s = load("[model]\ndim = \"512\"\n");
  EXPECT_NE(s.all.find("got the string \"512\"; hint: write the number without "
                       "quotes"),
            std::string::npos)
      << s.all;
  Loaded b = load("[train]\ncompile_model = \"false\"\n");
  EXPECT_NE(b.all.find("expected a boolean (true or false)"),
            std::string::npos);
  Loaded str = load("[checkpoint]\ndir = 5\n");
  EXPECT_NE(str.all.find("expected a string, got an integer (5)"),
            std::string::npos);
  Loaded arr = load("[optimizer]\nbetas = [0.9]\n");
  EXPECT_NE(arr.all.find("expected an array of two numbers"),
            std::string::npos);
  // An int for a float key is exact, so it is accepted.
  Loaded ok = load("[optimizer]\nlr = 1\n");
  EXPECT_TRUE(ok.ok) << ok.all;
  EXPECT_EQ(ok.loader.config().optimizer.lr, 1.0);
}

TEST(Loader, SyntaxErrorIsLocated) {
  Loaded r = load("[model]\ndim = = 3\n");
  EXPECT_NE(r.all.find("job.toml:2:"), std::string::npos) << r.all;
  EXPECT_NE(r.all.find("TOML syntax error"), std::string::npos);
  Loaded dup = load("[model]\ndim = 3\ndim = 4\n");
  EXPECT_NE(dup.all.find("TOML syntax error"), std::string::npos) << dup.all;
}

TEST(Loader, CliOverridesAreTypedAndLocated) {
  Loaded r =
      load(kSmall, {"model.dim=512", "optimizer.betas=(0.8, 0.9)",
                    "train.compile_model=False", "checkpoint.async_mode=async",
                    "checkpoint.load_path=/ckpt/step_100",
                    "metrics.wandb_run_name=2024"});
  ASSERT_TRUE(r.ok) << r.all;
  const JobConfig &c = r.loader.config();
  EXPECT_EQ(c.model.dim, 512);
  EXPECT_EQ(c.optimizer.betas[0], 0.8);
  EXPECT_FALSE(c.train.compile_model);
  EXPECT_EQ(c.checkpoint.async_mode, "async");
  EXPECT_EQ(*c.checkpoint.load_path, "/ckpt/step_100");
  EXPECT_EQ(*c.metrics.wandb_run_name, "2024");

  Loaded bad = load(kSmall, {"model.dim=3.7"});
  EXPECT_NE(bad.all.find("command line '--model.dim=3.7': error: [model] dim: "
                         "expected an integer"),
            std::string::npos)
      << bad.all;
  Loaded rule = load(kSmall, {"model.n_heads=3"});
  EXPECT_NE(rule.all.find("command line '--model.n_heads=3': error: [model] "
                          "n_heads (3) must divide dim (256)"),
            std::string::npos)
      << rule.all;
  Loaded unknown = load(kSmall, {"model.dimm=3"});
  EXPECT_NE(unknown.all.find("did you mean 'dim'?"), std::string::npos);
  Loaded none = load("[train]\ndata_seed = 7\n", {"train.data_seed=None"});
  ASSERT_TRUE(none.ok) << none.all;
  EXPECT_FALSE(none.loader.config().train.data_seed.has_value());
  Loaded noneBad = load("", {"model.dim=None"});
  EXPECT_NE(noneBad.all.find("[model] dim: expected an integer"),
            std::string::npos)
      << noneBad.all;
  Loaded flag = load("", {"model.tie_embeddings"});
  ASSERT_TRUE(flag.ok) << flag.all;
  EXPECT_TRUE(flag.loader.config().model.tie_embeddings);
}

TEST(Loader, OptionalSectionsAndVlmArch) {
  Loaded r = load(vlm("[vlm]\narch = \"cross_attention\"\n"
                      "cross_attention_every_n_layers = 2\n"));
  ASSERT_TRUE(r.ok) << r.all;
  const JobConfig &c = r.loader.config();
  ASSERT_TRUE(c.adapter.has_value()); // materialized with defaults
  EXPECT_EQ(c.adapter->type, "mlp_2layer");
  EXPECT_EQ(c.vlm->cross_attention_every_n_layers, 2);
  EXPECT_EQ(c.vlm->module_patterns.at("cross_attention")[0],
            "transformer.cross_attention_layers");
  // Switching arch on the command line drops the old arch's keys.
  Loaded s = load(vlm("[vlm]\narch = \"cross_attention\"\n"
                      "cross_attention_every_n_layers = 2\n"),
                  {"vlm.arch=mot"});
  ASSERT_TRUE(s.ok) << s.all;
  EXPECT_EQ(s.loader.config().vlm->cross_attention_every_n_layers, 4);
}

TEST(Loader, WorldSizeResolvesDpShard) {
  Loaded r = load("[distributed]\ntp = 4\n", {}, 32);
  ASSERT_TRUE(r.ok) << r.all;
  EXPECT_EQ(resolveDpShard(r.loader.config().distributed, 32), 8);
  EXPECT_EQ(r.loader.defaultWorldSize(), 4);
  Loaded e = load("[distributed]\ndp_shard = 3\ntp = 4\n");
  EXPECT_EQ(e.loader.defaultWorldSize(), 12);
}

//===--------------------------------------------------------------------===//
// Printing, docs, shipped configs
//===--------------------------------------------------------------------===//

JobConfig roundTrip(const JobConfig &c, std::string *text, std::string *errs) {
  *text = printConfig(c);
  ConfigLoader again;
  bool ok = again.loadString(*text, "printed.toml") && again.finalize();
  for (const Diagnostic &d : again.diagnostics())
    *errs += d.str() + "\n";
  EXPECT_TRUE(ok);
  return again.config();
}

TEST(Printer, RoundTripsEveryFeature) {
  std::string toml = vlm(R"(
[adapter]
type = "avgpool"

[vlm]
arch = "moma"
moma_experts_per_modality = { image = 2, text = 3 }
freeze_schedule = [{ start_step = 10, specs = [{ module = "adapter", frozen = true }] },
                   { start_step = 20, specs = [{ module = "adapter", frozen = false }] }]

[video]
max_frames = 8
prompt = "Describe \"this\"\n\tclip"

[optimizer]
lr = 0.1
betas = [0.9, 0.999]
muon_adam_lr = 3e-4

[checkpoint]
dyn_ckpt_window = { start = 5, stop = 100 }
exclude_from_loading = ["optimizer", "rng"]
)");
  toml.replace(toml.find("max_seq_len = 1024"), 18, "max_seq_len = 4096");
  Loaded r = load(toml, {"train.seq_len=1024"});
  ASSERT_TRUE(r.ok) << r.all;
  std::string text, errs;
  JobConfig back = roundTrip(r.loader.config(), &text, &errs);
  EXPECT_TRUE(back == r.loader.config()) << text << errs;
  EXPECT_EQ(printConfig(back), text);
}

TEST(Docs, ConfigReferenceIsCurrent) {
  std::ifstream in(std::string(FORGE_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), generateConfigDocs())
      << "docs/config.md is stale: regenerate it with\n"
         "  build/bin/forgec --print-config-docs > docs/config.md";
}

/// Every shipped config: valid at the world size its header states, and
/// printed TOML loads back to the same config.
TEST(ShippedConfigs, ValidAndRoundTrip) {
  namespace fs = std::filesystem;
  std::regex worldRe("^# world size: ([0-9]+)");
  int count = 0;
  for (const auto &entry : fs::recursive_directory_iterator(
           std::string(FORGE_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".toml")
      continue;
    std::string path = entry.path().string();
    SCOPED_TRACE(path);
    ++count;
    std::ifstream in(path);
    std::string line;
    int64_t world = 0;
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_search(line, m, worldRe))
        world = std::stoll(m[1]);
    }
    ASSERT_GT(world, 0) << "missing '# world size: N' header";
    ConfigLoader l;
    bool ok = l.loadFile(path) && l.finalize() && l.validate(world);
    std::string errs;
    for (const Diagnostic &d : l.diagnostics())
      errs += d.str() + "\n";
    ASSERT_TRUE(ok) << errs;
    std::string text, rtErrs;
    JobConfig back = roundTrip(l.config(), &text, &rtErrs);
    EXPECT_TRUE(back == l.config()) << text << rtErrs;
  }
  EXPECT_GE(count, 20);
}

//===--------------------------------------------------------------------===//
// Model facts, registry and plugins
//===--------------------------------------------------------------------===//

TEST(Model, FfnWidthsMatchReference) {
  const std::pair<std::pair<int64_t, double>, int64_t> cases[] = {
      {{4096, 1.3}, 14336}, {{5120, 1.3}, 17920}, {{6144, 1.3}, 21504},
      {{2048, 1.3}, 7168},  {{4096, 1.0}, 11008}, {{256, 1.0}, 768},
      {{512, 1.0}, 1536},   {{1024, 1.0}, 2816}};
  for (auto &[in, want] : cases) {
    ModelConfig m;
    m.dim = in.first;
    m.ffn_dim_multiplier = in.second;
    EXPECT_EQ(m.ffnHiddenDim(), want) << in.first << " x " << in.second;
  }
}

TEST(Model, NumParamsEstimateMatchesReference) {
  auto preset = [](int64_t d, int64_t l, int64_t h, int64_t kv, double mult) {
    ModelConfig m;
    m.dim = d;
    m.n_layers = l;
    m.n_heads = h;
    m.n_kv_heads = kv;
    m.vocab_size = 128256;
    m.ffn_dim_multiplier = mult;
    return m;
  };
  EXPECT_NEAR(model::numParamsEstimate(preset(4096, 32, 32, 8, 1.3)) / 1e9,
              8.0303, 5e-5);
  EXPECT_NEAR(model::numParamsEstimate(preset(5120, 40, 40, 8, 1.3)) / 1e9,
              14.8404, 5e-5);
  EXPECT_NEAR(model::numParamsEstimate(preset(6144, 56, 48, 8, 1.3)) / 1e9,
              28.7055, 5e-5);
  ModelConfig l70 = preset(8192, 80, 64, 8, 1.0);
  l70.ffn_hidden_dim = 28672;
  EXPECT_NEAR(model::numParamsEstimate(l70) / 1e9, 70.5537, 5e-5);
  ModelConfig moe = preset(2048, 24, 16, 4, 1.3);
  moe.num_experts = 8;
  EXPECT_NEAR(model::numParamsEstimate(moe) / 1e9, 9.2332, 5e-5);
  moe.num_experts = 16;
  EXPECT_NEAR(model::numParamsEstimate(moe) / 1e9, 17.6893, 5e-5);
  moe.num_experts = 64;
  EXPECT_NEAR(model::numParamsEstimate(moe) / 1e9, 68.426, 5e-4);
}

TEST(Model, ParamsUseKempnerForgeNamesAndInit) {
  ModelConfig m;
  m.dim = 64;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.vocab_size = 100;
  m.num_experts = 4;
  m.moe_frequency = 2;
  m.moe_router = "sigmoid_topk";
  std::vector<model::ParamInfo> ps = model::textModelParams(m);
  auto find = [&](const std::string &fqn) -> const model::ParamInfo * {
    for (const auto &p : ps)
      if (p.fqn == fqn)
        return &p;
    return nullptr;
  };
  ASSERT_TRUE(find("layers.0.mlp.gate_proj.weight"));
  ASSERT_TRUE(find("layers.1.mlp.router.expert_bias"));
  const model::ParamInfo *k = find("layers.0.attention.k_proj.weight");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->shape, (std::vector<int64_t>{32, 64}));
  const model::ParamInfo *down =
      find("layers.1.mlp.experts.3.down_proj.weight");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->init, model::Init::ResidualNormal);
  EXPECT_DOUBLE_EQ(down->std, 0.02 / 2.0);
  EXPECT_EQ(find("norm.weight")->init, model::Init::Ones);
  ASSERT_TRUE(find("output_head.proj.weight"));
}

TEST(Registry, DuplicateNamesAreRejected) {
  std::string error;
  EXPECT_FALSE(registry::norms().add({"rmsnorm", "again", false}, &error));
  EXPECT_EQ(error, "norm 'rmsnorm' is already registered");
}

TEST(Registry, PluginRegistersAnMlpThatConfigsSelect) {
  Loaded before = load("[model]\nactivation = \"tanh_mlp\"\n");
  EXPECT_NE(before.all.find("'tanh_mlp' is not one of"), std::string::npos)
      << before.all;
  EXPECT_EQ(registry::loadPlugin(FORGE_PLUGIN_PATH), "");
  Loaded after = load("[model]\nactivation = \"tanh_mlp\"\n");
  ASSERT_TRUE(after.ok) << after.all;
  std::vector<model::ParamInfo> ps =
      model::textModelParams(after.loader.config().model);
  bool hasUp = false, hasGate = false;
  for (const auto &p : ps) {
    hasUp = hasUp || p.fqn == "layers.0.mlp.up_proj.weight";
    hasGate = hasGate || p.fqn == "layers.0.mlp.gate_proj.weight";
  }
  EXPECT_TRUE(hasUp);
  EXPECT_FALSE(hasGate);
  EXPECT_NE(registry::loadPlugin("/nonexistent/libnothing.so"), "");
}

} // namespace
