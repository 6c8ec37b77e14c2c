//===- RefKernels.cpp - Reference CPU kernels, forward and backward -------===//
//
// Plain loops, accumulation in double regardless of T: these define the
// numbers, speed is the optimized kernels' job.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/RefKernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace forge::cpu::ref {
namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

/// log(sum(exp(row))) computed stably.
template <typename T> double logSumExp(const T *row, int64_t c) {
  double mx = row[0];
  for (int64_t j = 1; j < c; ++j)
    mx = std::max(mx, static_cast<double>(row[j]));
  double s = 0;
  for (int64_t j = 0; j < c; ++j)
    s += std::exp(row[j] - mx);
  return mx + std::log(s);
}

/// Indices of the k largest values of row[0..e), largest first, ties to the
/// lower index.
template <typename T>
void topK(const T *row, int64_t e, int64_t k, int64_t *out) {
  std::vector<int64_t> idx(e);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return row[a] > row[b]; });
  std::copy(idx.begin(), idx.begin() + k, out);
}

/// Gradient of w_j = s_{i_j} / sum_m s_{i_m} with respect to the selected
/// scores, added into ds (a row of length e).
template <typename T>
void renormBwd(const T *scoresRow, const int64_t *idx, int64_t k, const T *dw,
               double *ds) {
  double sum = 0, dot = 0;
  for (int64_t j = 0; j < k; ++j)
    sum += scoresRow[idx[j]];
  for (int64_t j = 0; j < k; ++j)
    dot += dw[j] * scoresRow[idx[j]];
  for (int64_t j = 0; j < k; ++j)
    ds[idx[j]] += dw[j] / sum - dot / (sum * sum);
}

double ropeAngle(int64_t pos, int64_t i, int64_t hd, double theta) {
  // inv_freq in f32 as KempnerForge computes it, then the angle.
  float invFreq = static_cast<float>(
      std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd)));
  return static_cast<double>(static_cast<float>(pos) * invFreq);
}

} // namespace

//===----------------------------------------------------------------------===//
// Dense
//===----------------------------------------------------------------------===//

template <typename T>
void embeddingFwd(const T *table, const int64_t *ids, int64_t n, int64_t d,
                  T *out) {
  for (int64_t i = 0; i < n; ++i)
    std::copy(table + ids[i] * d, table + (ids[i] + 1) * d, out + i * d);
}

template <typename T>
void embeddingBwd(const int64_t *ids, int64_t n, int64_t d, const T *dout,
                  T *dtable) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      dtable[ids[i] * d + j] += dout[i * d + j];
}

template <typename T>
void linearFwd(const T *x, const T *w, int64_t m, int64_t k, int64_t n, T *y) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += static_cast<double>(x[i * k + p]) * w[j * k + p];
      y[i * n + j] = static_cast<T>(acc);
    }
}

template <typename T>
void linearBwd(const T *x, const T *w, const T *dy, int64_t m, int64_t k,
               int64_t n, T *dx, T *dw) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j)
        acc += static_cast<double>(dy[i * n + j]) * w[j * k + p];
      dx[i * k + p] += static_cast<T>(acc);
    }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) {
      double acc = 0;
      for (int64_t i = 0; i < m; ++i)
        acc += static_cast<double>(dy[i * n + j]) * x[i * k + p];
      dw[j * k + p] += static_cast<T>(acc);
    }
}

/// Element (out j, in p) of expert weight block `we`.
template <typename T>
T expertW(const T *we, int64_t j, int64_t p, int64_t k, int64_t n, bool outIn) {
  return outIn ? we[j * k + p] : we[p * n + j];
}

template <typename T>
void groupedLinearFwd(const T *x, const T *w, const int64_t *sizes, int64_t e,
                      int64_t k, int64_t n, bool outIn, T *y) {
  int64_t row = 0;
  for (int64_t ex = 0; ex < e; ++ex) {
    const T *we = w + ex * k * n;
    for (int64_t r = row; r < row + sizes[ex]; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p)
          acc += static_cast<double>(x[r * k + p]) *
                 expertW(we, j, p, k, n, outIn);
        y[r * n + j] = static_cast<T>(acc);
      }
    row += sizes[ex];
  }
}

template <typename T>
void groupedLinearBwd(const T *x, const T *w, const int64_t *sizes, int64_t e,
                      int64_t k, int64_t n, bool outIn, const T *dy, T *dx,
                      T *dw) {
  int64_t row = 0;
  for (int64_t ex = 0; ex < e; ++ex) {
    const T *we = w + ex * k * n;
    T *dwe = dw + ex * k * n;
    for (int64_t r = row; r < row + sizes[ex]; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double g = dy[r * n + j];
        for (int64_t p = 0; p < k; ++p) {
          dx[r * k + p] += static_cast<T>(g * expertW(we, j, p, k, n, outIn));
          T &slot = outIn ? dwe[j * k + p] : dwe[p * n + j];
          slot += static_cast<T>(g * x[r * k + p]);
        }
      }
    row += sizes[ex];
  }
}

template <typename T>
void rmsnormFwd(const T *x, const T *w, int64_t rows, int64_t d, double eps,
                T *y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d;
    double ms = 0;
    for (int64_t j = 0; j < d; ++j)
      ms += static_cast<double>(xr[j]) * xr[j];
    double inv = 1.0 / std::sqrt(ms / d + eps);
    for (int64_t j = 0; j < d; ++j)
      y[r * d + j] = static_cast<T>(xr[j] * inv * w[j]);
  }
}

template <typename T>
void rmsnormBwd(const T *x, const T *w, const T *dy, int64_t rows, int64_t d,
                double eps, T *dx, T *dw) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    double ms = 0, dot = 0;
    for (int64_t j = 0; j < d; ++j) {
      ms += static_cast<double>(xr[j]) * xr[j];
      dot += static_cast<double>(dyr[j]) * w[j] * xr[j];
    }
    double inv = 1.0 / std::sqrt(ms / d + eps);
    for (int64_t j = 0; j < d; ++j) {
      dw[j] += static_cast<T>(dyr[j] * xr[j] * inv);
      dx[r * d + j] += static_cast<T>(inv * dyr[j] * w[j] -
                                      xr[j] * inv * inv * inv * dot / d);
    }
  }
}

template <typename T>
void layernormFwd(const T *x, const T *w, const T *b, int64_t rows, int64_t d,
                  double eps, T *y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j)
      mean += xr[j];
    mean /= d;
    for (int64_t j = 0; j < d; ++j)
      var += (xr[j] - mean) * (xr[j] - mean);
    double inv = 1.0 / std::sqrt(var / d + eps);
    for (int64_t j = 0; j < d; ++j)
      y[r * d + j] = static_cast<T>((xr[j] - mean) * inv * w[j] + b[j]);
  }
}

template <typename T>
void layernormBwd(const T *x, const T *w, const T *dy, int64_t rows, int64_t d,
                  double eps, T *dx, T *dw, T *db) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j)
      mean += xr[j];
    mean /= d;
    for (int64_t j = 0; j < d; ++j)
      var += (xr[j] - mean) * (xr[j] - mean);
    double inv = 1.0 / std::sqrt(var / d + eps);
    // With xhat = (x - mean) * inv and g = dy * w:
    // dx = inv * (g - mean(g) - xhat * mean(g * xhat)).
    double sumG = 0, sumGX = 0;
    for (int64_t j = 0; j < d; ++j) {
      double xhat = (xr[j] - mean) * inv, g = dyr[j] * w[j];
      sumG += g;
      sumGX += g * xhat;
      dw[j] += static_cast<T>(dyr[j] * xhat);
      db[j] += dyr[j];
    }
    for (int64_t j = 0; j < d; ++j) {
      double xhat = (xr[j] - mean) * inv, g = dyr[j] * w[j];
      dx[r * d + j] += static_cast<T>(inv * (g - sumG / d - xhat * sumGX / d));
    }
  }
}

template <typename T>
void ropeFwd(const T *x, int64_t b, int64_t s, int64_t h, int64_t hd,
             double theta, T *y) {
  const int64_t half = hd / 2;
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t p = 0; p < s; ++p)
      for (int64_t hi = 0; hi < h; ++hi) {
        const T *xv = x + ((bi * s + p) * h + hi) * hd;
        T *yv = y + ((bi * s + p) * h + hi) * hd;
        for (int64_t i = 0; i < half; ++i) {
          double a = ropeAngle(p, i, hd, theta), c = std::cos(a),
                 sn = std::sin(a);
          double x1 = xv[i], x2 = xv[i + half];
          yv[i] = static_cast<T>(x1 * c - x2 * sn);
          yv[i + half] = static_cast<T>(x2 * c + x1 * sn);
        }
      }
}

template <typename T>
void ropeBwd(const T *dy, int64_t b, int64_t s, int64_t h, int64_t hd,
             double theta, T *dx) {
  // The transpose of a rotation is the rotation by the opposite angle.
  const int64_t half = hd / 2;
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t p = 0; p < s; ++p)
      for (int64_t hi = 0; hi < h; ++hi) {
        const T *g = dy + ((bi * s + p) * h + hi) * hd;
        T *dv = dx + ((bi * s + p) * h + hi) * hd;
        for (int64_t i = 0; i < half; ++i) {
          double a = ropeAngle(p, i, hd, theta), c = std::cos(a),
                 sn = std::sin(a);
          double g1 = g[i], g2 = g[i + half];
          dv[i] += static_cast<T>(g1 * c + g2 * sn);
          dv[i + half] += static_cast<T>(-g1 * sn + g2 * c);
        }
      }
}

namespace {
bool visible(const AttentionShape &sh, const int32_t *doc, int64_t bi,
             int64_t i, int64_t j) {
  if (sh.causal && j > i)
    return false;
  if (doc && doc[bi * sh.s + i] != doc[bi * sh.s + j])
    return false;
  return true;
}
} // namespace

template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, const int32_t *docIds,
                  const AttentionShape &sh, T *o, T *lse) {
  const int64_t rep = sh.h / sh.kv;
  std::vector<double> sc(sh.s);
  for (int64_t bi = 0; bi < sh.b; ++bi)
    for (int64_t hi = 0; hi < sh.h; ++hi) {
      const int64_t kh = hi / rep;
      for (int64_t i = 0; i < sh.s; ++i) {
        const T *qi = q + ((bi * sh.s + i) * sh.h + hi) * sh.hd;
        // A row that sees no key at all is left unmasked (reference §2.2).
        bool any = false;
        for (int64_t j = 0; j < sh.s; ++j)
          any = any || visible(sh, docIds, bi, i, j);
        double mx = -INFINITY;
        for (int64_t j = 0; j < sh.s; ++j) {
          if (any && !visible(sh, docIds, bi, i, j)) {
            sc[j] = -INFINITY;
            continue;
          }
          const T *kj = k + ((bi * sh.s + j) * sh.kv + kh) * sh.hd;
          double dot = 0;
          for (int64_t c = 0; c < sh.hd; ++c)
            dot += static_cast<double>(qi[c]) * kj[c];
          sc[j] = dot * sh.scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < sh.s; ++j)
          sum += std::isinf(sc[j]) ? 0 : std::exp(sc[j] - mx);
        double l = mx + std::log(sum);
        lse[(bi * sh.h + hi) * sh.s + i] = static_cast<T>(l);
        T *oi = o + ((bi * sh.s + i) * sh.h + hi) * sh.hd;
        for (int64_t c = 0; c < sh.hd; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < sh.s; ++j)
            if (!std::isinf(sc[j]))
              acc += std::exp(sc[j] - l) *
                     v[((bi * sh.s + j) * sh.kv + kh) * sh.hd + c];
          oi[c] = static_cast<T>(acc);
        }
      }
    }
}

template <typename T>
void attentionBwd(const T *q, const T *k, const T *v, const int32_t *docIds,
                  const AttentionShape &sh, const T *o, const T *lse,
                  const T *dout, T *dq, T *dk, T *dv) {
  const int64_t rep = sh.h / sh.kv;
  std::vector<double> p(sh.s);
  for (int64_t bi = 0; bi < sh.b; ++bi)
    for (int64_t hi = 0; hi < sh.h; ++hi) {
      const int64_t kh = hi / rep;
      for (int64_t i = 0; i < sh.s; ++i) {
        const int64_t qo = ((bi * sh.s + i) * sh.h + hi) * sh.hd;
        bool any = false;
        for (int64_t j = 0; j < sh.s; ++j)
          any = any || visible(sh, docIds, bi, i, j);
        double l = lse[(bi * sh.h + hi) * sh.s + i];
        // P_ij recomputed from the saved log-sum-exp, as flash attention.
        for (int64_t j = 0; j < sh.s; ++j) {
          if (any && !visible(sh, docIds, bi, i, j)) {
            p[j] = 0;
            continue;
          }
          const T *kj = k + ((bi * sh.s + j) * sh.kv + kh) * sh.hd;
          double dot = 0;
          for (int64_t c = 0; c < sh.hd; ++c)
            dot += static_cast<double>(q[qo + c]) * kj[c];
          p[j] = std::exp(dot * sh.scale - l);
        }
        // D_i = dO_i . O_i = sum_j P_ij (dO_i . V_j).
        double di = 0;
        for (int64_t c = 0; c < sh.hd; ++c)
          di += static_cast<double>(dout[qo + c]) * o[qo + c];
        for (int64_t j = 0; j < sh.s; ++j) {
          if (p[j] == 0)
            continue;
          const int64_t ko = ((bi * sh.s + j) * sh.kv + kh) * sh.hd;
          double dpij = 0;
          for (int64_t c = 0; c < sh.hd; ++c)
            dpij += static_cast<double>(dout[qo + c]) * v[ko + c];
          double ds = p[j] * (dpij - di) * sh.scale;
          for (int64_t c = 0; c < sh.hd; ++c) {
            dv[ko + c] += static_cast<T>(p[j] * dout[qo + c]);
            dq[qo + c] += static_cast<T>(ds * k[ko + c]);
            dk[ko + c] += static_cast<T>(ds * q[qo + c]);
          }
        }
      }
    }
}

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

template <typename T> void unaryFwd(Unary kind, const T *x, int64_t n, T *y) {
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i], r = 0;
    switch (kind) {
    case Unary::Silu:
      r = v * sigmoid(v);
      break;
    case Unary::Gelu:
      r = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
      break;
    case Unary::Relu:
      r = v > 0 ? v : 0;
      break;
    case Unary::Tanh:
      r = std::tanh(v);
      break;
    }
    y[i] = static_cast<T>(r);
  }
}

template <typename T>
void unaryBwd(Unary kind, const T *x, const T *dy, int64_t n, T *dx) {
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i], g = 0;
    switch (kind) {
    case Unary::Silu: {
      double s = sigmoid(v);
      g = s * (1.0 + v * (1.0 - s));
      break;
    }
    case Unary::Gelu:
      g = 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) +
          v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
      break;
    case Unary::Relu:
      g = v > 0 ? 1.0 : 0.0;
      break;
    case Unary::Tanh: {
      double t = std::tanh(v);
      g = 1.0 - t * t;
      break;
    }
    }
    dx[i] += static_cast<T>(g * dy[i]);
  }
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

template <typename T>
void softmaxTopKFwd(const T *logits, int64_t t, int64_t e, int64_t k,
                    T *weights, int64_t *indices, T *probs) {
  for (int64_t r = 0; r < t; ++r) {
    const T *l = logits + r * e;
    double lse = logSumExp(l, e);
    for (int64_t j = 0; j < e; ++j)
      probs[r * e + j] = static_cast<T>(std::exp(l[j] - lse));
    topK(probs + r * e, e, k, indices + r * k);
    double sum = 0;
    for (int64_t j = 0; j < k; ++j)
      sum += probs[r * e + indices[r * k + j]];
    for (int64_t j = 0; j < k; ++j)
      weights[r * k + j] =
          static_cast<T>(probs[r * e + indices[r * k + j]] / sum);
  }
}

template <typename T>
void softmaxTopKBwd(const T *probs, const int64_t *indices, int64_t t,
                    int64_t e, int64_t k, const T *dweights, const T *dprobs,
                    T *dlogits) {
  std::vector<double> dp(e);
  for (int64_t r = 0; r < t; ++r) {
    const T *p = probs + r * e;
    for (int64_t j = 0; j < e; ++j)
      dp[j] = dprobs ? static_cast<double>(dprobs[r * e + j]) : 0.0;
    if (dweights)
      renormBwd(p, indices + r * k, k, dweights + r * k, dp.data());
    double dot = 0;
    for (int64_t j = 0; j < e; ++j)
      dot += p[j] * dp[j];
    for (int64_t j = 0; j < e; ++j)
      dlogits[r * e + j] += static_cast<T>(p[j] * (dp[j] - dot));
  }
}

template <typename T>
void sigmoidTopKFwd(const T *logits, const T *bias, int64_t t, int64_t e,
                    int64_t k, T *weights, int64_t *indices, T *scores) {
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t j = 0; j < e; ++j)
      scores[r * e + j] = static_cast<T>(
          sigmoid(static_cast<double>(logits[r * e + j]) + bias[j]));
    topK(scores + r * e, e, k, indices + r * k);
    double sum = 0;
    for (int64_t j = 0; j < k; ++j)
      sum += scores[r * e + indices[r * k + j]];
    for (int64_t j = 0; j < k; ++j)
      weights[r * k + j] =
          static_cast<T>(scores[r * e + indices[r * k + j]] / sum);
  }
}

template <typename T>
void sigmoidTopKBwd(const T *scores, const int64_t *indices, int64_t t,
                    int64_t e, int64_t k, const T *dweights, const T *dscores,
                    T *dlogits, T *dbias) {
  std::vector<double> ds(e);
  for (int64_t r = 0; r < t; ++r) {
    const T *s = scores + r * e;
    for (int64_t j = 0; j < e; ++j)
      ds[j] = dscores ? static_cast<double>(dscores[r * e + j]) : 0.0;
    if (dweights)
      renormBwd(s, indices + r * k, k, dweights + r * k, ds.data());
    for (int64_t j = 0; j < e; ++j) {
      double g = ds[j] * s[j] * (1.0 - s[j]);
      dlogits[r * e + j] += static_cast<T>(g);
      dbias[j] += static_cast<T>(g);
    }
  }
}

int64_t moeCapacity(int64_t tokens, int64_t k, int64_t experts, double factor) {
  double c = std::ceil(static_cast<double>(tokens * k) /
                       static_cast<double>(experts) * factor);
  return std::max<int64_t>(1, static_cast<int64_t>(c));
}

namespace {
/// keep[t * k + slot]: whether (t, slot) is within its expert's capacity
/// for that slot (first come, in token order).
std::vector<char> capacityMask(const int64_t *indices, int64_t t, int64_t k,
                               int64_t experts, double factor) {
  int64_t cap = moeCapacity(t, k, experts, factor);
  std::vector<char> keep(t * k);
  for (int64_t slot = 0; slot < k; ++slot) {
    std::vector<int64_t> used(experts, 0);
    for (int64_t r = 0; r < t; ++r) {
      int64_t ex = indices[r * k + slot];
      keep[r * k + slot] = used[ex]++ < cap;
    }
  }
  return keep;
}
} // namespace

template <typename T>
void moeCapacityFwd(const int64_t *indices, const T *weights, int64_t t,
                    int64_t k, int64_t experts, double factor, T *out) {
  std::vector<char> keep = capacityMask(indices, t, k, experts, factor);
  for (int64_t i = 0; i < t * k; ++i)
    out[i] = keep[i] ? weights[i] : T(0);
}

template <typename T>
void moeCapacityBwd(const int64_t *indices, int64_t t, int64_t k,
                    int64_t experts, double factor, const T *dout,
                    T *dweights) {
  std::vector<char> keep = capacityMask(indices, t, k, experts, factor);
  for (int64_t i = 0; i < t * k; ++i)
    if (keep[i])
      dweights[i] += dout[i];
}

template <typename T>
void moeDispatchFwd(const T *x, const int64_t *indices, int64_t t, int64_t d,
                    int64_t k, int64_t experts, T *rows, int64_t *sizes,
                    int64_t *order) {
  std::fill(sizes, sizes + experts, 0);
  for (int64_t i = 0; i < t * k; ++i)
    sizes[indices[i]] += 1;
  std::vector<int64_t> next(experts, 0);
  for (int64_t ex = 1; ex < experts; ++ex)
    next[ex] = next[ex - 1] + sizes[ex - 1];
  for (int64_t i = 0; i < t * k; ++i) {
    int64_t r = next[indices[i]]++;
    order[r] = i;
    std::copy(x + (i / k) * d, x + (i / k + 1) * d, rows + r * d);
  }
}

template <typename T>
void moeDispatchBwd(const int64_t *order, int64_t t, int64_t d, int64_t k,
                    const T *drows, T *dx) {
  for (int64_t r = 0; r < t * k; ++r)
    for (int64_t j = 0; j < d; ++j)
      dx[(order[r] / k) * d + j] += drows[r * d + j];
}

namespace {
/// Per-copy factor: the routing weight times the gradient scale of its
/// expert ((T*k/E) / count_e when enabled).
template <typename T>
double combineScale(const int64_t *sizes, int64_t t, int64_t k, int64_t experts,
                    bool gradientScale, int64_t expert) {
  if (!gradientScale || sizes[expert] == 0)
    return 1.0;
  return (static_cast<double>(t * k) / experts) / sizes[expert];
}
} // namespace

template <typename T>
void moeCombineFwd(const T *rows, const int64_t *order, const T *weights,
                   const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                   int64_t experts, bool gradientScale, const int64_t *indices,
                   T *y) {
  std::vector<double> acc(t * d, 0.0);
  for (int64_t r = 0; r < t * k; ++r) {
    int64_t i = order[r];
    double f = weights[i] *
               combineScale<T>(sizes, t, k, experts, gradientScale, indices[i]);
    for (int64_t j = 0; j < d; ++j)
      acc[(i / k) * d + j] += f * rows[r * d + j];
  }
  for (int64_t i = 0; i < t * d; ++i)
    y[i] = static_cast<T>(acc[i]);
}

template <typename T>
void moeCombineBwd(const T *rows, const int64_t *order, const T *weights,
                   const int64_t *sizes, int64_t t, int64_t d, int64_t k,
                   int64_t experts, bool gradientScale, const int64_t *indices,
                   const T *dy, T *drows, T *dweights) {
  for (int64_t r = 0; r < t * k; ++r) {
    int64_t i = order[r];
    double sc =
        combineScale<T>(sizes, t, k, experts, gradientScale, indices[i]);
    double dot = 0;
    for (int64_t j = 0; j < d; ++j) {
      double g = dy[(i / k) * d + j];
      drows[r * d + j] += static_cast<T>(weights[i] * sc * g);
      dot += g * rows[r * d + j];
    }
    dweights[i] += static_cast<T>(sc * dot);
  }
}

template <typename T>
T moeAuxLossFwd(const T *probs, const int64_t *indices, int64_t t, int64_t e,
                int64_t k) {
  std::vector<double> f(e, 0.0), pm(e, 0.0);
  for (int64_t i = 0; i < t * k; ++i)
    f[indices[i]] += 1.0 / static_cast<double>(t * k);
  for (int64_t r = 0; r < t; ++r)
    for (int64_t j = 0; j < e; ++j)
      pm[j] += probs[r * e + j] / static_cast<double>(t);
  double loss = 0;
  for (int64_t j = 0; j < e; ++j)
    loss += f[j] * pm[j];
  return static_cast<T>(e * loss);
}

template <typename T>
void moeAuxLossBwd(const int64_t *indices, int64_t t, int64_t e, int64_t k,
                   T dloss, T *dprobs) {
  std::vector<double> f(e, 0.0);
  for (int64_t i = 0; i < t * k; ++i)
    f[indices[i]] += 1.0 / static_cast<double>(t * k);
  for (int64_t r = 0; r < t; ++r)
    for (int64_t j = 0; j < e; ++j)
      dprobs[r * e + j] +=
          static_cast<T>(dloss * e * f[j] / static_cast<double>(t));
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

template <typename T> T zLossFwd(const T *logits, int64_t rows, int64_t c) {
  double acc = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double l = logSumExp(logits + r * c, c);
    acc += l * l;
  }
  return static_cast<T>(acc / rows);
}

template <typename T>
void zLossBwd(const T *logits, int64_t rows, int64_t c, T dloss, T *dlogits) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *l = logits + r * c;
    double lse = logSumExp(l, c);
    for (int64_t j = 0; j < c; ++j)
      dlogits[r * c + j] +=
          static_cast<T>(dloss * 2.0 * lse / rows * std::exp(l[j] - lse));
  }
}

template <typename T>
T crossEntropyFwd(const T *logits, const int64_t *labels, int64_t rows,
                  int64_t c, int64_t ignoreIndex) {
  double acc = 0;
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] == ignoreIndex)
      continue;
    ++valid;
    acc += logSumExp(logits + r * c, c) - logits[r * c + labels[r]];
  }
  return valid ? static_cast<T>(acc / valid) : T(0);
}

template <typename T>
void crossEntropyBwd(const T *logits, const int64_t *labels, int64_t rows,
                     int64_t c, int64_t ignoreIndex, T dloss, T *dlogits) {
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r)
    valid += labels[r] != ignoreIndex;
  if (!valid)
    return;
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] == ignoreIndex)
      continue;
    const T *l = logits + r * c;
    double lse = logSumExp(l, c);
    for (int64_t j = 0; j < c; ++j) {
      double g = std::exp(l[j] - lse) - (j == labels[r] ? 1.0 : 0.0);
      dlogits[r * c + j] += static_cast<T>(dloss * g / valid);
    }
  }
}

template <typename T>
T chunkedCrossEntropyFwd(const T *h, const T *w, const int64_t *labels,
                         int64_t rows, int64_t d, int64_t v, int64_t chunk,
                         int64_t ignoreIndex, double zWeight) {
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r)
    valid += labels[r] != ignoreIndex;
  std::vector<T> logits(std::min(chunk, rows) * v);
  double ce = 0, z = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    int64_t n = std::min(chunk, rows - r0);
    linearFwd(h + r0 * d, w, n, d, v, logits.data());
    for (int64_t r = 0; r < n; ++r) {
      double lse = logSumExp(logits.data() + r * v, v);
      z += lse * lse;
      if (labels[r0 + r] != ignoreIndex)
        ce += lse - logits[r * v + labels[r0 + r]];
    }
  }
  double loss = valid ? ce / valid : 0.0;
  return static_cast<T>(loss + zWeight * z / rows);
}

template <typename T>
void chunkedCrossEntropyBwd(const T *h, const T *w, const int64_t *labels,
                            int64_t rows, int64_t d, int64_t v, int64_t chunk,
                            int64_t ignoreIndex, double zWeight, T dloss, T *dh,
                            T *dw) {
  int64_t valid = 0;
  for (int64_t r = 0; r < rows; ++r)
    valid += labels[r] != ignoreIndex;
  const int64_t maxRows = std::min(chunk, rows);
  std::vector<T> logits(maxRows * v), dlogits(maxRows * v);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    int64_t n = std::min(chunk, rows - r0);
    linearFwd(h + r0 * d, w, n, d, v, logits.data());
    std::fill(dlogits.begin(), dlogits.end(), T(0));
    for (int64_t r = 0; r < n; ++r) {
      const T *l = logits.data() + r * v;
      double lse = logSumExp(l, v);
      bool counted = valid && labels[r0 + r] != ignoreIndex;
      for (int64_t j = 0; j < v; ++j) {
        double p = std::exp(l[j] - lse);
        double g = zWeight * 2.0 * lse * p / rows;
        if (counted)
          g += (p - (j == labels[r0 + r] ? 1.0 : 0.0)) / valid;
        dlogits[r * v + j] = static_cast<T>(dloss * g);
      }
    }
    linearBwd(h + r0 * d, w, dlogits.data(), n, d, v, dh + r0 * d, dw);
  }
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

double globalNorm(const std::vector<std::pair<const float *, int64_t>> &ts) {
  double acc = 0;
  for (auto &[p, n] : ts)
    for (int64_t i = 0; i < n; ++i)
      acc += static_cast<double>(p[i]) * p[i];
  return std::sqrt(acc);
}

double clipCoefficient(double norm, double maxNorm) {
  return std::min(1.0, maxNorm / (norm + 1e-6));
}

double lrFactor(const Schedule &s, int64_t step) {
  const std::string name = s.name;
  if (name == "none")
    return 1.0;
  const double st = static_cast<double>(step);
  if (s.warmup > 0 && step < s.warmup)
    return st / static_cast<double>(s.warmup);
  if (name == "constant")
    return 1.0;
  const double r = s.minLrRatio;
  const int64_t stable = name == "wsd" ? s.stable : 0;
  // decay = 0 (or unset) falls back to the remaining steps.
  int64_t total = s.decay > 0 ? s.decay : s.maxSteps - s.warmup - stable;
  if (name == "wsd" && step < s.warmup + stable)
    return 1.0;
  if (name == "rex")
    total = std::max<int64_t>(total, 1);
  else if (total <= 0)
    return 1.0;
  double p =
      std::min(1.0, (st - s.warmup - stable) / static_cast<double>(total));
  if (name == "cosine")
    return r + 0.5 * (1 - r) * (1 + std::cos(M_PI * p));
  if (name == "linear")
    return 1 - (1 - r) * p;
  if (name == "rex")
    return std::max(r, std::pow(1 - p, s.rexAlpha));
  // wsd cooldown
  const std::string wd = s.wsdDecay;
  if (wd == "linear")
    return 1 - (1 - r) * p;
  if (wd == "sqrt")
    return r + (1 - r) * std::sqrt(1 - p);
  return r + 0.5 * (1 - r) * (1 + std::cos(M_PI * p));
}

void adamwUpdate(float *param, const float *grad, float *expAvg,
                 float *expAvgSq, int64_t n, double lr, double clip,
                 int64_t step, double beta1, double beta2, double eps,
                 double weightDecay) {
  const double t = static_cast<double>(step + 1);
  const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
  for (int64_t i = 0; i < n; ++i) {
    double g = grad[i] * clip;
    double m = beta1 * expAvg[i] + (1 - beta1) * g;
    double v = beta2 * expAvgSq[i] + (1 - beta2) * g * g;
    double p = param[i] * (1 - lr * weightDecay);
    p -= lr * (m / bc1) / (std::sqrt(v / bc2) + eps);
    expAvg[i] = static_cast<float>(m);
    expAvgSq[i] = static_cast<float>(v);
    param[i] = static_cast<float>(p);
  }
}

void lionUpdate(float *param, const float *grad, float *expAvg, int64_t n,
                double lr, double clip, double beta1, double beta2,
                double weightDecay) {
  for (int64_t i = 0; i < n; ++i) {
    double g = grad[i] * clip;
    double c = beta1 * expAvg[i] + (1 - beta1) * g;
    double u = c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0;
    param[i] = static_cast<float>(param[i] * (1 - lr * weightDecay) - lr * u);
    expAvg[i] = static_cast<float>(beta2 * expAvg[i] + (1 - beta2) * g);
  }
}

void newtonSchulz(const float *g, int64_t m, int64_t n, int64_t steps,
                  float *out) {
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  double sq = 0;
  for (int64_t i = 0; i < m * n; ++i)
    sq += static_cast<double>(g[i]) * g[i];
  const float denom = static_cast<float>(std::sqrt(sq)) + 1e-7f;
  std::vector<float> x(m * n), aa(m * m), bb(m * m), next(m * n);
  for (int64_t i = 0; i < m * n; ++i)
    x[i] = g[i] / denom;
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t i = 0; i < m; ++i) // A = X X^T
      for (int64_t j = 0; j < m; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < n; ++k)
          acc += static_cast<double>(x[i * n + k]) * x[j * n + k];
        aa[i * m + j] = static_cast<float>(acc);
      }
    for (int64_t i = 0; i < m; ++i) // B = b A + c A A
      for (int64_t j = 0; j < m; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < m; ++k)
          acc += static_cast<double>(aa[i * m + k]) * aa[k * m + j];
        bb[i * m + j] = static_cast<float>(b * aa[i * m + j] + c * acc);
      }
    for (int64_t i = 0; i < m; ++i) // X = a X + B X
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < m; ++k)
          acc += static_cast<double>(bb[i * m + k]) * x[k * n + j];
        next[i * n + j] = static_cast<float>(a * x[i * n + j] + acc);
      }
    x.swap(next);
  }
  std::copy(x.begin(), x.end(), out);
}

void muonUpdate(float *param, const float *grad, float *momentumBuf, int64_t m,
                int64_t n, double lr, double clip, double momentum,
                int64_t nsSteps, double weightDecay) {
  const int64_t size = m * n;
  for (int64_t i = 0; i < size; ++i)
    momentumBuf[i] = static_cast<float>(momentum * momentumBuf[i] +
                                        static_cast<double>(grad[i]) * clip);
  std::vector<float> u(size);
  newtonSchulz(momentumBuf, m, n, nsSteps, u.data());
  const double scale =
      std::sqrt(std::max(1.0, static_cast<double>(m) / static_cast<double>(n)));
  for (int64_t i = 0; i < size; ++i)
    param[i] = static_cast<float>(param[i] * (1 - lr * weightDecay) -
                                  lr * scale * u[i]);
}

ScheduleFreeScalars readScheduleFree(const float *state) {
  return {static_cast<double>(state[0]) + state[1],
          static_cast<double>(state[2]) + state[3]};
}

void writeScheduleFree(const ScheduleFreeScalars &s, float *state) {
  // hi is the nearest f32, lo the (exactly representable) remainder.
  state[0] = static_cast<float>(s.k);
  state[1] = static_cast<float>(s.k - state[0]);
  state[2] = static_cast<float>(s.weightSum);
  state[3] = static_cast<float>(s.weightSum - state[2]);
}

double scheduleFreeWarm(double k, int64_t warmup) {
  return warmup > 0 ? std::min(1.0, k / static_cast<double>(warmup)) : 1.0;
}

void scheduleFreeCount(const float *state, double lr, double beta1,
                       int64_t warmup, float *newState) {
  ScheduleFreeScalars s = readScheduleFree(state);
  s.k += 1;
  s.weightSum += lr * scheduleFreeWarm(s.k, warmup) * (1 - beta1);
  writeScheduleFree(s, newState);
}

void scheduleFreeAdamwUpdate(float *param, const float *grad, float *z,
                             float *expAvgSq, float *x, int64_t n, double lr,
                             double clip, const float *state, double beta1,
                             double beta2, double eps, double weightDecay,
                             int64_t warmup) {
  const ScheduleFreeScalars s = readScheduleFree(state);
  const double eta = lr * scheduleFreeWarm(s.k, warmup);
  const double bc2 = 1 - std::pow(beta2, s.k);
  // KempnerForge divides by weight_sum unguarded; it is 0 only while every
  // lr so far was 0, when c is not used (first step) or has no effect.
  const double c = s.weightSum > 0 ? eta * (1 - beta1) / s.weightSum : 0.0;
  const bool first = s.k <= 1;
  for (int64_t i = 0; i < n; ++i) {
    double g = grad[i] * clip;
    double v = beta2 * expAvgSq[i] + (1 - beta2) * g * g;
    double zi = first ? param[i] : z[i];
    zi -= eta * g / (std::sqrt(v / bc2) + eps);
    zi *= 1 - eta * weightDecay;
    double xi = first ? zi : x[i] + c * (zi - x[i]);
    expAvgSq[i] = static_cast<float>(v);
    z[i] = static_cast<float>(zi);
    x[i] = static_cast<float>(xi);
    param[i] = static_cast<float>((1 - beta1) * zi + beta1 * xi);
  }
}

void scheduleFreeInterpolate(const float *param, const float *z, const float *x,
                             int64_t n, const float *state, double weight,
                             float *out) {
  if (readScheduleFree(state).k == 0) {
    std::copy(param, param + n, out);
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>((1 - weight) * z[i] + weight * x[i]);
}

//===----------------------------------------------------------------------===//
// Instantiations
//===----------------------------------------------------------------------===//

#define FORGE_INSTANTIATE(T)                                                   \
  template void embeddingFwd<T>(const T *, const int64_t *, int64_t, int64_t,  \
                                T *);                                          \
  template void embeddingBwd<T>(const int64_t *, int64_t, int64_t, const T *,  \
                                T *);                                          \
  template void linearFwd<T>(const T *, const T *, int64_t, int64_t, int64_t,  \
                             T *);                                             \
  template void linearBwd<T>(const T *, const T *, const T *, int64_t,         \
                             int64_t, int64_t, T *, T *);                      \
  template void groupedLinearFwd<T>(const T *, const T *, const int64_t *,     \
                                    int64_t, int64_t, int64_t, bool, T *);     \
  template void groupedLinearBwd<T>(const T *, const T *, const int64_t *,     \
                                    int64_t, int64_t, int64_t, bool,           \
                                    const T *, T *, T *);                      \
  template void rmsnormFwd<T>(const T *, const T *, int64_t, int64_t, double,  \
                              T *);                                            \
  template void rmsnormBwd<T>(const T *, const T *, const T *, int64_t,        \
                              int64_t, double, T *, T *);                      \
  template void layernormFwd<T>(const T *, const T *, const T *, int64_t,      \
                                int64_t, double, T *);                         \
  template void layernormBwd<T>(const T *, const T *, const T *, int64_t,      \
                                int64_t, double, T *, T *, T *);               \
  template void ropeFwd<T>(const T *, int64_t, int64_t, int64_t, int64_t,      \
                           double, T *);                                       \
  template void ropeBwd<T>(const T *, int64_t, int64_t, int64_t, int64_t,      \
                           double, T *);                                       \
  template void attentionFwd<T>(const T *, const T *, const T *,               \
                                const int32_t *, const AttentionShape &, T *,  \
                                T *);                                          \
  template void attentionBwd<T>(                                               \
      const T *, const T *, const T *, const int32_t *,                        \
      const AttentionShape &, const T *, const T *, const T *, T *, T *, T *); \
  template void unaryFwd<T>(Unary, const T *, int64_t, T *);                   \
  template void unaryBwd<T>(Unary, const T *, const T *, int64_t, T *);        \
  template void softmaxTopKFwd<T>(const T *, int64_t, int64_t, int64_t, T *,   \
                                  int64_t *, T *);                             \
  template void softmaxTopKBwd<T>(const T *, const int64_t *, int64_t,         \
                                  int64_t, int64_t, const T *, const T *,      \
                                  T *);                                        \
  template void sigmoidTopKFwd<T>(const T *, const T *, int64_t, int64_t,      \
                                  int64_t, T *, int64_t *, T *);               \
  template void sigmoidTopKBwd<T>(const T *, const int64_t *, int64_t,         \
                                  int64_t, int64_t, const T *, const T *, T *, \
                                  T *);                                        \
  template void moeCapacityFwd<T>(const int64_t *, const T *, int64_t,         \
                                  int64_t, int64_t, double, T *);              \
  template void moeCapacityBwd<T>(const int64_t *, int64_t, int64_t, int64_t,  \
                                  double, const T *, T *);                     \
  template void moeDispatchFwd<T>(const T *, const int64_t *, int64_t,         \
                                  int64_t, int64_t, int64_t, T *, int64_t *,   \
                                  int64_t *);                                  \
  template void moeDispatchBwd<T>(const int64_t *, int64_t, int64_t, int64_t,  \
                                  const T *, T *);                             \
  template void moeCombineFwd<T>(const T *, const int64_t *, const T *,        \
                                 const int64_t *, int64_t, int64_t, int64_t,   \
                                 int64_t, bool, const int64_t *, T *);         \
  template void moeCombineBwd<T>(                                              \
      const T *, const int64_t *, const T *, const int64_t *, int64_t,         \
      int64_t, int64_t, int64_t, bool, const int64_t *, const T *, T *, T *);  \
  template T moeAuxLossFwd<T>(const T *, const int64_t *, int64_t, int64_t,    \
                              int64_t);                                        \
  template void moeAuxLossBwd<T>(const int64_t *, int64_t, int64_t, int64_t,   \
                                 T, T *);                                      \
  template T zLossFwd<T>(const T *, int64_t, int64_t);                         \
  template void zLossBwd<T>(const T *, int64_t, int64_t, T, T *);              \
  template T crossEntropyFwd<T>(const T *, const int64_t *, int64_t, int64_t,  \
                                int64_t);                                      \
  template void crossEntropyBwd<T>(const T *, const int64_t *, int64_t,        \
                                   int64_t, int64_t, T, T *);                  \
  template T chunkedCrossEntropyFwd<T>(const T *, const T *, const int64_t *,  \
                                       int64_t, int64_t, int64_t, int64_t,     \
                                       int64_t, double);                       \
  template void chunkedCrossEntropyBwd<T>(                                     \
      const T *, const T *, const int64_t *, int64_t, int64_t, int64_t,        \
      int64_t, int64_t, double, T, T *, T *);

FORGE_INSTANTIATE(float)
FORGE_INSTANTIATE(double)

#undef FORGE_INSTANTIATE

float roundFp8(float v, bool e4m3) {
  // e4m3fn: 3 mantissa bits, smallest normal exponent -6, max 448;
  // e5m2: 2 mantissa bits, smallest normal exponent -14, max 57344.
  const int mant = e4m3 ? 3 : 2, emin = e4m3 ? -6 : -14;
  const double fmax = e4m3 ? 448.0 : 57344.0;
  double a = std::fabs(static_cast<double>(v));
  if (!(a > 0))
    return v == v ? 0.0f * v : v; // +-0 keeps its sign; NaN stays NaN
  if (a >= fmax)
    return std::copysign(static_cast<float>(fmax), v);
  int e = std::max(static_cast<int>(std::floor(std::log2(a))), emin);
  // Below the smallest normal the quantum stays that of emin (subnormals).
  double quantum = std::ldexp(1.0, e - mant);
  double r = std::nearbyint(a / quantum) * quantum; // ties to even
  if (r > fmax)
    r = fmax;
  return static_cast<float>(std::copysign(r, static_cast<double>(v)));
}

uint8_t fp8Bits(float v, bool e4m3) {
  const int mant = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  // A NaN must stay one through the bytes, or a diverging run trains on
  // finite garbage: S.1111.111 is NaN in both formats. e4m3fn has no
  // infinity (NaN instead); e5m2's is S.11111.00. (roundFp8 saturates, so
  // only NaN reaches here from a cast.)
  if (std::isnan(v))
    return sign | 0x7f;
  if (std::isinf(v))
    return sign | (e4m3 ? 0x7f : 0x7c);
  const double a = std::fabs(static_cast<double>(v));
  if (a == 0)
    return sign;
  int e = static_cast<int>(std::floor(std::log2(a)));
  if (e < 1 - bias) // subnormal: exponent field 0, quantum 2^(1-bias-mant)
    return sign |
           static_cast<uint8_t>(std::lround(std::ldexp(a, bias - 1 + mant)));
  const int m =
      static_cast<int>(std::lround((std::ldexp(a, -e) - 1.0) * (1 << mant)));
  return sign | static_cast<uint8_t>((e + bias) << mant) |
         static_cast<uint8_t>(m);
}

float fp8FromBits(uint8_t bits, bool e4m3) {
  const int mant = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const int field = (bits & 0x7f) >> mant, m = bits & ((1 << mant) - 1);
  if (e4m3 ? (bits & 0x7f) == 0x7f : field == 31) {
    const float special = e4m3 || m ? std::numeric_limits<float>::quiet_NaN()
                                    : std::numeric_limits<float>::infinity();
    return (bits & 0x80) ? -special : special;
  }
  const double a = field == 0
                       ? std::ldexp(static_cast<double>(m), 1 - bias - mant)
                       : std::ldexp(1.0 + static_cast<double>(m) / (1 << mant),
                                    field - bias);
  return static_cast<float>((bits & 0x80) ? -a : a);
}

void fp8Cast(const float *x, int64_t n, bool e4m3, float *y) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i)
    amax = std::max(amax, std::fabs(x[i]));
  const float fmax = e4m3 ? 448.0f : 57344.0f;
  const float scale = amax > 0 ? fmax / amax : 1.0f;
  for (int64_t i = 0; i < n; ++i)
    y[i] = roundFp8(x[i] * scale, e4m3) / scale;
}

} // namespace forge::cpu::ref
