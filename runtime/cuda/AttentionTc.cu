//===- AttentionTc.cu - Attention on tensor cores (bf16/f16) --------------===//
//
// FlashAttention-2's tiling for bf16 and f16 storage with head dimension 64
// or 128: a block of four warps takes 64 rows (16 per warp) and walks the
// other side's rows in tiles through shared memory, so each K/V (or Q/dO)
// tile is read from memory once per 64 rows instead of once per row; the
// products run on tensor cores (WMMA, f32 accumulation) and the softmax in
// f32.
//
// - forward: per query tile, S = Q K^T, online softmax (running max and
//   sum per row), O += P V; O and the log-sum-exp are written at the end.
// - backward, two passes as the row kernels in Kernels.cu, each summing in
//   a fixed order (no atomics): per query tile, dQ = sum over key tiles of
//   dS K; per key tile of a kv head, dV = sum of P^T dO and dK = sum of
//   dS^T Q over the query heads of its group and their query tiles. P is
//   recomputed from the log-sum-exp, dS = P (dP - D) with D = rowsum(dO O).
//
// As FlashAttention does, P and dS are rounded to the storage type before
// their products (the tensor cores take 16-bit operands); the rest is f32.
// The tiles' masks are the row kernels' (`visible`: causal, documents),
// and rows past the sequence are zero and invisible.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Kernels.h"
#include "runtime/cuda/KernelsCommon.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <initializer_list>
#include <type_traits>

namespace forge::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kRows = 64; ///< a block's rows: 16 per warp
constexpr int kThreadsTc = 128;
constexpr int kQueryTileKV = 32; ///< query rows per step of the dK/dV pass

template <typename T> __device__ __forceinline__ T fromF(float x);
template <> __device__ __forceinline__ __nv_bfloat16 fromF(float x) {
  return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half fromF(float x) {
  return __float2half_rn(x);
}
template <typename T> __device__ __forceinline__ float toF(T x);
template <> __device__ __forceinline__ float toF(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <> __device__ __forceinline__ float toF(__half x) {
  return __half2float(x);
}

__device__ __forceinline__ bool seen(const AttentionShape &sh,
                                     const int32_t *doc, int64_t bi, int64_t i,
                                     int64_t j) {
  if (i >= sh.s || j >= sh.s || (sh.causal && j > i))
    return false;
  return !doc || doc[bi * sh.s + i] == doc[bi * sh.s + j];
}

/// Rows [r0, r0 + n) of head `head` of a [b, s, heads, HD] tensor into
/// `tile` [n][HD]; rows past the sequence are zero.
template <typename T, int HD>
__device__ void loadRows(const T *x, int64_t bi, int64_t r0, int n,
                         int64_t heads, int64_t head, int64_t s, T *tile) {
  for (int idx = threadIdx.x; idx < n * HD; idx += blockDim.x) {
    const int r = idx / HD, c = idx % HD;
    const int64_t i = r0 + r;
    tile[idx] = i < s ? x[((bi * s + i) * heads + head) * HD + c] : fromF<T>(0);
  }
}

/// The block's tile: rows [r0, r0 + 64) of head `head` of sequence `bi`
/// (blockIdx.x runs over the tiles first, then the heads, then the batch).
struct Tile {
  int64_t r0, head, bi;
};
__device__ Tile blockTile(const AttentionShape &sh, int64_t heads) {
  const int64_t tiles = (sh.s + kRows - 1) / kRows;
  return {(blockIdx.x % tiles) * kRows, (blockIdx.x / tiles) % heads,
          blockIdx.x / (tiles * heads)};
}

/// A part of the dynamic shared memory, at a byte offset.
template <typename U> __device__ U *part(unsigned char *smem, size_t offset) {
  return reinterpret_cast<U *>(smem + offset);
}

__device__ void zero(float *x, int n) {
  for (int idx = threadIdx.x; idx < n; idx += blockDim.x)
    x[idx] = 0.0f;
}

/// The keys a query tile starting at q0 can see end here (causal: none
/// past its last row).
__device__ int64_t keyEnd(const AttentionShape &sh, int64_t q0) {
  return sh.causal && q0 + kRows < sh.s ? q0 + kRows : sh.s;
}

/// The next K and V tiles into shared memory, once every warp is done with
/// the last ones.
template <typename T, int HD>
__device__ void nextKeys(const T *k, const T *v, const AttentionShape &sh,
                         int64_t bi, int64_t kh, int64_t k0, T *ks, T *vs) {
  __syncthreads();
  loadRows<T, HD>(k, bi, k0, kRows, sh.kv, kh, sh.s, ks);
  loadRows<T, HD>(v, bi, k0, kRows, sh.kv, kh, sh.s, vs);
  __syncthreads();
}

/// Row i of head `head` of a [b, s, heads, HD] tensor = scale * `row`
/// (f32, HD values); one warp.
template <typename T, int HD>
__device__ void storeRow(T *x, int64_t bi, int64_t i, int64_t heads,
                         int64_t head, int64_t s, const float *row,
                         float scale) {
  const int64_t base = ((bi * s + i) * heads + head) * HD;
  for (int c = threadIdx.x % 32; c < HD; c += 32)
    x[base + c] = fromF<T>(row[c] * scale);
}

/// out[16][N] (row-major, ldm N) = A[16][K] B, with A row-major (ldm lda)
/// and B either row-major [K][N] (ldm ldb) or, with `bT`, the transpose of
/// a row-major [N][K] (ldm ldb); `accumulate` adds to what out holds. One
/// warp.
template <typename T, int K, int N, bool bT>
__device__ void warpMatmul(const T *a, int lda, const T *b, int ldb, float *out,
                           int ldo, bool accumulate) {
  using Layout =
      typename std::conditional<bT, wmma::col_major, wmma::row_major>::type;
  for (int nb = 0; nb < N / 16; ++nb) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    if (accumulate)
      wmma::load_matrix_sync(acc, out + nb * 16, ldo, wmma::mem_row_major);
    else
      wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < K / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, Layout> fb;
      wmma::load_matrix_sync(fa, a + kk * 16, lda);
      // Row-major B: element (k, n) at b[k ldb + n]; transposed: b[n ldb + k].
      wmma::load_matrix_sync(
          fb, bT ? b + nb * 16 * ldb + kk * 16 : b + kk * 16 * ldb + nb * 16,
          ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + nb * 16, acc, ldo, wmma::mem_row_major);
  }
}

template <typename T, int HD> struct FwdSmem {
  static constexpr size_t q = 0, k = q + kRows * HD * sizeof(T),
                          v = k + kRows * HD * sizeof(T),
                          p = v + kRows * HD * sizeof(T),
                          s = p + kRows * kRows * sizeof(T),
                          o = s + kRows * kRows * sizeof(float),
                          bytes = o + kRows * HD * sizeof(float);
};

template <typename T, int HD>
__global__ void __launch_bounds__(kThreadsTc)
    attentionTcKernel(const T *q, const T *k, const T *v, const int32_t *doc,
                      AttentionShape sh, T *o, float *lse) {
  extern __shared__ __align__(128) unsigned char smem[];
  using L = FwdSmem<T, HD>;
  T *qs = part<T>(smem, L::q), *ks = part<T>(smem, L::k),
    *vs = part<T>(smem, L::v), *ps = part<T>(smem, L::p);
  float *ss = part<float>(smem, L::s), *os = part<float>(smem, L::o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const Tile t = blockTile(sh, sh.h);
  const int64_t q0 = t.r0, hi = t.head, bi = t.bi, kh = hi / (sh.h / sh.kv);
  loadRows<T, HD>(q, bi, q0, kRows, sh.h, hi, sh.s, qs);
  zero(os, kRows * HD);
  // This warp's rows: running max and sum (the same in every lane).
  float mx[16], sum[16];
#pragma unroll
  for (int r = 0; r < 16; ++r)
    mx[r] = -INFINITY, sum[r] = 0.0f;
  const T *qw = qs + warp * 16 * HD;
  float *sw = ss + warp * 16 * kRows, *ow = os + warp * 16 * HD;
  T *pw = ps + warp * 16 * kRows;
  for (int64_t k0 = 0; k0 < keyEnd(sh, q0); k0 += kRows) {
    nextKeys<T, HD>(k, v, sh, bi, kh, k0, ks, vs);
    warpMatmul<T, HD, kRows, true>(qw, HD, ks, HD, sw, kRows, false);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int64_t i = q0 + warp * 16 + r;
      float sc[2], top = -INFINITY;
      for (int h = 0; h < 2; ++h) {
        const int c = lane + 32 * h;
        sc[h] = seen(sh, doc, bi, i, k0 + c) ? sw[r * kRows + c] * sh.scale
                                             : -INFINITY;
        top = fmaxf(top, sc[h]);
      }
      const float nm = fmaxf(mx[r], warpMax(top));
      // Nothing seen yet: the row keeps zero weight (and no NaN).
      const bool none = nm == -INFINITY;
      const float corr = none ? 1.0f : expf(mx[r] - nm);
      float p[2];
      for (int h = 0; h < 2; ++h)
        p[h] = none ? 0.0f : expf(sc[h] - nm);
      sum[r] = sum[r] * corr + warpSum(p[0] + p[1]);
      mx[r] = nm;
      pw[r * kRows + lane] = fromF<T>(p[0]);
      pw[r * kRows + lane + 32] = fromF<T>(p[1]);
      for (int c = lane; c < HD; c += 32)
        ow[r * HD + c] *= corr;
    }
    __syncwarp();
    warpMatmul<T, kRows, HD, false>(pw, kRows, vs, HD, ow, HD, true);
    __syncwarp();
  }
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int64_t i = q0 + warp * 16 + r;
    if (i >= sh.s)
      continue;
    // Every row sees at least itself: sum > 0.
    storeRow<T, HD>(o, bi, i, sh.h, hi, sh.s, ow + r * HD, 1.0f / sum[r]);
    if (lane == 0)
      lse[(bi * sh.h + hi) * sh.s + i] = mx[r] + logf(sum[r]);
  }
}

template <typename T, int HD> struct GradQSmem {
  static constexpr size_t q = 0, dO = q + kRows * HD * sizeof(T),
                          k = dO + kRows * HD * sizeof(T),
                          v = k + kRows * HD * sizeof(T),
                          ds = v + kRows * HD * sizeof(T),
                          s = ds + kRows * kRows * sizeof(T),
                          dp = s + kRows * kRows * sizeof(float),
                          dq = dp + kRows * kRows * sizeof(float),
                          bytes = dq + kRows * HD * sizeof(float);
};

/// dQ of a query tile, and D = rowsum(dO O) into dRow for the dK/dV pass.
template <typename T, int HD>
__global__ void __launch_bounds__(kThreadsTc)
    attentionTcGradQKernel(const T *q, const T *k, const T *v,
                           const int32_t *doc, AttentionShape sh, const T *o,
                           const float *lse, const T *dout, T *dq,
                           float *dRow) {
  extern __shared__ __align__(128) unsigned char smem[];
  using L = GradQSmem<T, HD>;
  T *qs = part<T>(smem, L::q), *dos = part<T>(smem, L::dO),
    *ks = part<T>(smem, L::k), *vs = part<T>(smem, L::v),
    *dss = part<T>(smem, L::ds);
  float *ss = part<float>(smem, L::s), *dps = part<float>(smem, L::dp),
        *dqs = part<float>(smem, L::dq);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const Tile t = blockTile(sh, sh.h);
  const int64_t q0 = t.r0, hi = t.head, bi = t.bi, kh = hi / (sh.h / sh.kv);
  loadRows<T, HD>(q, bi, q0, kRows, sh.h, hi, sh.s, qs);
  loadRows<T, HD>(dout, bi, q0, kRows, sh.h, hi, sh.s, dos);
  zero(dqs, kRows * HD);
  // Per row of this warp: its log-sum-exp and D.
  float rowLse[16], rowD[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int64_t i = q0 + warp * 16 + r;
    float d = 0.0f;
    if (i < sh.s) {
      const int64_t base = ((bi * sh.s + i) * sh.h + hi) * HD;
      for (int c = lane; c < HD; c += 32)
        d += toF(dout[base + c]) * toF(o[base + c]);
    }
    d = warpSum(d);
    const int64_t li = (bi * sh.h + hi) * sh.s + i;
    rowD[r] = d;
    rowLse[r] = i < sh.s ? lse[li] : 0.0f;
    if (lane == 0 && i < sh.s)
      dRow[li] = d;
  }
  const T *qw = qs + warp * 16 * HD, *dow = dos + warp * 16 * HD;
  float *sw = ss + warp * 16 * kRows, *dpw = dps + warp * 16 * kRows,
        *dqw = dqs + warp * 16 * HD;
  T *dsw = dss + warp * 16 * kRows;
  for (int64_t k0 = 0; k0 < keyEnd(sh, q0); k0 += kRows) {
    nextKeys<T, HD>(k, v, sh, bi, kh, k0, ks, vs);
    warpMatmul<T, HD, kRows, true>(qw, HD, ks, HD, sw, kRows, false);
    warpMatmul<T, HD, kRows, true>(dow, HD, vs, HD, dpw, kRows, false);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int64_t i = q0 + warp * 16 + r;
      for (int h = 0; h < 2; ++h) {
        const int c = lane + 32 * h;
        const float p = seen(sh, doc, bi, i, k0 + c)
                            ? expf(sw[r * kRows + c] * sh.scale - rowLse[r])
                            : 0.0f;
        dsw[r * kRows + c] =
            fromF<T>(p * (dpw[r * kRows + c] - rowD[r]) * sh.scale);
      }
    }
    __syncwarp();
    warpMatmul<T, kRows, HD, false>(dsw, kRows, ks, HD, dqw, HD, true);
    __syncwarp();
  }
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int64_t i = q0 + warp * 16 + r;
    if (i < sh.s)
      storeRow<T, HD>(dq, bi, i, sh.h, hi, sh.s, dqw + r * HD, 1.0f);
  }
}

template <typename T, int HD> struct GradKVSmem {
  static constexpr int Q = kQueryTileKV;
  static constexpr size_t k = 0, v = k + kRows * HD * sizeof(T),
                          q = v + kRows * HD * sizeof(T),
                          dO = q + Q * HD * sizeof(T),
                          p = dO + Q * HD * sizeof(T),
                          ds = p + kRows * Q * sizeof(T),
                          s = ds + kRows * Q * sizeof(T),
                          dp = s + kRows * Q * sizeof(float),
                          dk = dp + kRows * Q * sizeof(float),
                          dv = dk + kRows * HD * sizeof(float),
                          lse = dv + kRows * HD * sizeof(float),
                          d = lse + Q * sizeof(float),
                          bytes = d + Q * sizeof(float);
};

/// dK and dV of a key tile of kv head kh: over the query heads of its
/// group and, per head, the query tiles that can see the keys, in order.
template <typename T, int HD>
__global__ void __launch_bounds__(kThreadsTc)
    attentionTcGradKVKernel(const T *q, const T *k, const T *v,
                            const int32_t *doc, AttentionShape sh,
                            const float *lse, const T *dout, const float *dRow,
                            T *dk, T *dv) {
  extern __shared__ __align__(128) unsigned char smem[];
  using L = GradKVSmem<T, HD>;
  constexpr int Q = L::Q;
  T *ks = part<T>(smem, L::k), *vs = part<T>(smem, L::v),
    *qs = part<T>(smem, L::q), *dos = part<T>(smem, L::dO),
    *pts = part<T>(smem, L::p), *dsts = part<T>(smem, L::ds);
  float *sts = part<float>(smem, L::s), *dpts = part<float>(smem, L::dp),
        *dks = part<float>(smem, L::dk), *dvs = part<float>(smem, L::dv),
        *lses = part<float>(smem, L::lse), *ds_ = part<float>(smem, L::d);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const Tile t = blockTile(sh, sh.kv);
  const int64_t k0 = t.r0, kh = t.head, bi = t.bi, rep = sh.h / sh.kv;
  loadRows<T, HD>(k, bi, k0, kRows, sh.kv, kh, sh.s, ks);
  loadRows<T, HD>(v, bi, k0, kRows, sh.kv, kh, sh.s, vs);
  zero(dks, kRows * HD);
  zero(dvs, kRows * HD);
  const T *kw = ks + warp * 16 * HD, *vw = vs + warp * 16 * HD;
  float *stw = sts + warp * 16 * Q, *dptw = dpts + warp * 16 * Q,
        *dkw = dks + warp * 16 * HD, *dvw = dvs + warp * 16 * HD;
  T *ptw = pts + warp * 16 * Q, *dstw = dsts + warp * 16 * Q;
  // Causal: query rows before the tile's first key see none of it.
  const int64_t first = sh.causal ? k0 / Q * Q : 0;
  for (int64_t hi = kh * rep; hi < (kh + 1) * rep; ++hi)
    for (int64_t q0 = first; q0 < sh.s; q0 += Q) {
      __syncthreads(); // every warp is done with the last Q/dO tile
      loadRows<T, HD>(q, bi, q0, Q, sh.h, hi, sh.s, qs);
      loadRows<T, HD>(dout, bi, q0, Q, sh.h, hi, sh.s, dos);
      for (int c = threadIdx.x; c < Q; c += blockDim.x) {
        const int64_t i = q0 + c, li = (bi * sh.h + hi) * sh.s + i;
        lses[c] = i < sh.s ? lse[li] : 0.0f;
        ds_[c] = i < sh.s ? dRow[li] : 0.0f;
      }
      __syncthreads();
      // S^T [keys][queries] = K Q^T; dP^T = V dO^T.
      warpMatmul<T, HD, Q, true>(kw, HD, qs, HD, stw, Q, false);
      warpMatmul<T, HD, Q, true>(vw, HD, dos, HD, dptw, Q, false);
      __syncwarp();
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const int64_t j = k0 + warp * 16 + r, i = q0 + lane;
        const float p = seen(sh, doc, bi, i, j)
                            ? expf(stw[r * Q + lane] * sh.scale - lses[lane])
                            : 0.0f;
        ptw[r * Q + lane] = fromF<T>(p);
        dstw[r * Q + lane] =
            fromF<T>(p * (dptw[r * Q + lane] - ds_[lane]) * sh.scale);
      }
      __syncwarp();
      // dV += P^T dO; dK += dS^T Q.
      warpMatmul<T, Q, HD, false>(ptw, Q, dos, HD, dvw, HD, true);
      warpMatmul<T, Q, HD, false>(dstw, Q, qs, HD, dkw, HD, true);
      __syncwarp();
    }
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int64_t j = k0 + warp * 16 + r;
    if (j >= sh.s)
      continue;
    storeRow<T, HD>(dk, bi, j, sh.kv, kh, sh.s, dkw + r * HD, 1.0f);
    storeRow<T, HD>(dv, bi, j, sh.kv, kh, sh.s, dvw + r * HD, 1.0f);
  }
}

/// The devices whose launch decisions are kept; beyond them every launch
/// decides afresh (a query and an attribute call, nothing wrong).
constexpr int kDecidedDevices = 64;
using LaunchStates = int[kDecidedDevices];

/// Whether `kernel` can take `bytes` of dynamic shared memory on the current
/// device, raising its limit there: decided at the first launch on each
/// device and kept in `states` (0 undecided, 1 yes, -1 no), so later
/// launches query nothing. Per device because cudaFuncSetAttribute only
/// raises the limit on the device current when it is called.
template <typename K>
bool launchable(K kernel, size_t bytes, LaunchStates &states) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess)
    return false;
  int scratch = 0;
  int &state = device < kDecidedDevices ? states[device] : scratch;
  if (state == 0) {
    int optin = 0;
    const bool fits =
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                               device) == cudaSuccess &&
        static_cast<size_t>(optin) >= bytes &&
        cudaFuncSetAttribute(kernel,
                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes)) == cudaSuccess;
    state = fits ? 1 : -1;
  }
  return state > 0;
}

template <typename T, int HD>
bool forward(Tensor q, Tensor k, Tensor v, const int32_t *doc,
             const AttentionShape &sh, Tensor o, float *lse, cudaStream_t s) {
  static LaunchStates state = {};
  constexpr size_t bytes = FwdSmem<T, HD>::bytes;
  if (!launchable(attentionTcKernel<T, HD>, bytes, state))
    return false;
  const int64_t blocks = sh.b * sh.h * ((sh.s + kRows - 1) / kRows);
  attentionTcKernel<T, HD>
      <<<static_cast<unsigned>(blocks), kThreadsTc, bytes, s>>>(
          static_cast<const T *>(q.p), static_cast<const T *>(k.p),
          static_cast<const T *>(v.p), doc, sh, static_cast<T *>(o.p), lse);
  return true;
}

template <typename T, int HD>
bool backward(Tensor q, Tensor k, Tensor v, const int32_t *doc,
              const AttentionShape &sh, Tensor o, const float *lse, Tensor dout,
              Tensor dq, Tensor dk, Tensor dv, float *dRow, cudaStream_t s) {
  static LaunchStates stateQ = {}, stateKV = {};
  constexpr size_t bytesQ = GradQSmem<T, HD>::bytes,
                   bytesKV = GradKVSmem<T, HD>::bytes;
  if (!launchable(attentionTcGradQKernel<T, HD>, bytesQ, stateQ) ||
      !launchable(attentionTcGradKVKernel<T, HD>, bytesKV, stateKV))
    return false;
  const int64_t tiles = (sh.s + kRows - 1) / kRows;
  const auto *tq = static_cast<const T *>(q.p);
  const auto *tk = static_cast<const T *>(k.p);
  const auto *tv = static_cast<const T *>(v.p);
  const auto *tdo = static_cast<const T *>(dout.p);
  attentionTcGradQKernel<T, HD>
      <<<static_cast<unsigned>(sh.b * sh.h * tiles), kThreadsTc, bytesQ, s>>>(
          tq, tk, tv, doc, sh, static_cast<const T *>(o.p), lse, tdo,
          static_cast<T *>(dq.p), dRow);
  attentionTcGradKVKernel<T, HD>
      <<<static_cast<unsigned>(sh.b * sh.kv * tiles), kThreadsTc, bytesKV, s>>>(
          tq, tk, tv, doc, sh, lse, tdo, dRow, static_cast<T *>(dk.p),
          static_cast<T *>(dv.p));
  return true;
}

/// The storage type all the tensors share, if it is a 16-bit one.
bool sameHalfType(std::initializer_list<Tensor> ts, Dt &dt) {
  dt = ts.begin()->dt;
  if (dt != Dt::bf16 && dt != Dt::f16)
    return false;
  for (const Tensor &t : ts)
    if (t.dt != dt)
      return false;
  return true;
}

} // namespace

bool attentionOnTensorCores(Tensor q, Tensor k, Tensor v, const int32_t *doc,
                            const AttentionShape &sh, Tensor o, float *lse,
                            cudaStream_t s) {
  Dt dt;
  if (!sameHalfType({q, k, v, o}, dt) || (sh.hd != 64 && sh.hd != 128) ||
      sh.s <= 0)
    return false;
  if (dt == Dt::bf16)
    return sh.hd == 64
               ? forward<__nv_bfloat16, 64>(q, k, v, doc, sh, o, lse, s)
               : forward<__nv_bfloat16, 128>(q, k, v, doc, sh, o, lse, s);
  return sh.hd == 64 ? forward<__half, 64>(q, k, v, doc, sh, o, lse, s)
                     : forward<__half, 128>(q, k, v, doc, sh, o, lse, s);
}

bool attentionGradOnTensorCores(Tensor q, Tensor k, Tensor v,
                                const int32_t *doc, const AttentionShape &sh,
                                Tensor o, const float *lse, Tensor dout,
                                Tensor dq, Tensor dk, Tensor dv, float *dRow,
                                cudaStream_t s) {
  Dt dt;
  if (!sameHalfType({q, k, v, o, dout, dq, dk, dv}, dt) ||
      (sh.hd != 64 && sh.hd != 128) || sh.s <= 0)
    return false;
  if (dt == Dt::bf16)
    return sh.hd == 64
               ? backward<__nv_bfloat16, 64>(q, k, v, doc, sh, o, lse, dout, dq,
                                             dk, dv, dRow, s)
               : backward<__nv_bfloat16, 128>(q, k, v, doc, sh, o, lse, dout,
                                              dq, dk, dv, dRow, s);
  return sh.hd == 64 ? backward<__half, 64>(q, k, v, doc, sh, o, lse, dout, dq,
                                            dk, dv, dRow, s)
                     : backward<__half, 128>(q, k, v, doc, sh, o, lse, dout, dq,
                                             dk, dv, dRow, s);
}

} // namespace forge::cuda
