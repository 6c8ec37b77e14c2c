//===- Blas.cpp - cuBLAS matmuls with sizes known only at run time --------===//

#include "runtime/cuda/Blas.h"

namespace forge::cuda {

namespace {
cudaDataType_t cudaType(Dt dt) {
  return dt == Dt::bf16 ? CUDA_R_16BF : dt == Dt::f16 ? CUDA_R_16F : CUDA_R_32F;
}
} // namespace

cublasStatus_t gemmRowMajor(cublasHandle_t handle, bool transA, bool transB,
                            int64_t m, int64_t n, int64_t k, float alpha,
                            const void *a, const void *b, Dt ab, float beta,
                            void *c, Dt cd) {
  if (m == 0 || n == 0 || k == 0)
    return CUBLAS_STATUS_SUCCESS;
  // Column-major: C^T[n, m] = op(B)^T op(A)^T (see Gemm.h). cuBLAS's first
  // operand is our B: stored [k, n] (leading dimension n) or, transposed,
  // [n, k] (leading dimension k); its second is our A likewise.
  // f32 means f32: pedantic mode, no TF32 (not even under
  // NVIDIA_TF32_OVERRIDE). 16-bit operands run on tensor cores, which
  // multiply them exactly and accumulate in f32, without reduced-precision
  // reductions; pedantic mode could keep them off the tensor cores.
  cublasSetMathMode(
      handle, ab == Dt::f32
                  ? CUBLAS_PEDANTIC_MATH
                  : static_cast<cublasMath_t>(
                        CUBLAS_DEFAULT_MATH |
                        CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
  const cublasOperation_t opFirst = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opSecond = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ldFirst = static_cast<int>(transB ? k : n);
  const int ldSecond = static_cast<int>(transA ? m : k);
  return cublasGemmEx(handle, opFirst, opSecond, static_cast<int>(n),
                      static_cast<int>(m), static_cast<int>(k), &alpha, b,
                      cudaType(ab), ldFirst, a, cudaType(ab), ldSecond, &beta,
                      c, cudaType(cd), static_cast<int>(n), CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
}

} // namespace forge::cuda
