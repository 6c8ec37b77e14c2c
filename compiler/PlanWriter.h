//===- PlanWriter.h - Memory planning and plan.bin ---------------*- C++
//-*-===//
//
// Writes plan.bin (schema: runtime/core/plan.fbs) from a module that has
// been through the whole pass pipeline: the programs' ops become steps, and
// the arena layout that forge-plan-memory recorded in the IR (exec.offset,
// exec.offsets, exec.memory) becomes the buffers and the memory summary.
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
};

/// Serializes the plan of `module` (after the pass pipeline). Returns false
/// with `error` set when it cannot (no layout, an op the plan format does
/// not carry, ...).
bool writePlan(mlir::ModuleOp module, const config::JobConfig &cfg,
               const RunSettings &run, const std::string &jobPath,
               std::vector<uint8_t> &out, MemorySummary &memory,
               std::string &error);

/// `memory` as the lines forgec --report prints.
std::string describeMemory(const MemorySummary &memory);

} // namespace forge::compiler

#endif // FORGE_COMPILER_PLANWRITER_H
