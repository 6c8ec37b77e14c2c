//===- Executor.h - Runs a verified plan on one CUDA device -----*- C++ -*-===//
//
// The CUDA backend of runtime::Backend: the plan's arena is one cudaMalloc
// on the process's GPU, every step a kernel (runtime/cuda/Kernels) or a
// cuBLASLt matmul on one stream, in the plan's order. A host mirror with
// the same layout (a CPU executor's arena, of which only the touched pages
// cost memory) holds what the trainer reads and writes: program inputs go
// up when a program starts, its outputs come down when it ends, and the
// persistent state crosses at pullState()/pushState(). Parameters are
// initialized on the host by the CPU backend's code, so both backends
// start from the same weights.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_EXECUTOR_H
#define FORGE_RUNTIME_CUDA_EXECUTOR_H

#include "runtime/core/Backend.h"

#include <memory>
#include <string>

namespace forge::cuda {

/// The CUDA backend on device `device` (the process's local rank), or null
/// with `why` set (no such device, a driver error).
std::unique_ptr<runtime::Backend> makeExecutor(int device, std::string &why);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_EXECUTOR_H
