//===- Passes.h - forge passes ----------------------------------*- C++ -*-===//

#ifndef FORGE_PASSES_PASSES_H
#define FORGE_PASSES_PASSES_H

#include "dialects/dist/IR/DistDialect.h"
#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/forge/IR/ForgeDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace forge {

/// Module attribute: `train.activation_checkpointing` ("full" or
/// "selective"; absent for "none"), read by forge-checkpoint-activations.
constexpr const char kActivationCheckpointingAttr[] =
    "forge.activation_checkpointing";
/// Module attribute: `train.mixed_precision = "fp8"`, read by
/// forge-convert-fp8.
constexpr const char kFp8Attr[] = "forge.fp8";
/// Op attribute: the block whose forward ops the backward recomputes.
constexpr const char kRematAttr[] = "forge.remat";
/// Op attribute: the first op of @train_step's backward (the loss seed),
/// set by forge-build-backward; forge-schedule cuts a pipeline stage's step
/// there.
constexpr const char kBackwardBeginAttr[] = "forge.backward_begin";

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

/// Registers every forge pass (design.md §5.4: one narrow function).
#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace forge

#endif // FORGE_PASSES_PASSES_H
