//===- RunSettings.h - What forge-run needs besides the programs -*- C++
//-*-===//
//
// The parts of a job that the runtime, not the graph, acts on: data sources
// and their mixing phases, sequence packing, evaluation, metrics files and
// the MFU figure. They are resolved here, once, so the plan carries final
// values (phase weights for every source, the EOS id) and everything the
// runtime cannot do is rejected at compile time, located at its key.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_COMPILER_RUNSETTINGS_H
#define FORGE_COMPILER_RUNSETTINGS_H

#include "frontends/config/Config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace forge::compiler {

struct DataSourceSpec {
  std::string name, path, pattern;
  double weight = 1.0;
};

struct PhaseSpec {
  int64_t startStep = 0;
  std::vector<double> weights; ///< one per source
  double lrScale = 1.0;
};

struct RunSettings {
  /// Mixture sources; a lone data.dataset_path is one source of weight 1.
  /// Empty: no dataset (random tokens).
  std::vector<DataSourceSpec> sources;
  bool mixture = false; ///< data.datasets was used
  double temperature = 1.0;
  std::vector<PhaseSpec> phases;
  bool pack = false;
  int64_t eosId = -1;
  int64_t evalInterval = 0, evalSteps = 0;
  std::string evalPath, evalPattern;
  std::string jsonlPath, tensorboardDir;
  double flopsPerToken = 0;
};

/// Resolves the run settings of a validated job. Returns false with a
/// located `error` for what forge-run cannot do (Hugging Face hub data,
/// Weights & Biases) or for a tokenizer whose EOS id cannot be found.
bool resolveRunSettings(const config::ConfigLoader &loader, RunSettings &out,
                        std::string &error);

} // namespace forge::compiler

#endif // FORGE_COMPILER_RUNSETTINGS_H
