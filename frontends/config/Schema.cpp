//===- Schema.cpp - Allowed values and derived quantities -----------------===//

#include "frontends/config/Schema.h"
#include "frontends/config/JobConfig.h"
#include "frontends/registry/Registry.h"

#include <cmath>

namespace forge::config {

std::string joinNames(const std::vector<std::string> &names) {
  std::string out;
  for (const std::string &n : names) {
    if (!out.empty())
      out += ", ";
    out += n;
  }
  return out;
}

namespace choices {
std::vector<std::string> normType() { return registry::norms().names(); }
std::vector<std::string> activation() { return registry::activationChoices(); }
std::vector<std::string> modelType() { return registry::models().names(); }
std::vector<std::string> sdpaBackend() {
  return {"auto", "flash", "efficient", "cudnn", "math"};
}
std::vector<std::string> moeRouter() { return registry::routers().names(); }
std::vector<std::string> moeBiasSchedule() {
  return {"constant", "cosine_decay", "linear_warmup"};
}
std::vector<std::string> mixedPrecision() {
  return {"bf16", "fp16", "fp32", "fp8"};
}
std::vector<std::string> activationCheckpointing() {
  return {"none", "full", "selective"};
}
std::vector<std::string> lossFn() { return registry::losses().names(); }
std::vector<std::string> optimizer() { return registry::optimizers().names(); }
std::vector<std::string> scheduler() { return registry::schedulers().names(); }
std::vector<std::string> wsdDecayType() { return {"cosine", "linear", "sqrt"}; }
std::vector<std::string> ppSchedule() {
  return {"1f1b", "gpipe", "interleaved_1f1b"};
}
std::vector<std::string> asyncMode() {
  return {"disabled", "async", "async_with_pinned_mem"};
}
std::vector<std::string> exportDtype() { return {"float32", "bfloat16"}; }
std::vector<std::string> windowStrategy() {
  return registry::checkpointWindows().names();
}
std::vector<std::string> visionEncoder() {
  return registry::visionEncoders().names();
}
std::vector<std::string> adapter() { return registry::adapters().names(); }
std::vector<std::string> adapterActivation() {
  return {"gelu", "silu", "relu"};
}
std::vector<std::string> vlmArch() { return registry::vlmArchs().names(); }
std::vector<std::string> videoDataset() {
  return registry::videoDatasets().names();
}
std::vector<std::string> videoSampling() {
  return registry::videoSamplingPolicies().names();
}
std::vector<std::string> videoSplit() { return {"train", "validation"}; }
} // namespace choices

int64_t ModelConfig::ffnHiddenDim() const {
  if (ffn_hidden_dim)
    return *ffn_hidden_dim;
  // Left to right in double, as KempnerForge: ((4*dim) * (2/3)) * mult, then
  // truncated and rounded up to a multiple of 256.
  double raw =
      (4.0 * static_cast<double>(dim)) * (2.0 / 3.0) * ffn_dim_multiplier;
  auto h = static_cast<int64_t>(raw);
  return 256 * ((h + 255) / 256);
}

int64_t ModelConfig::expertFfnHiddenDim() const {
  auto scaled = static_cast<int64_t>(static_cast<double>(ffnHiddenDim()) *
                                     moe_expert_ffn_multiplier);
  // Python's round() is round-half-to-even; nearbyint does the same under
  // the default rounding mode.
  auto blocks =
      static_cast<int64_t>(std::nearbyint(static_cast<double>(scaled) / 16.0));
  return std::max<int64_t>(16, 16 * blocks);
}

} // namespace forge::config
