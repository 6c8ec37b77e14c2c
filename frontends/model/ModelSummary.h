//===- ModelSummary.h - Parameters and shape facts of a job's model -------===//
//
// The text model's parameters as KempnerForge names them (reference §2.8),
// with shapes and initializers (§2.7), computed from the config alone. The
// graph builder of the model frontend uses the same enumeration, so the
// summary forgec prints before compiling is the model it compiles.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_MODEL_MODELSUMMARY_H
#define FORGE_MODEL_MODELSUMMARY_H

#include "frontends/config/JobConfig.h"

#include <cstdint>
#include <string>
#include <vector>

namespace forge::model {

enum class Init { Normal, ResidualNormal, Ones, Zeros };

struct ParamInfo {
  std::string fqn;
  std::vector<int64_t> shape;
  Init init;
  double std = 0; ///< for the normal initializers

  int64_t numel() const;
};

/// Every parameter of the text transformer, in state-dict order. A tied
/// output head is listed once (under the embedding).
std::vector<ParamInfo> textModelParams(const config::ModelConfig &m);

/// KempnerForge's `num_params_estimate` (reference §2.10), including its
/// count of every shared expert.
int64_t numParamsEstimate(const config::ModelConfig &m);

/// A short human-readable summary of the model and the job's batch shape.
std::string summarize(const config::JobConfig &cfg);

const char *initName(Init i);

} // namespace forge::model

#endif // FORGE_MODEL_MODELSUMMARY_H
