//===- Kernels.h - The CUDA backend's kernels, callable from C++ -*- C++
//-*-===//
//
// Host-side launchers for the device kernels of runtime/cuda/Kernels.cu. The
// executor binds plan steps to them; the conformance suite
// (Kernels_test.cpp) runs each against the CPU reference kernels. All
// pointers are device memory; every launcher enqueues on `stream` and
// returns at once. Floating tensors are f32, bf16 or f16 (Tensor::dt) and
// are computed in f32, as the CPU backend does: bf16/f16 are widened on
// read and rounded to nearest even on write.
//
// Data-dependent errors (a token id or label outside its range) do not stop
// a kernel: it records the first one into an ErrorSlot that the executor
// reads when the program ends.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_KERNELS_H
#define FORGE_RUNTIME_CUDA_KERNELS_H

#include <cuda_runtime_api.h>

#include <cstdint>

namespace forge::cuda {

enum class Dt : int { f32 = 0, bf16 = 1, f16 = 2 };

/// A floating device tensor.
struct Tensor {
  void *p = nullptr;
  Dt dt = Dt::f32;
};

/// The first data error of a program: kind (0 = none), the step that met
/// it, and the offending value and bound.
struct ErrorSlot {
  long long kind = 0, step = 0, value = 0, bound = 0;
};
enum ErrorKind : long long { kTokenOutOfRange = 1, kLabelOutOfRange = 2 };

enum class Unary : int { Silu = 0, Gelu = 1, Relu = 2, Tanh = 3 };

/// Element-wise.
void unary(Unary kind, Tensor x, Tensor y, int64_t n, cudaStream_t s);
/// dx = f'(x) * dy.
void unaryGrad(Unary kind, Tensor x, Tensor dy, Tensor dx, int64_t n,
               cudaStream_t s);
/// z = x + y or x * y.
void binary(bool mul, Tensor x, Tensor y, Tensor z, int64_t n, cudaStream_t s);
void scale(Tensor x, float factor, Tensor y, int64_t n, cudaStream_t s);
void fill(Tensor y, float value, int64_t n, cudaStream_t s);
/// y = x with y's dtype.
void convert(Tensor x, Tensor y, int64_t n, cudaStream_t s);

/// y[i, :] = table[ids[i], :]; ids outside [0, vocab) are recorded.
void embedding(Tensor table, const int64_t *ids, int64_t n, int64_t d,
               int64_t vocab, Tensor y, ErrorSlot *err, int step,
               cudaStream_t s);
/// dtable (f32, zeroed here) += dout rows scattered by ids.
void embeddingGrad(Tensor dout, const int64_t *ids, int64_t n, int64_t d,
                   int64_t vocab, float *dtable, cudaStream_t s);

/// Row norms over the last dimension d. `rowScratch` holds rows floats.
void rmsnorm(Tensor x, Tensor w, Tensor y, int64_t rows, int64_t d, float eps,
             cudaStream_t s);
void rmsnormGrad(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw,
                 int64_t rows, int64_t d, float eps, float *rowScratch,
                 cudaStream_t s);
void layernorm(Tensor x, Tensor w, Tensor b, Tensor y, int64_t rows, int64_t d,
               float eps, cudaStream_t s);
/// `rowScratch` holds 2 * rows floats (mean and 1/std).
void layernormGrad(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw,
                   Tensor db, int64_t rows, int64_t d, float eps,
                   float *rowScratch, cudaStream_t s);

/// Rotary embedding of x [b, s, h, hd] (halves rotated, as KempnerForge);
/// `inverse` applies the transpose (the VJP).
void rope(Tensor x, Tensor y, int64_t b, int64_t sq, int64_t h, int64_t hd,
          double theta, bool inverse, cudaStream_t s);

/// Attention over q [b, s, h, hd], k/v [b, s, kv, hd] (GQA: h % kv == 0),
/// optional doc ids [b, s] (i32) and a causal mask. `lse` [b, h, s] gets
/// each row's log-sum-exp; the backward recomputes P from it and needs
/// `rowScratch` [b, h, s] floats for dO . O.
struct AttentionShape {
  int64_t b, s, h, kv, hd;
  bool causal;
  float scale;
};
void attention(Tensor q, Tensor k, Tensor v, const int32_t *doc,
               const AttentionShape &sh, Tensor o, float *lse, cudaStream_t s);
void attentionGrad(Tensor q, Tensor k, Tensor v, const int32_t *doc,
                   const AttentionShape &sh, Tensor o, const float *lse,
                   Tensor dout, Tensor dq, Tensor dk, Tensor dv,
                   float *rowScratch, cudaStream_t s);

/// Mean cross-entropy over the rows whose label is not `ignore`; `loss`
/// is one element. `rowScratch` holds rows floats.
void crossEntropy(Tensor logits, const int64_t *labels, int64_t rows,
                  int64_t classes, int64_t ignore, Tensor loss,
                  float *rowScratch, ErrorSlot *err, int step, cudaStream_t s);
/// dlogits = dloss * (softmax - onehot) / valid rows; `validScratch` is
/// one float.
void crossEntropyGrad(Tensor logits, const int64_t *labels, int64_t rows,
                      int64_t classes, int64_t ignore, Tensor dloss,
                      Tensor dlogits, float *validScratch, cudaStream_t s);

/// Sum of squares of x into partial[0..partials) (deterministic blocks);
/// returns how many partials it wrote (at most kNormPartials).
constexpr int kNormPartials = 256;
int sumSquaresPartials(Tensor x, int64_t n, double *partial, cudaStream_t s);
/// y = sqrt(sum of partials) (or the sum itself when `squared`).
void finishNorm(const double *partial, int64_t count, bool squared, Tensor y,
                cudaStream_t s);
void sqrtScalar(Tensor x, Tensor y, cudaStream_t s);
/// min(1, maxNorm / (norm + 1e-6)).
void clipCoefficient(Tensor norm, double maxNorm, Tensor y, cudaStream_t s);

/// The LR factor of the schedule at `step` (reference §4.4).
struct Schedule {
  int kind;     ///< 0 none, 1 constant, 2 cosine, 3 linear, 4 wsd, 5 rex
  int wsdDecay; ///< 0 cosine, 1 linear, 2 sqrt
  int64_t warmup, decay, stable, maxSteps;
  double minLrRatio, rexAlpha;
};
void lrFactor(const Schedule &sched, const int64_t *step, Tensor y,
              cudaStream_t s);

/// AdamW (torch.optim.AdamW semantics, decoupled decay); in place allowed.
void adamw(Tensor p, Tensor g, Tensor m, Tensor v, int64_t n, Tensor lr,
           Tensor clip, const int64_t *step, float beta1, float beta2,
           float eps, float wd, Tensor np, Tensor nm, Tensor nv,
           cudaStream_t s);
void lion(Tensor p, Tensor g, Tensor m, int64_t n, Tensor lr, Tensor clip,
          float beta1, float beta2, float wd, Tensor np, Tensor nm,
          cudaStream_t s);

/// Sets *flag to 1 when x holds an Inf or NaN (flag is not cleared here).
void checkFinite(Tensor x, int64_t n, int *flag, cudaStream_t s);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_KERNELS_H
