//===- Executor.h - Runs a verified plan on the CPU -------------*- C++ -*-===//
//
// Prepare once, then run blind: `prepare` binds every step of every program
// to a kernel and checks the shape relations the kernel indexes with (the
// plan loader has already checked indices and buffer bounds), so `run` only
// calls kernels. Index *values* (token ids) are checked where they are read.
// Compute is f32; bf16/f16 buffers are widened on read and rounded to
// nearest even on write, as PyTorch's bf16 storage with f32 math.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CPU_EXECUTOR_H
#define FORGE_RUNTIME_CPU_EXECUTOR_H

#include "runtime/core/Backend.h"
#include "runtime/core/Plan.h"
#include "runtime/core/Trace.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace forge::comm {
class Comms;
} // namespace forge::comm

namespace forge::cpu {

/// Views are the backend interface's (host memory on the CPU).
using View = runtime::View;

/// Thrown by a step whose collective failed; what() names the rank, the
/// collective, its group and the plan op that issued it.
class CollectiveError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The communication stream of the CPU backend: one thread that runs the
/// collectives it is given in order (every rank issues them in the same
/// order, as gloo requires), while the compute thread goes on. Ticket k is
/// the k-th collective pushed; waitFor(k) returns once it has run, or
/// rethrows the first collective's failure.
class CommQueue {
public:
  ~CommQueue();
  /// Queues `fn`; returns its ticket.
  uint64_t push(std::function<void()> fn);
  void waitFor(uint64_t ticket);
  void drain() { waitFor(issued_); }
  uint64_t issued() const { return issued_; }

private:
  void loop();

  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  uint64_t issued_ = 0, done_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

/// Which collective each step of `program` must wait for, from the plan's
/// buffer ranges: result[s] is the ticket (1-based, counted from the
/// program's start) of the last in-flight collective that step s conflicts
/// with, 0 for none. async[s] marks the steps that go to a CommQueue. An
/// in-flight collective conflicts with a step that writes bytes it reads or
/// writes, or reads bytes it writes; at most runtime::kCommWindow are in
/// flight. Shared by the CPU and CUDA backends.
std::vector<uint64_t> planCommWaits(const plan::Plan *plan,
                                    const plan::Program *program,
                                    const std::vector<bool> &async);

class Executor : public runtime::Backend {
public:
  const char *kind() const override { return "cpu"; }
  /// The communicators of this rank's mesh groups, for plans with
  /// collectives; set before prepare().
  void setComms(comm::Comms *comms) override { comms_ = comms; }
  /// [profiling]: every step records its span into `tracer` while the
  /// tracer is active; set before prepare() (null: no timing wrapper).
  void setTracer(runtime::Tracer *tracer) override { tracer_ = tracer; }

  /// Binds the plan's programs to kernels. Returns an error message, or an
  /// empty string when every step can run.
  std::string prepare(const plan::Plan *plan) override;

  /// Only the layout: allocates the host arena (untouched pages cost no
  /// memory) and the views of every buffer and program, without binding
  /// kernels. A device backend keeps its host mirror this way.
  std::string prepareLayout(const plan::Plan *plan);

  /// Fills parameters from their initializers (normal draws seeded by
  /// `seed` and the parameter's name, so the order of parameters does not
  /// matter) and zeroes every other persistent buffer.
  void initialize(uint64_t seed) override;

  /// Runs program `name` once. Its inputs must have been written.
  void run(const std::string &name) override;

  /// Pipeline stages: the micro-batch the next programs run (it tags their
  /// sends and receives), and waiting for the sends still in flight (each
  /// peer's sends run in order on a thread of their own, from copies, so a
  /// stage never waits for its receiver). A failed send throws
  /// CollectiveError.
  void setMicroBatch(int64_t micro) override { micro_ = micro; }
  void finishSends() override;

  /// The program's input and output buffers, in order.
  const std::vector<View> &inputs(const std::string &program) const override;
  const std::vector<View> &outputs(const std::string &program) const override;

  /// Buffer by plan index (tests and checkpoint I/O).
  const View &buffer(uint32_t index) const override { return views_[index]; }

  void zeroRole(plan::Role role) override;
  bool finiteRole(plan::Role role) override;
  /// The arena size actually allocated.
  uint64_t arenaBytes() const override { return arenaBytes_; }

  /// Seconds spent per op, when FORGE_PROFILE is set (else empty).
  std::string profileReport() const override;
  bool profiling() const override { return profile_; }

  /// Reads element `i` of a floating buffer as f32.
  static float readFloat(const View &v, int64_t i);

private:
  struct Program {
    std::string name;
    std::vector<View> inputs, outputs;
    std::vector<std::function<void()>> steps;
    /// Per step: whether it runs on the communication stream, and the
    /// collective (1-based, counted from the program's start) that must
    /// have finished before it starts (0: none).
    std::vector<bool> async;
    std::vector<uint64_t> waitFor;
  };

  const plan::Plan *plan_ = nullptr;
  comm::Comms *comms_ = nullptr;
  runtime::Tracer *tracer_ = nullptr;
  std::unique_ptr<std::byte[], void (*)(std::byte *)> arena_{nullptr, nullptr};
  uint64_t arenaBytes_ = 0;
  std::vector<View> views_;
  std::vector<Program> programs_;
  bool profile_ = false;
  int64_t micro_ = 0;
  /// Pipeline sends, one queue per peer (created by prepare()).
  std::map<int64_t, std::unique_ptr<CommQueue>> senders_;
  std::mutex profileMu_; ///< opSeconds_ is written by both streams
  /// Scratch of the collectives that are not in place (the largest need;
  /// runtime::collectiveScratchBytes).
  std::vector<uint8_t> commScratch_;
  std::map<std::string, double> opSeconds_;
  CommQueue comm_;
};

} // namespace forge::cpu

#endif // FORGE_RUNTIME_CPU_EXECUTOR_H
