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

#include "runtime/core/Plan.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace forge::comm {
class Comms;
} // namespace forge::comm

namespace forge::cpu {

/// A typed view of one plan buffer inside the arena.
struct View {
  void *data = nullptr;
  plan::DType dtype = plan::DType::f32;
  std::vector<int64_t> shape;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  int64_t dim(int i) const {
    return shape[i < 0 ? static_cast<int>(shape.size()) + i : i];
  }
};

/// Thrown by a step whose collective failed; what() names the rank, the
/// collective, its group and the plan op that issued it.
class CollectiveError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class Executor {
public:
  /// The communicators of this rank's mesh groups, for plans with
  /// collectives; set before prepare().
  void setComms(comm::Comms *comms) { comms_ = comms; }

  /// Binds the plan's programs to kernels. Returns an error message, or an
  /// empty string when every step can run.
  std::string prepare(const plan::Plan *plan);

  /// Fills parameters from their initializers (normal draws seeded by
  /// `seed` and the parameter's name, so the order of parameters does not
  /// matter) and zeroes every other persistent buffer.
  void initialize(uint64_t seed);

  /// Runs program `name` once. Its inputs must have been written.
  void run(const std::string &name);

  /// The program's input and output buffers, in order.
  const std::vector<View> &inputs(const std::string &program) const;
  const std::vector<View> &outputs(const std::string &program) const;

  /// Buffer by plan index (tests and checkpoint I/O).
  const View &buffer(uint32_t index) const { return views_[index]; }
  /// The arena size actually allocated.
  uint64_t arenaBytes() const { return arenaBytes_; }

  /// Seconds spent per op, when FORGE_PROFILE is set (else empty).
  std::string profileReport() const;
  bool profiling() const { return profile_; }

  /// Reads element `i` of a floating buffer as f32.
  static float readFloat(const View &v, int64_t i);

private:
  struct Program {
    std::string name;
    std::vector<View> inputs, outputs;
    std::vector<std::function<void()>> steps;
  };

  const plan::Plan *plan_ = nullptr;
  comm::Comms *comms_ = nullptr;
  std::unique_ptr<std::byte[], void (*)(std::byte *)> arena_{nullptr, nullptr};
  uint64_t arenaBytes_ = 0;
  std::vector<View> views_;
  std::vector<Program> programs_;
  bool profile_ = false;
  std::map<std::string, double> opSeconds_;
};

} // namespace forge::cpu

#endif // FORGE_RUNTIME_CPU_EXECUTOR_H
