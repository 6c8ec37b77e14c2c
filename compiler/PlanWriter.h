//===- PlanWriter.h - Memory planning and plan.bin ---------------*- C++
//-*-===//
//
// Lays out every tensor of the compiled module in one arena and writes
// plan.bin (schema: runtime/core/plan.fbs). Persistent tensors (parameters,
// gradient accumulators, optimizer state, other buffers, inputs) come first;
// activations share one region above them, placed first-fit by liveness in
// program order, so the arena size is each rank's exact peak.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_COMPILER_PLANWRITER_H
#define FORGE_COMPILER_PLANWRITER_H

#include "frontends/config/JobConfig.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>
#include <vector>

namespace forge::compiler {

/// Bytes by kind; `total` is the arena size.
struct MemorySummary {
  uint64_t parameters = 0;
  uint64_t gradients = 0;
  uint64_t optimizerState = 0;
  uint64_t otherState = 0;
  uint64_t inputs = 0;
  uint64_t activationsPeak = 0;
  uint64_t total = 0;
};

/// Plans memory for `module` (after the pass pipeline) and serializes the
/// plan. Returns false with `error` set when the module cannot be planned
/// (an op the plan format does not carry, a dynamic shape, ...).
bool writePlan(mlir::ModuleOp module, const config::JobConfig &cfg,
               const std::string &jobPath, std::vector<uint8_t> &out,
               MemorySummary &memory, std::string &error);

/// `memory` as the lines forgec --report prints.
std::string describeMemory(const MemorySummary &memory);

} // namespace forge::compiler

#endif // FORGE_COMPILER_PLANWRITER_H
