//===- MoeKernels.cu - Mixture-of-experts kernels of the CUDA backend -----===//
//
// The router, capacity, dispatch, combine and auxiliary-loss kernels, with
// the CPU reference's semantics (runtime/cpu/RefKernels: ties to the lower
// expert index, first-come capacity in token order, rows grouped by expert
// in copy order). The sequential parts (the expert histogram and the stable
// grouping, capacity's running counts) are small — tokens x top-k integers —
// and run on one thread per independent sequence; everything that moves
// hidden-size rows is parallel. Sums over a token's copies run in slot
// order, so results repeat run to run.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Kernels.h"
#include "runtime/cuda/KernelsCommon.cuh"

namespace forge::cuda {
namespace {

/// Top-k of row[0..e) (read through `val`), largest first, ties to the
/// lower index: k passes of arg-max over the unchosen entries.
template <typename F>
__device__ void topK(F val, int64_t e, int64_t k, int64_t *out) {
  for (int64_t slot = 0; slot < k; ++slot) {
    int64_t best = -1;
    float bestV = 0;
    for (int64_t j = 0; j < e; ++j) {
      bool taken = false;
      for (int64_t q = 0; q < slot; ++q)
        taken = taken || out[q] == j;
      if (taken)
        continue;
      const float vj = val(j);
      if (best < 0 || vj > bestV) {
        best = j;
        bestV = vj;
      }
    }
    out[slot] = best;
  }
}

__global__ void softmaxTopKKernel(Tensor logits, int64_t t, int64_t e,
                                  int64_t k, Tensor weights, int64_t *indices,
                                  Tensor probs) {
  FORGE_FOR_EACH(r, t) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < e; ++j)
      mx = fmaxf(mx, ld(logits.p, logits.dt, r * e + j));
    double sum = 0;
    for (int64_t j = 0; j < e; ++j)
      sum += exp(static_cast<double>(ld(logits.p, logits.dt, r * e + j)) - mx);
    const double lse = mx + log(sum);
    for (int64_t j = 0; j < e; ++j)
      st(probs.p, probs.dt, r * e + j,
         static_cast<float>(exp(
             static_cast<double>(ld(logits.p, logits.dt, r * e + j)) - lse)));
    int64_t *idx = indices + r * k;
    // Selected on the stored probabilities, as the reference.
    topK([&](int64_t j) { return ld(probs.p, probs.dt, r * e + j); }, e, k,
         idx);
    double s = 0;
    for (int64_t q = 0; q < k; ++q)
      s += ld(probs.p, probs.dt, r * e + idx[q]);
    for (int64_t q = 0; q < k; ++q)
      st(weights.p, weights.dt, r * k + q,
         static_cast<float>(ld(probs.p, probs.dt, r * e + idx[q]) / s));
  }
}

/// d(score j) of the renormalized weights w_q = s_{i_q} / sum: selected j
/// only (0 for the others).
__device__ double renormGrad(Tensor sc, int64_t r, int64_t e,
                             const int64_t *idx, int64_t k, Tensor dw,
                             int64_t j) {
  double sum = 0, dot = 0, mine = 0;
  bool chosen = false;
  for (int64_t q = 0; q < k; ++q) {
    const double s = ld(sc.p, sc.dt, r * e + idx[q]);
    const double g = ld(dw.p, dw.dt, r * k + q);
    sum += s;
    dot += g * s;
    if (idx[q] == j) {
      chosen = true;
      mine = g;
    }
  }
  return chosen ? mine / sum - dot / (sum * sum) : 0.0;
}

__global__ void softmaxTopKGradKernel(Tensor probs, const int64_t *indices,
                                      int64_t t, int64_t e, int64_t k,
                                      Tensor dw, Tensor dp, Tensor dl) {
  FORGE_FOR_EACH(r, t) {
    const int64_t *idx = indices + r * k;
    double dot = 0;
    for (int64_t j = 0; j < e; ++j)
      dot +=
          ld(probs.p, probs.dt, r * e + j) *
          (ld(dp.p, dp.dt, r * e + j) + renormGrad(probs, r, e, idx, k, dw, j));
    for (int64_t j = 0; j < e; ++j) {
      const double g =
          ld(dp.p, dp.dt, r * e + j) + renormGrad(probs, r, e, idx, k, dw, j);
      st(dl.p, dl.dt, r * e + j,
         static_cast<float>(ld(probs.p, probs.dt, r * e + j) * (g - dot)));
    }
  }
}

__global__ void sigmoidTopKKernel(Tensor logits, Tensor bias, int64_t t,
                                  int64_t e, int64_t k, Tensor weights,
                                  int64_t *indices, Tensor scores) {
  FORGE_FOR_EACH(r, t) {
    for (int64_t j = 0; j < e; ++j) {
      const double z = static_cast<double>(ld(logits.p, logits.dt, r * e + j)) +
                       ld(bias.p, bias.dt, j);
      st(scores.p, scores.dt, r * e + j, static_cast<float>(1 / (1 + exp(-z))));
    }
    int64_t *idx = indices + r * k;
    topK([&](int64_t j) { return ld(scores.p, scores.dt, r * e + j); }, e, k,
         idx);
    double s = 0;
    for (int64_t q = 0; q < k; ++q)
      s += ld(scores.p, scores.dt, r * e + idx[q]);
    for (int64_t q = 0; q < k; ++q)
      st(weights.p, weights.dt, r * k + q,
         static_cast<float>(ld(scores.p, scores.dt, r * e + idx[q]) / s));
  }
}

__global__ void sigmoidTopKGradKernel(Tensor scores, const int64_t *indices,
                                      int64_t t, int64_t e, int64_t k,
                                      Tensor dw, Tensor ds, Tensor dl,
                                      float *rowScratch) {
  FORGE_FOR_EACH(r, t) {
    const int64_t *idx = indices + r * k;
    for (int64_t j = 0; j < e; ++j) {
      const double s = ld(scores.p, scores.dt, r * e + j);
      const double g = (ld(ds.p, ds.dt, r * e + j) +
                        renormGrad(scores, r, e, idx, k, dw, j)) *
                       s * (1.0 - s);
      st(dl.p, dl.dt, r * e + j, static_cast<float>(g));
      rowScratch[r * e + j] = static_cast<float>(g);
    }
  }
}

/// dbias[j] = sum over tokens of dlogits[., j], tokens in order.
__global__ void columnSumKernel(const float *x, int64_t rows, int64_t cols,
                                Tensor out) {
  FORGE_FOR_EACH(j, cols) {
    double acc = 0;
    for (int64_t r = 0; r < rows; ++r)
      acc += x[r * cols + j];
    st(out.p, out.dt, j, static_cast<float>(acc));
  }
}

__device__ int64_t capacityOf(int64_t t, int64_t k, int64_t e, double factor) {
  const double c = ceil(static_cast<double>(t * k) / e * factor);
  return max(static_cast<int64_t>(1), static_cast<int64_t>(c));
}

/// keep[i] for copies i = r * k + slot: one thread per slot walks the
/// tokens in order with the experts' running counts.
__global__ void capacityKernel(const int64_t *indices, int64_t t, int64_t k,
                               int64_t e, double factor, Tensor in, Tensor out,
                               bool grad, int64_t *used) {
  const int64_t slot =
      blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (slot >= k)
    return;
  const int64_t cap = capacityOf(t, k, e, factor);
  int64_t *count = used + slot * e;
  for (int64_t j = 0; j < e; ++j)
    count[j] = 0;
  for (int64_t r = 0; r < t; ++r) {
    const int64_t i = r * k + slot, ex = indices[i];
    const bool keep = count[ex]++ < cap;
    st(out.p, out.dt, i, keep ? ld(in.p, in.dt, i) : 0.0f);
  }
  (void)grad;
}

/// Sizes and the stable grouping of copies by expert, a counting sort on
/// one thread (t * k integers; e <= kMaxExperts, checked at bind time).
__global__ void dispatchOrderKernel(const int64_t *indices, int64_t copies,
                                    int64_t e, int64_t *sizes, int64_t *order) {
  int64_t next[kMaxExperts];
  for (int64_t j = 0; j < e; ++j)
    sizes[j] = 0;
  for (int64_t i = 0; i < copies; ++i)
    sizes[indices[i]] += 1;
  int64_t start = 0;
  for (int64_t j = 0; j < e; ++j) {
    next[j] = start;
    start += sizes[j];
  }
  for (int64_t i = 0; i < copies; ++i)
    order[next[indices[i]]++] = i;
}

__global__ void gatherRowsKernel(Tensor x, const int64_t *order, int64_t rows,
                                 int64_t d, int64_t k, Tensor out) {
  FORGE_FOR_EACH(i, rows * d) {
    const int64_t r = i / d, j = i % d;
    st(out.p, out.dt, i, ld(x.p, x.dt, (order[r] / k) * d + j));
  }
}

__global__ void inverseKernel(const int64_t *order, int64_t copies,
                              int64_t *inverse) {
  FORGE_FOR_EACH(r, copies) { inverse[order[r]] = r; }
}

__global__ void dispatchGradKernel(const int64_t *inverse, int64_t t, int64_t d,
                                   int64_t k, Tensor drows, Tensor dx) {
  FORGE_FOR_EACH(i, t * d) {
    const int64_t tok = i / d, j = i % d;
    float acc = 0;
    for (int64_t q = 0; q < k; ++q)
      acc += ld(drows.p, drows.dt, inverse[tok * k + q] * d + j);
    st(dx.p, dx.dt, i, acc);
  }
}

/// The expert that holds row r (rows are grouped by expert).
__device__ int64_t expertOfRow(const int64_t *sizes, int64_t e, int64_t r) {
  int64_t start = 0;
  for (int64_t j = 0; j < e; ++j) {
    start += sizes[j];
    if (r < start)
      return j;
  }
  return e - 1;
}

__device__ double combineScale(const int64_t *sizes, int64_t t, int64_t k,
                               int64_t e, bool gradientScale, int64_t ex) {
  if (!gradientScale || sizes[ex] == 0)
    return 1.0;
  return (static_cast<double>(t * k) / e) / sizes[ex];
}

__global__ void combineKernel(Tensor rows, const int64_t *inverse,
                              Tensor weights, const int64_t *sizes, int64_t t,
                              int64_t d, int64_t k, int64_t e,
                              bool gradientScale, Tensor y) {
  FORGE_FOR_EACH(i, t * d) {
    const int64_t tok = i / d, j = i % d;
    double acc = 0;
    for (int64_t q = 0; q < k; ++q) {
      const int64_t copy = tok * k + q, r = inverse[copy];
      const double f =
          ld(weights.p, weights.dt, copy) *
          combineScale(sizes, t, k, e, gradientScale, expertOfRow(sizes, e, r));
      acc += f * ld(rows.p, rows.dt, r * d + j);
    }
    st(y.p, y.dt, i, static_cast<float>(acc));
  }
}

/// One warp per row r: drows and the dot product for dweights.
__global__ void combineGradKernel(Tensor rows, const int64_t *order,
                                  Tensor weights, const int64_t *sizes,
                                  int64_t t, int64_t d, int64_t k, int64_t e,
                                  bool gradientScale, Tensor dy, Tensor drows,
                                  Tensor dweights) {
  const int64_t r =
      (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= t * k)
    return;
  const int64_t i = order[r], tok = i / k;
  const double sc =
      combineScale(sizes, t, k, e, gradientScale, expertOfRow(sizes, e, r));
  const double w = ld(weights.p, weights.dt, i);
  float dot = 0;
  for (int64_t j = lane; j < d; j += 32) {
    const float g = ld(dy.p, dy.dt, tok * d + j);
    st(drows.p, drows.dt, r * d + j, static_cast<float>(w * sc * g));
    dot += g * ld(rows.p, rows.dt, r * d + j);
  }
  dot = warpSum(dot);
  if (lane == 0)
    st(dweights.p, dweights.dt, i, static_cast<float>(sc * dot));
}

__global__ void auxFractionKernel(const int64_t *indices, int64_t t, int64_t e,
                                  int64_t k, float *fraction) {
  FORGE_FOR_EACH(j, e) {
    double f = 0;
    for (int64_t i = 0; i < t * k; ++i)
      f += indices[i] == j ? 1.0 / static_cast<double>(t * k) : 0.0;
    fraction[j] = static_cast<float>(f);
  }
}

__global__ void auxLossKernel(Tensor probs, const float *fraction, int64_t t,
                              int64_t e, Tensor loss) {
  double total = 0;
  for (int64_t j = 0; j < e; ++j) {
    double pm = 0;
    for (int64_t r = 0; r < t; ++r)
      pm += ld(probs.p, probs.dt, r * e + j) / static_cast<double>(t);
    total += fraction[j] * pm;
  }
  st(loss.p, loss.dt, 0, static_cast<float>(e * total));
}

__global__ void auxLossGradKernel(const float *fraction, int64_t t, int64_t e,
                                  Tensor dloss, Tensor dprobs) {
  const double dl = ld(dloss.p, dloss.dt, 0);
  FORGE_FOR_EACH(i, t * e) {
    st(dprobs.p, dprobs.dt, i,
       static_cast<float>(dl * e * fraction[i % e] / static_cast<double>(t)));
  }
}

} // namespace

void softmaxTopK(Tensor logits, int64_t t, int64_t e, int64_t k, Tensor weights,
                 int64_t *indices, Tensor probs, cudaStream_t s) {
  if (t > 0)
    softmaxTopKKernel<<<blocksFor(t), kThreads, 0, s>>>(
        logits, t, e, k, weights, indices, probs);
}
void softmaxTopKGrad(Tensor probs, const int64_t *indices, int64_t t, int64_t e,
                     int64_t k, Tensor dweights, Tensor dprobs, Tensor dlogits,
                     cudaStream_t s) {
  if (t > 0)
    softmaxTopKGradKernel<<<blocksFor(t), kThreads, 0, s>>>(
        probs, indices, t, e, k, dweights, dprobs, dlogits);
}
void sigmoidTopK(Tensor logits, Tensor bias, int64_t t, int64_t e, int64_t k,
                 Tensor weights, int64_t *indices, Tensor scores,
                 cudaStream_t s) {
  if (t > 0)
    sigmoidTopKKernel<<<blocksFor(t), kThreads, 0, s>>>(
        logits, bias, t, e, k, weights, indices, scores);
}
void sigmoidTopKGrad(Tensor scores, const int64_t *indices, int64_t t,
                     int64_t e, int64_t k, Tensor dweights, Tensor dscores,
                     Tensor dlogits, Tensor dbias, float *rowScratch,
                     cudaStream_t s) {
  if (t > 0)
    sigmoidTopKGradKernel<<<blocksFor(t), kThreads, 0, s>>>(
        scores, indices, t, e, k, dweights, dscores, dlogits, rowScratch);
  if (e > 0)
    columnSumKernel<<<blocksFor(e), kThreads, 0, s>>>(rowScratch, t, e, dbias);
}
void moeCapacity(const int64_t *indices, Tensor weights, int64_t t, int64_t k,
                 int64_t e, double factor, Tensor out, int64_t *used,
                 cudaStream_t s) {
  if (k > 0)
    capacityKernel<<<blocksFor(k), kThreads, 0, s>>>(indices, t, k, e, factor,
                                                     weights, out, false, used);
}
void moeCapacityGrad(const int64_t *indices, int64_t t, int64_t k, int64_t e,
                     double factor, Tensor dout, Tensor dweights, int64_t *used,
                     cudaStream_t s) {
  // The VJP passes the kept copies' gradients: the same mask.
  if (k > 0)
    capacityKernel<<<blocksFor(k), kThreads, 0, s>>>(
        indices, t, k, e, factor, dout, dweights, true, used);
}
void moeDispatch(Tensor x, const int64_t *indices, int64_t t, int64_t d,
                 int64_t k, int64_t e, Tensor rows, int64_t *sizes,
                 int64_t *order, cudaStream_t s) {
  dispatchOrderKernel<<<1, 1, 0, s>>>(indices, t * k, e, sizes, order);
  if (t * k * d > 0)
    gatherRowsKernel<<<blocksFor(t * k * d), kThreads, 0, s>>>(x, order, t * k,
                                                               d, k, rows);
}
void moeDispatchGrad(const int64_t *order, int64_t t, int64_t d, int64_t k,
                     Tensor drows, Tensor dx, int64_t *inverse,
                     cudaStream_t s) {
  if (t * k > 0)
    inverseKernel<<<blocksFor(t * k), kThreads, 0, s>>>(order, t * k, inverse);
  if (t * d > 0)
    dispatchGradKernel<<<blocksFor(t * d), kThreads, 0, s>>>(inverse, t, d, k,
                                                             drows, dx);
}
void moeCombine(Tensor rows, const int64_t *order, Tensor weights,
                const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                int64_t e, bool gradientScale, Tensor y, int64_t *inverse,
                cudaStream_t s) {
  if (t * k > 0)
    inverseKernel<<<blocksFor(t * k), kThreads, 0, s>>>(order, t * k, inverse);
  if (t * d > 0)
    combineKernel<<<blocksFor(t * d), kThreads, 0, s>>>(
        rows, inverse, weights, sizes, t, d, k, e, gradientScale, y);
}
void moeCombineGrad(Tensor rows, const int64_t *order, Tensor weights,
                    const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                    int64_t e, bool gradientScale, Tensor dy, Tensor drows,
                    Tensor dweights, cudaStream_t s) {
  if (t * k > 0)
    combineGradKernel<<<warpBlocks(t * k), kThreads, 0, s>>>(
        rows, order, weights, sizes, t, d, k, e, gradientScale, dy, drows,
        dweights);
}
void moeAuxLoss(Tensor probs, const int64_t *indices, int64_t t, int64_t e,
                int64_t k, Tensor loss, float *fraction, cudaStream_t s) {
  if (e > 0)
    auxFractionKernel<<<blocksFor(e), kThreads, 0, s>>>(indices, t, e, k,
                                                        fraction);
  auxLossKernel<<<1, 1, 0, s>>>(probs, fraction, t, e, loss);
}
void moeAuxLossGrad(const int64_t *indices, int64_t t, int64_t e, int64_t k,
                    Tensor dloss, Tensor dprobs, float *fraction,
                    cudaStream_t s) {
  if (e > 0)
    auxFractionKernel<<<blocksFor(e), kThreads, 0, s>>>(indices, t, e, k,
                                                        fraction);
  if (t * e > 0)
    auxLossGradKernel<<<blocksFor(t * e), kThreads, 0, s>>>(fraction, t, e,
                                                            dloss, dprobs);
}

} // namespace forge::cuda
