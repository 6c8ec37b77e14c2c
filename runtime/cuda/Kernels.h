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
/// Two 64-bit words at `p` (a pipeline message's header), in stream order.
void writeHeader(void *p, uint64_t first, uint64_t second, cudaStream_t s);
/// y = x with y's dtype.
void convert(Tensor x, Tensor y, int64_t n, cudaStream_t s);

/// y[i, :] = table[ids[i], :]; ids outside [0, vocab) are recorded.
void embedding(Tensor table, const int64_t *ids, int64_t n, int64_t d,
               int64_t vocab, Tensor y, ErrorSlot *err, int step,
               cudaStream_t s);
/// dtable[v, :] = the sum of the rows of dout whose id is v, zero for the
/// ids that do not occur (any float dtype): each sum in f32, in token
/// order, as the CPU reference, without atomics (a stable sort of the ids
/// groups each id's tokens), so the result is the same on every run. Ids
/// outside [0, vocab) are skipped. `scratch` holds `scratchBytes` =
/// embeddingGradScratchBytes(n, vocab), computed once.
size_t embeddingGradScratchBytes(int64_t n, int64_t vocab);
void embeddingGrad(Tensor dout, const int64_t *ids, int64_t n, int64_t d,
                   int64_t vocab, Tensor dtable, void *scratch,
                   size_t scratchBytes, cudaStream_t s);

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
/// The row kernels hold a row of q and of the output in registers, eight
/// floats a lane: head_dim must not exceed kMaxAttentionHeadDim (the
/// executor refuses such plans when it binds them).
constexpr int64_t kMaxAttentionHeadDim = 256;
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
/// The tensor-core kernels of AttentionTc.cu, which attention() and
/// attentionGrad() use when they can: every tensor bf16, or every one f16,
/// head dimension 64 or 128, and a device with the shared memory they take
/// (up to 136 KiB a block). False, with nothing launched, otherwise; the
/// row kernels then run (f32 plans always use them: tensor cores would
/// multiply in TF32 or 16 bits).
bool attentionOnTensorCores(Tensor q, Tensor k, Tensor v, const int32_t *doc,
                            const AttentionShape &sh, Tensor o, float *lse,
                            cudaStream_t s);
bool attentionGradOnTensorCores(Tensor q, Tensor k, Tensor v,
                                const int32_t *doc, const AttentionShape &sh,
                                Tensor o, const float *lse, Tensor dout,
                                Tensor dq, Tensor dk, Tensor dv, float *dRow,
                                cudaStream_t s);

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
/// Lion, in double as ref::lionUpdate (the hyperparameters unrounded: a
/// float beta1 moves sign(c) where c is near 0).
void lion(Tensor p, Tensor g, Tensor m, int64_t n, Tensor lr, Tensor clip,
          double beta1, double beta2, double wd, Tensor np, Tensor nm,
          cudaStream_t s);

//===----------------------------------------------------------------------===//
// Losses beyond cross-entropy, fp8, optimizers beyond AdamW and Lion
//===----------------------------------------------------------------------===//

/// Row log-sum-exps of logits [rows, c] into `lse` (f32).
void rowLogSumExp(Tensor logits, int64_t rows, int64_t c, float *lse,
                  cudaStream_t s);
/// z-loss: mean over rows of lse^2 (from rowLogSumExp), and its VJP
/// dlogits = dloss * 2 lse / rows * softmax.
void zLoss(const float *lse, int64_t rows, Tensor loss, cudaStream_t s);
void zLossGrad(Tensor logits, const float *lse, int64_t rows, int64_t c,
               Tensor dloss, Tensor dlogits, cudaStream_t s);

/// One chunk of chunked cross-entropy: with the chunk's logits [n, v]
/// (f32) and `lse`, adds the per-row terms into rowCe / rowZ (rows of the
/// chunk starting at `first`).
void chunkRowTerms(const float *logits, const float *lse, const int64_t *labels,
                   int64_t first, int64_t n, int64_t v, int64_t ignore,
                   float *rowCe, float *rowZ, ErrorSlot *err, int step,
                   cudaStream_t s);
/// loss = sum(rowCe) / valid + zWeight * sum(rowZ) / rows, in row order.
void chunkedLoss(const float *rowCe, const float *rowZ, const int64_t *labels,
                 int64_t rows, int64_t ignore, double zWeight, Tensor loss,
                 cudaStream_t s);
/// dlogits (f32, in place over the chunk's logits) of one chunk.
/// `validScratch` is one float.
void chunkLogitsGrad(float *logits, const float *lse, const int64_t *labels,
                     int64_t first, int64_t n, int64_t v, int64_t rows,
                     int64_t ignore, double zWeight, Tensor dloss,
                     float *validScratch, cudaStream_t s);

/// y = fp8 rounding of x * scale, over scale, scale = fmax / amax(x)
/// (tensor-wise, as forge.fp8_cast). `amax` is one f32 of scratch.
void fp8Cast(Tensor x, int64_t n, bool e4m3, Tensor y, float *amax,
             cudaStream_t s);

/// The fp8 FSDP gather's halves (as the CPU backend's dist.all_gather
/// {fp8}): `amax` is the group's (already all-reduced) f32 amax; encode
/// writes one byte per element of roundFp8(x * scale), decode writes each
/// byte's value over the scale into y.
void fp8Amax(Tensor x, int64_t n, float *amax, cudaStream_t s);
void fp8Encode(Tensor x, int64_t n, bool e4m3, const float *amax,
               uint8_t *bytes, cudaStream_t s);
void fp8Decode(const uint8_t *bytes, int64_t n, bool e4m3, const float *amax,
               Tensor y, cudaStream_t s);
/// The operands of an fp8 matmul (Gemm::initFp8): the codes of x[rows, cols]
/// scaled by `amax`'s scale (as fp8Encode), written [rows, cols], or
/// [cols, rows] when `transpose`; `dequant` (one f32) receives 1 / scale.
/// Applied to forge.fp8_cast's result with the cast's own amax it gives the
/// codes the cast rounded to: its bf16 values are within 2^-8 of code /
/// scale, far inside half an fp8 step.
void fp8EncodeMatrix(Tensor x, int64_t rows, int64_t cols, bool transpose,
                     bool e4m3, const float *amax, uint8_t *bytes,
                     float *dequant, cudaStream_t s);

/// Schedule-free AdamW (reference §4.3): the step count and weight sum,
/// the update of p, z, v, x (outputs may alias inputs), and the eval-time
/// interpolation. `state` is the f32 [4] hi/lo pair encoding.
void scheduleFreeCount(const float *state, Tensor lr, double beta1,
                       int64_t warmup, float *newState, cudaStream_t s);
void scheduleFreeUpdate(Tensor p, Tensor g, Tensor z, Tensor v, Tensor x,
                        int64_t n, Tensor lr, Tensor clip, const float *state,
                        double beta1, double beta2, double eps, double wd,
                        int64_t warmup, Tensor np, Tensor nz, Tensor nv,
                        Tensor nx, cudaStream_t s);
void scheduleFreeInterpolate(Tensor p, Tensor z, Tensor x, int64_t n,
                             const float *state, double weight, Tensor y,
                             cudaStream_t s);

/// Muon's element-wise parts: nb = mu * buf + g * clip, stored in nb's
/// dtype and, unrounded, in x (f32: Newton-Schulz starts from it, as on the
/// CPU); x = buf / (norm + 1e-7) with norm = sqrt(sum of partials); p = p *
/// (1 - lr wd) - lr * scale * u; y = a * x (f32).
void muonMomentum(Tensor buf, Tensor g, Tensor clip, int64_t n, float mu,
                  Tensor nb, float *x, cudaStream_t s);
void muonNormalize(Tensor buf, int64_t n, const double *partial, int64_t count,
                   float *x, cudaStream_t s);
void muonApply(Tensor p, const float *u, int64_t n, Tensor lr, double wd,
               float scale, Tensor np, cudaStream_t s);
void scaleF32(const float *x, float a, float *y, int64_t n, cudaStream_t s);

//===----------------------------------------------------------------------===//
// Mixture of experts (runtime/cuda/MoeKernels.cu)
//===----------------------------------------------------------------------===//

/// Router: probs (softmax) or scores (sigmoid + bias), the top-k experts
/// of each token (largest first, ties to the lower index) and their
/// renormalized weights; and the VJPs.
void softmaxTopK(Tensor logits, int64_t t, int64_t e, int64_t k, Tensor weights,
                 int64_t *indices, Tensor probs, cudaStream_t s);
void softmaxTopKGrad(Tensor probs, const int64_t *indices, int64_t t, int64_t e,
                     int64_t k, Tensor dweights, Tensor dprobs, Tensor dlogits,
                     cudaStream_t s);
void sigmoidTopK(Tensor logits, Tensor bias, int64_t t, int64_t e, int64_t k,
                 Tensor weights, int64_t *indices, Tensor scores,
                 cudaStream_t s);
/// `rowScratch` holds t * e floats (dlogits before the bias sum).
void sigmoidTopKGrad(Tensor scores, const int64_t *indices, int64_t t,
                     int64_t e, int64_t k, Tensor dweights, Tensor dscores,
                     Tensor dlogits, Tensor dbias, float *rowScratch,
                     cudaStream_t s);

/// Capacity: weights of copies beyond their expert's capacity (per slot,
/// first come in token order) are zeroed; `used` is k * e int64 scratch.
void moeCapacity(const int64_t *indices, Tensor weights, int64_t t, int64_t k,
                 int64_t e, double factor, Tensor out, int64_t *used,
                 cudaStream_t s);
void moeCapacityGrad(const int64_t *indices, int64_t t, int64_t k, int64_t e,
                     double factor, Tensor dout, Tensor dweights, int64_t *used,
                     cudaStream_t s);

/// The most experts the dispatch kernel groups by.
constexpr int64_t kMaxExperts = 1024;

/// Dispatch: rows grouped by expert (stable in copy order), the sizes and
/// the order (copy index of each row); the VJP sums each token's copies.
/// `inverse` is t * k int64 scratch (row of each copy).
void moeDispatch(Tensor x, const int64_t *indices, int64_t t, int64_t d,
                 int64_t k, int64_t e, Tensor rows, int64_t *sizes,
                 int64_t *order, cudaStream_t s);
void moeDispatchGrad(const int64_t *order, int64_t t, int64_t d, int64_t k,
                     Tensor drows, Tensor dx, int64_t *inverse, cudaStream_t s);
/// Combine: y[token] = sum over its copies of weight * scale * row.
void moeCombine(Tensor rows, const int64_t *order, Tensor weights,
                const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                int64_t e, bool gradientScale, Tensor y, int64_t *inverse,
                cudaStream_t s);
void moeCombineGrad(Tensor rows, const int64_t *order, Tensor weights,
                    const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                    int64_t e, bool gradientScale, Tensor dy, Tensor drows,
                    Tensor dweights, cudaStream_t s);
/// Switch-style auxiliary loss e * sum_j f_j * mean_t p_tj, and its VJP;
/// `fraction` is e floats of scratch.
void moeAuxLoss(Tensor probs, const int64_t *indices, int64_t t, int64_t e,
                int64_t k, Tensor loss, float *fraction, cudaStream_t s);
void moeAuxLossGrad(const int64_t *indices, int64_t t, int64_t e, int64_t k,
                    Tensor dloss, Tensor dprobs, float *fraction,
                    cudaStream_t s);

/// Sets *flag to 1 when x holds an Inf or NaN (flag is not cleared here).
void checkFinite(Tensor x, int64_t n, int *flag, cudaStream_t s);

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_KERNELS_H
