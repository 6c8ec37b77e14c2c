//===- State.h - Weights, batches and state dumps for forge-run -*- C++ -*-===//

#ifndef FORGE_RUNTIME_TRAIN_STATE_H
#define FORGE_RUNTIME_TRAIN_STATE_H

#include "runtime/core/Backend.h"
#include "runtime/core/Plan.h"
#include "runtime/train/SafeTensors.h"

#include <string>

namespace forge::comm {
class Comms;
} // namespace forge::comm

namespace forge::train {

/// Overwrites every parameter with the tensor of the same FQN in `path`
/// (F32, BF16 or F16, converted to the parameter's dtype). Every parameter
/// must be present with its exact shape, and the file may hold nothing else.
/// The file holds global tensors; a sharded parameter takes its block.
/// With pipeline parallelism `plan` is the stage's and `job` the job's
/// plan: the file may hold the other stages' parameters.
std::string loadParameters(const plan::Plan *plan, runtime::Backend &exec,
                           const std::string &path,
                           comm::Comms *comms = nullptr,
                           const plan::Plan *job = nullptr);

/// Copies "tokens" and "labels" (I64 [dpSize * batch, seq], the global
/// batch) from `path` into the train_step inputs: data-parallel rank
/// `dpRank` takes its `batch` rows, for every micro-step. A file of
/// `accum` times as many rows gives each micro-step its own rows: micro-step
/// m of rank r reads block r * accum + m (so one rank accumulating n
/// micro-batches sees the batches of n ranks); `micro` then gets each
/// micro-step's tokens and labels, in order, and the inputs hold the first.
std::string loadBatch(runtime::Backend &exec, const std::string &path,
                      int64_t dpRank = 0, int64_t dpSize = 1, int64_t accum = 1,
                      std::vector<std::vector<uint8_t>> *micro = nullptr,
                      const std::string &program = "train_step");

/// Adds every buffer with `role` to `out` as F32, under `prefix` + its name
/// (the gradient accumulators are named grad.<fqn> already).
/// Sharded buffers are gathered to their global tensors over `comms`
/// (a collective: every rank calls it).
std::string collect(const plan::Plan *plan, const runtime::Backend &exec,
                    plan::Role role, const std::string &prefix, TensorMap &out,
                    comm::Comms *comms = nullptr);

/// An F32 scalar tensor.
Tensor scalar(float v);

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_STATE_H
