//===- PipelineSchedule.h - Pipeline schedules, fixed at compile time -*- C++
//-*-===//
//
// The order in which each pipeline stage runs the forward and backward of
// every micro-batch in one training step (reference §3.9), the activation
// slots that order needs, and a simulation that checks it completes (every
// receive meets its send) and measures its bubble. forge-schedule and
// forgec --report use it; the plan carries each stage's actions.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_PASSES_PIPELINESCHEDULE_H
#define FORGE_PASSES_PIPELINESCHEDULE_H

#include <cstdint>
#include <string>
#include <vector>

namespace forge::pipeline {

/// One program run: the forward or backward of micro-batch `micro` through
/// the rank's model chunk `chunk` (its virtual stage, 0 unless the schedule
/// interleaves; rank r's chunk j is the model's chunk j * stages + r),
/// whose saved activations live in slot `slot` of that chunk from the
/// forward to the backward.
struct Action {
  bool backward = false;
  int64_t micro = 0;
  int64_t slot = 0;
  int64_t chunk = 0;
};

/// Model chunks per rank under `kind`: 2 for "interleaved_1f1b" (Megatron's
/// virtual pipeline stages), else 1.
int64_t virtualStages(const std::string &kind);

/// The actions of each of `stages` ranks for `micro` micro-batches under
/// `kind` ("gpipe", "1f1b" or "interleaved_1f1b"). Returns false with
/// `error` for an unknown kind or an unsupported shape (interleaving needs
/// a multiple of `stages` micro-batches).
bool schedule(const std::string &kind, int64_t stages, int64_t micro,
              std::vector<std::vector<Action>> &out, std::string &error);

/// The activation slots chunk `chunk` of a rank uses (its micro-batches in
/// flight at once).
int64_t slotsOf(const std::vector<Action> &actions, int64_t chunk = 0);

/// When each action runs, with a forward taking 1 unit and a backward 2
/// (their FLOP ratio), sends not waiting and receives waiting for their
/// send.
struct Timeline {
  std::vector<std::vector<double>> start; ///< per stage, per action
  double makespan = 0;
  double bubble = 0; ///< idle fraction of stages x makespan
};

/// Runs the schedule: false with `error` naming the stuck stage and action
/// when a receive can never meet its send (a deadlock). A forward of model
/// chunk c waits for chunk c - 1's, a backward for chunk c + 1's.
bool simulate(const std::vector<std::vector<Action>> &actions,
              Timeline &timeline, std::string &error);

/// A text timeline, one line per stage ("F3" forward, "B3" backward, "."
/// idle units), and the bubble.
std::string render(const std::string &kind,
                   const std::vector<std::vector<Action>> &actions,
                   const Timeline &timeline);

} // namespace forge::pipeline

#endif // FORGE_PASSES_PIPELINESCHEDULE_H
