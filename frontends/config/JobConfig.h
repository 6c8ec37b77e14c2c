//===- JobConfig.h - The typed KempnerForge job schema --------------------===//
//
// Every table and key of KempnerForge's JobConfig, with the same names, types,
// enums and defaults. Each section declares its keys once, in `visit()`; the
// TOML loader, the printer (`--print-config`), the key lists of unknown-key
// errors and the generated docs/config.md are all driven by that one
// declaration, so none of them can drift from the others.
//
// A visitor `V` provides:
//   v.field(key, member, doc)               typed scalar / list / table member
//   v.choice(key, member, doc, choicesFn)   string restricted to a set
// where choicesFn() returns the allowed names (fixed, or from the registry).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_CONFIG_JOBCONFIG_H
#define FORGE_CONFIG_JOBCONFIG_H

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace forge::config {

using Choices = std::vector<std::string> (*)();

/// Allowed values of the enum-like keys. Those backed by the registry include
/// entries added by plugins.
namespace choices {
std::vector<std::string> normType();
std::vector<std::string> activation();
std::vector<std::string> modelType();
std::vector<std::string> sdpaBackend();
std::vector<std::string> moeRouter();
std::vector<std::string> moeBiasSchedule();
std::vector<std::string> mixedPrecision();
std::vector<std::string> activationCheckpointing();
std::vector<std::string> lossFn();
std::vector<std::string> optimizer();
std::vector<std::string> scheduler();
std::vector<std::string> wsdDecayType();
std::vector<std::string> ppSchedule();
std::vector<std::string> asyncMode();
std::vector<std::string> exportDtype();
std::vector<std::string> windowStrategy();
std::vector<std::string> visionEncoder();
std::vector<std::string> adapter();
std::vector<std::string> adapterActivation();
std::vector<std::string> vlmArch();
std::vector<std::string> videoDataset();
std::vector<std::string> videoSampling();
std::vector<std::string> videoSplit();
} // namespace choices

/// Marks a key as accepted for compatibility with KempnerForge's config files
/// but without effect in forge; docs/config.md shows the reason.
#define FORGE_NO_EFFECT "[no effect in forge] "
/// Marks a key forge adds to KempnerForge's schema.
#define FORGE_EXTENSION "[forge only] "

struct ModelConfig {
  int64_t dim = 4096;
  int64_t n_layers = 32;
  int64_t n_heads = 32;
  std::optional<int64_t> n_kv_heads;
  int64_t vocab_size = 32000;
  double ffn_dim_multiplier = 1.0;
  std::optional<int64_t> ffn_hidden_dim;
  std::string norm_type = "rmsnorm";
  double norm_eps = 1e-5;
  std::string activation = "silu";
  int64_t max_seq_len = 2048;
  double rope_theta = 10000.0;
  bool tie_embeddings = false;
  bool qk_norm = false;
  double init_std = 0.02;
  std::string model_type = "transformer";
  std::string sdpa_backend = "auto";
  int64_t num_experts = 0;
  int64_t moe_top_k = 2;
  int64_t moe_frequency = 1;
  std::string moe_router = "softmax_topk";
  int64_t moe_shared_experts = 0;
  double moe_aux_loss_weight = 0.01;
  double moe_capacity_factor = 0.0;
  double moe_sequence_aux_loss_weight = 0.0;
  bool moe_gradient_scale = false;
  std::string moe_bias_schedule = "constant";
  bool moe_packed_experts = false;
  double moe_expert_ffn_multiplier = 1.0;
  double moe_router_z_loss_weight = 0.0;

  bool isMoe() const { return num_experts > 0; }
  /// n_kv_heads, which follows n_heads while unset.
  int64_t kvHeads() const { return n_kv_heads ? *n_kv_heads : n_heads; }
  int64_t headDim() const { return dim / n_heads; }
  /// Width of the dense FFN (reference §2.5).
  int64_t ffnHiddenDim() const;
  /// Width of each routed/shared expert (reference §2.5).
  int64_t expertFfnHiddenDim() const;
  /// Whether layer `i` is an MoE layer.
  bool isMoeLayer(int64_t i) const {
    return isMoe() && (i + 1) % moe_frequency == 0;
  }

  template <typename V> void visit(V &v) {
    v.field("dim", dim, "model width (> 0)");
    v.field("n_layers", n_layers, "number of transformer blocks (> 0)");
    v.field("n_heads", n_heads, "attention heads (> 0, divides dim)");
    v.field("n_kv_heads", n_kv_heads,
            "key/value heads for GQA (> 0, divides n_heads); unset = n_heads");
    v.field("vocab_size", vocab_size, "vocabulary size (> 0)");
    v.field("ffn_dim_multiplier", ffn_dim_multiplier,
            "scales the Llama FFN width 4*dim*2/3 (used when ffn_hidden_dim "
            "is unset; rounded up to a multiple of 256)");
    v.field("ffn_hidden_dim", ffn_hidden_dim,
            "explicit FFN width (no rounding); unset = computed");
    v.choice("norm_type", norm_type, "normalization layer (registry: norm)",
             choices::normType);
    v.field("norm_eps", norm_eps, "epsilon of every block and final norm");
    v.choice("activation", activation,
             "MLP variant: silu (SwiGLU), gelu, relu, or any registered mlp "
             "name",
             choices::activation);
    v.field("max_seq_len", max_seq_len, "RoPE table length (>= train.seq_len)");
    v.field("rope_theta", rope_theta, "RoPE base");
    v.field("tie_embeddings", tie_embeddings,
            "share the embedding and output head weight");
    v.field("qk_norm", qk_norm, "per-head RMSNorm (eps 1e-5) on q and k");
    v.field("init_std", init_std, "std of the normal weight init");
    v.choice("model_type", model_type, "model family (registry: model)",
             choices::modelType);
    v.choice("sdpa_backend", sdpa_backend,
             FORGE_NO_EFFECT "PyTorch SDPA kernel choice; forge's attention "
                             "kernels are chosen by the backend",
             choices::sdpaBackend);
    v.field("num_experts", num_experts,
            "routed experts per MoE layer; 0 = dense");
    v.field("moe_top_k", moe_top_k, "experts per token (1..num_experts)");
    v.field("moe_frequency", moe_frequency,
            "layer i is MoE iff (i+1) % moe_frequency == 0");
    v.choice("moe_router", moe_router, "router (registry: router)",
             choices::moeRouter);
    v.field("moe_shared_experts", moe_shared_experts,
            "> 0 adds one shared expert MLP to every MoE layer");
    v.field("moe_aux_loss_weight", moe_aux_loss_weight,
            "weight of the load-balancing auxiliary loss");
    v.field("moe_capacity_factor", moe_capacity_factor,
            "expert capacity factor; 0 = no token dropping");
    v.field("moe_sequence_aux_loss_weight", moe_sequence_aux_loss_weight,
            "sequence-level aux loss weight (sigmoid router; >= 0)");
    v.field("moe_gradient_scale", moe_gradient_scale,
            "scale expert outputs by avg_load/load");
    v.choice("moe_bias_schedule", moe_bias_schedule,
             "sigmoid-router bias update rate schedule (checked, not yet "
             "applied: forge does not do the bias's load-balancing update)",
             choices::moeBiasSchedule);
    v.field("moe_packed_experts", moe_packed_experts,
            "store experts as packed [E, in, out] tensors");
    v.field("moe_expert_ffn_multiplier", moe_expert_ffn_multiplier,
            "expert width = multiplier * FFN width, rounded to 16 (> 0)");
    v.field("moe_router_z_loss_weight", moe_router_z_loss_weight,
            "router z-loss weight (>= 0)");
  }
  bool operator==(const ModelConfig &) const = default;
};

struct TrainConfig {
  int64_t batch_size = 8;
  int64_t seq_len = 2048;
  int64_t max_steps = 100000;
  int64_t grad_accum_steps = 1;
  double grad_clip_norm = 1.0;
  int64_t seed = 42;
  std::optional<int64_t> data_seed;
  bool compile_model = true;
  std::string mixed_precision = "bf16";
  std::string activation_checkpointing = "none";
  std::string loss_fn = "cross_entropy";
  double z_loss_weight = 0.0;
  int64_t ce_chunk_size = 0;
  double shutdown_timeout_sec = 600.0;
  int64_t nccl_health_check_interval = 0;

  int64_t effectiveDataSeed() const { return data_seed ? *data_seed : seed; }
  int64_t effectiveCeChunkSize() const {
    return ce_chunk_size > 0 ? ce_chunk_size : 4096;
  }

  template <typename V> void visit(V &v) {
    v.field("batch_size", batch_size, "per-rank micro-batch size (> 0)");
    v.field("seq_len", seq_len,
            "tokens per sample (> 0, <= model.max_seq_len)");
    v.field("max_steps", max_steps, "optimizer steps to train (> 0)");
    v.field("grad_accum_steps", grad_accum_steps,
            "micro-batches per step; also the pipeline micro-batch count");
    v.field("grad_clip_norm", grad_clip_norm,
            "global gradient-norm clip (> 0; clipping is always on)");
    v.field("seed", seed, "seed of the parameter init and other RNG");
    v.field("data_seed", data_seed, "seed of the data order; unset = seed");
    v.field("compile_model", compile_model,
            FORGE_NO_EFFECT "torch.compile switch; forge always compiles "
                            "ahead of time");
    v.choice("mixed_precision", mixed_precision, "parameter/compute precision",
             choices::mixedPrecision);
    v.choice("activation_checkpointing", activation_checkpointing,
             "recompute activations in backward",
             choices::activationCheckpointing);
    v.choice("loss_fn", loss_fn, "loss (registry: loss)", choices::lossFn);
    v.field("z_loss_weight", z_loss_weight, "weight of the logit z-loss");
    v.field("ce_chunk_size", ce_chunk_size,
            "tokens per chunk of chunked_cross_entropy; 0 = 4096");
    v.field("shutdown_timeout_sec", shutdown_timeout_sec,
            "seconds between a termination signal and a forced exit");
    v.field("nccl_health_check_interval", nccl_health_check_interval,
            "steps between collective liveness checks; 0 = off");
  }
  bool operator==(const TrainConfig &) const = default;
};

struct OptimizerConfig {
  std::string name = "adamw";
  double lr = 3e-4;
  double weight_decay = 0.1;
  std::array<double, 2> betas = {0.9, 0.95};
  double eps = 1e-8;
  bool fused = true;
  double muon_momentum = 0.95;
  int64_t muon_ns_steps = 5;
  std::optional<double> muon_adam_lr;
  int64_t schedule_free_warmup_steps = 0;

  template <typename V> void visit(V &v) {
    v.choice("name", name, "optimizer (registry: optimizer)",
             choices::optimizer);
    v.field("lr", lr, "peak learning rate (> 0)");
    v.field("weight_decay", weight_decay,
            "decoupled weight decay on >= 2-D weights (>= 0)");
    v.field("betas", betas, "[beta1, beta2], each in [0, 1)");
    v.field("eps", eps, "Adam epsilon");
    v.field("fused", fused,
            FORGE_NO_EFFECT "PyTorch fused AdamW switch; forge's update "
                            "kernels are always fused");
    v.field("muon_momentum", muon_momentum, "Muon momentum, in (0, 1)");
    v.field("muon_ns_steps", muon_ns_steps, "Newton-Schulz iterations (> 0)");
    v.field("muon_adam_lr", muon_adam_lr,
            "lr of Muon's AdamW fallback group; unset = lr");
    v.field("schedule_free_warmup_steps", schedule_free_warmup_steps,
            "schedule-free AdamW warmup steps (>= 0)");
  }
  bool operator==(const OptimizerConfig &) const = default;
};

struct SchedulerConfig {
  std::string name = "cosine";
  int64_t warmup_steps = 2000;
  std::optional<int64_t> decay_steps;
  double min_lr_ratio = 0.1;
  std::optional<int64_t> stable_steps;
  std::string wsd_decay_type = "cosine";
  double rex_alpha = 1.0;

  template <typename V> void visit(V &v) {
    v.choice("name", name, "LR schedule (registry: scheduler)",
             choices::scheduler);
    v.field("warmup_steps", warmup_steps, "linear warmup steps (>= 0)");
    v.field("decay_steps", decay_steps,
            "decay length; unset or 0 = the steps after warmup (and stable)");
    v.field("min_lr_ratio", min_lr_ratio, "final lr / peak lr, in [0, 1]");
    v.field("stable_steps", stable_steps, "WSD stable phase; unset = 0");
    v.choice("wsd_decay_type", wsd_decay_type, "shape of the WSD cooldown",
             choices::wsdDecayType);
    v.field("rex_alpha", rex_alpha, "REX curvature (> 0)");
  }
  bool operator==(const SchedulerConfig &) const = default;
};

struct DatasetSource {
  std::string path;
  double weight = 1.0;
  std::string name;
  std::string hf_name;
  std::string hf_config;

  template <typename V> void visit(V &v) {
    v.field("path", path, "directory of pre-tokenized shards");
    v.field("weight", weight, "sampling weight (> 0)");
    v.field("name", name, "name used by phases and anneal_weights");
    v.field("hf_name", hf_name, "Hugging Face dataset name");
    v.field("hf_config", hf_config, "Hugging Face dataset config");
  }
  bool operator==(const DatasetSource &) const = default;
};

struct TrainingPhase {
  int64_t start_step = 0;
  std::map<std::string, double> dataset_weights;
  double lr_scale = 1.0;

  template <typename V> void visit(V &v) {
    v.field("start_step", start_step, "first step of the phase (>= 0)");
    v.field("dataset_weights", dataset_weights,
            "dataset name -> mixing weight (>= 0)");
    v.field("lr_scale", lr_scale, "multiplies the scheduled lr (> 0)");
  }
  bool operator==(const TrainingPhase &) const = default;
};

struct DataConfig {
  std::string dataset_path;
  std::string file_pattern = "*.npy";
  std::string tokenizer_path;
  int64_t num_workers = 4;
  bool pin_memory = true;
  int64_t prefetch_factor = 2;
  std::optional<std::string> hf_dataset_name;
  std::optional<std::string> hf_dataset_config;
  std::string hf_dataset_split = "train";
  std::string hf_dataset_text_field = "text";
  std::string hf_dataset_image_field = "image";
  std::string hf_dataset_prompt_field;
  int64_t hf_image_size = 224;
  bool hf_streaming = false;
  bool pack_sequences = false;
  std::vector<DatasetSource> datasets;
  double mix_temperature = 1.0;
  std::vector<TrainingPhase> phases;
  int64_t anneal_start_step = 0;
  std::map<std::string, double> anneal_weights;

  template <typename V> void visit(V &v) {
    v.field("dataset_path", dataset_path,
            "directory of pre-tokenized shards (.npy / .bin)");
    v.field("file_pattern", file_pattern, "glob of shard files");
    v.field("tokenizer_path", tokenizer_path,
            "tokenizer directory or tokenizer.json (EOS id for packing)");
    v.field("num_workers", num_workers,
            "data loader threads (>= 0); forge prefetches on its own thread");
    v.field("pin_memory", pin_memory,
            FORGE_NO_EFFECT "PyTorch host staging; forge's loader writes "
                            "straight into the plan's input buffers");
    v.field("prefetch_factor", prefetch_factor, "batches prefetched (>= 1)");
    v.field("hf_dataset_name", hf_dataset_name, "Hugging Face dataset");
    v.field("hf_dataset_config", hf_dataset_config, "Hugging Face config");
    v.field("hf_dataset_split", hf_dataset_split, "Hugging Face split");
    v.field("hf_dataset_text_field", hf_dataset_text_field, "text column");
    v.field("hf_dataset_image_field", hf_dataset_image_field,
            "image column (VLM)");
    v.field("hf_dataset_prompt_field", hf_dataset_prompt_field,
            "prompt column (VLM); empty = no prompt mask");
    v.field("hf_image_size", hf_image_size, "image side in pixels (VLM)");
    v.field("hf_streaming", hf_streaming, "stream the Hugging Face dataset");
    v.field("pack_sequences", pack_sequences,
            "pack documents with a block-diagonal mask (needs tokenizer_path)");
    v.field("datasets", datasets,
            "mixture sources; when non-empty they replace dataset_path");
    v.field("mix_temperature", mix_temperature,
            "mixing temperature on the weights (> 0)");
    v.field("phases", phases,
            "training phases (strictly increasing start_step)");
    v.field("anneal_start_step", anneal_start_step,
            "step that switches to anneal_weights; 0 = off");
    v.field("anneal_weights", anneal_weights, "dataset name -> weight");
  }
  bool operator==(const DataConfig &) const = default;
};

struct EvalConfig {
  bool enabled = false;
  int64_t interval = 1000;
  int64_t steps = 50;
  std::string dataset_path;
  std::string file_pattern = "*.npy";
  std::optional<std::string> hf_dataset_name;
  std::optional<std::string> hf_dataset_config;
  std::string hf_dataset_split = "validation";

  template <typename V> void visit(V &v) {
    v.field("enabled", enabled, "run evaluation during training");
    v.field("interval", interval, "steps between evaluations (> 0)");
    v.field("steps", steps, "batches per evaluation (> 0)");
    v.field("dataset_path", dataset_path, "eval shards directory");
    v.field("file_pattern", file_pattern, "glob of eval shard files");
    v.field("hf_dataset_name", hf_dataset_name, "Hugging Face eval dataset");
    v.field("hf_dataset_config", hf_dataset_config, "Hugging Face config");
    v.field("hf_dataset_split", hf_dataset_split, "Hugging Face split");
  }
  bool operator==(const EvalConfig &) const = default;
};

struct DistributedConfig {
  int64_t dp_shard = -1;
  int64_t dp_replicate = 1;
  int64_t tp = 1;
  int64_t pp = 1;
  std::string pp_schedule = "1f1b";
  int64_t cp = 1;
  int64_t ep = 1;
  int64_t nccl_timeout_sec = 1800;
  std::string backend = "cpu:gloo,cuda:nccl";
  bool sequence_parallel = true;

  template <typename V> void visit(V &v) {
    v.field("dp_shard", dp_shard,
            "FSDP shard degree; -1 = world / (dp_replicate*tp*pp*cp*ep)");
    v.field("dp_replicate", dp_replicate, "replica groups (HSDP) (>= 1)");
    v.field("tp", tp, "tensor-parallel degree (>= 1)");
    v.field("pp", pp, "pipeline stages (>= 1)");
    v.choice("pp_schedule", pp_schedule, "pipeline schedule",
             choices::ppSchedule);
    v.field("cp", cp, "context parallel degree; only 1 is supported");
    v.field("ep", ep, "expert-parallel degree (>= 1, divides num_experts)");
    v.field("nccl_timeout_sec", nccl_timeout_sec,
            "collective timeout in seconds (gloo and NCCL)");
    v.field("backend", backend, "collective backends per device type");
    v.field("sequence_parallel", sequence_parallel,
            FORGE_EXTENSION "with tp > 1, shard the norms and the residual "
                            "stream along the sequence between the "
                            "tensor-parallel regions where reference §3.3 "
                            "does (not with MoE or tied embeddings); false = "
                            "the plan without sequence parallelism");
  }
  bool operator==(const DistributedConfig &) const = default;
};

struct DynamicCheckpointWindow {
  int64_t start = 0;
  int64_t stop = 512;
  std::string strategy = "power2";

  template <typename V> void visit(V &v) {
    v.field("start", start, "first step of the window (>= 0)");
    v.field("stop", stop, "last step of the window (>= start)");
    v.choice("strategy", strategy,
             "when to save inside the window (registry: checkpoint window)",
             choices::windowStrategy);
  }
  bool operator==(const DynamicCheckpointWindow &) const = default;
};

struct CheckpointConfig {
  std::string dir = "checkpoints";
  int64_t interval = 1000;
  std::optional<DynamicCheckpointWindow> dyn_ckpt_window;
  std::string async_mode = "disabled";
  int64_t keep_last_n = 3;
  std::optional<std::string> load_path;
  std::string export_dtype = "bfloat16";
  std::vector<std::string> exclude_from_loading;
  bool ignore_freeze_mismatch = false;

  template <typename V> void visit(V &v) {
    v.field("dir", dir, "checkpoint directory");
    v.field("interval", interval, "save when step % interval == 0 (> 0)");
    v.field("dyn_ckpt_window", dyn_ckpt_window,
            "extra saves early in training: {start, stop, strategy}");
    v.choice("async_mode", async_mode, "background checkpoint writing",
             choices::asyncMode);
    v.field("keep_last_n", keep_last_n, "checkpoints kept; <= 0 keeps all");
    v.field("load_path", load_path, "checkpoint to resume or initialize from");
    v.choice("export_dtype", export_dtype, "dtype of exported weights",
             choices::exportDtype);
    v.field("exclude_from_loading", exclude_from_loading,
            "state keys not restored on resume");
    v.field("ignore_freeze_mismatch", ignore_freeze_mismatch,
            "allow resuming a VLM with different freeze state");
  }
  bool operator==(const CheckpointConfig &) const = default;
};

struct MetricsConfig {
  int64_t log_interval = 10;
  bool enable_wandb = false;
  bool enable_tensorboard = false;
  std::string wandb_project = "kempnerforge";
  std::optional<std::string> wandb_run_name;
  std::string wandb_run_id;
  std::string tensorboard_dir = "tb_logs";
  std::string jsonl_path = "metrics.jsonl";

  template <typename V> void visit(V &v) {
    v.field("log_interval", log_interval, "steps between log lines (> 0)");
    v.field("enable_wandb", enable_wandb, "log to Weights & Biases");
    v.field("enable_tensorboard", enable_tensorboard,
            "write TensorBoard events");
    v.field("wandb_project", wandb_project, "W&B project");
    v.field("wandb_run_name", wandb_run_name, "W&B run name");
    v.field("wandb_run_id", wandb_run_id, "W&B run id (restored on resume)");
    v.field("tensorboard_dir", tensorboard_dir, "TensorBoard directory");
    v.field("jsonl_path", jsonl_path,
            FORGE_EXTENSION "file that gets every metric of every step as "
                            "one JSON line; empty = off");
  }
  bool operator==(const MetricsConfig &) const = default;
};

struct ProfilingConfig {
  bool enable = false;
  int64_t start_step = 5;
  int64_t end_step = 8;
  std::string trace_dir = "profiler_traces";

  template <typename V> void visit(V &v) {
    v.field("enable", enable, "record a trace");
    v.field("start_step", start_step, "first profiled step");
    v.field("end_step", end_step, "last profiled step (> start_step)");
    v.field("trace_dir", trace_dir, "trace output directory");
  }
  bool operator==(const ProfilingConfig &) const = default;
};

struct VisionEncoderConfig {
  std::string type = "random";
  std::string path;
  int64_t feature_dim = 0;
  int64_t num_tokens = 0;

  template <typename V> void visit(V &v) {
    v.choice("type", type, "encoder (registry: vision encoder)",
             choices::visionEncoder);
    v.field("path", path, "Hugging Face checkpoint of the encoder");
    v.field("feature_dim", feature_dim, "feature width; 0 = probe (>= 0)");
    v.field("num_tokens", num_tokens, "tokens per image; 0 = probe (>= 0)");
  }
  bool operator==(const VisionEncoderConfig &) const = default;
};

struct AdapterConfig {
  std::string type = "mlp_2layer";
  int64_t hidden_dim = 0;
  std::string activation = "gelu";
  int64_t pool_window = 2;
  int64_t pool_heads = 16;

  template <typename V> void visit(V &v) {
    v.choice("type", type, "adapter (registry: adapter)", choices::adapter);
    v.field("hidden_dim", hidden_dim, "mlp_2layer hidden width; 0 = model dim");
    v.choice("activation", activation, "mlp_2layer activation",
             choices::adapterActivation);
    v.field("pool_window", pool_window, "pooling window side (> 0)");
    v.field("pool_heads", pool_heads, "attentional_pool heads (> 0)");
  }
  bool operator==(const AdapterConfig &) const = default;
};

struct FreezeSpec {
  std::string module;
  bool frozen = true;

  template <typename V> void visit(V &v) {
    v.field("module", module, "module alias (a key of module_patterns)");
    v.field("frozen", frozen, "freeze (true) or unfreeze (false)");
  }
  bool operator==(const FreezeSpec &) const = default;
};

struct FreezeStage {
  int64_t start_step = 0;
  std::vector<FreezeSpec> specs;

  template <typename V> void visit(V &v) {
    v.field("start_step", start_step, "step the stage takes effect");
    v.field("specs", specs, "freeze specs applied from start_step");
  }
  bool operator==(const FreezeStage &) const = default;
};

/// `[vlm]`: a union discriminated by `arch`. Only the keys of the selected
/// arch are valid (as in KempnerForge, where each arch is a subclass).
struct VlmConfig {
  std::string arch = "joint_decoder";
  int64_t max_text_len = 512;
  std::vector<FreezeSpec> freeze = {FreezeSpec{"vision_encoder", true}};
  std::vector<FreezeStage> freeze_schedule;
  std::map<std::string, std::vector<std::string>> module_patterns =
      defaultModulePatterns();
  // cross_attention
  int64_t cross_attention_every_n_layers = 4;
  int64_t cross_attention_n_heads = 0;
  int64_t cross_attention_n_kv_heads = 0;
  // mot
  std::vector<std::string> mot_modalities = {"image", "text"};
  int64_t mot_image_n_heads = 0;
  int64_t mot_image_n_kv_heads = 0;
  bool mot_warm_start_from_text = false;
  std::string mot_warm_start_path;
  // moma
  std::vector<std::string> moma_modalities = {"image", "text"};
  std::map<std::string, int64_t> moma_experts_per_modality = {{"image", 4},
                                                              {"text", 4}};
  double moma_capacity_factor = 0.0;
  bool moma_gumbel_noise = true;

  static std::map<std::string, std::vector<std::string>>
  defaultModulePatterns() {
    return {{"transformer", {"transformer", "transformer.*"}},
            {"vision_encoder", {"vision_encoder", "vision_encoder.*"}},
            {"adapter", {"adapter", "adapter.*"}}};
  }

  template <typename V> void visit(V &v) {
    v.choice("arch", arch, "VLM architecture (registry: vlm arch)",
             choices::vlmArch);
    v.field("max_text_len", max_text_len, "text tokens per sample (> 0)");
    v.field("freeze", freeze, "initial freeze specs");
    v.field("freeze_schedule", freeze_schedule,
            "freeze changes by step (strictly increasing start_step)");
    v.field("module_patterns", module_patterns,
            "module alias -> FQN glob patterns");
    if (arch == "cross_attention") {
      v.field("cross_attention_every_n_layers", cross_attention_every_n_layers,
              "a cross-attention block after every n-th text layer (> 0)");
      v.field("cross_attention_n_heads", cross_attention_n_heads,
              "cross-attention heads; 0 = model n_heads");
      v.field("cross_attention_n_kv_heads", cross_attention_n_kv_heads,
              "cross-attention kv heads; 0 = resolved heads");
    } else if (arch == "mot") {
      v.field("mot_modalities", mot_modalities,
              "modalities (must include image and text)");
      v.field("mot_image_n_heads", mot_image_n_heads,
              "image-stream heads; 0 = model n_heads");
      v.field("mot_image_n_kv_heads", mot_image_n_kv_heads,
              "image-stream kv heads; 0 = model kv heads");
      v.field("mot_warm_start_from_text", mot_warm_start_from_text,
              "copy text weights into every modality at step 0");
      v.field("mot_warm_start_path", mot_warm_start_path,
              "state dict for the warm start");
    } else if (arch == "moma") {
      v.field("moma_modalities", moma_modalities,
              "modalities (must include image and text)");
      v.field("moma_experts_per_modality", moma_experts_per_modality,
              "modality -> expert count (> 0)");
      v.field("moma_capacity_factor", moma_capacity_factor,
              "expert-choice capacity; 0 = 1/experts (>= 0)");
      v.field("moma_gumbel_noise", moma_gumbel_noise,
              "Gumbel noise on router logits in training");
    }
  }
  bool operator==(const VlmConfig &) const = default;
};

struct VideoConfig {
  std::string data_root;
  std::string dataset_type = "webvid";
  std::string dataset_name = "webvid-10M";
  std::string sampling_policy = "uniform";
  std::string split = "train";
  int64_t max_samples = 0;
  int64_t max_frames = 16;
  int64_t min_frames = 4;
  double fps = 2.0;
  int64_t frame_size = 224;
  std::string prompt;

  template <typename V> void visit(V &v) {
    v.field("data_root", data_root, "video dataset root");
    v.choice("dataset_type", dataset_type, "video dataset (registry)",
             choices::videoDataset);
    v.field("dataset_name", dataset_name, "dataset name");
    v.choice("sampling_policy", sampling_policy, "frame sampling (registry)",
             choices::videoSampling);
    v.choice("split", split, "dataset split", choices::videoSplit);
    v.field("max_samples", max_samples, "samples used; 0 = all (>= 0)");
    v.field("max_frames", max_frames, "frames per clip (>= min_frames)");
    v.field("min_frames", min_frames, "minimum frames (>= 1)");
    v.field("fps", fps, "sampling rate (> 0)");
    v.field("frame_size", frame_size, "frame side in pixels (> 0)");
    v.field("prompt", prompt, "text prompt");
  }
  bool operator==(const VideoConfig &) const = default;
};

/// A whole job. `locations` maps a dotted key path (`model.dim`,
/// `data.datasets[1].weight`) or a table path to where it was last set, so
/// every diagnostic can point at the right place.
struct JobConfig {
  ModelConfig model;
  TrainConfig train;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  DataConfig data;
  EvalConfig eval;
  DistributedConfig distributed;
  CheckpointConfig checkpoint;
  MetricsConfig metrics;
  ProfilingConfig profiling;
  std::optional<VisionEncoderConfig> vision_encoder;
  std::optional<AdapterConfig> adapter;
  std::optional<VlmConfig> vlm;
  std::optional<VideoConfig> video;

  bool isVlm() const { return vlm.has_value(); }
  bool isVideo() const { return video.has_value(); }

  template <typename V> void visit(V &v) {
    v.section("model", model, "architecture and MoE");
    v.section("train", train, "training loop");
    v.section("optimizer", optimizer, "optimizer");
    v.section("scheduler", scheduler, "learning-rate schedule");
    v.section("data", data, "training data");
    v.section("eval", eval, "in-loop evaluation");
    v.section("distributed", distributed, "parallelism");
    v.section("checkpoint", checkpoint, "checkpointing");
    v.section("metrics", metrics, "logging");
    v.section("profiling", profiling, "profiler");
    v.section("vision_encoder", vision_encoder,
              "VLM vision encoder (optional)");
    v.section("adapter", adapter, "VLM adapter (optional; default with [vlm])");
    v.section("vlm", vlm, "vision-language model (optional)");
    v.section("video", video, "video data (optional; needs [vlm])");
  }
  bool operator==(const JobConfig &) const = default;
};

} // namespace forge::config

#endif // FORGE_CONFIG_JOBCONFIG_H
