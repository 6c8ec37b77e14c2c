//===- Composite.cpp - CUDA ops made of kernels and matmuls ---------------===//

#include "runtime/cuda/Composite.h"
#include "runtime/cuda/Blas.h"
#include "runtime/cuda/Gemm.h"

#include <algorithm>
#include <stdexcept>

namespace forge::cuda {

namespace {
void gemm(cublasHandle_t blas, bool transA, bool transB, int64_t m, int64_t n,
          int64_t k, float alpha, const float *a, const float *b, float beta,
          float *c, const std::string &what) {
  if (cublasStatus_t st = gemmRowMajor(blas, transA, transB, m, n, k, alpha, a,
                                       b, Dt::f32, beta, c, Dt::f32);
      st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(what + ": cublasGemmEx failed: " + statusName(st));
}
} // namespace

void chunkedCrossEntropy(cublasHandle_t blas, const float *h, const float *w,
                         const int64_t *labels, int64_t rows, int64_t d,
                         int64_t vocab, int64_t chunk, int64_t ignore,
                         double zWeight, Tensor loss,
                         const ChunkedCeScratch &sc, ErrorSlot *err, int step,
                         cudaStream_t s, const std::string &what) {
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t m = std::min(chunk, rows - r0);
    gemm(blas, false, true, m, vocab, d, 1.0f, h + r0 * d, w, 0.0f, sc.logits,
         what);
    rowLogSumExp({sc.logits, Dt::f32}, m, vocab, sc.lse, s);
    chunkRowTerms(sc.logits, sc.lse, labels, r0, m, vocab, ignore, sc.rowCe,
                  sc.rowZ, err, step, s);
  }
  chunkedLoss(sc.rowCe, sc.rowZ, labels, rows, ignore, zWeight, loss, s);
}

void chunkedCrossEntropyGrad(cublasHandle_t blas, const float *h,
                             const float *w, const int64_t *labels,
                             int64_t rows, int64_t d, int64_t vocab,
                             int64_t chunk, int64_t ignore, double zWeight,
                             Tensor dloss, float *dh, float *dw,
                             const ChunkedCeScratch &sc, cudaStream_t s,
                             const std::string &what) {
  if (rows == 0)
    cudaMemsetAsync(dw, 0, static_cast<size_t>(vocab * d) * 4, s);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t m = std::min(chunk, rows - r0);
    const float *hc = h + r0 * d;
    gemm(blas, false, true, m, vocab, d, 1.0f, hc, w, 0.0f, sc.logits, what);
    rowLogSumExp({sc.logits, Dt::f32}, m, vocab, sc.lse, s);
    chunkLogitsGrad(sc.logits, sc.lse, labels, r0, m, vocab, rows, ignore,
                    zWeight, dloss, sc.valid, s);
    // dh[chunk] = dlogits w; dw = (the earlier chunks' dw +) dlogits^T h.
    gemm(blas, false, false, m, d, vocab, 1.0f, sc.logits, w, 0.0f, dh + r0 * d,
         what);
    gemm(blas, true, false, vocab, d, m, 1.0f, sc.logits, hc, r0 ? 1.0f : 0.0f,
         dw, what);
  }
}

void newtonSchulz(cublasHandle_t blas, float *x, int64_t m, int64_t n,
                  int64_t steps, float *aa, float *bb, float *next,
                  cudaStream_t s, const std::string &what) {
  const float a = 3.4445f, b = -4.7750f, c = 2.0315f;
  for (int64_t it = 0; it < steps; ++it) {
    gemm(blas, false, true, m, m, n, 1.0f, x, x, 0.0f, aa, what); // A = X X^T
    scaleF32(aa, b, bb, m * m, s);
    gemm(blas, false, false, m, m, m, c, aa, aa, 1.0f, bb, what); // + c A A
    scaleF32(x, a, next, m * n, s);
    gemm(blas, false, false, m, n, m, 1.0f, bb, x, 1.0f, next, what); // + B X
    cudaMemcpyAsync(x, next, static_cast<size_t>(m * n) * 4,
                    cudaMemcpyDeviceToDevice, s);
  }
}

void groupedLinear(cublasHandle_t blas, GroupedKind kind, bool outIn,
                   const std::vector<int64_t> &sizes, int64_t k, int64_t n,
                   Tensor a, Tensor b, Tensor out, int64_t outElems,
                   cudaStream_t s, const std::string &what) {
  if (a.dt != b.dt || (out.dt != a.dt && out.dt != Dt::f32))
    throw std::runtime_error(what + ": grouped operands of mixed dtypes");
  const size_t ea = a.dt == Dt::f32 ? 4 : 2, eo = out.dt == Dt::f32 ? 4 : 2;
  auto at = [](Tensor t, size_t elem, int64_t i) {
    return static_cast<char *>(t.p) + static_cast<size_t>(i) * elem;
  };
  auto mm = [&](bool transA, bool transB, int64_t m, int64_t nn, int64_t kk,
                const void *x, const void *y, void *c) {
    if (cublasStatus_t st = gemmRowMajor(blas, transA, transB, m, nn, kk, 1.0f,
                                         x, y, a.dt, 0.0f, c, out.dt);
        st != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(what +
                               ": cublasGemmEx failed: " + statusName(st));
  };
  cudaMemsetAsync(out.p, 0, static_cast<size_t>(outElems) * eo, s);
  int64_t row = 0;
  for (size_t ex = 0; ex < sizes.size(); ++ex) {
    const int64_t m = sizes[ex];
    if (m <= 0)
      continue;
    const int64_t wOff = static_cast<int64_t>(ex) * k * n;
    switch (kind) {
    case GroupedKind::Forward: // y = x W^T (out-in) or x W (in-out)
      mm(false, outIn, m, n, k, at(a, ea, row * k), at(b, ea, wOff),
         at(out, eo, row * n));
      break;
    case GroupedKind::GradInput: // dx = dy W (out-in) or dy W^T (in-out)
      mm(false, !outIn, m, k, n, at(a, ea, row * n), at(b, ea, wOff),
         at(out, eo, row * k));
      break;
    case GroupedKind::GradWeight:
      if (outIn) // dW [out, in] = dy^T x
        mm(true, false, n, k, m, at(a, ea, row * n), at(b, ea, row * k),
           at(out, eo, wOff));
      else // dW [in, out] = x^T dy
        mm(true, false, k, n, m, at(b, ea, row * k), at(a, ea, row * n),
           at(out, eo, wOff));
      break;
    }
    row += m;
  }
}

} // namespace forge::cuda
