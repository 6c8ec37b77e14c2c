//===- Blas.h - cuBLAS matmuls with sizes known only at run time -*- C++
//-*-===//
//
// The matmuls whose shapes change from step to step (each expert's rows in a
// grouped linear) or that take alpha/beta (chunked cross-entropy's weight
// gradient, Muon's Newton–Schulz iteration) go through cublasGemmEx, which
// needs no per-shape descriptors. Row-major operands, f32 compute (no TF32),
// as Gemm: f32 operands in cuBLAS's pedantic mode, bf16/f16 ones on tensor
// cores (each call sets the handle's math mode).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_BLAS_H
#define FORGE_RUNTIME_CUDA_BLAS_H

#include "runtime/cuda/Kernels.h"

#include <cublas_v2.h>

#include <cstdint>

namespace forge::cuda {

/// C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, row-major and densely
/// packed; `transA`: A is stored [k, m]; `transB`: B is stored [n, k]. A
/// and B share a dtype; C is that dtype or f32. m, n or k may be 0 (then
/// nothing runs; with k = 0 the caller zeroes C).
cublasStatus_t gemmRowMajor(cublasHandle_t handle, bool transA, bool transB,
                            int64_t m, int64_t n, int64_t k, float alpha,
                            const void *a, const void *b, Dt ab, float beta,
                            void *c, Dt cd);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_BLAS_H
