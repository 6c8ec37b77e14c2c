//===- FastKernels.cpp - Optimized CPU kernels ----------------------------===//

#include "runtime/cpu/FastKernels.h"

#include <cblas-openblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

namespace forge::cpu::fast {

namespace {

/// Set on the threads of a parallel region: a parallelFor inside one runs
/// inline (the pool is taken).
thread_local bool tInRegion = false;

/// One worker per core but the caller's, started once: a step runs
/// hundreds of small kernels, and starting threads for each cost more than
/// some of the kernels. Every worker takes part in every region (claiming
/// indices until none is left) and checks out before the caller returns,
/// so no worker can see a finished region's function.
class Pool {
public:
  static Pool &get() {
    // Never destroyed: at exit the workers just sleep (and a forked child,
    // whose copy names the parent's threads, must not join them).
    static Pool *pool = new Pool;
    return *pool;
  }
  /// 1 in a process forked after the pool started: its workers stayed
  /// behind in the parent.
  int64_t threads() const {
    return getpid() == pid_ ? static_cast<int64_t>(workers_.size()) + 1 : 1;
  }

  /// Runs fn(i), i in [0, n), on the caller and the workers. False (and
  /// nothing run) when another thread holds the pool.
  bool run(int64_t n, const std::function<void(int64_t)> &fn) {
    std::unique_lock<std::mutex> region(busy_, std::try_to_lock);
    if (!region.owns_lock())
      return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      checkedOut_ = 0;
      ++generation_;
    }
    wake_.notify_all();
    claim();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] {
      return checkedOut_ == static_cast<int64_t>(workers_.size());
    });
    fn_ = nullptr;
    return true;
  }

private:
  Pool() : pid_(getpid()) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned t = 1; t < cores; ++t)
      workers_.emplace_back([this] { loop(); });
  }
  void claim() {
    tInRegion = true;
    for (int64_t i = next_++; i < n_; i = next_++)
      (*fn_)(i);
    tInRegion = false;
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      claim();
      std::lock_guard<std::mutex> lock(mu_);
      if (++checkedOut_ == static_cast<int64_t>(workers_.size()))
        done_.notify_one();
    }
  }

  pid_t pid_;
  std::vector<std::thread> workers_;
  std::mutex busy_; ///< held by the thread running a region
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)> *fn_ = nullptr;
  int64_t n_ = 0, checkedOut_ = 0;
  std::atomic<int64_t> next_{0};
  uint64_t generation_ = 0;
};

} // namespace

void parallelFor(int64_t n, const std::function<void(int64_t)> &fn) {
  auto serial = [&] {
    for (int64_t i = 0; i < n; ++i)
      fn(i);
  };
  if (n <= 1 || tInRegion) {
    serial();
    return;
  }
  Pool &pool = Pool::get();
  if (pool.threads() <= 1) {
    serial();
    return;
  }
  // Our threads already use every core: BLAS calls inside them run
  // single-threaded instead of oversubscribing the machine.
  int blasThreads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (!pool.run(n, fn))
    serial(); // another thread's region holds the cores
  openblas_set_num_threads(blasThreads);
}

namespace {

constexpr int64_t kBlock = 128;

/// Elements per task of a dtype conversion: small conversions (norm
/// weights, biases) stay on the caller.
constexpr int64_t kConvertChunk = 1 << 16;

// The build targets baseline x86-64 (SSE2) so one binary runs anywhere;
// the hot element-wise loops are compiled again for AVX2 and AVX-512 and
// the loader picks the widest the CPU has (GCC function multiversioning).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FORGE_SIMD_CLONES                                                      \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FORGE_SIMD_CLONES
#endif

/// Lanes of the partial sums and maxima below: wide enough for AVX-512,
/// and a fixed order of the float additions whatever the ISA.
constexpr int64_t kLanes = 16;

/// e^x in float, vectorizable (no libm call, no branch): x = n ln2 + r with
/// |r| <= ln2 / 2, e^r by Cephes' degree-6 polynomial, 2^n through the
/// exponent bits. Relative error below 2e-7 (FastKernels_test checks it
/// against std::exp); inputs are clamped to the normal range, so e^-inf
/// is 1e-38, not 0.
[[gnu::always_inline]] inline float expApprox(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round x / ln2 to the nearest integer by adding 1.5 * 2^23: the sum's
  // low mantissa bits then hold n.
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  const int32_t ni = bits - 0x4B400000;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t scaleBits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &scaleBits, sizeof(scale));
  return p * scale;
}

/// The largest of c floats.
FORGE_SIMD_CLONES float rowMax(const float *l, int64_t c) {
  float m[kLanes];
  for (int64_t k = 0; k < kLanes; ++k)
    m[k] = -INFINITY;
  int64_t j = 0;
  for (; j + kLanes <= c; j += kLanes)
    for (int64_t k = 0; k < kLanes; ++k)
      m[k] = l[j + k] > m[k] ? l[j + k] : m[k];
  float out = -INFINITY;
  for (int64_t k = 0; k < kLanes; ++k)
    out = m[k] > out ? m[k] : out;
  for (; j < c; ++j)
    out = l[j] > out ? l[j] : out;
  return out;
}

/// sum_j e^(l[j] - mx), accumulated in kLanes float partial sums (each
/// holds at most c / kLanes terms below 1) and added in double.
FORGE_SIMD_CLONES double rowSumExp(const float *l, int64_t c, float mx) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= c; j += kLanes)
    for (int64_t k = 0; k < kLanes; ++k)
      acc[k] += expApprox(l[j + k] - mx);
  double sum = 0;
  for (int64_t k = 0; k < kLanes; ++k)
    sum += acc[k];
  for (; j < c; ++j)
    sum += expApprox(l[j] - mx);
  return sum;
}

/// d[j] = scale * e^(l[j] - mx): a row of softmax's gradient.
FORGE_SIMD_CLONES void rowScaledExp(const float *l, int64_t c, float mx,
                                    float scale, float *d) {
  for (int64_t j = 0; j < c; ++j)
    d[j] = scale * expApprox(l[j] - mx);
}

FORGE_SIMD_CLONES double sumSquaresRange(const float *x, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int64_t k = 0; k < 8; ++k)
      acc[k] += static_cast<double>(x[i + k]) * x[i + k];
  double sum = 0;
  for (int64_t k = 0; k < 8; ++k)
    sum += acc[k];
  for (; i < n; ++i)
    sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

/// sum_j x[j]^2 and sum_j dy[j] w[j] x[j] of one row, in double lanes.
FORGE_SIMD_CLONES void rmsRowSums(const float *x, const float *w,
                                  const float *dy, int64_t d, double &ms,
                                  double &dot) {
  double a[8] = {}, b[8] = {};
  int64_t j = 0;
  for (; j + 8 <= d; j += 8)
    for (int64_t k = 0; k < 8; ++k) {
      a[k] += static_cast<double>(x[j + k]) * x[j + k];
      b[k] += static_cast<double>(dy[j + k] * w[j + k]) * x[j + k];
    }
  ms = dot = 0;
  for (int64_t k = 0; k < 8; ++k) {
    ms += a[k];
    dot += b[k];
  }
  for (; j < d; ++j) {
    ms += static_cast<double>(x[j]) * x[j];
    dot += static_cast<double>(dy[j] * w[j]) * x[j];
  }
}

// The rows below scale in double, as the reference does: rounding once per
// element keeps their results the reference's, and data-parallel runs,
// whose Adam steps magnify tiny gradient differences, equal to one rank's.

/// y = x * inv * w over one row.
FORGE_SIMD_CLONES void rmsScaleRow(const float *x, const float *w, int64_t d,
                                   double inv, float *y) {
  for (int64_t j = 0; j < d; ++j)
    y[j] = static_cast<float>(x[j] * inv * w[j]);
}

/// One row of rmsnorm's VJP: dx += inv dy w - x c, dwPart += dy x inv.
FORGE_SIMD_CLONES void rmsGradRow(const float *x, const float *w,
                                  const float *dy, int64_t d, double inv,
                                  double c, float *dx, float *dwPart) {
  for (int64_t j = 0; j < d; ++j) {
    dx[j] += static_cast<float>(inv * dy[j] * w[j] - x[j] * c);
    dwPart[j] += static_cast<float>(dy[j] * x[j] * inv);
  }
}

FORGE_SIMD_CLONES void addRow(const float *x, int64_t d, float *y) {
  for (int64_t j = 0; j < d; ++j)
    y[j] += x[j];
}

FORGE_SIMD_CLONES void bf16ToF32Range(const uint16_t *x, int64_t n, float *y) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(x[i]) << 16;
    std::memcpy(&y[i], &u, sizeof(u));
  }
}

FORGE_SIMD_CLONES void f32ToBf16Range(const float *x, int64_t n, uint16_t *y) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], sizeof(u));
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quietNan = (u >> 16) | 0x40u;
    y[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quietNan
                                                                 : rounded);
  }
}

FORGE_SIMD_CLONES void siluRange(const float *x, int64_t n, float *y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = x[i] / (1.0f + expApprox(-x[i]));
}

FORGE_SIMD_CLONES void siluGradRange(const float *x, const float *dy, int64_t n,
                                     float *dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float sg = 1.0f / (1.0f + expApprox(-x[i]));
    dx[i] += dy[i] * sg * (1.0f + x[i] * (1.0f - sg));
  }
}

/// Copies head `h` of a [B, S, heads, hd] tensor at batch b into [S, hd]
/// f32 (converting bf16 on the way: no f32 copy of the whole tensor).
template <typename T>
void gather(const T *x, int64_t b, int64_t s, int64_t heads, int64_t h,
            int64_t hd, float *out) {
  for (int64_t i = 0; i < s; ++i) {
    const T *src = x + ((b * s + i) * heads + h) * hd;
    if constexpr (std::is_same_v<T, float>)
      std::copy_n(src, hd, out + i * hd);
    else
      bf16ToF32Range(src, hd, out + i * hd);
  }
}

/// Writes [S, hd] f32 back as head `h` of a [B, S, heads, hd] tensor.
template <typename T>
void store(const float *in, int64_t b, int64_t s, int64_t heads, int64_t h,
           int64_t hd, T *x) {
  for (int64_t i = 0; i < s; ++i) {
    T *dst = x + ((b * s + i) * heads + h) * hd;
    if constexpr (std::is_same_v<T, float>)
      std::copy_n(in + i * hd, hd, dst);
    else
      f32ToBf16Range(in + i * hd, hd, dst);
  }
}

bool masked(const ref::AttentionShape &sh, const int32_t *doc, int64_t b,
            int64_t i, int64_t j) {
  return (sh.causal && j > i) ||
         (doc && doc[b * sh.s + i] != doc[b * sh.s + j]);
}

/// Scores of queries [i0, i0+nb) against keys [0, kEnd), scaled and masked.
void scores(const float *qh, const float *kg, const ref::AttentionShape &sh,
            const int32_t *doc, int64_t b, int64_t i0, int64_t nb, int64_t kEnd,
            float *sc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, kEnd, sh.hd,
              static_cast<float>(sh.scale), qh + i0 * sh.hd, sh.hd, kg, sh.hd,
              0.0f, sc, kEnd);
  if (!doc) {
    // Causal only: each row ends at its own query.
    if (sh.causal)
      for (int64_t r = 0; r < nb; ++r)
        std::fill(sc + r * kEnd + std::min(kEnd, i0 + r + 1),
                  sc + (r + 1) * kEnd, -INFINITY);
    return;
  }
  for (int64_t r = 0; r < nb; ++r)
    for (int64_t j = 0; j < kEnd; ++j)
      if (masked(sh, doc, b, i0 + r, j))
        sc[r * kEnd + j] = -INFINITY;
}

/// Replaces a row of masked scores (-inf) by its softmax; returns the row's
/// log-sum-exp.
FORGE_SIMD_CLONES float softmaxRow(float *row, int64_t n) {
  const float mx = rowMax(row, n);
  float acc[kLanes] = {};
  int64_t j = 0;
  // Masked entries (-inf) become exactly 0, not e^-87.
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) {
      const float x = row[j + k];
      const float e = x == -INFINITY ? 0.0f : expApprox(x - mx);
      row[j + k] = e;
      acc[k] += e;
    }
  double sum = 0;
  for (int64_t k = 0; k < kLanes; ++k)
    sum += acc[k];
  for (; j < n; ++j) {
    row[j] = row[j] == -INFINITY ? 0.0f : expApprox(row[j] - mx);
    sum += row[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (j = 0; j < n; ++j)
    row[j] *= inv;
  return mx + static_cast<float>(std::log(sum));
}

template <typename T>
void attentionFwdT(const T *q, const T *k, const T *v, const int32_t *docIds,
                   const ref::AttentionShape &sh, T *o, float *lse) {
  const int64_t rep = sh.h / sh.kv;
  parallelFor(sh.b * sh.kv, [&](int64_t task) {
    const int64_t b = task / sh.kv, g = task % sh.kv;
    std::vector<float> kg(sh.s * sh.hd), vg(sh.s * sh.hd), qh(sh.s * sh.hd),
        oh(sh.s * sh.hd), sc(kBlock * sh.s);
    gather(k, b, sh.s, sh.kv, g, sh.hd, kg.data());
    gather(v, b, sh.s, sh.kv, g, sh.hd, vg.data());
    for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
      gather(q, b, sh.s, sh.h, h, sh.hd, qh.data());
      for (int64_t i0 = 0; i0 < sh.s; i0 += kBlock) {
        const int64_t nb = std::min(kBlock, sh.s - i0);
        const int64_t kEnd = sh.causal ? i0 + nb : sh.s;
        scores(qh.data(), kg.data(), sh, docIds, b, i0, nb, kEnd, sc.data());
        for (int64_t r = 0; r < nb; ++r) {
          lse[(b * sh.h + h) * sh.s + i0 + r] =
              softmaxRow(sc.data() + r * kEnd, kEnd);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, sh.hd, kEnd,
                    1.0f, sc.data(), kEnd, vg.data(), sh.hd, 0.0f,
                    oh.data() + i0 * sh.hd, sh.hd);
      }
      store(oh.data(), b, sh.s, sh.h, h, sh.hd, o);
    }
  });
}

template <typename T>
void attentionBwdT(const T *q, const T *k, const T *v, const int32_t *docIds,
                   const ref::AttentionShape &sh, const T *o, const T *dout,
                   T *dq, T *dk, T *dv) {
  const int64_t rep = sh.h / sh.kv;
  const float scale = static_cast<float>(sh.scale);
  parallelFor(sh.b * sh.kv, [&](int64_t task) {
    const int64_t b = task / sh.kv, g = task % sh.kv;
    const int64_t n = sh.s * sh.hd;
    std::vector<float> kg(n), vg(n), qh(n), oh(n), doh(n), dqh(n), dkg(n, 0.f),
        dvg(n, 0.f), p(kBlock * sh.s), dp(kBlock * sh.s), di(sh.s);
    gather(k, b, sh.s, sh.kv, g, sh.hd, kg.data());
    gather(v, b, sh.s, sh.kv, g, sh.hd, vg.data());
    for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
      gather(q, b, sh.s, sh.h, h, sh.hd, qh.data());
      gather(o, b, sh.s, sh.h, h, sh.hd, oh.data());
      gather(dout, b, sh.s, sh.h, h, sh.hd, doh.data());
      std::fill(dqh.begin(), dqh.end(), 0.0f);
      for (int64_t i = 0; i < sh.s; ++i) {
        float acc = 0;
        for (int64_t c = 0; c < sh.hd; ++c)
          acc += doh[i * sh.hd + c] * oh[i * sh.hd + c];
        di[i] = acc;
      }
      for (int64_t i0 = 0; i0 < sh.s; i0 += kBlock) {
        const int64_t nb = std::min(kBlock, sh.s - i0);
        const int64_t kEnd = sh.causal ? i0 + nb : sh.s;
        scores(qh.data(), kg.data(), sh, docIds, b, i0, nb, kEnd, p.data());
        // A block row holds every key its query can see, so P is the row's
        // softmax: no saved log-sum-exp needed.
        for (int64_t r = 0; r < nb; ++r)
          softmaxRow(p.data() + r * kEnd, kEnd);
        // dP = dO_blk V^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, kEnd, sh.hd,
                    1.0f, doh.data() + i0 * sh.hd, sh.hd, vg.data(), sh.hd,
                    0.0f, dp.data(), kEnd);
        // dS = P * (dP - D) * scale, in place in dp.
        for (int64_t r = 0; r < nb; ++r)
          for (int64_t j = 0; j < kEnd; ++j)
            dp[r * kEnd + j] =
                p[r * kEnd + j] * (dp[r * kEnd + j] - di[i0 + r]) * scale;
        // dQ_blk = dS K; dK += dS^T Q_blk; dV += P^T dO_blk.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, sh.hd, kEnd,
                    1.0f, dp.data(), kEnd, kg.data(), sh.hd, 0.0f,
                    dqh.data() + i0 * sh.hd, sh.hd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kEnd, sh.hd, nb,
                    1.0f, dp.data(), kEnd, qh.data() + i0 * sh.hd, sh.hd, 1.0f,
                    dkg.data(), sh.hd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kEnd, sh.hd, nb,
                    1.0f, p.data(), kEnd, doh.data() + i0 * sh.hd, sh.hd, 1.0f,
                    dvg.data(), sh.hd);
      }
      store(dqh.data(), b, sh.s, sh.h, h, sh.hd, dq);
    }
    store(dkg.data(), b, sh.s, sh.kv, g, sh.hd, dk);
    store(dvg.data(), b, sh.s, sh.kv, g, sh.hd, dv);
  });
}

} // namespace

void attentionFwd(const float *q, const float *k, const float *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  float *o, float *lse) {
  attentionFwdT(q, k, v, docIds, sh, o, lse);
}
void attentionFwd(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  uint16_t *o, float *lse) {
  attentionFwdT(q, k, v, docIds, sh, o, lse);
}

void attentionBwd(const float *q, const float *k, const float *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  const float *o, const float *lse, const float *dout,
                  float *dq, float *dk, float *dv) {
  (void)lse; // each block row holds whole softmax rows: P is recomputed
  attentionBwdT(q, k, v, docIds, sh, o, dout, dq, dk, dv);
}
void attentionBwd(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                  const int32_t *docIds, const ref::AttentionShape &sh,
                  const uint16_t *o, const uint16_t *dout, uint16_t *dq,
                  uint16_t *dk, uint16_t *dv) {
  attentionBwdT(q, k, v, docIds, sh, o, dout, dq, dk, dv);
}

namespace {

/// AdamW on elements [0, n): the operation order of torch.optim.AdamW
/// (single-tensor path), so f32 rounding matches: lerp for the first moment,
/// addcmul for the second, addcdiv for the update. The file is built with
/// -fno-math-errno so that sqrt, like the rest, vectorizes (it is the IEEE
/// instruction at any width); the loop was memory-bound only once it did.
FORGE_SIMD_CLONES void
adamwRange(const float *param, const float *grad, const float *expAvg,
           const float *expAvgSq, int64_t n, float clip, float beta1,
           float beta2, float eps, float decay, float stepSize, float bc2Sqrt,
           float *newParam, float *newExpAvg, float *newExpAvgSq) {
  // Each output is its input (in place) or overlaps nothing: element i
  // depends on element i alone, so no alias checks are needed.
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * clip;
    const float m = expAvg[i] + (1 - beta1) * (g - expAvg[i]);
    const float v = expAvgSq[i] * beta2 + (1 - beta2) * (g * g);
    const float denom = std::sqrt(v) / bc2Sqrt + eps;
    newParam[i] = param[i] * decay + (-stepSize) * (m / denom);
    newExpAvg[i] = m;
    newExpAvgSq[i] = v;
  }
}

} // namespace

void adamwUpdate(const float *param, const float *grad, const float *expAvg,
                 const float *expAvgSq, int64_t n, float lr, float clip,
                 int64_t step, float beta1, float beta2, float eps,
                 float weightDecay, float *newParam, float *newExpAvg,
                 float *newExpAvgSq) {
  const double t = static_cast<double>(step + 1);
  const float bc1 = static_cast<float>(1 - std::pow(beta1, t));
  const float bc2Sqrt = static_cast<float>(std::sqrt(1 - std::pow(beta2, t)));
  const float decay = 1 - lr * weightDecay, stepSize = lr / bc1;
  const int64_t chunk = 1 << 16;
  parallelFor((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t begin = c * chunk, len = std::min(n - begin, chunk);
    adamwRange(param + begin, grad + begin, expAvg + begin, expAvgSq + begin,
               len, clip, beta1, beta2, eps, decay, stepSize, bc2Sqrt,
               newParam + begin, newExpAvg + begin, newExpAvgSq + begin);
  });
}

void bf16ToF32(const uint16_t *x, int64_t n, float *y) {
  parallelFor((n + kConvertChunk - 1) / kConvertChunk, [&](int64_t c) {
    const int64_t begin = c * kConvertChunk;
    bf16ToF32Range(x + begin, std::min(n - begin, kConvertChunk), y + begin);
  });
}

void f32ToBf16(const float *x, int64_t n, uint16_t *y) {
  parallelFor((n + kConvertChunk - 1) / kConvertChunk, [&](int64_t c) {
    const int64_t begin = c * kConvertChunk;
    f32ToBf16Range(x + begin, std::min(n - begin, kConvertChunk), y + begin);
  });
}

namespace {

/// Row r of a [rows, d] tensor as f32: the row itself, or a bf16 row
/// converted into `buf` (a row stays in cache; an f32 copy of the whole
/// tensor would go through memory).
const float *f32Row(const float *x, int64_t r, int64_t d,
                    std::vector<float> &) {
  return x + r * d;
}
const float *f32Row(const uint16_t *x, int64_t r, int64_t d,
                    std::vector<float> &buf) {
  buf.resize(d);
  bf16ToF32Range(x + r * d, d, buf.data());
  return buf.data();
}

template <typename T>
void rmsnormFwdT(const T *x, const T *w, int64_t rows, int64_t d, double eps,
                 T *y) {
  std::vector<float> wBuf;
  const float *wf = f32Row(w, 0, d, wBuf);
  constexpr int64_t kRows = 16;
  parallelFor((rows + kRows - 1) / kRows, [&](int64_t blk) {
    thread_local std::vector<float> xBuf, yBuf;
    const int64_t end = std::min(rows, (blk + 1) * kRows);
    for (int64_t r = blk * kRows; r < end; ++r) {
      const float *xr = f32Row(x, r, d, xBuf);
      const double ms = sumSquaresRange(xr, d);
      if constexpr (std::is_same_v<T, float>) {
        rmsScaleRow(xr, wf, d, 1.0 / std::sqrt(ms / d + eps), y + r * d);
      } else {
        yBuf.resize(d);
        rmsScaleRow(xr, wf, d, 1.0 / std::sqrt(ms / d + eps), yBuf.data());
        f32ToBf16Range(yBuf.data(), d, y + r * d);
      }
    }
  });
}

/// f32 adds into dx and dw; bf16 writes them (the f32 result rounded once).
template <typename T>
void rmsnormBwdT(const T *x, const T *w, const T *dy, int64_t rows, int64_t d,
                 double eps, T *dx, T *dw) {
  // A fixed number of row blocks (not one per thread), each with its own
  // partial dw: enough blocks to balance two or more cores, few enough that
  // adding the partials stays small next to the rows.
  const int64_t blocks = std::min<int64_t>(rows, 32);
  if (blocks == 0)
    return;
  std::vector<float> wBuf;
  const float *wf = f32Row(w, 0, d, wBuf);
  const int64_t per = (rows + blocks - 1) / blocks;
  std::vector<float> part(blocks * d, 0.0f);
  parallelFor(blocks, [&](int64_t blk) {
    thread_local std::vector<float> xBuf, gBuf, dxBuf;
    const int64_t end = std::min(rows, (blk + 1) * per);
    for (int64_t r = blk * per; r < end; ++r) {
      const float *xr = f32Row(x, r, d, xBuf), *gr = f32Row(dy, r, d, gBuf);
      double ms, dot;
      rmsRowSums(xr, wf, gr, d, ms, dot);
      const double inv = 1.0 / std::sqrt(ms / d + eps);
      float *dxr;
      if constexpr (std::is_same_v<T, float>) {
        dxr = dx + r * d;
      } else {
        dxBuf.assign(d, 0.0f);
        dxr = dxBuf.data();
      }
      rmsGradRow(xr, wf, gr, d, inv, inv * inv * inv * dot / d, dxr,
                 part.data() + blk * d);
      if constexpr (!std::is_same_v<T, float>)
        f32ToBf16Range(dxr, d, dx + r * d);
    }
  });
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t blk = 0; blk < blocks; ++blk)
      addRow(part.data() + blk * d, d, dw);
  } else {
    std::vector<float> sum(d, 0.0f);
    for (int64_t blk = 0; blk < blocks; ++blk)
      addRow(part.data() + blk * d, d, sum.data());
    f32ToBf16Range(sum.data(), d, dw);
  }
}

} // namespace

void rmsnormFwd(const float *x, const float *w, int64_t rows, int64_t d,
                double eps, float *y) {
  rmsnormFwdT(x, w, rows, d, eps, y);
}
void rmsnormFwd(const uint16_t *x, const uint16_t *w, int64_t rows, int64_t d,
                double eps, uint16_t *y) {
  rmsnormFwdT(x, w, rows, d, eps, y);
}
void rmsnormBwd(const float *x, const float *w, const float *dy, int64_t rows,
                int64_t d, double eps, float *dx, float *dw) {
  rmsnormBwdT(x, w, dy, rows, d, eps, dx, dw);
}
void rmsnormBwd(const uint16_t *x, const uint16_t *w, const uint16_t *dy,
                int64_t rows, int64_t d, double eps, uint16_t *dx,
                uint16_t *dw) {
  rmsnormBwdT(x, w, dy, rows, d, eps, dx, dw);
}

namespace {

/// f32 y: written (forward) or added to (backward); bf16 y: written, the
/// f32 result rounded once, with each position's row of x converted as it
/// is read.
template <typename T>
void ropeT(const T *x, int64_t b, int64_t s, int64_t h, int64_t hd,
           double theta, bool backward, T *y) {
  const int64_t half = hd / 2;
  // The same angles as the reference: inv_freq in f32, angle = pos * inv_freq.
  std::vector<float> cosT(s * half), sinT(s * half);
  for (int64_t i = 0; i < half; ++i) {
    float invFreq = static_cast<float>(std::pow(
        theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd)));
    for (int64_t p = 0; p < s; ++p) {
      double a = static_cast<double>(static_cast<float>(p) * invFreq);
      cosT[p * half + i] = static_cast<float>(std::cos(a));
      sinT[p * half + i] = static_cast<float>(std::sin(a));
    }
  }
  const float sign = backward ? -1.0f : 1.0f;
  constexpr bool kF32 = std::is_same_v<T, float>;
  parallelFor(b * s, [&](int64_t bp) {
    thread_local std::vector<float> xBuf, yBuf;
    const int64_t p = bp % s, row = h * hd;
    const float *c = cosT.data() + p * half, *sn = sinT.data() + p * half;
    const float *xr = f32Row(x, bp, row, xBuf);
    float *yr;
    if constexpr (kF32) {
      yr = y + bp * row;
    } else {
      yBuf.resize(row);
      yr = yBuf.data();
    }
    for (int64_t hi = 0; hi < h; ++hi) {
      const float *xv = xr + hi * hd;
      float *yv = yr + hi * hd;
      for (int64_t i = 0; i < half; ++i) {
        float x1 = xv[i], x2 = xv[i + half], si = sign * sn[i];
        float r1 = x1 * c[i] - x2 * si, r2 = x2 * c[i] + x1 * si;
        if (kF32 && backward) {
          yv[i] += r1;
          yv[i + half] += r2;
        } else {
          yv[i] = r1;
          yv[i + half] = r2;
        }
      }
    }
    if constexpr (!kF32)
      f32ToBf16Range(yr, row, y + bp * row);
  });
}

} // namespace

void rope(const float *x, int64_t b, int64_t s, int64_t h, int64_t hd,
          double theta, bool backward, float *y) {
  ropeT(x, b, s, h, hd, theta, backward, y);
}
void rope(const uint16_t *x, int64_t b, int64_t s, int64_t h, int64_t hd,
          double theta, bool backward, uint16_t *y) {
  ropeT(x, b, s, h, hd, theta, backward, y);
}

namespace {

constexpr int64_t kChunk = 1 << 15;
template <typename F> void chunked(int64_t n, F f) {
  parallelFor((n + kChunk - 1) / kChunk, [&](int64_t c) {
    int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i)
      f(i);
  });
}
} // namespace

void unary(ref::Unary kind, const float *x, int64_t n, float *y) {
  switch (kind) {
  case ref::Unary::Silu:
    parallelFor((n + kChunk - 1) / kChunk, [&](int64_t c) {
      const int64_t begin = c * kChunk;
      siluRange(x + begin, std::min(n - begin, kChunk), y + begin);
    });
    break;
  case ref::Unary::Gelu:
    chunked(n, [&](int64_t i) {
      y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
    });
    break;
  case ref::Unary::Relu:
    chunked(n, [&](int64_t i) { y[i] = x[i] > 0 ? x[i] : 0.0f; });
    break;
  case ref::Unary::Tanh:
    chunked(n, [&](int64_t i) { y[i] = std::tanh(x[i]); });
    break;
  }
}

void unaryGrad(ref::Unary kind, const float *x, const float *dy, int64_t n,
               float *dx) {
  switch (kind) {
  case ref::Unary::Silu:
    parallelFor((n + kChunk - 1) / kChunk, [&](int64_t c) {
      const int64_t begin = c * kChunk;
      siluGradRange(x + begin, dy + begin, std::min(n - begin, kChunk),
                    dx + begin);
    });
    break;
  case ref::Unary::Gelu:
    chunked(n, [&](int64_t i) {
      float cdf = 0.5f * (1.0f + std::erf(x[i] * 0.70710678118654752f));
      float pdf = std::exp(-0.5f * x[i] * x[i]) * 0.39894228040143268f;
      dx[i] += dy[i] * (cdf + x[i] * pdf);
    });
    break;
  case ref::Unary::Relu:
    chunked(n, [&](int64_t i) { dx[i] += x[i] > 0 ? dy[i] : 0.0f; });
    break;
  case ref::Unary::Tanh:
    chunked(n, [&](int64_t i) {
      float t = std::tanh(x[i]);
      dx[i] += dy[i] * (1.0f - t * t);
    });
    break;
  }
}

void binary(bool mul, const float *x, const float *y, int64_t n, float *z) {
  if (mul)
    chunked(n, [&](int64_t i) { z[i] = x[i] * y[i]; });
  else
    chunked(n, [&](int64_t i) { z[i] = x[i] + y[i]; });
}

void scale(const float *x, float factor, int64_t n, float *y) {
  chunked(n, [&](int64_t i) { y[i] = x[i] * factor; });
}

float approxExp(float x) { return expApprox(x); }

double sumSquares(const float *x, int64_t n) {
  constexpr int64_t kPart = 1 << 16;
  const int64_t parts = (n + kPart - 1) / kPart;
  std::vector<double> sums(parts);
  parallelFor(parts, [&](int64_t p) {
    const int64_t begin = p * kPart;
    sums[p] = sumSquaresRange(x + begin, std::min(kPart, n - begin));
  });
  double total = 0;
  for (double s : sums)
    total += s;
  return total;
}

namespace {

template <typename T>
float crossEntropyFwdT(const T *logits, const int64_t *labels, int64_t rows,
                       int64_t c, int64_t ignoreIndex) {
  std::vector<double> part(rows, 0.0);
  std::atomic<int64_t> valid{0};
  parallelFor(rows, [&](int64_t r) {
    if (labels[r] == ignoreIndex)
      return;
    thread_local std::vector<float> buf;
    const float *l = f32Row(logits, r, c, buf);
    const float mx = rowMax(l, c);
    part[r] = mx + std::log(rowSumExp(l, c, mx)) - l[labels[r]];
    ++valid;
  });
  if (!valid)
    return 0.0f;
  double acc = 0;
  for (double x : part)
    acc += x;
  return static_cast<float>(acc / valid);
}

template <typename T>
void crossEntropyBwdT(const T *logits, const int64_t *labels, int64_t rows,
                      int64_t c, int64_t ignoreIndex, float dloss, T *dlogits) {
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r)
    valid += labels[r] != ignoreIndex;
  const float f = valid ? dloss / static_cast<float>(valid) : 0.0f;
  parallelFor(rows, [&](int64_t r) {
    T *out = dlogits + r * c;
    if (labels[r] == ignoreIndex) {
      std::fill(out, out + c, T(0)); // +0.0 in f32 and in bf16
      return;
    }
    thread_local std::vector<float> in, grad;
    const float *l = f32Row(logits, r, c, in);
    float *d;
    if constexpr (std::is_same_v<T, float>) {
      d = out;
    } else {
      grad.resize(c);
      d = grad.data();
    }
    const float mx = rowMax(l, c);
    const float inv = static_cast<float>(1.0 / rowSumExp(l, c, mx));
    rowScaledExp(l, c, mx, f * inv, d);
    d[labels[r]] -= f;
    if constexpr (!std::is_same_v<T, float>)
      f32ToBf16Range(d, c, out);
  });
}

} // namespace

float crossEntropyFwd(const float *logits, const int64_t *labels, int64_t rows,
                      int64_t c, int64_t ignoreIndex) {
  return crossEntropyFwdT(logits, labels, rows, c, ignoreIndex);
}
float crossEntropyFwd(const uint16_t *logits, const int64_t *labels,
                      int64_t rows, int64_t c, int64_t ignoreIndex) {
  return crossEntropyFwdT(logits, labels, rows, c, ignoreIndex);
}

void crossEntropyBwd(const float *logits, const int64_t *labels, int64_t rows,
                     int64_t c, int64_t ignoreIndex, float dloss,
                     float *dlogits) {
  crossEntropyBwdT(logits, labels, rows, c, ignoreIndex, dloss, dlogits);
}
void crossEntropyBwd(const uint16_t *logits, const int64_t *labels,
                     int64_t rows, int64_t c, int64_t ignoreIndex, float dloss,
                     uint16_t *dlogits) {
  crossEntropyBwdT(logits, labels, rows, c, ignoreIndex, dloss, dlogits);
}

} // namespace forge::cpu::fast
