//===- Plugin.h - The CUDA backend, loaded when a run uses it ---*- C++ -*-===//
//
// The CUDA executor and the NCCL communicators live in libforge-cuda.so,
// which the trainer loads (dlopen) only when a run uses a GPU. cuBLAS,
// cuBLASLt and NCCL are close to a gigabyte of shared libraries: linked
// into forge-run they would cost every CPU run a few hundred MiB of
// resident memory and keep forge-run from starting at all where the CUDA
// toolkit's libraries are not installed. Device discovery (Device.h) stays
// linked in: it needs only the static CUDA runtime, which finds the driver
// by itself.
//
// The library exports one C symbol, forge_cuda_plugin, returning the table
// below; everything else in it is hidden, so its copies of the runtime's
// static libraries never interpose on the executable's.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_PLUGIN_H
#define FORGE_RUNTIME_CUDA_PLUGIN_H

#include "runtime/comm/Communicator.h"
#include "runtime/core/Backend.h"

#include <memory>
#include <string>

namespace forge::cuda {

/// Changes whenever the table or a type it passes changes; the loader
/// refuses a library built with another value.
constexpr int kPluginAbi = 3;

struct Plugin {
  int abi;
  /// cuda::makeExecutor (Executor.h).
  std::unique_ptr<runtime::Backend> (*makeExecutor)(int device,
                                                    std::string &why);
  /// comm::connectNccl (comm/Nccl.h).
  std::unique_ptr<comm::Comms> (*connectNccl)(const comm::WorldInfo &world,
                                              const comm::MeshShape &mesh,
                                              int device, std::string &error);
  /// comm::ncclVersionString.
  std::string (*ncclVersion)();
};

/// The library's file name.
constexpr const char *kPluginFile = "libforge-cuda.so";

/// Loads the CUDA backend once: $FORGE_CUDA_PLUGIN if set, else
/// lib/libforge-cuda.so beside the executable's bin/ folder, else the
/// dynamic loader's search path. Null with `why` (the loader's reason)
/// when it cannot be loaded. The library stays loaded until exit.
const Plugin *loadPlugin(std::string &why);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_PLUGIN_H
