//===- Analysis.h - Facts about a forge module -------------------*- C++
//-*-===//
//
// Parameter counts and FLOPs, from the IR itself (exact) and from
// KempnerForge's formulas (reference §2.10, §7.2), for `forgec --report` and
// later for the memory planner.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_COMPILER_ANALYSIS_H
#define FORGE_COMPILER_ANALYSIS_H

#include "frontends/config/JobConfig.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>

namespace forge::compiler {

struct ParamStats {
  int64_t trainable = 0; ///< elements of every forge.param that is not a buffer
  int64_t buffers = 0;   ///< elements of persistent buffers
  int64_t tensors = 0;   ///< number of forge.param ops
  int64_t bytes = 0;     ///< storage of all of them in their element type
};

/// Sums the forge.param declarations of `module`.
ParamStats countParams(mlir::ModuleOp module);

/// Forward FLOPs of `@train_step` counted op by op from the IR: 2*M*N*K per
/// matmul (linear, grouped_linear, chunked cross-entropy's head), and for
/// causal attention only the unmasked query-key pairs (S*(S+1)/2 per head).
/// Element-wise, norm and softmax work is not counted (as in MFU practice).
double forwardFlops(mlir::ModuleOp module);

/// KempnerForge's MFU numerator per token, exactly as its code computes it:
/// 6 * P_active + 12 * L * D * S, with MoE layers counted with the dense FFN
/// width (reference §7.2).
double kempnerForgeFlopsPerToken(const config::JobConfig &cfg);

/// The same formula with MoE layers counted at the expert width Fe (what the
/// model actually computes per routed token).
double correctedFlopsPerToken(const config::JobConfig &cfg);

/// The `forgec --report` text.
std::string report(mlir::ModuleOp module, const config::JobConfig &cfg);

/// The collectives each rank issues per program of a compiled module (the
/// exec IR the pipeline ends with): per kind and mesh dim, how many and how
/// many bytes each rank sends into them; empty for a single-rank module.
std::string describeCollectives(mlir::ModuleOp module);

/// For a pipeline-parallel module: the schedule as a per-stage timeline,
/// its bubble and the activation slots of each stage ("" otherwise).
std::string describePipeline(mlir::ModuleOp module);

} // namespace forge::compiler

#endif // FORGE_COMPILER_ANALYSIS_H
