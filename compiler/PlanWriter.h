//===- PlanWriter.h - Memory planning and plan.bin ---------------*- C++
//-*-===//
//
// Writes plan.bin (schema: runtime/core/plan.fbs) from the exec IR the pass
// pipeline ends with (convert-forge-to-exec): exec.buffer ops become the
// buffers, each exec.program's launches and collectives its steps, and the
// memory summary follows from the buffers and the exec.arena. Nothing else
// of the module is read but its dist.mesh.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_COMPILER_PLANWRITER_H
#define FORGE_COMPILER_PLANWRITER_H

#include "compiler/RunSettings.h"
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
  /// Scratch for collectives that are not in place (outside the arena).
  uint64_t commBuffers = 0;
  /// Pipeline stages: activations kept for in-flight micro-batches (part of
  /// otherState), and each stage's memory (this summary is the largest).
  uint64_t activationStash = 0;
  std::vector<MemorySummary> stages;
};

/// Serializes the plan of `module` (exec IR, after the pass pipeline).
/// Returns false with `error` set when it cannot (not exec IR, a kernel the
/// runtime does not know, an attribute the plan format does not carry, ...).
bool writePlan(mlir::ModuleOp module, const config::JobConfig &cfg,
               const RunSettings &run, const std::string &jobPath,
               std::vector<uint8_t> &out, MemorySummary &memory,
               std::string &error);

/// `memory` as the lines forgec --report prints.
std::string describeMemory(const MemorySummary &memory);

} // namespace forge::compiler

#endif // FORGE_COMPILER_PLANWRITER_H
