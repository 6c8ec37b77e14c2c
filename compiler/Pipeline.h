//===- Pipeline.h - The forge pass pipeline ----------------------*- C++
//-*-===//
//
// The passes in KempnerForge's canonical order (design.md §1), as data:
// `forgec --print-pipeline` prints it, `--dump-ir=DIR` writes the IR after
// each pass, and `forge-opt --<flag>` runs any one of them.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_COMPILER_PIPELINE_H
#define FORGE_COMPILER_PIPELINE_H

#include "frontends/config/JobConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace forge::compiler {

struct PipelineStep {
  std::string flag; ///< the pass's command-line name, e.g. forge-build-backward
  std::string summary;
  std::function<std::unique_ptr<mlir::Pass>()> create;
};

/// The passes this build runs, in order. The parallelism passes join it
/// (before forge-build-backward) as they are implemented.
const std::vector<PipelineStep> &pipeline();

/// Records the device mesh of reference §3.1 for `worldSize` ranks on
/// `module` (`dist.mesh`: pp, dp_replicate, dp_shard, ep, tp), which the
/// parallelism passes read. A single rank gets no mesh. Returns an error
/// for a layout whose passes do not exist yet (tp, pp, ep, cp > 1).
std::string setMesh(mlir::ModuleOp module, const config::JobConfig &cfg,
                    int64_t worldSize);

/// Runs the pipeline on `module`. With a non-empty `dumpDir`, writes
/// `00-frontend.mlir` and then `NN-<flag>.mlir` after each pass. On failure
/// the diagnostics have been emitted and `error` says which pass failed.
/// Pipeline parallelism, checked before launch on the exec IR: every send
/// between stages has its receive (same programs, tag and tensor) and the
/// schedule completes. "" when it holds (or the module has no stages), else
/// what is wrong. runPipeline calls it last.
std::string checkPipeline(mlir::ModuleOp module);

mlir::LogicalResult runPipeline(mlir::ModuleOp module,
                                const std::string &dumpDir, std::string &error);

} // namespace forge::compiler

#endif // FORGE_COMPILER_PIPELINE_H
