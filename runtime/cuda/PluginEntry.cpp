//===- PluginEntry.cpp - libforge-cuda.so's one exported symbol -----------===//
//
// See Plugin.h: the table of the CUDA backend's entry points.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Nccl.h"
#include "runtime/cuda/Executor.h"
#include "runtime/cuda/Plugin.h"

extern "C" __attribute__((visibility("default"))) const forge::cuda::Plugin *
forge_cuda_plugin() {
  static const forge::cuda::Plugin table = {
      forge::cuda::kPluginAbi, &forge::cuda::makeExecutor,
      &forge::comm::connectNccl, &forge::comm::ncclVersionString};
  return &table;
}
