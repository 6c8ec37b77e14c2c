//===- BuildModel.h - JobConfig -> forge IR ----------------------*- C++
//-*-===//
//
// Builds the forge IR of one training micro-step of a text transformer:
// every parameter as a `forge.param` named by its KempnerForge FQN (in the
// order of textModelParams), and `func.func @train_step(tokens, labels
// [, doc_ids]) -> loss`. MLP, norm and router come from registry entries, so
// a plugin MLP is built like a built-in one.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_MODEL_IR_BUILDMODEL_H
#define FORGE_MODEL_IR_BUILDMODEL_H

#include "frontends/config/Config.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace forge::model {

/// What the module holds besides @train_step (and @eval_step when
/// evaluation is on).
struct BuildOptions {
  /// @logits_step(tokens[, doc ids]) -> logits [batch, seq, vocab]: the
  /// forward up to the output head (forgec --logits-program).
  bool logitsProgram = false;
};

/// Builds the module for the validated job in `loader`. Returns null and
/// sets `error` (a located message) when the job cannot be built (a VLM job,
/// or a registry entry whose structure the builder does not know).
mlir::OwningOpRef<mlir::ModuleOp> buildModel(mlir::MLIRContext &ctx,
                                             const config::ConfigLoader &loader,
                                             std::string &error,
                                             const BuildOptions &options = {});

} // namespace forge::model

#endif // FORGE_MODEL_IR_BUILDMODEL_H
