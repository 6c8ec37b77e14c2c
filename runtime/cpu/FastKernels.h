//===- FastKernels.h - Optimized CPU kernels --------------------*- C++ -*-===//
//
// Faster versions of reference kernels, f32, tested against them
// (FastKernels_test.cpp). Attention is blocked: scores exist for one block
// of queries at a time (block x keys), never the full S x S matrix; work is
// split over (batch, kv-head) groups across threads so GQA heads that share
// a kv head never race on its gradient.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CPU_FASTKERNELS_H
#define FORGE_RUNTIME_CPU_FASTKERNELS_H

#include "runtime/cpu/RefKernels.h"

#include <functional>

namespace forge::cpu::fast {

/// Same contract as ref::attentionFwd (o and lse written, not accumulated).
void attentionFwd(const float *q, const float *k, const float *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  float *o, float *lse);
/// The same on bf16 q, k, v and o: each head is converted as it is
/// gathered (f32 math throughout) and o rounded once when stored.
void attentionFwd(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  uint16_t *o, float *lse);

/// ref::attentionBwd's gradients, but written to dq, dk and dv rather than
/// added (every element is stored once, so no zero fill is needed first);
/// `lse` may be null (the probabilities are recomputed per block row).
void attentionBwd(const float *q, const float *k, const float *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  const float *o, const float *lse, const float *dout,
                  float *dq, float *dk, float *dv);
/// The same on bf16 tensors (f32 math, each gradient rounded once).
void attentionBwd(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  const uint16_t *o, const uint16_t *dout, uint16_t *dq,
                  uint16_t *dk, uint16_t *dv);

/// sum x[i]^2 in double: fixed chunks (in parallel), each summed in 8
/// lanes, the chunks' sums added in order, so the result depends on n only,
/// not on the threads.
double sumSquares(const float *x, int64_t n);

/// e^x as the vectorized kernels (softmax rows, SiLU) compute it: a
/// polynomial, not libm; exposed for its accuracy test.
float approxExp(float x);

/// Same contract as ref::crossEntropyFwd; rows in parallel.
float crossEntropyFwd(const float *logits, const int64_t *labels, int64_t rows,
                      int64_t c, int64_t ignoreIndex);
/// ref::crossEntropyBwd's gradient, rows in parallel, but written to
/// dlogits rather than added (an ignored row becomes 0): the executor's
/// result is fresh, and not zeroing and re-reading [rows, c] first saves
/// two passes over the largest tensor of the step.
void crossEntropyBwd(const float *logits, const int64_t *labels, int64_t rows,
                     int64_t c, int64_t ignoreIndex, float dloss,
                     float *dlogits);
/// The same on bf16 logits and gradient, converted a row at a time (f32
/// math, one rounding of each gradient element).
float crossEntropyFwd(const uint16_t *logits, const int64_t *labels,
                      int64_t rows, int64_t c, int64_t ignoreIndex);
void crossEntropyBwd(const uint16_t *logits, const int64_t *labels,
                     int64_t rows, int64_t c, int64_t ignoreIndex, float dloss,
                     uint16_t *dlogits);

/// bf16 <-> f32 conversions of n elements, vectorized and threaded: the
/// CPU kernels compute in f32, so every bf16 operand and result of a
/// bf16 run passes through these. toBf16 rounds to nearest even and keeps
/// NaNs NaN, as runtime::f32ToBf16.
void bf16ToF32(const uint16_t *x, int64_t n, float *y);
void f32ToBf16(const float *x, int64_t n, uint16_t *y);

/// ref::rmsnormFwd, rows in parallel (sums and scaling in double, as
/// there).
void rmsnormFwd(const float *x, const float *w, int64_t rows, int64_t d,
                double eps, float *y);
/// ref::rmsnormBwd, rows in parallel: adds into dx and dw like the
/// reference. dw is summed per fixed block of rows and the blocks added in
/// order, so the result does not depend on the number of threads.
void rmsnormBwd(const float *x, const float *w, const float *dy, int64_t rows,
                int64_t d, double eps, float *dx, float *dw);
/// The same on bf16 tensors, converted a row at a time (f32 math, each
/// result rounded once); these write y, dx and dw rather than add.
void rmsnormFwd(const uint16_t *x, const uint16_t *w, int64_t rows, int64_t d,
                double eps, uint16_t *y);
void rmsnormBwd(const uint16_t *x, const uint16_t *w, const uint16_t *dy,
                int64_t rows, int64_t d, double eps, uint16_t *dx,
                uint16_t *dw);

/// One torch.optim.AdamW step, f32, threaded; reads param/grad/moments and
/// writes the new values to the out arrays: each is its own input (in
/// place) or overlaps no argument.
void adamwUpdate(const float *param, const float *grad, const float *expAvg,
                 const float *expAvgSq, int64_t n, float lr, float clip,
                 int64_t step, float beta1, float beta2, float eps,
                 float weightDecay, float *newParam, float *newExpAvg,
                 float *newExpAvgSq);

/// RoPE with a per-call cos/sin table, threaded over (batch, position);
/// `backward` rotates by the opposite angle (accumulating into y).
void rope(const float *x, int64_t b, int64_t s, int64_t h, int64_t hd,
          double theta, bool backward, float *y);
/// The same on bf16 x and y (rows converted as they are read); y is
/// written in both directions (the f32 result rounded once).
void rope(const uint16_t *x, int64_t b, int64_t s, int64_t h, int64_t hd,
          double theta, bool backward, uint16_t *y);

/// Element-wise kernels, threaded. unary: y = f(x); unaryGrad: dx += f'(x)
/// dy; binary: z = x + y or x * y; scale: y = x * factor.
void unary(ref::Unary kind, const float *x, int64_t n, float *y);
void unaryGrad(ref::Unary kind, const float *x, const float *dy, int64_t n,
               float *dx);
void binary(bool mul, const float *x, const float *y, int64_t n, float *z);
void scale(const float *x, float factor, int64_t n, float *y);

/// Runs fn(i) for i in [0, n) over the machine's cores.
void parallelFor(int64_t n, const std::function<void(int64_t)> &fn);

} // namespace forge::cpu::fast

#endif // FORGE_RUNTIME_CPU_FASTKERNELS_H
