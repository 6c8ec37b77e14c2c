//===- Kernels.cu - The CUDA backend's kernels ----------------------------===//
//
// Straightforward kernels with the CPU reference's semantics (see
// runtime/cpu/RefKernels for every formula): one thread per element for the
// element-wise ops, one block per row for norms and cross-entropy, one warp
// per query (or key) row for attention. Reductions whose result is a model
// value (norm weight gradients, the loss, the gradient norm) run in a fixed
// order, so a run reproduces itself; only the embedding gradient scatters
// with atomics (its last bits may differ between runs).
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Kernels.h"
#include "runtime/cuda/KernelsCommon.cuh"

#include <cub/device/device_radix_sort.cuh>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

namespace forge::cuda {
namespace {

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

__device__ float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

__global__ void unaryKernel(Unary kind, Tensor x, Tensor y, int64_t n) {
  FORGE_FOR_EACH(i, n) {
    const float v = ld(x.p, x.dt, i);
    float r;
    switch (kind) {
    case Unary::Silu:
      r = v * sigmoidf(v);
      break;
    case Unary::Gelu:
      r = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
      break;
    case Unary::Relu:
      r = v > 0 ? v : 0.0f;
      break;
    default:
      r = tanhf(v);
    }
    st(y.p, y.dt, i, r);
  }
}

__global__ void unaryGradKernel(Unary kind, Tensor x, Tensor dy, Tensor dx,
                                int64_t n) {
  FORGE_FOR_EACH(i, n) {
    const float v = ld(x.p, x.dt, i);
    float g;
    switch (kind) {
    case Unary::Silu: {
      const float s = sigmoidf(v);
      g = s * (1.0f + v * (1.0f - s));
      break;
    }
    case Unary::Gelu:
      g = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) +
          v * expf(-0.5f * v * v) * 0.39894228040143268f;
      break;
    case Unary::Relu:
      g = v > 0 ? 1.0f : 0.0f;
      break;
    default: {
      const float t = tanhf(v);
      g = 1.0f - t * t;
    }
    }
    // relu selects rather than multiplies: an inf or NaN dy where x <= 0
    // gives 0, as on the CPU (0 * inf would be NaN).
    st(dx.p, dx.dt, i,
       kind == Unary::Relu && !(v > 0) ? 0.0f : g * ld(dy.p, dy.dt, i));
  }
}

__global__ void binaryKernel(bool mul, Tensor x, Tensor y, Tensor z,
                             int64_t n) {
  FORGE_FOR_EACH(i, n) {
    const float a = ld(x.p, x.dt, i), b = ld(y.p, y.dt, i);
    st(z.p, z.dt, i, mul ? a * b : a + b);
  }
}

__global__ void scaleKernel(Tensor x, float f, Tensor y, int64_t n) {
  FORGE_FOR_EACH(i, n) { st(y.p, y.dt, i, ld(x.p, x.dt, i) * f); }
}

__global__ void fillKernel(Tensor y, float v, int64_t n) {
  FORGE_FOR_EACH(i, n) { st(y.p, y.dt, i, v); }
}

__global__ void convertKernel(Tensor x, Tensor y, int64_t n) {
  FORGE_FOR_EACH(i, n) { st(y.p, y.dt, i, ld(x.p, x.dt, i)); }
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

__global__ void embeddingKernel(Tensor table, const int64_t *ids, int64_t n,
                                int64_t d, int64_t vocab, Tensor y,
                                ErrorSlot *err, int step) {
  FORGE_FOR_EACH(i, n * d) {
    const int64_t row = i / d, col = i % d, id = ids[row];
    if (id < 0 || id >= vocab) {
      if (col == 0)
        recordError(err, kTokenOutOfRange, step, id, vocab);
      st(y.p, y.dt, i, 0.0f);
      continue;
    }
    st(y.p, y.dt, i, ld(table.p, table.dt, id * d + col));
  }
}

/// The embedding gradient without atomics (whose order, and so whose
/// rounding, changes from run to run): the ids become sort keys (an id
/// outside the vocabulary becomes `vocab`, sorted last and skipped) with
/// their token positions as values; a stable radix sort groups each id's
/// tokens in token order; then one block per run of equal keys sums its
/// rows in that order, in f32 from zero, as the CPU reference does.
__global__ void embeddingGradKeysKernel(const int64_t *ids, int64_t n,
                                        int64_t vocab, uint32_t *keys,
                                        int32_t *positions) {
  FORGE_FOR_EACH(i, n) {
    const int64_t id = ids[i];
    keys[i] = static_cast<uint32_t>(id >= 0 && id < vocab ? id : vocab);
    positions[i] = static_cast<int32_t>(i);
  }
}

__global__ void embeddingGradRunsKernel(Tensor dout, const uint32_t *keys,
                                        const int32_t *positions, int64_t n,
                                        int64_t d, int64_t vocab,
                                        Tensor dtable) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const uint32_t key = keys[i];
    if (key >= vocab || (i > 0 && keys[i - 1] == key))
      continue; // not the first token of an id's run
    int64_t end = i + 1;
    while (end < n && keys[end] == key)
      ++end;
    for (int64_t col = threadIdx.x; col < d; col += blockDim.x) {
      float acc = 0.0f;
      for (int64_t j = i; j < end; ++j)
        acc +=
            ld(dout.p, dout.dt, static_cast<int64_t>(positions[j]) * d + col);
      st(dtable.p, dtable.dt, static_cast<int64_t>(key) * d + col, acc);
    }
  }
}

/// The scratch layout of embeddingGrad: keys and positions, in and out of
/// the sort, then CUB's own storage, each 256-byte aligned. CUB is asked
/// for its storage size once, when the scratch is sized (`scratchBytes`
/// 0); a run takes the rest of the scratch it was given.
struct EmbeddingGradLayout {
  size_t keysIn = 0, keysOut, posIn, posOut, temp, tempBytes, total;
  int bits;
  EmbeddingGradLayout(int64_t n, int64_t vocab, size_t scratchBytes) {
    auto align = [](size_t b) { return (b + 255) / 256 * 256; };
    const size_t keys = align(static_cast<size_t>(n) * sizeof(uint32_t));
    const size_t pos = align(static_cast<size_t>(n) * sizeof(int32_t));
    keysOut = keys;
    posIn = 2 * keys;
    posOut = posIn + pos;
    temp = posOut + pos;
    // Keys are 0..vocab (the sentinel included): sort only those bits.
    bits = 1;
    while (bits < 32 && (uint64_t{1} << bits) <= static_cast<uint64_t>(vocab))
      ++bits;
    tempBytes = scratchBytes > temp ? scratchBytes - temp : 0;
    if (scratchBytes == 0)
      cub::DeviceRadixSort::SortPairs(
          nullptr, tempBytes, static_cast<const uint32_t *>(nullptr),
          static_cast<uint32_t *>(nullptr),
          static_cast<const int32_t *>(nullptr),
          static_cast<int32_t *>(nullptr), static_cast<int>(n), 0, bits);
    total = temp + align(tempBytes);
  }
};

//===----------------------------------------------------------------------===//
// Norms: one block per row
//===----------------------------------------------------------------------===//

__global__ void rmsnormKernel(Tensor x, Tensor w, Tensor y, int64_t d,
                              float eps) {
  const int64_t r = blockIdx.x, base = r * d;
  float ss = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float v = ld(x.p, x.dt, base + j);
    ss += v * v;
  }
  const float inv = rsqrtf(blockSum(ss) / static_cast<float>(d) + eps);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    st(y.p, y.dt, base + j, ld(x.p, x.dt, base + j) * inv * ld(w.p, w.dt, j));
}

__global__ void rmsnormGradRowKernel(Tensor x, Tensor w, Tensor dy, Tensor dx,
                                     int64_t d, float eps, float *invOut) {
  const int64_t r = blockIdx.x, base = r * d;
  float ss = 0, dot = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float v = ld(x.p, x.dt, base + j);
    ss += v * v;
    dot += ld(dy.p, dy.dt, base + j) * ld(w.p, w.dt, j) * v;
  }
  ss = blockSum(ss);
  dot = blockSum(dot);
  const float inv = rsqrtf(ss / static_cast<float>(d) + eps);
  if (threadIdx.x == 0)
    invOut[r] = inv;
  const float k = inv * inv * inv * dot / static_cast<float>(d);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    st(dx.p, dx.dt, base + j,
       inv * ld(dy.p, dy.dt, base + j) * ld(w.p, w.dt, j) -
           ld(x.p, x.dt, base + j) * k);
}

/// dw[j] = sum over rows of dy * x * inv, one thread per column, rows in
/// order (deterministic).
__global__ void rmsnormGradWeightKernel(Tensor x, Tensor dy, Tensor dw,
                                        int64_t rows, int64_t d,
                                        const float *inv) {
  FORGE_FOR_EACH(j, d) {
    float acc = 0;
    for (int64_t r = 0; r < rows; ++r)
      acc += ld(dy.p, dy.dt, r * d + j) * ld(x.p, x.dt, r * d + j) * inv[r];
    st(dw.p, dw.dt, j, acc);
  }
}

__global__ void layernormKernel(Tensor x, Tensor w, Tensor b, Tensor y,
                                int64_t d, float eps) {
  const int64_t r = blockIdx.x, base = r * d;
  float s = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    s += ld(x.p, x.dt, base + j);
  const float mean = blockSum(s) / static_cast<float>(d);
  float var = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float c = ld(x.p, x.dt, base + j) - mean;
    var += c * c;
  }
  const float inv = rsqrtf(blockSum(var) / static_cast<float>(d) + eps);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    st(y.p, y.dt, base + j,
       (ld(x.p, x.dt, base + j) - mean) * inv * ld(w.p, w.dt, j) +
           ld(b.p, b.dt, j));
}

__global__ void layernormGradRowKernel(Tensor x, Tensor w, Tensor dy, Tensor dx,
                                       int64_t d, float eps, float *stats) {
  const int64_t r = blockIdx.x, base = r * d;
  float s = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    s += ld(x.p, x.dt, base + j);
  const float mean = blockSum(s) / static_cast<float>(d);
  float var = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float c = ld(x.p, x.dt, base + j) - mean;
    var += c * c;
  }
  const float inv = rsqrtf(blockSum(var) / static_cast<float>(d) + eps);
  float sumG = 0, sumGX = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float xhat = (ld(x.p, x.dt, base + j) - mean) * inv;
    const float g = ld(dy.p, dy.dt, base + j) * ld(w.p, w.dt, j);
    sumG += g;
    sumGX += g * xhat;
  }
  sumG = blockSum(sumG);
  sumGX = blockSum(sumGX);
  if (threadIdx.x == 0) {
    stats[2 * r] = mean;
    stats[2 * r + 1] = inv;
  }
  const float fd = static_cast<float>(d);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float xhat = (ld(x.p, x.dt, base + j) - mean) * inv;
    const float g = ld(dy.p, dy.dt, base + j) * ld(w.p, w.dt, j);
    st(dx.p, dx.dt, base + j, inv * (g - sumG / fd - xhat * sumGX / fd));
  }
}

__global__ void layernormGradParamKernel(Tensor x, Tensor dy, Tensor dw,
                                         Tensor db, int64_t rows, int64_t d,
                                         const float *stats) {
  FORGE_FOR_EACH(j, d) {
    float aw = 0, ab = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float g = ld(dy.p, dy.dt, r * d + j);
      aw += g * (ld(x.p, x.dt, r * d + j) - stats[2 * r]) * stats[2 * r + 1];
      ab += g;
    }
    st(dw.p, dw.dt, j, aw);
    st(db.p, db.dt, j, ab);
  }
}

//===----------------------------------------------------------------------===//
// Rotary embedding
//===----------------------------------------------------------------------===//

__global__ void ropeKernel(Tensor x, Tensor y, int64_t b, int64_t sq, int64_t h,
                           int64_t hd, double theta, bool inverse) {
  const int64_t half = hd / 2;
  FORGE_FOR_EACH(i, b * sq * h * half) {
    const int64_t f = i % half, vec = i / half, pos = (vec / h) % sq;
    // inv_freq in f32 and angle = pos * inv_freq, as KempnerForge.
    const float invFreq = static_cast<float>(
        pow(theta, -2.0 * static_cast<double>(f) / static_cast<double>(hd)));
    const double a = static_cast<double>(static_cast<float>(pos) * invFreq);
    const float c = static_cast<float>(cos(a)), sn = static_cast<float>(sin(a));
    const int64_t at = vec * hd + f;
    const float x1 = ld(x.p, x.dt, at), x2 = ld(x.p, x.dt, at + half);
    if (!inverse) {
      st(y.p, y.dt, at, x1 * c - x2 * sn);
      st(y.p, y.dt, at + half, x2 * c + x1 * sn);
    } else {
      st(y.p, y.dt, at, x1 * c + x2 * sn);
      st(y.p, y.dt, at + half, -x1 * sn + x2 * c);
    }
  }
}

//===----------------------------------------------------------------------===//
// Attention: one warp per row, head_dim split over the lanes
//===----------------------------------------------------------------------===//

constexpr int kMaxHeadDimPerLane = kMaxAttentionHeadDim / 32;

__device__ __forceinline__ bool visible(const AttentionShape &sh,
                                        const int32_t *doc, int64_t bi,
                                        int64_t i, int64_t j) {
  if (sh.causal && j > i)
    return false;
  return !doc || doc[bi * sh.s + i] == doc[bi * sh.s + j];
}

/// Row i of head hi: online softmax over the visible keys (every row sees
/// at least itself, so no row is empty).
__global__ void attentionKernel(Tensor q, Tensor k, Tensor v,
                                const int32_t *doc, AttentionShape sh, Tensor o,
                                float *lse) {
  const int64_t row =
      (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= sh.b * sh.h * sh.s)
    return;
  const int64_t i = row % sh.s, hi = (row / sh.s) % sh.h,
                bi = row / (sh.s * sh.h), kh = hi / (sh.h / sh.kv);
  const int per = static_cast<int>((sh.hd + 31) / 32);
  float qv[kMaxHeadDimPerLane], acc[kMaxHeadDimPerLane];
  const int64_t qo = ((bi * sh.s + i) * sh.h + hi) * sh.hd;
  for (int c = 0; c < per; ++c) {
    const int64_t e = lane + 32 * c;
    qv[c] = e < sh.hd ? ld(q.p, q.dt, qo + e) : 0.0f;
    acc[c] = 0;
  }
  float mx = -INFINITY, sum = 0;
  const int64_t last = sh.causal ? i : sh.s - 1;
  for (int64_t j = 0; j <= last; ++j) {
    if (!visible(sh, doc, bi, i, j))
      continue;
    const int64_t ko = ((bi * sh.s + j) * sh.kv + kh) * sh.hd;
    float dot = 0;
    for (int c = 0; c < per; ++c) {
      const int64_t e = lane + 32 * c;
      if (e < sh.hd)
        dot += qv[c] * ld(k.p, k.dt, ko + e);
    }
    const float sc = warpSum(dot) * sh.scale;
    const float nm = fmaxf(mx, sc);
    const float corr = expf(mx - nm), p = expf(sc - nm);
    sum = sum * corr + p;
    for (int c = 0; c < per; ++c) {
      const int64_t e = lane + 32 * c;
      acc[c] = acc[c] * corr + (e < sh.hd ? p * ld(v.p, v.dt, ko + e) : 0.0f);
    }
    mx = nm;
  }
  for (int c = 0; c < per; ++c) {
    const int64_t e = lane + 32 * c;
    if (e < sh.hd)
      st(o.p, o.dt, qo + e, acc[c] / sum);
  }
  if (lane == 0)
    lse[(bi * sh.h + hi) * sh.s + i] = mx + logf(sum);
}

/// dQ row i, and D_i = dO_i . O_i into rowScratch for the dK/dV pass.
__global__ void attentionGradQKernel(Tensor q, Tensor k, Tensor v,
                                     const int32_t *doc, AttentionShape sh,
                                     Tensor o, const float *lse, Tensor dout,
                                     Tensor dq, float *dRow) {
  const int64_t row =
      (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= sh.b * sh.h * sh.s)
    return;
  const int64_t i = row % sh.s, hi = (row / sh.s) % sh.h,
                bi = row / (sh.s * sh.h), kh = hi / (sh.h / sh.kv);
  const int per = static_cast<int>((sh.hd + 31) / 32);
  const int64_t qo = ((bi * sh.s + i) * sh.h + hi) * sh.hd;
  float qv[kMaxHeadDimPerLane], gv[kMaxHeadDimPerLane], acc[kMaxHeadDimPerLane];
  float di = 0;
  for (int c = 0; c < per; ++c) {
    const int64_t e = lane + 32 * c;
    const bool in = e < sh.hd;
    qv[c] = in ? ld(q.p, q.dt, qo + e) : 0.0f;
    gv[c] = in ? ld(dout.p, dout.dt, qo + e) : 0.0f;
    di += in ? gv[c] * ld(o.p, o.dt, qo + e) : 0.0f;
    acc[c] = 0;
  }
  di = warpSum(di);
  const int64_t li = (bi * sh.h + hi) * sh.s + i;
  if (lane == 0)
    dRow[li] = di;
  const float l = lse[li];
  const int64_t last = sh.causal ? i : sh.s - 1;
  for (int64_t j = 0; j <= last; ++j) {
    if (!visible(sh, doc, bi, i, j))
      continue;
    const int64_t ko = ((bi * sh.s + j) * sh.kv + kh) * sh.hd;
    float dot = 0, dp = 0;
    for (int c = 0; c < per; ++c) {
      const int64_t e = lane + 32 * c;
      if (e < sh.hd) {
        dot += qv[c] * ld(k.p, k.dt, ko + e);
        dp += gv[c] * ld(v.p, v.dt, ko + e);
      }
    }
    const float p = expf(warpSum(dot) * sh.scale - l);
    const float ds = p * (warpSum(dp) - di) * sh.scale;
    for (int c = 0; c < per; ++c) {
      const int64_t e = lane + 32 * c;
      if (e < sh.hd)
        acc[c] += ds * ld(k.p, k.dt, ko + e);
    }
  }
  for (int c = 0; c < per; ++c) {
    const int64_t e = lane + 32 * c;
    if (e < sh.hd)
      st(dq.p, dq.dt, qo + e, acc[c]);
  }
}

/// dK and dV of key row j of kv head kh: over the query heads of its group
/// and the query rows that see it, in a fixed order.
__global__ void attentionGradKVKernel(Tensor q, Tensor k, Tensor v,
                                      const int32_t *doc, AttentionShape sh,
                                      const float *lse, Tensor dout,
                                      const float *dRow, Tensor dk, Tensor dv) {
  const int64_t row =
      (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= sh.b * sh.kv * sh.s)
    return;
  const int64_t j = row % sh.s, kh = (row / sh.s) % sh.kv,
                bi = row / (sh.s * sh.kv), rep = sh.h / sh.kv;
  const int per = static_cast<int>((sh.hd + 31) / 32);
  const int64_t ko = ((bi * sh.s + j) * sh.kv + kh) * sh.hd;
  float kv[kMaxHeadDimPerLane], vv[kMaxHeadDimPerLane], ak[kMaxHeadDimPerLane],
      av[kMaxHeadDimPerLane];
  for (int c = 0; c < per; ++c) {
    const int64_t e = lane + 32 * c;
    const bool in = e < sh.hd;
    kv[c] = in ? ld(k.p, k.dt, ko + e) : 0.0f;
    vv[c] = in ? ld(v.p, v.dt, ko + e) : 0.0f;
    ak[c] = av[c] = 0;
  }
  for (int64_t hi = kh * rep; hi < (kh + 1) * rep; ++hi)
    for (int64_t i = sh.causal ? j : 0; i < sh.s; ++i) {
      if (!visible(sh, doc, bi, i, j))
        continue;
      const int64_t qo = ((bi * sh.s + i) * sh.h + hi) * sh.hd;
      const int64_t li = (bi * sh.h + hi) * sh.s + i;
      float dot = 0, dp = 0;
      for (int c = 0; c < per; ++c) {
        const int64_t e = lane + 32 * c;
        if (e < sh.hd) {
          dot += ld(q.p, q.dt, qo + e) * kv[c];
          dp += ld(dout.p, dout.dt, qo + e) * vv[c];
        }
      }
      const float p = expf(warpSum(dot) * sh.scale - lse[li]);
      const float ds = p * (warpSum(dp) - dRow[li]) * sh.scale;
      for (int c = 0; c < per; ++c) {
        const int64_t e = lane + 32 * c;
        if (e < sh.hd) {
          av[c] += p * ld(dout.p, dout.dt, qo + e);
          ak[c] += ds * ld(q.p, q.dt, qo + e);
        }
      }
    }
  for (int c = 0; c < per; ++c) {
    const int64_t e = lane + 32 * c;
    if (e < sh.hd) {
      st(dk.p, dk.dt, ko + e, ak[c]);
      st(dv.p, dv.dt, ko + e, av[c]);
    }
  }
}

//===----------------------------------------------------------------------===//
// Cross-entropy: one block per row
//===----------------------------------------------------------------------===//

__device__ float blockLogSumExp(const Tensor &l, int64_t base, int64_t c) {
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    mx = fmaxf(mx, ld(l.p, l.dt, base + j));
  mx = blockMax(mx);
  float s = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    s += expf(ld(l.p, l.dt, base + j) - mx);
  return mx + logf(blockSum(s));
}

__global__ void crossEntropyRowKernel(Tensor logits, const int64_t *labels,
                                      int64_t c, int64_t ignore, float *rowLoss,
                                      ErrorSlot *err, int step) {
  const int64_t r = blockIdx.x, lab = labels[r];
  if (lab == ignore) {
    if (threadIdx.x == 0)
      rowLoss[r] = 0;
    return;
  }
  if (lab < 0 || lab >= c) {
    if (threadIdx.x == 0) {
      recordError(err, kLabelOutOfRange, step, lab, c);
      rowLoss[r] = 0;
    }
    return;
  }
  const float l = blockLogSumExp(logits, r * c, c);
  if (threadIdx.x == 0)
    rowLoss[r] = l - ld(logits.p, logits.dt, r * c + lab);
}

/// The mean over valid rows, summed in row order in double.
__global__ void crossEntropyMeanKernel(const float *rowLoss,
                                       const int64_t *labels, int64_t rows,
                                       int64_t ignore, Tensor loss) {
  double acc = 0;
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r)
    if (labels[r] != ignore) {
      acc += rowLoss[r];
      ++valid;
    }
  st(loss.p, loss.dt, 0, valid ? static_cast<float>(acc / valid) : 0.0f);
}

__global__ void countValidKernel(const int64_t *labels, int64_t rows,
                                 int64_t ignore, float *valid) {
  float n = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    n += labels[r] != ignore ? 1.0f : 0.0f;
  n = blockSum(n);
  if (threadIdx.x == 0)
    *valid = n;
}

__global__ void crossEntropyGradKernel(Tensor logits, const int64_t *labels,
                                       int64_t c, int64_t ignore, Tensor dloss,
                                       const float *valid, Tensor dlogits) {
  const int64_t r = blockIdx.x, lab = labels[r];
  if (lab == ignore || *valid == 0) {
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
      st(dlogits.p, dlogits.dt, r * c + j, 0.0f);
    return;
  }
  const float l = blockLogSumExp(logits, r * c, c);
  const float f = ld(dloss.p, dloss.dt, 0) / *valid;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const float p = expf(ld(logits.p, logits.dt, r * c + j) - l);
    st(dlogits.p, dlogits.dt, r * c + j, f * (p - (j == lab ? 1.0f : 0.0f)));
  }
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

__global__ void sumSquaresKernel(Tensor x, int64_t n, double *partial) {
  // Block b sums a fixed slice: the result depends only on n.
  const int64_t per = (n + gridDim.x - 1) / gridDim.x;
  const int64_t begin = blockIdx.x * per, end = min(n, begin + per);
  double acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = ld(x.p, x.dt, i);
    acc += v * v;
  }
  __shared__ double part[kThreads];
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    partial[blockIdx.x] = part[0];
}

__global__ void finishNormKernel(const double *partial, int64_t count,
                                 bool squared, Tensor y) {
  double acc = 0;
  for (int64_t i = 0; i < count; ++i)
    acc += partial[i];
  st(y.p, y.dt, 0, static_cast<float>(squared ? acc : sqrt(acc)));
}

__global__ void sqrtKernel(Tensor x, Tensor y) {
  st(y.p, y.dt, 0, sqrtf(ld(x.p, x.dt, 0)));
}

__global__ void clipKernel(Tensor norm, double maxNorm, Tensor y) {
  const double n = ld(norm.p, norm.dt, 0);
  st(y.p, y.dt, 0, static_cast<float>(fmin(1.0, maxNorm / (n + 1e-6))));
}

__global__ void lrFactorKernel(Schedule s, const int64_t *stepPtr, Tensor y) {
  const int64_t step = *stepPtr;
  const double st_ = static_cast<double>(step);
  double f = 1.0;
  if (s.kind == 0) {
    f = 1.0;
  } else if (s.warmup > 0 && step < s.warmup) {
    f = st_ / static_cast<double>(s.warmup);
  } else if (s.kind == 1) {
    f = 1.0;
  } else {
    const double r = s.minLrRatio;
    const int64_t stable = s.kind == 4 ? s.stable : 0;
    int64_t total = s.decay > 0 ? s.decay : s.maxSteps - s.warmup - stable;
    if (s.kind == 4 && step < s.warmup + stable) {
      f = 1.0;
    } else if (s.kind != 5 && total <= 0) {
      f = 1.0;
    } else {
      if (s.kind == 5 && total < 1)
        total = 1;
      const double p =
          fmin(1.0, (st_ - s.warmup - stable) / static_cast<double>(total));
      const double pi = 3.14159265358979323846;
      if (s.kind == 2)
        f = r + 0.5 * (1 - r) * (1 + cos(pi * p));
      else if (s.kind == 3)
        f = 1 - (1 - r) * p;
      else if (s.kind == 5)
        f = fmax(r, pow(1 - p, s.rexAlpha));
      else if (s.wsdDecay == 1)
        f = 1 - (1 - r) * p;
      else if (s.wsdDecay == 2)
        f = r + (1 - r) * sqrt(1 - p);
      else
        f = r + 0.5 * (1 - r) * (1 + cos(pi * p));
    }
  }
  st(y.p, y.dt, 0, static_cast<float>(f));
}

/// torch.optim.AdamW's single-tensor order of operations, as the CPU
/// backend (lerp, addcmul, addcdiv), so f32 rounding matches.
__global__ void adamwKernel(Tensor p, Tensor g, Tensor m, Tensor v, int64_t n,
                            Tensor lrT, Tensor clipT, const int64_t *stepPtr,
                            float beta1, float beta2, float eps, float wd,
                            Tensor np, Tensor nm, Tensor nv) {
  const float lr = ld(lrT.p, lrT.dt, 0), clip = ld(clipT.p, clipT.dt, 0);
  const double t = static_cast<double>(*stepPtr + 1);
  const float bc1 = static_cast<float>(1 - pow(static_cast<double>(beta1), t));
  const float bc2Sqrt =
      static_cast<float>(sqrt(1 - pow(static_cast<double>(beta2), t)));
  const float decay = 1 - lr * wd, stepSize = lr / bc1;
  FORGE_FOR_EACH(i, n) {
    const float gi = ld(g.p, g.dt, i) * clip;
    const float mi = ld(m.p, m.dt, i), vi = ld(v.p, v.dt, i);
    const float m1 = mi + (1 - beta1) * (gi - mi);
    const float v1 = vi * beta2 + (1 - beta2) * (gi * gi);
    const float denom = sqrtf(v1) / bc2Sqrt + eps;
    st(np.p, np.dt, i, ld(p.p, p.dt, i) * decay + (-stepSize) * (m1 / denom));
    st(nm.p, nm.dt, i, m1);
    st(nv.p, nv.dt, i, v1);
  }
}

__global__ void lionKernel(Tensor p, Tensor g, Tensor m, int64_t n, Tensor lrT,
                           Tensor clipT, double beta1, double beta2, double wd,
                           Tensor np, Tensor nm) {
  const double lr = ld(lrT.p, lrT.dt, 0), clip = ld(clipT.p, clipT.dt, 0);
  FORGE_FOR_EACH(i, n) {
    const double gi = ld(g.p, g.dt, i) * clip, mi = ld(m.p, m.dt, i);
    const double c = beta1 * mi + (1 - beta1) * gi;
    const double u = c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0;
    st(np.p, np.dt, i,
       static_cast<float>(ld(p.p, p.dt, i) * (1 - lr * wd) - lr * u));
    st(nm.p, nm.dt, i, static_cast<float>(beta2 * mi + (1 - beta2) * gi));
  }
}

__global__ void finiteKernel(Tensor x, int64_t n, int *flag) {
  FORGE_FOR_EACH(i, n) {
    if (!isfinite(ld(x.p, x.dt, i)))
      *flag = 1;
  }
}

} // namespace

void unary(Unary kind, Tensor x, Tensor y, int64_t n, cudaStream_t s) {
  if (n > 0)
    unaryKernel<<<blocksFor(n), kThreads, 0, s>>>(kind, x, y, n);
}
void unaryGrad(Unary kind, Tensor x, Tensor dy, Tensor dx, int64_t n,
               cudaStream_t s) {
  if (n > 0)
    unaryGradKernel<<<blocksFor(n), kThreads, 0, s>>>(kind, x, dy, dx, n);
}
void binary(bool mul, Tensor x, Tensor y, Tensor z, int64_t n, cudaStream_t s) {
  if (n > 0)
    binaryKernel<<<blocksFor(n), kThreads, 0, s>>>(mul, x, y, z, n);
}
void scale(Tensor x, float factor, Tensor y, int64_t n, cudaStream_t s) {
  if (n > 0)
    scaleKernel<<<blocksFor(n), kThreads, 0, s>>>(x, factor, y, n);
}
__global__ void writeHeaderKernel(uint64_t *p, uint64_t first,
                                  uint64_t second) {
  p[0] = first;
  p[1] = second;
}
void writeHeader(void *p, uint64_t first, uint64_t second, cudaStream_t s) {
  writeHeaderKernel<<<1, 1, 0, s>>>(static_cast<uint64_t *>(p), first, second);
}
void fill(Tensor y, float value, int64_t n, cudaStream_t s) {
  if (n > 0)
    fillKernel<<<blocksFor(n), kThreads, 0, s>>>(y, value, n);
}
void convert(Tensor x, Tensor y, int64_t n, cudaStream_t s) {
  if (n > 0)
    convertKernel<<<blocksFor(n), kThreads, 0, s>>>(x, y, n);
}

void embedding(Tensor table, const int64_t *ids, int64_t n, int64_t d,
               int64_t vocab, Tensor y, ErrorSlot *err, int step,
               cudaStream_t s) {
  if (n * d > 0)
    embeddingKernel<<<blocksFor(n * d), kThreads, 0, s>>>(table, ids, n, d,
                                                          vocab, y, err, step);
}
size_t embeddingGradScratchBytes(int64_t n, int64_t vocab) {
  return EmbeddingGradLayout(n, vocab, 0).total;
}
void embeddingGrad(Tensor dout, const int64_t *ids, int64_t n, int64_t d,
                   int64_t vocab, Tensor dtable, void *scratch,
                   size_t scratchBytes, cudaStream_t s) {
  cudaMemsetAsync(
      dtable.p, 0,
      static_cast<size_t>(vocab * d) * (dtable.dt == Dt::f32 ? 4 : 2), s);
  if (n <= 0 || d <= 0)
    return;
  const EmbeddingGradLayout l(n, vocab, scratchBytes);
  char *base = static_cast<char *>(scratch);
  auto *keysIn = reinterpret_cast<uint32_t *>(base + l.keysIn);
  auto *keysOut = reinterpret_cast<uint32_t *>(base + l.keysOut);
  auto *posIn = reinterpret_cast<int32_t *>(base + l.posIn);
  auto *posOut = reinterpret_cast<int32_t *>(base + l.posOut);
  embeddingGradKeysKernel<<<blocksFor(n), kThreads, 0, s>>>(ids, n, vocab,
                                                            keysIn, posIn);
  size_t tempBytes = l.tempBytes;
  cub::DeviceRadixSort::SortPairs(base + l.temp, tempBytes, keysIn, keysOut,
                                  posIn, posOut, static_cast<int>(n), 0, l.bits,
                                  s);
  embeddingGradRunsKernel<<<static_cast<unsigned>(
                                std::min<int64_t>(n, 1 << 20)),
                            rowThreads(d), 0, s>>>(dout, keysOut, posOut, n, d,
                                                   vocab, dtable);
}

void rmsnorm(Tensor x, Tensor w, Tensor y, int64_t rows, int64_t d, float eps,
             cudaStream_t s) {
  if (rows > 0)
    rmsnormKernel<<<rows, rowThreads(d), 0, s>>>(x, w, y, d, eps);
}
void rmsnormGrad(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw,
                 int64_t rows, int64_t d, float eps, float *rowScratch,
                 cudaStream_t s) {
  if (rows > 0)
    rmsnormGradRowKernel<<<rows, rowThreads(d), 0, s>>>(x, w, dy, dx, d, eps,
                                                        rowScratch);
  if (d > 0)
    rmsnormGradWeightKernel<<<blocksFor(d), kThreads, 0, s>>>(x, dy, dw, rows,
                                                              d, rowScratch);
}
void layernorm(Tensor x, Tensor w, Tensor b, Tensor y, int64_t rows, int64_t d,
               float eps, cudaStream_t s) {
  if (rows > 0)
    layernormKernel<<<rows, rowThreads(d), 0, s>>>(x, w, b, y, d, eps);
}
void layernormGrad(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw,
                   Tensor db, int64_t rows, int64_t d, float eps,
                   float *rowScratch, cudaStream_t s) {
  if (rows > 0)
    layernormGradRowKernel<<<rows, rowThreads(d), 0, s>>>(x, w, dy, dx, d, eps,
                                                          rowScratch);
  if (d > 0)
    layernormGradParamKernel<<<blocksFor(d), kThreads, 0, s>>>(
        x, dy, dw, db, rows, d, rowScratch);
}

void rope(Tensor x, Tensor y, int64_t b, int64_t sq, int64_t h, int64_t hd,
          double theta, bool inverse, cudaStream_t s) {
  const int64_t n = b * sq * h * (hd / 2);
  if (n > 0)
    ropeKernel<<<blocksFor(n), kThreads, 0, s>>>(x, y, b, sq, h, hd, theta,
                                                 inverse);
}

void attention(Tensor q, Tensor k, Tensor v, const int32_t *doc,
               const AttentionShape &sh, Tensor o, float *lse, cudaStream_t s) {
  const int64_t rows = sh.b * sh.h * sh.s;
  if (rows > 0 && !attentionOnTensorCores(q, k, v, doc, sh, o, lse, s))
    attentionKernel<<<warpBlocks(rows), kThreads, 0, s>>>(q, k, v, doc, sh, o,
                                                          lse);
}
void attentionGrad(Tensor q, Tensor k, Tensor v, const int32_t *doc,
                   const AttentionShape &sh, Tensor o, const float *lse,
                   Tensor dout, Tensor dq, Tensor dk, Tensor dv,
                   float *rowScratch, cudaStream_t s) {
  const int64_t rows = sh.b * sh.h * sh.s, kvRows = sh.b * sh.kv * sh.s;
  if (rows == 0 || attentionGradOnTensorCores(q, k, v, doc, sh, o, lse, dout,
                                              dq, dk, dv, rowScratch, s))
    return;
  attentionGradQKernel<<<warpBlocks(rows), kThreads, 0, s>>>(
      q, k, v, doc, sh, o, lse, dout, dq, rowScratch);
  attentionGradKVKernel<<<warpBlocks(kvRows), kThreads, 0, s>>>(
      q, k, v, doc, sh, lse, dout, rowScratch, dk, dv);
}

void crossEntropy(Tensor logits, const int64_t *labels, int64_t rows,
                  int64_t classes, int64_t ignore, Tensor loss,
                  float *rowScratch, ErrorSlot *err, int step, cudaStream_t s) {
  if (rows > 0)
    crossEntropyRowKernel<<<rows, rowThreads(classes), 0, s>>>(
        logits, labels, classes, ignore, rowScratch, err, step);
  crossEntropyMeanKernel<<<1, 1, 0, s>>>(rowScratch, labels, rows, ignore,
                                         loss);
}
void crossEntropyGrad(Tensor logits, const int64_t *labels, int64_t rows,
                      int64_t classes, int64_t ignore, Tensor dloss,
                      Tensor dlogits, float *validScratch, cudaStream_t s) {
  countValidKernel<<<1, 1024, 0, s>>>(labels, rows, ignore, validScratch);
  if (rows > 0)
    crossEntropyGradKernel<<<rows, rowThreads(classes), 0, s>>>(
        logits, labels, classes, ignore, dloss, validScratch, dlogits);
}

int sumSquaresPartials(Tensor x, int64_t n, double *partial, cudaStream_t s) {
  const int blocks = static_cast<int>(std::clamp<int64_t>(
      (n + kThreads * 16 - 1) / (kThreads * 16), 1, kNormPartials));
  sumSquaresKernel<<<blocks, kThreads, 0, s>>>(x, n, partial);
  return blocks;
}
void finishNorm(const double *partial, int64_t count, bool squared, Tensor y,
                cudaStream_t s) {
  finishNormKernel<<<1, 1, 0, s>>>(partial, count, squared, y);
}
void sqrtScalar(Tensor x, Tensor y, cudaStream_t s) {
  sqrtKernel<<<1, 1, 0, s>>>(x, y);
}
void clipCoefficient(Tensor norm, double maxNorm, Tensor y, cudaStream_t s) {
  clipKernel<<<1, 1, 0, s>>>(norm, maxNorm, y);
}
void lrFactor(const Schedule &sched, const int64_t *step, Tensor y,
              cudaStream_t s) {
  lrFactorKernel<<<1, 1, 0, s>>>(sched, step, y);
}

void adamw(Tensor p, Tensor g, Tensor m, Tensor v, int64_t n, Tensor lr,
           Tensor clip, const int64_t *step, float beta1, float beta2,
           float eps, float wd, Tensor np, Tensor nm, Tensor nv,
           cudaStream_t s) {
  if (n > 0)
    adamwKernel<<<blocksFor(n), kThreads, 0, s>>>(
        p, g, m, v, n, lr, clip, step, beta1, beta2, eps, wd, np, nm, nv);
}
void lion(Tensor p, Tensor g, Tensor m, int64_t n, Tensor lr, Tensor clip,
          double beta1, double beta2, double wd, Tensor np, Tensor nm,
          cudaStream_t s) {
  if (n > 0)
    lionKernel<<<blocksFor(n), kThreads, 0, s>>>(p, g, m, n, lr, clip, beta1,
                                                 beta2, wd, np, nm);
}

void checkFinite(Tensor x, int64_t n, int *flag, cudaStream_t s) {
  if (n > 0)
    finiteKernel<<<blocksFor(n), kThreads, 0, s>>>(x, n, flag);
}

//===----------------------------------------------------------------------===//
// z-loss, chunked cross-entropy, fp8, schedule-free AdamW, Muon
//===----------------------------------------------------------------------===//

namespace {

__global__ void rowLseKernel(Tensor logits, int64_t c, float *lse) {
  const float l = blockLogSumExp(logits, blockIdx.x * c, c);
  if (threadIdx.x == 0)
    lse[blockIdx.x] = l;
}

__global__ void zLossKernel(const float *lse, int64_t rows, Tensor loss) {
  double acc = 0;
  for (int64_t r = 0; r < rows; ++r)
    acc += static_cast<double>(lse[r]) * lse[r];
  st(loss.p, loss.dt, 0, static_cast<float>(acc / rows));
}

__global__ void zLossGradKernel(Tensor logits, const float *lse, int64_t rows,
                                int64_t c, Tensor dloss, Tensor dlogits) {
  const float f = ld(dloss.p, dloss.dt, 0) * 2.0f / static_cast<float>(rows);
  FORGE_FOR_EACH(i, rows * c) {
    const float l = lse[i / c];
    st(dlogits.p, dlogits.dt, i, f * l * expf(ld(logits.p, logits.dt, i) - l));
  }
}

__global__ void chunkRowTermsKernel(const float *logits, const float *lse,
                                    const int64_t *labels, int64_t first,
                                    int64_t n, int64_t v, int64_t ignore,
                                    float *rowCe, float *rowZ, ErrorSlot *err,
                                    int step) {
  FORGE_FOR_EACH(r, n) {
    const float l = lse[r];
    const int64_t lab = labels[first + r];
    rowZ[first + r] = l * l;
    if (lab == ignore) {
      rowCe[first + r] = 0;
    } else if (lab < 0 || lab >= v) {
      recordError(err, kLabelOutOfRange, step, lab, v);
      rowCe[first + r] = 0;
    } else {
      rowCe[first + r] = l - logits[r * v + lab];
    }
  }
}

__global__ void chunkedLossKernel(const float *rowCe, const float *rowZ,
                                  const int64_t *labels, int64_t rows,
                                  int64_t ignore, double zWeight, Tensor loss) {
  double ce = 0, z = 0;
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r) {
    z += rowZ[r];
    if (labels[r] != ignore) {
      ce += rowCe[r];
      ++valid;
    }
  }
  const double l = (valid ? ce / valid : 0.0) + zWeight * z / rows;
  st(loss.p, loss.dt, 0, static_cast<float>(l));
}

__global__ void chunkLogitsGradKernel(float *logits, const float *lse,
                                      const int64_t *labels, int64_t first,
                                      int64_t n, int64_t v, int64_t rows,
                                      int64_t ignore, double zWeight,
                                      Tensor dloss, const float *valid) {
  const float dl = ld(dloss.p, dloss.dt, 0);
  const float vcount = *valid;
  FORGE_FOR_EACH(i, n * v) {
    const int64_t r = i / v, j = i % v, lab = labels[first + r];
    const float l = lse[r];
    const float p = expf(logits[i] - l);
    float g =
        static_cast<float>(zWeight * 2.0) * l * p / static_cast<float>(rows);
    if (vcount > 0 && lab != ignore)
      g += (p - (j == lab ? 1.0f : 0.0f)) / vcount;
    logits[i] = dl * g;
  }
}

/// Round to nearest even on the fp8 grid (ref::roundFp8).
__device__ float roundFp8(float v, bool e4m3) {
  const int mant = e4m3 ? 3 : 2, emin = e4m3 ? -6 : -14;
  const double fmax = e4m3 ? 448.0 : 57344.0;
  const double a = fabs(static_cast<double>(v));
  if (!(a > 0))
    return v == v ? 0.0f * v : v;
  if (a >= fmax)
    return copysignf(static_cast<float>(fmax), v);
  const int e = max(static_cast<int>(floor(log2(a))), emin);
  const double quantum = ldexp(1.0, e - mant);
  double r = rint(a / quantum) * quantum;
  if (r > fmax)
    r = fmax;
  return static_cast<float>(copysign(r, static_cast<double>(v)));
}

__global__ void amaxKernel(Tensor x, int64_t n, float *amax) {
  float m = 0;
  FORGE_FOR_EACH(i, n) { m = fmaxf(m, fabsf(ld(x.p, x.dt, i))); }
  m = blockMax(m);
  // Non-negative floats order as their bit patterns: an integer max is
  // exact and order-independent.
  if (threadIdx.x == 0)
    atomicMax(reinterpret_cast<int *>(amax), __float_as_int(m));
}

__global__ void fp8CastKernel(Tensor x, int64_t n, bool e4m3, Tensor y,
                              const float *amaxPtr) {
  const float amax = *amaxPtr;
  const float fmax = e4m3 ? 448.0f : 57344.0f;
  const float scale = amax > 0 ? fmax / amax : 1.0f;
  FORGE_FOR_EACH(i, n) {
    st(y.p, y.dt, i, roundFp8(ld(x.p, x.dt, i) * scale, e4m3) / scale);
  }
}

__device__ uint8_t fp8Bits(float v, bool e4m3) {
  const int mant = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const uint8_t sign = signbit(v) ? 0x80 : 0;
  // NaN stays NaN (S.1111.111 in both formats); as ref::fp8Bits.
  if (isnan(v))
    return sign | 0x7f;
  if (isinf(v))
    return sign | (e4m3 ? 0x7f : 0x7c);
  const double a = fabs(static_cast<double>(v));
  if (a == 0)
    return sign;
  const int e = static_cast<int>(floor(log2(a)));
  if (e < 1 - bias) // subnormal: exponent field 0
    return sign | static_cast<uint8_t>(llround(ldexp(a, bias - 1 + mant)));
  const int m = static_cast<int>(llround((ldexp(a, -e) - 1.0) * (1 << mant)));
  return sign | static_cast<uint8_t>((e + bias) << mant) |
         static_cast<uint8_t>(m);
}

__device__ float fp8FromBits(uint8_t bits, bool e4m3) {
  const int mant = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const int field = (bits & 0x7f) >> mant, m = bits & ((1 << mant) - 1);
  if (e4m3 ? (bits & 0x7f) == 0x7f : field == 31) {
    const float special = e4m3 || m ? __int_as_float(0x7fc00000)  // NaN
                                    : __int_as_float(0x7f800000); // inf
    return (bits & 0x80) ? -special : special;
  }
  const double a =
      field == 0
          ? ldexp(static_cast<double>(m), 1 - bias - mant)
          : ldexp(1.0 + static_cast<double>(m) / (1 << mant), field - bias);
  return static_cast<float>((bits & 0x80) ? -a : a);
}

__device__ float fp8Scale(float amax, bool e4m3) {
  const float fmax = e4m3 ? 448.0f : 57344.0f;
  return amax > 0 ? fmax / amax : 1.0f;
}

__global__ void fp8EncodeKernel(Tensor x, int64_t n, bool e4m3,
                                const float *amax, uint8_t *bytes) {
  const float scale = fp8Scale(*amax, e4m3);
  FORGE_FOR_EACH(i, n) {
    bytes[i] = fp8Bits(roundFp8(ld(x.p, x.dt, i) * scale, e4m3), e4m3);
  }
}

/// fp8 codes of a [rows, cols] tensor for cuBLASLt's fp8 matmuls, which
/// need both operands contiguous along the contraction: 32 x 32 tiles go
/// through shared memory so that reads and (transposed) writes are both
/// coalesced. Block (0, 0) also stores the dequantization factor 1 / scale
/// that the matmul multiplies the codes by.
__global__ void fp8EncodeMatrixKernel(Tensor x, int64_t rows, int64_t cols,
                                      bool transpose, bool e4m3,
                                      const float *amax, uint8_t *bytes,
                                      float *dequant) {
  __shared__ uint8_t tile[32][33];
  const float scale = fp8Scale(*amax, e4m3);
  if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0 &&
      threadIdx.y == 0)
    *dequant = 1.0f / scale;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * 32;
  // gridDim.y is capped at 65535: blocks stride over the row tiles.
  for (int64_t r0 = static_cast<int64_t>(blockIdx.y) * 32; r0 < rows;
       r0 += static_cast<int64_t>(gridDim.y) * 32) {
    for (int dy = threadIdx.y; dy < 32; dy += blockDim.y) {
      const int64_t r = r0 + dy, c = c0 + threadIdx.x;
      if (r < rows && c < cols) {
        const uint8_t code =
            fp8Bits(roundFp8(ld(x.p, x.dt, r * cols + c) * scale, e4m3), e4m3);
        if (transpose)
          tile[dy][threadIdx.x] = code;
        else
          bytes[r * cols + c] = code;
      }
    }
    if (!transpose)
      continue;
    __syncthreads();
    // Thread x now walks the tile's rows: consecutive threads write
    // consecutive bytes of the transposed [cols, rows] result.
    for (int dx = threadIdx.y; dx < 32; dx += blockDim.y) {
      const int64_t c = c0 + dx, r = r0 + threadIdx.x;
      if (r < rows && c < cols)
        bytes[c * rows + r] = tile[threadIdx.x][dx];
    }
    __syncthreads(); // the tile is rewritten by the next row tile
  }
}

__global__ void fp8DecodeKernel(const uint8_t *bytes, int64_t n, bool e4m3,
                                const float *amax, Tensor y) {
  const float scale = fp8Scale(*amax, e4m3);
  FORGE_FOR_EACH(i, n) {
    st(y.p, y.dt, i, fp8FromBits(bytes[i], e4m3) / scale);
  }
}

struct SfScalars {
  double k, weightSum;
};
__device__ SfScalars readSf(const float *st) {
  return {static_cast<double>(st[0]) + st[1],
          static_cast<double>(st[2]) + st[3]};
}
__device__ double sfWarm(double k, int64_t warmup) {
  return warmup > 0 ? fmin(1.0, k / static_cast<double>(warmup)) : 1.0;
}

__global__ void sfCountKernel(const float *state, Tensor lr, double beta1,
                              int64_t warmup, float *out) {
  SfScalars s = readSf(state);
  s.k += 1;
  s.weightSum += ld(lr.p, lr.dt, 0) * sfWarm(s.k, warmup) * (1 - beta1);
  out[0] = static_cast<float>(s.k);
  out[1] = static_cast<float>(s.k - out[0]);
  out[2] = static_cast<float>(s.weightSum);
  out[3] = static_cast<float>(s.weightSum - out[2]);
}

__global__ void sfUpdateKernel(Tensor p, Tensor g, Tensor z, Tensor v, Tensor x,
                               int64_t n, Tensor lrT, Tensor clipT,
                               const float *state, double beta1, double beta2,
                               double eps, double wd, int64_t warmup, Tensor np,
                               Tensor nz, Tensor nv, Tensor nx) {
  const SfScalars s = readSf(state);
  const double lr = ld(lrT.p, lrT.dt, 0), clip = ld(clipT.p, clipT.dt, 0);
  const double eta = lr * sfWarm(s.k, warmup);
  const double bc2 = 1 - pow(beta2, s.k);
  const double c = s.weightSum > 0 ? eta * (1 - beta1) / s.weightSum : 0.0;
  const bool first = s.k <= 1;
  FORGE_FOR_EACH(i, n) {
    // The CPU backend computes on f32 copies of each operand.
    const double gi =
        static_cast<double>(ld(g.p, g.dt, i)) * static_cast<float>(clip);
    const double vi = beta2 * ld(v.p, v.dt, i) + (1 - beta2) * gi * gi;
    double zi = first ? ld(p.p, p.dt, i) : ld(z.p, z.dt, i);
    zi -= eta * gi / (sqrt(vi / bc2) + eps);
    zi *= 1 - eta * wd;
    const double xi =
        first ? zi : ld(x.p, x.dt, i) + c * (zi - ld(x.p, x.dt, i));
    st(nv.p, nv.dt, i, static_cast<float>(vi));
    st(nz.p, nz.dt, i, static_cast<float>(zi));
    st(nx.p, nx.dt, i, static_cast<float>(xi));
    st(np.p, np.dt, i, static_cast<float>((1 - beta1) * zi + beta1 * xi));
  }
}

__global__ void sfInterpolateKernel(Tensor p, Tensor z, Tensor x, int64_t n,
                                    const float *state, double weight,
                                    Tensor y) {
  const bool none = readSf(state).k == 0;
  FORGE_FOR_EACH(i, n) {
    const float r = none ? ld(p.p, p.dt, i)
                         : static_cast<float>((1 - weight) * ld(z.p, z.dt, i) +
                                              weight * ld(x.p, x.dt, i));
    st(y.p, y.dt, i, r);
  }
}

__global__ void muonMomentumKernel(Tensor buf, Tensor g, Tensor clipT,
                                   int64_t n, float mu, Tensor nb, float *x) {
  const float clip = ld(clipT.p, clipT.dt, 0);
  FORGE_FOR_EACH(i, n) {
    const float b = mu * ld(buf.p, buf.dt, i) + ld(g.p, g.dt, i) * clip;
    st(nb.p, nb.dt, i, b);
    x[i] = b;
  }
}

__global__ void muonNormalizeKernel(Tensor buf, int64_t n,
                                    const double *partial, int64_t count,
                                    float *x) {
  double sq = 0;
  for (int64_t i = 0; i < count; ++i)
    sq += partial[i];
  const float denom = static_cast<float>(sqrt(sq)) + 1e-7f;
  FORGE_FOR_EACH(i, n) { x[i] = ld(buf.p, buf.dt, i) / denom; }
}

__global__ void muonApplyKernel(Tensor p, const float *u, int64_t n, Tensor lrT,
                                double wd, float scale, Tensor np) {
  const float rate = ld(lrT.p, lrT.dt, 0);
  const float decay = static_cast<float>(1 - rate * wd);
  FORGE_FOR_EACH(i, n) {
    st(np.p, np.dt, i, ld(p.p, p.dt, i) * decay - rate * (u[i] * scale));
  }
}

__global__ void scaleF32Kernel(const float *x, float a, float *y, int64_t n) {
  FORGE_FOR_EACH(i, n) { y[i] = a * x[i]; }
}

__global__ void countValidF32Kernel(const int64_t *labels, int64_t rows,
                                    int64_t ignore, float *valid) {
  float n = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    n += labels[r] != ignore ? 1.0f : 0.0f;
  n = blockSum(n);
  if (threadIdx.x == 0)
    *valid = n;
}

} // namespace

void rowLogSumExp(Tensor logits, int64_t rows, int64_t c, float *lse,
                  cudaStream_t s) {
  if (rows > 0)
    rowLseKernel<<<rows, rowThreads(c), 0, s>>>(logits, c, lse);
}
void zLoss(const float *lse, int64_t rows, Tensor loss, cudaStream_t s) {
  zLossKernel<<<1, 1, 0, s>>>(lse, rows, loss);
}
void zLossGrad(Tensor logits, const float *lse, int64_t rows, int64_t c,
               Tensor dloss, Tensor dlogits, cudaStream_t s) {
  if (rows * c > 0)
    zLossGradKernel<<<blocksFor(rows * c), kThreads, 0, s>>>(logits, lse, rows,
                                                             c, dloss, dlogits);
}
void chunkRowTerms(const float *logits, const float *lse, const int64_t *labels,
                   int64_t first, int64_t n, int64_t v, int64_t ignore,
                   float *rowCe, float *rowZ, ErrorSlot *err, int step,
                   cudaStream_t s) {
  if (n > 0)
    chunkRowTermsKernel<<<blocksFor(n), kThreads, 0, s>>>(
        logits, lse, labels, first, n, v, ignore, rowCe, rowZ, err, step);
}
void chunkedLoss(const float *rowCe, const float *rowZ, const int64_t *labels,
                 int64_t rows, int64_t ignore, double zWeight, Tensor loss,
                 cudaStream_t s) {
  chunkedLossKernel<<<1, 1, 0, s>>>(rowCe, rowZ, labels, rows, ignore, zWeight,
                                    loss);
}
void chunkLogitsGrad(float *logits, const float *lse, const int64_t *labels,
                     int64_t first, int64_t n, int64_t v, int64_t rows,
                     int64_t ignore, double zWeight, Tensor dloss,
                     float *validScratch, cudaStream_t s) {
  countValidF32Kernel<<<1, 1024, 0, s>>>(labels, rows, ignore, validScratch);
  if (n * v > 0)
    chunkLogitsGradKernel<<<blocksFor(n * v), kThreads, 0, s>>>(
        logits, lse, labels, first, n, v, rows, ignore, zWeight, dloss,
        validScratch);
}
void fp8Cast(Tensor x, int64_t n, bool e4m3, Tensor y, float *amax,
             cudaStream_t s) {
  cudaMemsetAsync(amax, 0, sizeof(float), s);
  if (n > 0) {
    amaxKernel<<<blocksFor(n), kThreads, 0, s>>>(x, n, amax);
    fp8CastKernel<<<blocksFor(n), kThreads, 0, s>>>(x, n, e4m3, y, amax);
  }
}
void fp8Amax(Tensor x, int64_t n, float *amax, cudaStream_t s) {
  cudaMemsetAsync(amax, 0, sizeof(float), s);
  if (n > 0)
    amaxKernel<<<blocksFor(n), kThreads, 0, s>>>(x, n, amax);
}
void fp8Encode(Tensor x, int64_t n, bool e4m3, const float *amax,
               uint8_t *bytes, cudaStream_t s) {
  if (n > 0)
    fp8EncodeKernel<<<blocksFor(n), kThreads, 0, s>>>(x, n, e4m3, amax, bytes);
}
void fp8EncodeMatrix(Tensor x, int64_t rows, int64_t cols, bool transpose,
                     bool e4m3, const float *amax, uint8_t *bytes,
                     float *dequant, cudaStream_t s) {
  if (rows <= 0 || cols <= 0)
    return;
  const dim3 grid(
      static_cast<unsigned>((cols + 31) / 32),
      static_cast<unsigned>(std::min<int64_t>((rows + 31) / 32, 65535)));
  fp8EncodeMatrixKernel<<<grid, dim3(32, 8), 0, s>>>(
      x, rows, cols, transpose, e4m3, amax, bytes, dequant);
}
void fp8Decode(const uint8_t *bytes, int64_t n, bool e4m3, const float *amax,
               Tensor y, cudaStream_t s) {
  if (n > 0)
    fp8DecodeKernel<<<blocksFor(n), kThreads, 0, s>>>(bytes, n, e4m3, amax, y);
}
void scheduleFreeCount(const float *state, Tensor lr, double beta1,
                       int64_t warmup, float *newState, cudaStream_t s) {
  sfCountKernel<<<1, 1, 0, s>>>(state, lr, beta1, warmup, newState);
}
void scheduleFreeUpdate(Tensor p, Tensor g, Tensor z, Tensor v, Tensor x,
                        int64_t n, Tensor lr, Tensor clip, const float *state,
                        double beta1, double beta2, double eps, double wd,
                        int64_t warmup, Tensor np, Tensor nz, Tensor nv,
                        Tensor nx, cudaStream_t s) {
  if (n > 0)
    sfUpdateKernel<<<blocksFor(n), kThreads, 0, s>>>(
        p, g, z, v, x, n, lr, clip, state, beta1, beta2, eps, wd, warmup, np,
        nz, nv, nx);
}
void scheduleFreeInterpolate(Tensor p, Tensor z, Tensor x, int64_t n,
                             const float *state, double weight, Tensor y,
                             cudaStream_t s) {
  if (n > 0)
    sfInterpolateKernel<<<blocksFor(n), kThreads, 0, s>>>(p, z, x, n, state,
                                                          weight, y);
}
void muonMomentum(Tensor buf, Tensor g, Tensor clip, int64_t n, float mu,
                  Tensor nb, float *x, cudaStream_t s) {
  if (n > 0)
    muonMomentumKernel<<<blocksFor(n), kThreads, 0, s>>>(buf, g, clip, n, mu,
                                                         nb, x);
}
void muonNormalize(Tensor buf, int64_t n, const double *partial, int64_t count,
                   float *x, cudaStream_t s) {
  if (n > 0)
    muonNormalizeKernel<<<blocksFor(n), kThreads, 0, s>>>(buf, n, partial,
                                                          count, x);
}
void muonApply(Tensor p, const float *u, int64_t n, Tensor lr, double wd,
               float scale, Tensor np, cudaStream_t s) {
  if (n > 0)
    muonApplyKernel<<<blocksFor(n), kThreads, 0, s>>>(p, u, n, lr, wd, scale,
                                                      np);
}
void scaleF32(const float *x, float a, float *y, int64_t n, cudaStream_t s) {
  if (n > 0)
    scaleF32Kernel<<<blocksFor(n), kThreads, 0, s>>>(x, a, y, n);
}

} // namespace forge::cuda
