//===- KernelsCommon.cuh - Device helpers shared by the CUDA kernels ------===//
//
// Included by Kernels.cu and MoeKernels.cu only (device code).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_KERNELSCOMMON_CUH
#define FORGE_RUNTIME_CUDA_KERNELSCOMMON_CUH

#include "runtime/cuda/Kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

namespace forge::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float ld(const void *p, Dt dt, int64_t i) {
  switch (dt) {
  case Dt::bf16:
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
  case Dt::f16:
    return __half2float(static_cast<const __half *>(p)[i]);
  default:
    return static_cast<const float *>(p)[i];
  }
}

__device__ __forceinline__ void st(void *p, Dt dt, int64_t i, float v) {
  switch (dt) {
  case Dt::bf16:
    static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
    break;
  case Dt::f16:
    static_cast<__half *>(p)[i] = __float2half_rn(v);
    break;
  default:
    static_cast<float *>(p)[i] = v;
  }
}

inline int blocksFor(int64_t n) {
  return static_cast<int>(
      std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

/// Grid-stride loop over [0, n).
#define FORGE_FOR_EACH(i, n)                                                   \
  for (int64_t i =                                                             \
           blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;        \
       i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
/// thread gets the result. The order is fixed, so results repeat.
__device__ float blockSum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warpSum(v);
  __syncthreads();
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float t = lane < warps ? part[lane] : 0.0f;
  return warpSum(t);
}
__device__ float blockMax(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float t = lane < warps ? part[lane] : -INFINITY;
  return warpMax(t);
}

__device__ void recordError(ErrorSlot *err, long long kind, int step,
                            long long value, long long bound) {
  if (atomicCAS(reinterpret_cast<unsigned long long *>(&err->kind), 0ull,
                static_cast<unsigned long long>(kind)) == 0ull) {
    err->step = step;
    err->value = value;
    err->bound = bound;
  }
}

inline int warpBlocks(int64_t rows) {
  const int64_t perBlock = kThreads / 32;
  return static_cast<int>((rows + perBlock - 1) / perBlock);
}

/// Threads for one block per row of d elements: a power of two in
/// [32, 1024].
inline int rowThreads(int64_t d) {
  int64_t t = 32;
  while (t < d && t < 1024)
    t *= 2;
  return static_cast<int>(t);
}

} // namespace
} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_KERNELSCOMMON_CUH
