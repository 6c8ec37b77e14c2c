//===- Backend.h - What the trainer needs from an executor ------*- C++ -*-===//
//
// One plan, several backends (design.md §3): the CPU executor runs the plan
// in host memory; the CUDA executor runs it in device memory and keeps a
// host mirror of the same layout for what the trainer reads and writes
// (program inputs and outputs, and the persistent state at checkpoints).
// The trainer, the checkpointer and the state tools see only this
// interface, so every backend trains, saves and resumes the same way.
//
// Host views: `buffer(i)`, `inputs()` and `outputs()` are host memory on
// every backend. A device backend copies a program's `input`-role buffers
// to the device when the program starts and its outputs back when it ends;
// the persistent buffers (parameters, gradients, optimizer and other state)
// cross only at pullState()/pushState(), which the trainer calls around
// checkpoint I/O, exports and dumps.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CORE_BACKEND_H
#define FORGE_RUNTIME_CORE_BACKEND_H

#include "runtime/core/DType.h"
#include "runtime/core/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace forge::comm {
class Comms;
} // namespace forge::comm

namespace forge::runtime {

class Tracer;

/// A typed view of one plan buffer inside the (host) arena.
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

/// Element `i` of a floating view as f32 (0 for other dtypes).
inline float readFloat(const View &v, int64_t i) {
  switch (v.dtype) {
  case plan::DType::f32:
    return static_cast<const float *>(v.data)[i];
  case plan::DType::bf16:
    return bf16ToF32(static_cast<const uint16_t *>(v.data)[i]);
  case plan::DType::f16:
    return static_cast<float>(static_cast<const _Float16 *>(v.data)[i]);
  default:
    return 0;
  }
}

class Backend {
public:
  virtual ~Backend() = default;

  /// "cpu" or "cuda", for messages.
  virtual const char *kind() const = 0;

  /// The communicators of this rank's mesh groups, for plans with
  /// collectives; set before prepare().
  virtual void setComms(comm::Comms *comms) = 0;
  /// Device backends: the communicators over device memory (NCCL) that
  /// run the plan's collectives; the host ones (setComms) stay for the
  /// trainer's own coordination. Before prepare().
  virtual void setDeviceComms(comm::Comms *comms) {}
  /// [profiling]: steps record their spans into `tracer`; before prepare().
  virtual void setTracer(Tracer *tracer) = 0;

  /// Binds the plan's programs to kernels. Returns an error message, or an
  /// empty string when every step can run.
  virtual std::string prepare(const plan::Plan *plan) = 0;
  /// Fills the parameters from their initializers (the same values on
  /// every backend) and zeroes every other persistent buffer.
  virtual void initialize(uint64_t seed) = 0;
  /// Runs program `name` once; its inputs must have been written.
  virtual void run(const std::string &name) = 0;
  /// Pipeline stages: the micro-batch that tags the next sends/receives,
  /// and waiting for the sends still in flight.
  virtual void setMicroBatch(int64_t micro) = 0;
  virtual void finishSends() = 0;

  /// Host views of a program's inputs and outputs, in order.
  virtual const std::vector<View> &inputs(const std::string &program) const = 0;
  virtual const std::vector<View> &
  outputs(const std::string &program) const = 0;
  /// Host view of buffer `index` (persistent buffers are current after
  /// pullState()).
  virtual const View &buffer(uint32_t index) const = 0;

  /// Zeroes every buffer with `role` (where it lives).
  virtual void zeroRole(plan::Role role) = 0;
  /// Whether every element of every floating buffer with `role` is finite.
  virtual bool finiteRole(plan::Role role) = 0;
  /// Device backends: persistent buffers device -> host mirror, and back.
  virtual void pullState() {}
  virtual void pushState() {}

  /// The arena actually allocated (device memory on a device backend).
  virtual uint64_t arenaBytes() const = 0;
  /// All the memory the backend holds for the plan, the log's mem=: the
  /// arena and, on a device, what it allocated beside it (workspaces,
  /// scratch, pipeline buffers and send copies).
  virtual uint64_t heldBytes() const { return arenaBytes(); }
  /// Seconds per op when FORGE_PROFILE is set.
  virtual std::string profileReport() const = 0;
  virtual bool profiling() const = 0;
  /// What the user should know about how this backend runs the plan that
  /// the plan itself does not say (which matmuls use fp8 tensor cores):
  /// lines forge-run prints under its header; empty when there is none.
  virtual std::string notes() const { return ""; }
};

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_BACKEND_H
