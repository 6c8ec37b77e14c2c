//===- Checkpoint.h - Sharded checkpoints, resharding resume ----*- C++ -*-===//
//
// checkpoint.dir/step_N/ holds one safetensors file per rank with the blocks
// of the persistent tensors that rank owns (parameters, optimizer state,
// other state; each key is "FQN|offset,offset,..." in the global tensor), and
// manifest.json: the step, the training state, every tensor's global shape
// and dtype, and the files. The manifest is written last (temp file, fsync,
// rename): a step directory without one is incomplete and never loaded.
// `latest` is a symlink swapped atomically (latest.tmp + rename) once the
// manifest is durable. Loading reads, for each tensor block a rank holds,
// the parts of the saved blocks that overlap it, so any layout loads any
// other (reference §6; DCP's resharding).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_TRAIN_CHECKPOINT_H
#define FORGE_RUNTIME_TRAIN_CHECKPOINT_H

#include "runtime/core/Backend.h"
#include "runtime/core/Plan.h"
#include "runtime/core/plan_generated.h"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace forge::comm {
class Comms;
} // namespace forge::comm

namespace forge::train {

/// What besides tensors a resumed run needs to continue the same training.
struct TrainState {
  int64_t step = 0;    ///< the last completed step
  int64_t updates = 0; ///< optimizer (and LR schedule) steps taken
  int64_t epoch = 0, batchesYielded = 0; ///< the data loader's position
  int64_t tokensSeen = 0;                ///< over all ranks
  std::string rng; ///< this rank's random-token generator (same layout only)
};

class Checkpointer {
public:
  /// `job` is the job's plan (with pipeline parallelism it nests the
  /// stages' plans), `plan` this rank's.
  Checkpointer(const plan::Plan *job, const plan::Plan *plan,
               runtime::Backend &exec, comm::Comms *comms);
  ~Checkpointer();

  /// Whether step `step` saves (checkpoint.interval, the dynamic window).
  /// Step 0 (the initial weights, before any update) saves only when the
  /// dynamic window starts at 0, as KempnerForge's does.
  bool due(int64_t step) const;

  /// The checkpoint a run resumes from: `dir/latest` when complete, else
  /// the newest complete `dir/step_N`, else checkpoint.load_path; "" when
  /// none. `note` says what was skipped (an incomplete step directory).
  std::string findResume(std::string &note) const;

  /// Restores every tensor this rank holds (but those excluded) and `st`
  /// from the checkpoint directory `path`. Errors name the tensor and file.
  std::string load(const std::string &path, TrainState &st);

  /// Saves step `st.step`. With async_mode the blocks are copied out of the
  /// arena and written by a background thread (the previous save is waited
  /// for first); `latest` moves when the files are durable. Every rank calls
  /// it.
  std::string save(const TrainState &st);

  /// Waits for a background save; returns its error.
  std::string wait();

private:
  /// load() without the state hand-over to and from the backend.
  std::string loadInto(const std::string &path, TrainState &st);
  /// This rank's block of a buffer (runtime::localBlock over its groups).
  std::string blockOf(const plan::Buffer *b, runtime::Block &blk) const;
  struct Pending;
  std::string write(Pending &p);
  /// `failed`: why this rank could not write its file ("" when it did).
  std::string commit(int64_t step, const std::string &failed);
  void retain() const;

  const plan::Plan *job_, *plan_;
  const plan::Checkpoint *cfg_;
  runtime::Backend &exec_;
  comm::Comms *comms_;
  int rank_ = 0, world_ = 1;
  std::thread writer_;
  std::string writerError_;
  int64_t pendingStep_ = 0;
  uint32_t pendingCrc_ = 0; ///< this rank's file of the pending save
  TrainState lastState_;    ///< of the save being committed
};

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_CHECKPOINT_H
