//===- Registry.cpp - Built-in registry entries ---------------------------===//

#include "frontends/registry/Registry.h"

#include <cmath>
#include <dlfcn.h>

namespace forge::registry {
namespace {

/// Integer square root, or -1 when `n` is not a perfect square.
int64_t exactSqrt(int64_t n) {
  if (n < 0)
    return -1;
  auto r =
      static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  for (int64_t c = r > 0 ? r - 1 : 0; c <= r + 1; ++c)
    if (c * c == n)
      return c;
  return -1;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

TokenCount identityTokens(int64_t n, int64_t) { return {n, ""}; }

/// avgpool: a ceil(g/w) x ceil(g/w) grid of windows (partial edge windows
/// average the cells they have).
TokenCount avgpoolTokens(int64_t n, int64_t window) {
  int64_t g = exactSqrt(n);
  if (g < 0)
    return {0, "avgpool needs a square token grid, got " + std::to_string(n) +
                   " tokens"};
  int64_t side = ceilDiv(g, window);
  return {side * side, ""};
}

/// attentional_pool: whole windows only.
TokenCount attentionalPoolTokens(int64_t n, int64_t window) {
  int64_t g = exactSqrt(n);
  if (g < 0)
    return {0, "attentional_pool needs a square token grid, got " +
                   std::to_string(n) + " tokens"};
  if (g % window != 0)
    return {0, "attentional_pool needs the grid side (" + std::to_string(g) +
                   ") to be divisible by pool_window (" +
                   std::to_string(window) + ")"};
  int64_t side = g / window;
  return {side * side, ""};
}

bool power2Offset(int64_t offset) {
  return offset == 0 || (offset > 0 && (offset & (offset - 1)) == 0);
}

} // namespace

Category<MlpEntry> &mlps() {
  static Category<MlpEntry> c = [] {
    Category<MlpEntry> c("mlp");
    c.add({"swiglu",
           "down(silu(gate(x)) * up(x)); 3 matrices",
           {{"gate_proj", true}, {"up_proj", true}, {"down_proj", false}},
           "silu",
           true});
    c.add({"standard_gelu",
           "down(gelu_erf(up(x))); 2 matrices",
           {{"up_proj", true}, {"down_proj", false}},
           "gelu",
           false});
    c.add({"standard_relu",
           "down(relu(up(x))); 2 matrices",
           {{"up_proj", true}, {"down_proj", false}},
           "relu",
           false});
    return c;
  }();
  return c;
}

Category<RouterEntry> &routers() {
  static Category<RouterEntry> c = [] {
    Category<RouterEntry> c("router");
    c.add({"softmax_topk", "softmax over experts, top-k, renormalized", false});
    c.add({"sigmoid_topk",
           "sigmoid(logits + expert_bias), top-k, renormalized (bias balancing "
           "not yet applied)",
           true});
    return c;
  }();
  return c;
}

Category<NormEntry> &norms() {
  static Category<NormEntry> c = [] {
    Category<NormEntry> c("norm");
    c.add({"rmsnorm", "x * rsqrt(mean(x^2) + eps) * weight (fp32 compute)",
           false});
    c.add({"layernorm", "standard LayerNorm with weight and bias", true});
    return c;
  }();
  return c;
}

Category<NamedEntry> &models() {
  static Category<NamedEntry> c = [] {
    Category<NamedEntry> c("model");
    c.add({"transformer", "Llama-style pre-norm decoder (dense or MoE)"});
    return c;
  }();
  return c;
}

Category<NamedEntry> &optimizers() {
  static Category<NamedEntry> c = [] {
    Category<NamedEntry> c("optimizer");
    c.add({"adamw", "AdamW with decoupled weight decay on >=2-D weights"});
    c.add({"lion", "Lion: sign of interpolated momentum"});
    c.add({"schedule_free_adamw", "schedule-free AdamW"});
    c.add({"muon", "Muon (Newton-Schulz orthogonalized momentum) + AdamW "
                   "fallback"});
    return c;
  }();
  return c;
}

Category<NamedEntry> &schedulers() {
  static Category<NamedEntry> c = [] {
    Category<NamedEntry> c("scheduler");
    c.add({"cosine", "linear warmup, cosine decay to min_lr_ratio"});
    c.add({"linear", "linear warmup, linear decay to min_lr_ratio"});
    c.add({"wsd", "warmup-stable-decay"});
    c.add({"constant", "linear warmup, then constant"});
    c.add({"rex", "warmup, then REX decay"});
    c.add({"none", "constant factor 1 (no warmup)"});
    return c;
  }();
  return c;
}

Category<NamedEntry> &losses() {
  static Category<NamedEntry> c = [] {
    Category<NamedEntry> c("loss");
    c.add({"cross_entropy", "token cross-entropy, ignore index -100"});
    c.add({"chunked_cross_entropy",
           "cross-entropy over ce_chunk_size-token chunks of logits"});
    return c;
  }();
  return c;
}

Category<VlmArchEntry> &vlmArchs() {
  static Category<VlmArchEntry> c = [] {
    Category<VlmArchEntry> c("vlm arch");
    c.add({"joint_decoder", "image tokens prepended to the text stream", true});
    c.add({"cross_attention", "text stream cross-attends to image features",
           false});
    c.add({"mot", "Mixture-of-Transformers: per-modality weights", true});
    c.add({"moma", "MoMa: per-modality expert-choice MoE FFNs", true});
    return c;
  }();
  return c;
}

Category<VisionEncoderEntry> &visionEncoders() {
  static Category<VisionEncoderEntry> c = [] {
    Category<VisionEncoderEntry> c("vision encoder");
    c.add({"random", "deterministic noise features (tests, debugging)", false});
    c.add({"siglip2", "SigLIP2 vision tower from a Hugging Face checkpoint",
           true});
    c.add({"clip", "CLIP vision tower from a Hugging Face checkpoint", true});
    return c;
  }();
  return c;
}

Category<AdapterEntry> &adapters() {
  static Category<AdapterEntry> c = [] {
    Category<AdapterEntry> c("adapter");
    c.add({"mlp_2layer", "Linear + activation + Linear (with biases)",
           identityTokens});
    c.add({"linear", "one biased Linear", identityTokens});
    c.add({"avgpool", "window x window average pooling, then Linear",
           avgpoolTokens});
    c.add({"attentional_pool", "per-window attention pooling, then Linear",
           attentionalPoolTokens});
    return c;
  }();
  return c;
}

Category<CheckpointWindowEntry> &checkpointWindows() {
  static Category<CheckpointWindowEntry> c = [] {
    Category<CheckpointWindowEntry> c("dyn_ckpt_window strategy");
    c.add({"power2", "save when step - start is 0 or a power of two",
           power2Offset});
    return c;
  }();
  return c;
}

Category<NamedEntry> &videoDatasets() {
  static Category<NamedEntry> c = [] {
    Category<NamedEntry> c("video dataset");
    c.add({"webvid", "WebVid clips with captions"});
    return c;
  }();
  return c;
}

Category<NamedEntry> &videoSamplingPolicies() {
  static Category<NamedEntry> c = [] {
    Category<NamedEntry> c("video sampling policy");
    c.add({"uniform", "frames evenly spaced at the configured fps"});
    return c;
  }();
  return c;
}

std::string mlpKeyForActivation(const std::string &activation) {
  if (activation == "silu")
    return "swiglu";
  if (activation == "gelu")
    return "standard_gelu";
  if (activation == "relu")
    return "standard_relu";
  return activation;
}

std::vector<std::string> activationChoices() {
  std::vector<std::string> out = {"silu", "gelu", "relu"};
  for (const std::string &n : mlps().names())
    out.push_back(n);
  return out;
}

std::string loadPlugin(const std::string &path) {
  // RTLD_GLOBAL so a plugin can itself be extended by a later one.
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) {
    const char *why = dlerror();
    return why ? why : ("cannot load " + path);
  }
  return "";
}

} // namespace forge::registry
