//===- State.h - Weights, batches and state dumps for forge-run -*- C++ -*-===//

#ifndef FORGE_RUNTIME_TRAIN_STATE_H
#define FORGE_RUNTIME_TRAIN_STATE_H

#include "runtime/cpu/Executor.h"
#include "runtime/train/SafeTensors.h"

#include <string>

namespace forge::train {

/// Overwrites every parameter with the tensor of the same FQN in `path`
/// (F32, BF16 or F16, converted to the parameter's dtype). Every parameter
/// must be present with its exact shape, and the file may hold nothing else.
std::string loadParameters(const plan::Plan *plan, cpu::Executor &exec,
                           const std::string &path);

/// Copies "tokens" and "labels" (I64 [batch, seq]) from `path` into the
/// train_step inputs.
std::string loadBatch(cpu::Executor &exec, const std::string &path);

/// Adds every buffer with `role` to `out` as F32, under `prefix` + its name
/// (the gradient accumulators are named grad.<fqn> already).
void collect(const plan::Plan *plan, const cpu::Executor &exec, plan::Role role,
             const std::string &prefix, TensorMap &out);

/// An F32 scalar tensor.
Tensor scalar(float v);

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_STATE_H
