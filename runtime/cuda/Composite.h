//===- Composite.h - CUDA ops made of kernels and matmuls -------*- C++ -*-===//
//
// The ops whose CUDA implementation is a sequence of kernels and cuBLAS
// matmuls rather than one kernel: chunked cross-entropy (the logits of one
// chunk of rows at a time), Muon's Newton–Schulz iteration and the grouped
// (per-expert) linear layers. The executor binds plan steps to them and the
// conformance suite runs them against the CPU reference. All operands are
// f32 device memory (the executor widens bf16/f16 first); each enqueues on
// the handle's stream and throws std::runtime_error naming `what` when a
// matmul fails.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_COMPOSITE_H
#define FORGE_RUNTIME_CUDA_COMPOSITE_H

#include "runtime/cuda/Kernels.h"

#include <cublas_v2.h>

#include <cstdint>
#include <string>
#include <vector>

namespace forge::cuda {

/// Scratch of chunked cross-entropy: logits [chunk, vocab], lse [chunk],
/// per-row terms [rows] x 2 and one float.
struct ChunkedCeScratch {
  float *logits, *lse, *rowCe, *rowZ, *valid;
};

/// loss = mean CE over valid rows + zWeight * mean lse^2 (h [rows, d],
/// w [vocab, d]).
void chunkedCrossEntropy(cublasHandle_t blas, const float *h, const float *w,
                         const int64_t *labels, int64_t rows, int64_t d,
                         int64_t vocab, int64_t chunk, int64_t ignore,
                         double zWeight, Tensor loss,
                         const ChunkedCeScratch &sc, ErrorSlot *err, int step,
                         cudaStream_t s, const std::string &what);
/// Its VJP: dh [rows, d] and dw [vocab, d] (both overwritten).
void chunkedCrossEntropyGrad(cublasHandle_t blas, const float *h,
                             const float *w, const int64_t *labels,
                             int64_t rows, int64_t d, int64_t vocab,
                             int64_t chunk, int64_t ignore, double zWeight,
                             Tensor dloss, float *dh, float *dw,
                             const ChunkedCeScratch &sc, cudaStream_t s,
                             const std::string &what);

/// Muon's orthogonalization of x [m, n] (already divided by its norm), in
/// place: `steps` iterations of X = a X + (b A + c A A) X, A = X X^T.
/// Scratch: aa, bb [m, m]; next [m, n].
void newtonSchulz(cublasHandle_t blas, float *x, int64_t m, int64_t n,
                  int64_t steps, float *aa, float *bb, float *next,
                  cudaStream_t s, const std::string &what);

/// Grouped linear layers over rows grouped by expert (`sizes`, host copy):
/// kind 0: y = x W_e^T (out-in weights) or x W_e (in-out); kind 1: the
/// input gradient; kind 2: the weight gradient. `a` is x or dy, `b` the
/// weights or x; `out` is zeroed first, so rows and experts without rows
/// stay zero. `a` and `b` share a dtype and `out` is that dtype or f32:
/// bf16 experts multiply on tensor cores with f32 accumulation, one
/// cublasGemmEx per expert, without f32 copies.
enum class GroupedKind { Forward, GradInput, GradWeight };
void groupedLinear(cublasHandle_t blas, GroupedKind kind, bool outIn,
                   const std::vector<int64_t> &sizes, int64_t k, int64_t n,
                   Tensor a, Tensor b, Tensor out, int64_t outElems,
                   cudaStream_t s, const std::string &what);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_COMPOSITE_H
