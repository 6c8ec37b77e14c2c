//===- Gemm.h - cuBLASLt matmuls of the CUDA backend ------------*- C++ -*-===//
//
// One Gemm per plan step: the descriptors and the algorithm are chosen once,
// when the step is bound, so a step's launch is one cublasLtMatmul. The
// compute type is CUBLAS_COMPUTE_32F (no TF32: fp32 plans give PyTorch's
// default fp32 results; bf16/f16 operands accumulate in fp32).
//
// Operands are row-major, as the plan's buffers: Gemm takes the row-major
// problem C[m, n] = op(A) op(B) and hands cuBLASLt its column-major
// transpose, C^T = op(B)^T op(A)^T.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_GEMM_H
#define FORGE_RUNTIME_CUDA_GEMM_H

#include "runtime/cuda/Kernels.h"

#include <cublasLt.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace forge::cuda {

class Gemm {
public:
  Gemm() = default;
  Gemm(const Gemm &) = delete;
  Gemm &operator=(const Gemm &) = delete;
  ~Gemm();

  /// C[m, n] = op(A)[m, k] @ op(B)[k, n], row-major; `transA` means A is
  /// stored [k, m], `transB` that B is stored [n, k]. A and B must share a
  /// dtype; C is that dtype or f32. `alignment` (a power of two, at most
  /// 256) is what every operand's address will be a multiple of: the
  /// algorithm is chosen for it (cuBLASLt otherwise assumes 256, and the
  /// plan's buffers are only 64-byte aligned). Returns why not, or "".
  std::string init(cublasLtHandle_t handle, bool transA, bool transB, int64_t m,
                   int64_t n, int64_t k, Dt ab, Dt c, size_t workspaceBytes,
                   uint32_t alignment);
  /// An fp8 matmul on fp8 tensor cores (sm_89 and later): C[m, n] =
  /// (aDequant * A[m, k]) @ (bDequant * B[n, k])^T, A and B one byte per
  /// element (e4m3, or e5m2 when `aE4m3` / `bE4m3` is false; not both
  /// e5m2), both stored row-major with k contiguous: cuBLASLt's fp8
  /// kernels take only that ("TN") layout. The dequantization factors are
  /// device f32 scalars read when the matmul runs; C is bf16, f16 or f32.
  /// m, n and k must be multiples of 16; `alignment` as for init.
  /// Returns why not, or "".
  std::string initFp8(cublasLtHandle_t handle, int64_t m, int64_t n, int64_t k,
                      bool aE4m3, bool bE4m3, Dt c, const float *aDequant,
                      const float *bDequant, size_t workspaceBytes,
                      uint32_t alignment);
  cublasStatus_t run(const void *a, const void *b, void *c, void *workspace,
                     size_t workspaceBytes, cudaStream_t stream) const;

  /// Whether cuBLASLt multiplies operands `ab` into `c` directly.
  static bool supported(Dt ab, Dt c) { return c == ab || c == Dt::f32; }

private:
  /// The matmul descriptor (f32 compute and scale) with cuBLAS's
  /// transposes, and the three column-major dense layouts.
  std::string describe(cublasOperation_t opA, cublasOperation_t opB);
  std::string layouts(cudaDataType_t ta, uint64_t aRows, uint64_t aCols,
                      cudaDataType_t tb, uint64_t bRows, uint64_t bCols,
                      cudaDataType_t tc, uint64_t cRows, uint64_t cCols);
  /// The heuristic's best algorithm for the layouts and descriptor set.
  std::string chooseAlgorithm(size_t workspaceBytes, uint32_t alignment);

  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
};

/// The largest power of two (at most 256) that divides every address in
/// `ptrs`: the `alignment` for Gemm::init.
uint32_t commonAlignment(std::initializer_list<const void *> ptrs);

/// "CUBLAS_STATUS_..." for messages.
const char *statusName(cublasStatus_t status);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_GEMM_H
