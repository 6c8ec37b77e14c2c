//===- RefKernels.h - Reference CPU kernels, forward and backward ---------===//
//
// The correctness oracle of every backend (design.md §3, §5.6): one plain,
// obviously-correct kernel per forge op and one per VJP, written as loops
// straight from the math of reference §2 and §4.2. Optimized CPU kernels and
// the CUDA kernels are tested against these; these are tested against
// finite differences (RefKernels_test.cpp).
//
// Conventions: tensors are dense row-major arrays; shapes are passed as
// sizes. Backward kernels *accumulate* into input gradients (`+=`), so a
// value used twice gets the sum of its gradients; the caller zeroes them.
// Templated on the element type: float for execution, double for the
// finite-difference tests.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CPU_REFKERNELS_H
#define FORGE_RUNTIME_CPU_REFKERNELS_H

#include <cstdint>
#include <vector>

namespace forge::cpu::ref {

//===----------------------------------------------------------------------===//
// Dense
//===----------------------------------------------------------------------===//

/// out[n, :] = table[ids[n], :]; table is [V, D].
template <typename T>
void embeddingFwd(const T *table, const int64_t *ids, int64_t n, int64_t d,
                  T *out);
template <typename T>
void embeddingBwd(const int64_t *ids, int64_t n, int64_t d, const T *dout,
                  T *dtable);

/// y[M, N] = x[M, K] @ w[N, K]^T.
template <typename T>
void linearFwd(const T *x, const T *w, int64_t m, int64_t k, int64_t n, T *y);
template <typename T>
void linearBwd(const T *x, const T *w, const T *dy, int64_t m, int64_t k,
               int64_t n, T *dx, T *dw);

/// Rows grouped by expert: rows [offset_e, offset_e + sizes[e]) use w[e].
/// outIn: w is [E, N, K]; otherwise [E, K, N].
template <typename T>
void groupedLinearFwd(const T *x, const T *w, const int64_t *sizes, int64_t e,
                      int64_t k, int64_t n, bool outIn, T *y);
template <typename T>
void groupedLinearBwd(const T *x, const T *w, const int64_t *sizes, int64_t e,
                      int64_t k, int64_t n, bool outIn, const T *dy, T *dx,
                      T *dw);

/// y = x * rsqrt(mean(x^2) + eps) * w over rows of length d.
template <typename T>
void rmsnormFwd(const T *x, const T *w, int64_t rows, int64_t d, double eps,
                T *y);
template <typename T>
void rmsnormBwd(const T *x, const T *w, const T *dy, int64_t rows, int64_t d,
                double eps, T *dx, T *dw);

/// y = (x - mean) * rsqrt(var + eps) * w + b (biased variance).
template <typename T>
void layernormFwd(const T *x, const T *w, const T *b, int64_t rows, int64_t d,
                  double eps, T *y);
template <typename T>
void layernormBwd(const T *x, const T *w, const T *dy, int64_t rows, int64_t d,
                  double eps, T *dx, T *dw, T *db);

/// Rotate-half RoPE on x [B, S, H, hd]; position = index along S.
template <typename T>
void ropeFwd(const T *x, int64_t b, int64_t s, int64_t h, int64_t hd,
             double theta, T *y);
template <typename T>
void ropeBwd(const T *dy, int64_t b, int64_t s, int64_t h, int64_t hd,
             double theta, T *dx);

/// Attention over q [B, S, H, hd], k/v [B, S, KV, hd]; docIds [B, S] or
/// null. `lse` [B, H, S] receives each row's log-sum-exp for the backward.
struct AttentionShape {
  int64_t b, s, h, kv, hd;
  bool causal;
  double scale;
};
template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, const int32_t *docIds,
                  const AttentionShape &sh, T *o, T *lse);
template <typename T>
void attentionBwd(const T *q, const T *k, const T *v, const int32_t *docIds,
                  const AttentionShape &sh, const T *o, const T *lse,
                  const T *dout, T *dq, T *dk, T *dv);

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

enum class Unary { Silu, Gelu, Relu, Tanh };
template <typename T> void unaryFwd(Unary kind, const T *x, int64_t n, T *y);
template <typename T>
void unaryBwd(Unary kind, const T *x, const T *dy, int64_t n, T *dx);

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

/// Softmax router over logits [T, E]: probs [T, E], top-k indices [T, k]
/// (largest first, ties to the lower index), renormalized weights [T, k].
template <typename T>
void softmaxTopKFwd(const T *logits, int64_t t, int64_t e, int64_t k,
                    T *weights, int64_t *indices, T *probs);
/// dweights [T, k] and dprobs [T, E] (either may be null) -> dlogits.
template <typename T>
void softmaxTopKBwd(const T *probs, const int64_t *indices, int64_t t,
                    int64_t e, int64_t k, const T *dweights, const T *dprobs,
                    T *dlogits);

/// Sigmoid router: scores = sigmoid(logits + bias).
template <typename T>
void sigmoidTopKFwd(const T *logits, const T *bias, int64_t t, int64_t e,
                    int64_t k, T *weights, int64_t *indices, T *scores);
template <typename T>
void sigmoidTopKBwd(const T *scores, const int64_t *indices, int64_t t,
                    int64_t e, int64_t k, const T *dweights, const T *dscores,
                    T *dlogits, T *dbias);

/// Capacity: per top-k slot, the first `capacity` tokens routed to an expert
/// keep their weight. keep [T, k] receives 1/0; out = weights * keep.
int64_t moeCapacity(int64_t tokens, int64_t k, int64_t experts, double factor);
template <typename T>
void moeCapacityFwd(const int64_t *indices, const T *weights, int64_t t,
                    int64_t k, int64_t experts, double factor, T *out);
template <typename T>
void moeCapacityBwd(const int64_t *indices, int64_t t, int64_t k,
                    int64_t experts, double factor, const T *dout, T *dweights);

/// Dispatch: copies ordered by expert (stable). order[r] = t * k + slot.
template <typename T>
void moeDispatchFwd(const T *x, const int64_t *indices, int64_t t, int64_t d,
                    int64_t k, int64_t experts, T *rows, int64_t *sizes,
                    int64_t *order);
template <typename T>
void moeDispatchBwd(const int64_t *order, int64_t t, int64_t d, int64_t k,
                    const T *drows, T *dx);

/// Combine: y[t] = sum_slot w[t, slot] * scale_e * rows[r(t, slot)].
template <typename T>
void moeCombineFwd(const T *rows, const int64_t *order, const T *weights,
                   const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                   int64_t experts, bool gradientScale, const int64_t *indices,
                   T *y);
template <typename T>
void moeCombineBwd(const T *rows, const int64_t *order, const T *weights,
                   const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                   int64_t experts, bool gradientScale, const int64_t *indices,
                   const T *dy, T *drows, T *dweights);

/// experts * sum_i f_i * P_i; f (assignment fractions) has no gradient.
template <typename T>
T moeAuxLossFwd(const T *probs, const int64_t *indices, int64_t t, int64_t e,
                int64_t k);
template <typename T>
void moeAuxLossBwd(const int64_t *indices, int64_t t, int64_t e, int64_t k,
                   T dloss, T *dprobs);

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

/// mean over rows of logsumexp(row)^2.
template <typename T> T zLossFwd(const T *logits, int64_t rows, int64_t c);
template <typename T>
void zLossBwd(const T *logits, int64_t rows, int64_t c, T dloss, T *dlogits);

/// Mean CE over rows whose label != ignoreIndex; 0 when none.
template <typename T>
T crossEntropyFwd(const T *logits, const int64_t *labels, int64_t rows,
                  int64_t c, int64_t ignoreIndex);
template <typename T>
void crossEntropyBwd(const T *logits, const int64_t *labels, int64_t rows,
                     int64_t c, int64_t ignoreIndex, T dloss, T *dlogits);

/// Head matmul + CE (+ zWeight * z-loss over all rows), `chunk` rows at a
/// time so no more than chunk x vocab logits exist.
template <typename T>
T chunkedCrossEntropyFwd(const T *h, const T *w, const int64_t *labels,
                         int64_t rows, int64_t d, int64_t v, int64_t chunk,
                         int64_t ignoreIndex, double zWeight);
template <typename T>
void chunkedCrossEntropyBwd(const T *h, const T *w, const int64_t *labels,
                            int64_t rows, int64_t d, int64_t v, int64_t chunk,
                            int64_t ignoreIndex, double zWeight, T dloss, T *dh,
                            T *dw);

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

/// sqrt of the sum of squares of all elements of all tensors (double accum).
double globalNorm(const std::vector<std::pair<const float *, int64_t>> &ts);

/// min(1, maxNorm / (norm + 1e-6)).
double clipCoefficient(double norm, double maxNorm);

/// The LR schedules of reference §4.4.
struct Schedule {
  const char *name = "cosine"; ///< cosine, linear, wsd, constant, rex, none
  int64_t warmup = 0;
  int64_t decay = 0; ///< 0 = the schedule's default length
  int64_t stable = 0;
  double minLrRatio = 0.1;
  int64_t maxSteps = 1;
  const char *wsdDecay = "cosine"; ///< cosine, linear, sqrt
  double rexAlpha = 1.0;
};
/// f(step), step = completed optimizer steps (0-based).
double lrFactor(const Schedule &s, int64_t step);

/// One torch.optim.AdamW step (decoupled weight decay) of n elements, with
/// the gradient scaled by `clip` first; `step` is 0-based (t = step + 1).
void adamwUpdate(float *param, const float *grad, float *expAvg,
                 float *expAvgSq, int64_t n, double lr, double clip,
                 int64_t step, double beta1, double beta2, double eps,
                 double weightDecay);

/// One Lion step (reference §4.3) of n elements, gradient scaled by `clip`.
void lionUpdate(float *param, const float *grad, float *expAvg, int64_t n,
                double lr, double clip, double beta1, double beta2,
                double weightDecay);

/// Muon's Newton–Schulz orthogonalization (reference §4.3) of an [m, n]
/// matrix: X = g / (||g||_F + 1e-7), then `steps` times A = X X^T,
/// B = b A + c A^2, X = a X + B X with (a, b, c) = (3.4445, -4.7750,
/// 2.0315); never transposed. f32 matrices as KempnerForge's fp32
/// iteration, each dot product summed in double.
void newtonSchulz(const float *g, int64_t m, int64_t n, int64_t steps,
                  float *out);

/// One Muon step of a parameter flattened to [m, n] (dim 0 x the rest):
/// buf = momentum*buf + grad*clip; p = p*(1 - lr*wd) - lr*sqrt(max(1, m/n))
/// * newtonSchulz(buf).
void muonUpdate(float *param, const float *grad, float *momentumBuf, int64_t m,
                int64_t n, double lr, double clip, double momentum,
                int64_t nsSteps, double weightDecay);

/// Schedule-free AdamW's scalar state, [k_hi, k_lo, weight_sum_hi,
/// weight_sum_lo]: two doubles, each stored as an unevaluated f32 pair
/// because plan buffers are f32.
struct ScheduleFreeScalars {
  double k = 0, weightSum = 0;
};
ScheduleFreeScalars readScheduleFree(const float *state);
void writeScheduleFree(const ScheduleFreeScalars &s, float *state);

/// Schedule-free warmup factor at step k (1-based): min(1, k / warmup), or
/// 1 when warmup is 0.
double scheduleFreeWarm(double k, int64_t warmup);

/// The state after one more step: k + 1 and weight_sum + lr * warm * (1 -
/// beta1); `state` and `newState` may alias.
void scheduleFreeCount(const float *state, double lr, double beta1,
                       int64_t warmup, float *newState);

/// One schedule-free AdamW step (reference §4.3) of n elements with the
/// gradient scaled by `clip`; `state` is this step's (already counted)
/// scalars. On the first step (k = 1) z starts from the parameter. The
/// parameter becomes y = (1 - beta1) z + beta1 x.
void scheduleFreeAdamwUpdate(float *param, const float *grad, float *z,
                             float *expAvgSq, float *x, int64_t n, double lr,
                             double clip, const float *state, double beta1,
                             double beta2, double eps, double weightDecay,
                             int64_t warmup);

/// out = (1 - weight) z + weight x, or param while k = 0 (no step yet).
void scheduleFreeInterpolate(const float *param, const float *z, const float *x,
                             int64_t n, const float *state, double weight,
                             float *out);

/// One value rounded into fp8 (e4m3fn when `e4m3`, else e5m2):
/// round-to-nearest-even into the format's value set, subnormals included,
/// saturating at the largest finite value (448, 57344).
float roundFp8(float v, bool e4m3);

/// The byte of an fp8 value (one roundFp8 returns): sign, exponent
/// (bias 7 for e4m3fn, 15 for e5m2; 0 for subnormals), mantissa; and back.
/// The fp8 all-gather moves these bytes.
uint8_t fp8Bits(float v, bool e4m3);
float fp8FromBits(uint8_t bits, bool e4m3);

/// forge.fp8_cast: `y = roundFp8(x * s) / s` with the tensor-wise scale
/// `s = fmax / max|x|` (1 when x is all zeros).
void fp8Cast(const float *x, int64_t n, bool e4m3, float *y);

} // namespace forge::cpu::ref

#endif // FORGE_RUNTIME_CPU_REFKERNELS_H
