//===- Trainer.h - The training loop of forge-run ---------------*- C++ -*-===//
//
// One rank's loop over a verified plan (reference §4.1): per step,
// grad_accum_steps micro-batches through train_step, a NaN/Inf check, the
// optimizer step (skipped with the schedule on non-finite values), phase
// changes, KempnerForge's log line, metrics files and evaluation.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_TRAIN_TRAINER_H
#define FORGE_RUNTIME_TRAIN_TRAINER_H

#include "runtime/core/Plan.h"

#include <cstdint>
#include <memory>
#include <string>

namespace forge::train {

struct TrainerOptions {
  int64_t steps = -1;         ///< -1: the plan's max_steps (0: none)
  bool repeatBatch = false;   ///< one fixed random batch (memorization)
  std::string initFrom;       ///< parameters from a .safetensors file
  std::string batchFrom;      ///< tokens/labels from a .safetensors file
  std::string dumpDir;        ///< per-step loss, gradients and parameters
  std::string exportHf;       ///< Hugging Face checkpoint of the final weights
  std::string dumpLogits;     ///< tokens and logits of the final weights
  bool progress = false;      ///< a live progress bar (on a terminal)
  std::string planPath;       ///< for messages
  std::string device = "cpu"; ///< the backend: cpu or cuda
  /// Neither resume from nor write checkpoints (forge-run --no-checkpoint,
  /// or FORGE_NO_CHECKPOINT=1: experiments and tests).
  bool noCheckpoint = false;
};

class Trainer {
public:
  explicit Trainer(const plan::Plan *plan);
  ~Trainer();

  /// Prepares the executor, initializes the parameters, opens the data and
  /// the metrics files. Returns why it cannot train, or an empty string.
  std::string setup(const TrainerOptions &options);

  /// Trains. Returns the process exit code (0, or 1 after printing why).
  int run();

private:
  int runSteps();
  int exportHf();
  int dumpLogits();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_TRAINER_H
