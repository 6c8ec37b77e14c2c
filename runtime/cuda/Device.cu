//===- Device.cu - CUDA device discovery ----------------------------------===//

#include "runtime/cuda/Device.h"

#include <cuda_runtime.h>

#include <cstdio>

namespace forge::cuda {

namespace {
/// A trivial kernel so every configured architecture really gets device code
/// and a broken nvcc setup fails the build, not the first GPU run.
__global__ void probeKernel(int *out) {
#ifdef __CUDA_ARCH__
  *out = __CUDA_ARCH__;
#endif
}
} // namespace

int deviceCount(std::string *why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why)
      *why = cudaGetErrorString(err);
    cudaGetLastError(); // clear the sticky error for later calls
    return 0;
  }
  return n;
}

std::string deviceDescription(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess)
    return "";
  char buf[sizeof(prop.name) + 64];
  std::snprintf(buf, sizeof(buf), "%s (sm_%d%d, %.1f GiB)", prop.name,
                prop.major, prop.minor,
                static_cast<double>(prop.totalGlobalMem) / (1ull << 30));
  (void)&probeKernel;
  return buf;
}

double deviceMemoryBytes(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess)
    return 0;
  return static_cast<double>(prop.totalGlobalMem);
}

double peakFlops(int index, bool lowPrecision) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess)
    return 0;
  // TFLOPS, dense: {bf16, fp32}.
  double bf16 = 0, fp32 = 0;
  switch (prop.major) {
  case 8:
    if (prop.minor == 0)
      bf16 = 312, fp32 = 19.5;
    break;
  case 9:
    bf16 = 989, fp32 = 67;
    break;
  case 10:
    bf16 = 2250, fp32 = 80;
    break;
  default:
    break;
  }
  return (lowPrecision ? bf16 : fp32) * 1e12;
}

const char *compiledArchitectures() { return FORGE_CUDA_ARCHS; }

} // namespace forge::cuda
