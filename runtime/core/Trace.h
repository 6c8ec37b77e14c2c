//===- Trace.h - Per-rank op timeline for [profiling] -----------*- C++ -*-===//
//
// The runtime's profiler (reference §7.4, issue 8): while a step of the
// [profiling] window runs, every executed op and collective, every program
// run and every wait for the communication stream is recorded with its
// start and end. The result is a Chrome trace-event JSON file per rank
// (chrome://tracing and Perfetto open it) and a breakdown of the step time
// into matmul, attention, other compute, communication and idle, from
// which forge-run writes summary.md.
//
// Recording is off outside the window: record() is then one relaxed
// atomic load, and the executor installs no timing wrapper at all unless
// the plan enables profiling.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CORE_TRACE_H
#define FORGE_RUNTIME_CORE_TRACE_H

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace forge::runtime {

/// What a recorded span is; the summary's categories are the first five.
enum class TraceKind : uint8_t {
  MatMul,        ///< linear and grouped-linear ops (forward and VJPs)
  Attention,     ///< attention and its VJP
  Compute,       ///< every other kernel
  Communication, ///< a collective or point-to-point transfer
  Wait,          ///< the compute thread waiting for the communication stream
  Program,       ///< one run of a plan program (encloses its ops)
  Host,          ///< runtime work outside the programs: data, eval, saving
  Step,          ///< one training step, start to end
};

/// The category of a plan op name, for the summary.
TraceKind traceKindOfOp(const std::string &op);

/// Where time went during the profiled steps of one rank, in seconds.
/// matmul + attention + compute + exposedComm + idle == wall: the compute
/// thread's time, split by what it did; commStream is the time the
/// communication stream spent in collectives, largely overlapping compute.
struct TraceBreakdown {
  int64_t steps = 0;
  double wall = 0, matmul = 0, attention = 0, compute = 0, exposedComm = 0,
         idle = 0, commStream = 0;
  double matmulFlops = 0; ///< of the matmuls timed in `matmul`
};

/// One row of the op table: an op name's calls and total time.
struct TraceOpTotal {
  std::string op;
  TraceKind kind = TraceKind::Compute;
  int64_t calls = 0;
  double seconds = 0;
};

class Tracer {
public:
  explicit Tracer(int rank);

  /// Records only while active (the profiled steps).
  void setActive(bool on) { active_.store(on, std::memory_order_relaxed); }
  bool active() const { return active_.load(std::memory_order_relaxed); }

  /// Microseconds since the tracer was made (steady clock).
  double nowUs() const {
    return std::chrono::duration<double, std::micro>(
               std::chrono::steady_clock::now() - origin_)
        .count();
  }

  /// A span [startUs, endUs] named `name` on the timeline row `thread`
  /// ("compute", "collectives", ...). `detail` goes into the event's args
  /// (e.g. the collective's origin), and `flops`, the floating-point
  /// operations of a matmul, too. Thread-safe; ignored when inactive.
  void record(const std::string &name, TraceKind kind, const char *thread,
              double startUs, double endUs, const std::string &detail = "",
              double flops = 0);

  bool empty() const;
  /// The Chrome trace-event JSON ({"traceEvents": [...]}) of what was
  /// recorded: complete events ("ph": "X", microseconds) on process `rank`
  /// with one named thread per row. Returns an error message or "".
  std::string writeChromeTrace(const std::string &path) const;

  /// The compute-thread breakdown and the per-op totals of the recorded
  /// steps (op totals sorted by time, longest first).
  TraceBreakdown breakdown() const;
  std::vector<TraceOpTotal> opTotals() const;

private:
  struct Event {
    std::string name, detail;
    TraceKind kind;
    int thread;
    double start, end, flops;
  };
  int threadIndex(const char *thread); ///< under mu_

  int rank_;
  std::chrono::steady_clock::time_point origin_;
  std::atomic<bool> active_{false};
  mutable std::mutex mu_;
  std::vector<Event> events_;
  std::vector<std::string> threads_;
};

/// FORGE_PROFILE's table: seconds per op name, longest first, with each
/// op's share, under the heading `title`.
std::string opSecondsTable(const std::map<std::string, double> &opSeconds,
                           const std::string &title);

/// The name of a category as the summary prints it.
const char *traceKindName(TraceKind kind);

/// summary.md: the breakdown of every rank (`ranks[r]`), the op table of
/// rank `opsRank` and how to read them. `window` says which steps were
/// profiled.
std::string traceSummaryMarkdown(const std::vector<TraceBreakdown> &ranks,
                                 const std::vector<TraceOpTotal> &ops,
                                 int opsRank, const std::string &window);

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_TRACE_H
