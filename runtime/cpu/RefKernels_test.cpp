//===- RefKernels_test.cpp - Every VJP against finite differences ---------===//
//
// For each op: L = sum(cotangent * forward(inputs)) with a random cotangent;
// the backward kernel's input gradients must equal central differences of L
// (in double precision, so the tolerance can be tight). A few forward values
// are also checked against hand-computed numbers.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/DType.h"
#include "runtime/cpu/RefKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

using namespace forge::cpu::ref;
using Vec = std::vector<double>;
using IVec = std::vector<int64_t>;

namespace {

Vec randn(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, scale);
  Vec v(n);
  for (double &x : v)
    x = dist(gen);
  return v;
}

double dot(const Vec &a, const Vec &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

/// Compares `analytic` with central differences of `loss` in every element
/// of `x`.
void expectGrad(Vec &x, const Vec &analytic,
                const std::function<double()> &loss, const char *what,
                double tol = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double up = loss();
    x[i] = saved - h;
    double down = loss();
    x[i] = saved;
    double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, tol * std::max(1.0, std::abs(numeric)))
        << what << "[" << i << "]";
  }
}

TEST(RefKernels, Embedding) {
  const int64_t V = 5, D = 3, N = 4;
  Vec table = randn(V * D, 1), r = randn(N * D, 2);
  IVec ids = {3, 0, 3, 4};
  auto loss = [&] {
    Vec out(N * D);
    embeddingFwd(table.data(), ids.data(), N, D, out.data());
    return dot(out, r);
  };
  Vec dtable(V * D, 0.0);
  embeddingBwd(ids.data(), N, D, r.data(), dtable.data());
  expectGrad(table, dtable, loss, "dtable");
}

TEST(RefKernels, Linear) {
  const int64_t M = 3, K = 4, N = 5;
  Vec x = randn(M * K, 1), w = randn(N * K, 2), r = randn(M * N, 3);
  auto loss = [&] {
    Vec y(M * N);
    linearFwd(x.data(), w.data(), M, K, N, y.data());
    return dot(y, r);
  };
  Vec dx(M * K, 0.0), dw(N * K, 0.0);
  linearBwd(x.data(), w.data(), r.data(), M, K, N, dx.data(), dw.data());
  expectGrad(x, dx, loss, "dx");
  expectGrad(w, dw, loss, "dw");
}

TEST(RefKernels, GroupedLinearBothLayouts) {
  const int64_t E = 3, K = 4, N = 2;
  IVec sizes = {2, 0, 3};
  const int64_t R = 5;
  for (bool outIn : {true, false}) {
    Vec x = randn(R * K, 1), w = randn(E * K * N, 2), r = randn(R * N, 3);
    auto loss = [&] {
      Vec y(R * N);
      groupedLinearFwd(x.data(), w.data(), sizes.data(), E, K, N, outIn,
                       y.data());
      return dot(y, r);
    };
    Vec dx(R * K, 0.0), dw(E * K * N, 0.0);
    groupedLinearBwd(x.data(), w.data(), sizes.data(), E, K, N, outIn, r.data(),
                     dx.data(), dw.data());
    expectGrad(x, dx, loss, outIn ? "dx out_in" : "dx in_out");
    expectGrad(w, dw, loss, outIn ? "dw out_in" : "dw in_out");
  }
}

TEST(RefKernels, GroupedLinearMatchesPerExpertLinear) {
  // Expert 0 gets rows 0-1 with w[0], expert 1 rows 2-4 with w[1].
  const int64_t K = 3, N = 2;
  IVec sizes = {2, 3};
  Vec x = randn(5 * K, 4), w = randn(2 * N * K, 5), y(5 * N), ref(5 * N);
  groupedLinearFwd(x.data(), w.data(), sizes.data(), 2, K, N, true, y.data());
  linearFwd(x.data(), w.data(), 2, K, N, ref.data());
  linearFwd(x.data() + 2 * K, w.data() + N * K, 3, K, N, ref.data() + 2 * N);
  for (size_t i = 0; i < y.size(); ++i)
    EXPECT_DOUBLE_EQ(y[i], ref[i]);
}

TEST(RefKernels, RMSNorm) {
  const int64_t R = 3, D = 6;
  Vec x = randn(R * D, 1), w = randn(D, 2), r = randn(R * D, 3);
  auto loss = [&] {
    Vec y(R * D);
    rmsnormFwd(x.data(), w.data(), R, D, 1e-5, y.data());
    return dot(y, r);
  };
  Vec dx(R * D, 0.0), dw(D, 0.0);
  rmsnormBwd(x.data(), w.data(), r.data(), R, D, 1e-5, dx.data(), dw.data());
  expectGrad(x, dx, loss, "dx");
  expectGrad(w, dw, loss, "dw");
  // Forward: a row of 2s with unit weights normalizes to ~1.
  Vec twos(D, 2.0), ones(D, 1.0), y(D);
  rmsnormFwd(twos.data(), ones.data(), 1, D, 0.0, y.data());
  EXPECT_DOUBLE_EQ(y[0], 1.0);
}

TEST(RefKernels, LayerNorm) {
  const int64_t R = 3, D = 5;
  Vec x = randn(R * D, 1), w = randn(D, 2), b = randn(D, 3),
      r = randn(R * D, 4);
  auto loss = [&] {
    Vec y(R * D);
    layernormFwd(x.data(), w.data(), b.data(), R, D, 1e-5, y.data());
    return dot(y, r);
  };
  Vec dx(R * D, 0.0), dw(D, 0.0), db(D, 0.0);
  layernormBwd(x.data(), w.data(), r.data(), R, D, 1e-5, dx.data(), dw.data(),
               db.data());
  expectGrad(x, dx, loss, "dx");
  expectGrad(w, dw, loss, "dw");
  expectGrad(b, db, loss, "db");
}

TEST(RefKernels, Rope) {
  const int64_t B = 2, S = 5, H = 2, HD = 8;
  Vec x = randn(B * S * H * HD, 1), r = randn(B * S * H * HD, 2);
  auto loss = [&] {
    Vec y(x.size());
    ropeFwd(x.data(), B, S, H, HD, 10000.0, y.data());
    return dot(y, r);
  };
  Vec dx(x.size(), 0.0);
  ropeBwd(r.data(), B, S, H, HD, 10000.0, dx.data());
  expectGrad(x, dx, loss, "dx");
  // Position 0 is the identity; position 1, pair 0 rotates by 1 radian.
  Vec y(x.size());
  ropeFwd(x.data(), B, S, H, HD, 10000.0, y.data());
  for (int64_t c = 0; c < HD; ++c)
    EXPECT_NEAR(y[c], x[c], 1e-12);
  const int64_t p1 = 1 * H * HD;
  EXPECT_NEAR(y[p1], x[p1] * std::cos(1.0) - x[p1 + HD / 2] * std::sin(1.0),
              1e-7);
}

void checkAttention(bool causal, bool docs, int64_t h, int64_t kv) {
  AttentionShape sh{2, 5, h, kv, 4, causal, 0.5};
  const size_t qn = sh.b * sh.s * sh.h * sh.hd,
               kn = sh.b * sh.s * sh.kv * sh.hd;
  Vec q = randn(qn, 1), k = randn(kn, 2), v = randn(kn, 3), r = randn(qn, 4);
  std::vector<int32_t> doc = {0, 0, 1, 1, 1, 7, 7, 7, 8, 8};
  const int32_t *d = docs ? doc.data() : nullptr;
  auto loss = [&] {
    Vec o(qn), lse(sh.b * sh.h * sh.s);
    attentionFwd(q.data(), k.data(), v.data(), d, sh, o.data(), lse.data());
    return dot(o, r);
  };
  Vec o(qn), lse(sh.b * sh.h * sh.s);
  attentionFwd(q.data(), k.data(), v.data(), d, sh, o.data(), lse.data());
  Vec dq(qn, 0.0), dk(kn, 0.0), dv(kn, 0.0);
  attentionBwd(q.data(), k.data(), v.data(), d, sh, o.data(), lse.data(),
               r.data(), dq.data(), dk.data(), dv.data());
  expectGrad(q, dq, loss, "dq");
  expectGrad(k, dk, loss, "dk");
  expectGrad(v, dv, loss, "dv");
}

TEST(RefKernels, AttentionCausal) { checkAttention(true, false, 2, 2); }
TEST(RefKernels, AttentionCausalGQA) { checkAttention(true, false, 4, 2); }
TEST(RefKernels, AttentionMQADocumentMask) { checkAttention(true, true, 4, 1); }
TEST(RefKernels, AttentionFull) { checkAttention(false, false, 2, 1); }

TEST(RefKernels, AttentionMasksAreRespected) {
  // Causal: the first query sees only the first key, so o[0] = v[0].
  AttentionShape sh{1, 3, 1, 1, 2, true, 1.0};
  Vec q = randn(6, 1), k = randn(6, 2), v = randn(6, 3), o(6), lse(3);
  attentionFwd(q.data(), k.data(), v.data(), nullptr, sh, o.data(), lse.data());
  EXPECT_NEAR(o[0], v[0], 1e-12);
  EXPECT_NEAR(o[1], v[1], 1e-12);
  // Document mask: query 2 starts a new document, so o[2] = v[2] too.
  std::vector<int32_t> doc = {0, 0, 1};
  attentionFwd(q.data(), k.data(), v.data(), doc.data(), sh, o.data(),
               lse.data());
  EXPECT_NEAR(o[4], v[4], 1e-12);
  EXPECT_NEAR(o[5], v[5], 1e-12);
}

TEST(RefKernels, Unary) {
  for (Unary kind : {Unary::Silu, Unary::Gelu, Unary::Relu, Unary::Tanh}) {
    Vec x = randn(7, 1, 2.0), r = randn(7, 2);
    auto loss = [&] {
      Vec y(7);
      unaryFwd(kind, x.data(), 7, y.data());
      return dot(y, r);
    };
    Vec dx(7, 0.0);
    unaryBwd(kind, x.data(), r.data(), 7, dx.data());
    expectGrad(x, dx, loss, "dx");
  }
  Vec one = {1.0}, y(1);
  unaryFwd(Unary::Gelu, one.data(), 1, y.data());
  EXPECT_NEAR(y[0], 0.8413447460685429, 1e-12); // Phi(1)
}

TEST(RefKernels, SoftmaxTopK) {
  const int64_t T = 4, E = 5, K = 2;
  Vec logits = randn(T * E, 1), rw = randn(T * K, 2), rp = randn(T * E, 3);
  IVec idx(T * K);
  auto loss = [&] {
    Vec w(T * K), p(T * E);
    softmaxTopKFwd(logits.data(), T, E, K, w.data(), idx.data(), p.data());
    return dot(w, rw) + dot(p, rp);
  };
  Vec w(T * K), p(T * E);
  softmaxTopKFwd(logits.data(), T, E, K, w.data(), idx.data(), p.data());
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-12);
  EXPECT_GE(p[idx[0]], p[idx[1]]);
  Vec dl(T * E, 0.0);
  softmaxTopKBwd(p.data(), idx.data(), T, E, K, rw.data(), rp.data(),
                 dl.data());
  expectGrad(logits, dl, loss, "dlogits");
}

TEST(RefKernels, SigmoidTopK) {
  const int64_t T = 4, E = 5, K = 3;
  Vec logits = randn(T * E, 1), bias = randn(E, 2, 0.1), rw = randn(T * K, 3),
      rs = randn(T * E, 4);
  IVec idx(T * K);
  auto loss = [&] {
    Vec w(T * K), s(T * E);
    sigmoidTopKFwd(logits.data(), bias.data(), T, E, K, w.data(), idx.data(),
                   s.data());
    return dot(w, rw) + dot(s, rs);
  };
  Vec w(T * K), s(T * E);
  sigmoidTopKFwd(logits.data(), bias.data(), T, E, K, w.data(), idx.data(),
                 s.data());
  Vec dl(T * E, 0.0), db(E, 0.0);
  sigmoidTopKBwd(s.data(), idx.data(), T, E, K, rw.data(), rs.data(), dl.data(),
                 db.data());
  expectGrad(logits, dl, loss, "dlogits");
  expectGrad(bias, db, loss, "dbias");
}

TEST(RefKernels, Capacity) {
  // 4 tokens, k = 1, 2 experts, factor 0.5: capacity = ceil(4/2*0.5) = 1.
  EXPECT_EQ(moeCapacity(4, 1, 2, 0.5), 1);
  EXPECT_EQ(moeCapacity(1, 1, 8, 0.1), 1);
  IVec idx = {0, 0, 1, 0};
  Vec w = {0.5, 0.6, 0.7, 0.8}, out(4);
  moeCapacityFwd(idx.data(), w.data(), 4, 1, 2, 0.5, out.data());
  EXPECT_EQ(out, (Vec{0.5, 0.0, 0.7, 0.0}));
  Vec r = randn(4, 1);
  auto loss = [&] {
    Vec o(4);
    moeCapacityFwd(idx.data(), w.data(), 4, 1, 2, 0.5, o.data());
    return dot(o, r);
  };
  Vec dw(4, 0.0);
  moeCapacityBwd(idx.data(), 4, 1, 2, 0.5, r.data(), dw.data());
  expectGrad(w, dw, loss, "dweights");
}

TEST(RefKernels, DispatchAndCombine) {
  const int64_t T = 4, D = 3, K = 2, E = 3;
  IVec idx = {2, 0, 0, 1, 2, 1, 0, 2};
  Vec x = randn(T * D, 1), rows(T * K * D);
  IVec sizes(E), order(T * K);
  moeDispatchFwd(x.data(), idx.data(), T, D, K, E, rows.data(), sizes.data(),
                 order.data());
  EXPECT_EQ(sizes, (IVec{3, 2, 3}));
  // Stable by expert: expert 0 gets (t0,s1), (t1,s0), (t3,s0).
  EXPECT_EQ(order, (IVec{1, 2, 6, 3, 5, 0, 4, 7}));
  EXPECT_EQ(rows[0], x[0]);

  Vec r = randn(T * K * D, 2);
  auto dloss = [&] {
    Vec rr(T * K * D);
    IVec s(E), o(T * K);
    moeDispatchFwd(x.data(), idx.data(), T, D, K, E, rr.data(), s.data(),
                   o.data());
    return dot(rr, r);
  };
  Vec dx(T * D, 0.0);
  moeDispatchBwd(order.data(), T, D, K, r.data(), dx.data());
  expectGrad(x, dx, dloss, "dispatch dx");

  for (bool scale : {false, true}) {
    Vec y = randn(T * K * D, 3), w = randn(T * K, 4), ry = randn(T * D, 5);
    auto closs = [&] {
      Vec out(T * D);
      moeCombineFwd(y.data(), order.data(), w.data(), sizes.data(), T, D, K, E,
                    scale, idx.data(), out.data());
      return dot(out, ry);
    };
    Vec dy(T * K * D, 0.0), dw(T * K, 0.0);
    moeCombineBwd(y.data(), order.data(), w.data(), sizes.data(), T, D, K, E,
                  scale, idx.data(), ry.data(), dy.data(), dw.data());
    expectGrad(y, dy, closs, "combine drows");
    expectGrad(w, dw, closs, "combine dweights");
  }
}

TEST(RefKernels, AuxLoss) {
  const int64_t T = 4, E = 3, K = 2;
  IVec idx = {0, 1, 0, 2, 1, 0, 0, 1};
  Vec p = randn(T * E, 1);
  auto loss = [&] { return moeAuxLossFwd(p.data(), idx.data(), T, E, K); };
  Vec dp(T * E, 0.0);
  moeAuxLossBwd(idx.data(), T, E, K, 1.0, dp.data());
  expectGrad(p, dp, loss, "dprobs");
  // Perfect balance with uniform probabilities gives exactly 1.
  IVec bal = {0, 1, 2, 0, 1, 2};
  Vec uni(3 * 3, 1.0 / 3);
  EXPECT_NEAR(moeAuxLossFwd(uni.data(), bal.data(), 3, 3, 2), 1.0, 1e-12);
}

TEST(RefKernels, ZLoss) {
  Vec l = randn(3 * 4, 1);
  auto loss = [&] { return zLossFwd(l.data(), 3, 4); };
  Vec dl(12, 0.0);
  zLossBwd(l.data(), 3, 4, 1.0, dl.data());
  expectGrad(l, dl, loss, "dlogits");
  Vec zeros(4, 0.0);
  EXPECT_NEAR(zLossFwd(zeros.data(), 1, 4), std::log(4.0) * std::log(4.0),
              1e-12);
}

TEST(RefKernels, CrossEntropyIgnoresMinus100) {
  const int64_t R = 4, C = 5;
  Vec l = randn(R * C, 1);
  IVec labels = {2, -100, 4, 0};
  auto loss = [&] {
    return crossEntropyFwd(l.data(), labels.data(), R, C, -100);
  };
  Vec dl(R * C, 0.0);
  crossEntropyBwd(l.data(), labels.data(), R, C, -100, 1.0, dl.data());
  expectGrad(l, dl, loss, "dlogits");
  Vec uniform(C, 0.0);
  IVec one = {3}, none = {-100};
  EXPECT_NEAR(crossEntropyFwd(uniform.data(), one.data(), 1, C, -100),
              std::log(5.0), 1e-12);
  EXPECT_EQ(crossEntropyFwd(uniform.data(), none.data(), 1, C, -100), 0.0);
}

TEST(RefKernels, ChunkedCrossEntropy) {
  const int64_t R = 7, D = 3, V = 6, chunk = 3;
  const double zw = 0.1;
  Vec h = randn(R * D, 1), w = randn(V * D, 2);
  IVec labels = {1, 5, -100, 0, 2, -100, 4};
  auto loss = [&] {
    return chunkedCrossEntropyFwd(h.data(), w.data(), labels.data(), R, D, V,
                                  chunk, -100, zw);
  };
  // Same value as the head matmul, CE and z-loss done whole.
  Vec logits(R * V);
  linearFwd(h.data(), w.data(), R, D, V, logits.data());
  double whole = crossEntropyFwd(logits.data(), labels.data(), R, V, -100) +
                 zw * zLossFwd(logits.data(), R, V);
  EXPECT_NEAR(loss(), whole, 1e-12);
  Vec dh(R * D, 0.0), dw(V * D, 0.0);
  chunkedCrossEntropyBwd(h.data(), w.data(), labels.data(), R, D, V, chunk,
                         -100, zw, 1.0, dh.data(), dw.data());
  expectGrad(h, dh, loss, "dh");
  expectGrad(w, dw, loss, "dw");
}

TEST(RefKernels, FloatInstantiationAgreesWithDouble) {
  const int64_t M = 4, K = 8, N = 3;
  Vec x = randn(M * K, 1), w = randn(N * K, 2), y(M * N);
  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), yf(M * N);
  linearFwd(x.data(), w.data(), M, K, N, y.data());
  linearFwd(xf.data(), wf.data(), M, K, N, yf.data());
  for (int64_t i = 0; i < M * N; ++i)
    EXPECT_NEAR(yf[i], y[i], 1e-5 * std::max(1.0, std::abs(y[i])));
}

} // namespace

namespace {

TEST(RefKernels, ClipAndNorm) {
  std::vector<float> a = {3, 0}, b = {4};
  double n = globalNorm({{a.data(), 2}, {b.data(), 1}});
  EXPECT_DOUBLE_EQ(n, 5.0);
  EXPECT_NEAR(clipCoefficient(n, 1.0), 1.0 / (5.0 + 1e-6), 1e-15);
  EXPECT_EQ(clipCoefficient(0.5, 1.0), 1.0);
}

TEST(RefKernels, LrSchedulesMatchReferenceFormulas) {
  Schedule s;
  s.warmup = 10;
  s.maxSteps = 110;
  s.minLrRatio = 0.1;
  // Warmup: s / W, so the first update uses lr = 0.
  EXPECT_EQ(lrFactor(s, 0), 0.0);
  EXPECT_DOUBLE_EQ(lrFactor(s, 5), 0.5);
  // Cosine over T = max_steps - W = 100: midpoint is (1 + r) / 2.
  EXPECT_DOUBLE_EQ(lrFactor(s, 10), 1.0);
  EXPECT_NEAR(lrFactor(s, 60), 0.55, 1e-12);
  EXPECT_NEAR(lrFactor(s, 110), 0.1, 1e-12);
  EXPECT_NEAR(lrFactor(s, 500), 0.1, 1e-12); // stays at the end value
  s.name = "linear";
  EXPECT_NEAR(lrFactor(s, 60), 0.55, 1e-12);
  s.name = "constant";
  EXPECT_EQ(lrFactor(s, 60), 1.0);
  s.name = "none";
  EXPECT_EQ(lrFactor(s, 0), 1.0);
  s.name = "rex";
  s.rexAlpha = 2.0;
  EXPECT_NEAR(lrFactor(s, 60), 0.25, 1e-12); // (1 - 0.5)^2
  s.name = "wsd";
  s.stable = 50;
  s.wsdDecay = "sqrt";
  EXPECT_EQ(lrFactor(s, 59), 1.0);
  // T = 110 - 10 - 50 = 50; at s = 85, p = 0.5.
  EXPECT_NEAR(lrFactor(s, 85), 0.1 + 0.9 * std::sqrt(0.5), 1e-12);
  s.name = "cosine";
  s.decay = 0; // 0 falls back to the remaining steps
  s.warmup = 0;
  EXPECT_DOUBLE_EQ(lrFactor(s, 0), 1.0);
}

TEST(RefKernels, AdamWFirstStepIsSignDescent) {
  // At t = 1 the bias-corrected update is g / (|g| + eps): a step of lr in
  // the direction of -sign(g), after decoupled decay.
  std::vector<float> p = {1.0f, -2.0f}, g = {0.5f, -4.0f}, m(2, 0.f), v(2, 0.f);
  adamwUpdate(p.data(), g.data(), m.data(), v.data(), 2, 0.1, 1.0, 0, 0.9, 0.95,
              1e-8, 0.1);
  EXPECT_NEAR(p[0], 1.0 * (1 - 0.01) - 0.1, 1e-6);
  EXPECT_NEAR(p[1], -2.0 * (1 - 0.01) + 0.1, 1e-6);
  EXPECT_NEAR(m[0], 0.05, 1e-7);
  EXPECT_NEAR(v[1], 0.05 * 16, 1e-6);
  // Clipping scales the gradient before the moments.
  std::vector<float> p2 = {0.0f}, g2 = {2.0f}, m2 = {0.f}, v2 = {0.f};
  adamwUpdate(p2.data(), g2.data(), m2.data(), v2.data(), 1, 0.1, 0.5, 0, 0.9,
              0.95, 1e-8, 0.0);
  EXPECT_NEAR(m2[0], 0.1, 1e-7);
}

} // namespace

namespace {

TEST(RefKernels, LionIsSignDescentOnTheInterpolatedMomentum) {
  // m = 0.2, g = -1: c = 0.9*0.2 + 0.1*(-1) = 0.08 > 0, so u = +1 even though
  // the gradient is negative; m then moves toward g with beta2.
  std::vector<float> p = {1.0f, 2.0f, 3.0f}, g = {-1.0f, 0.0f, 2.0f},
                     m = {0.2f, 0.0f, -0.1f};
  lionUpdate(p.data(), g.data(), m.data(), 3, 0.01, 1.0, 0.9, 0.99, 0.1);
  EXPECT_NEAR(p[0], 1.0 * (1 - 0.001) - 0.01, 1e-6);
  EXPECT_NEAR(p[1], 2.0 * (1 - 0.001), 1e-6); // sign(0) = 0
  EXPECT_NEAR(p[2], 3.0 * (1 - 0.001) - 0.01, 1e-6);
  EXPECT_NEAR(m[0], 0.99 * 0.2 + 0.01 * -1.0, 1e-7);
  EXPECT_NEAR(m[2], 0.99 * -0.1 + 0.01 * 2.0, 1e-7);
}

} // namespace

namespace {

/// One schedule variant of test/golden/schedules.inc.
struct ScheduleCase {
  const char *label, *name;
  int64_t warmup, decay, stable;
  double minLrRatio;
  int64_t maxSteps;
  const char *wsdDecay;
  double rexAlpha;
  std::vector<double> lrs; ///< lr of optimizer steps 1..N (base lr 1)
};

// The schedule list is data generated by PyTorch (LambdaLR over
// KempnerForge's lambdas, tools/golden/make_schedule_golden.py); a variadic
// macro because the lr list's braces do not group macro arguments.
#define FORGE_SCHEDULE_CASE(label, name, warmup, decay, stable, r, maxSteps,   \
                            wsd, alpha, ...)                                   \
  ScheduleCase{label, name,     warmup, decay, stable,                         \
               r,     maxSteps, wsd,    alpha, __VA_ARGS__},
const std::vector<ScheduleCase> kScheduleGolden = {
#include "test/golden/schedules.inc"
};
#undef FORGE_SCHEDULE_CASE

TEST(RefKernels, LrSchedulesMatchPyTorchLambdaLR) {
  ASSERT_GE(kScheduleGolden.size(), 20u);
  for (const ScheduleCase &c : kScheduleGolden) {
    Schedule s;
    s.name = c.name;
    s.warmup = c.warmup;
    s.decay = c.decay;
    s.stable = c.stable;
    s.minLrRatio = c.minLrRatio;
    s.maxSteps = c.maxSteps;
    s.wsdDecay = c.wsdDecay;
    s.rexAlpha = c.rexAlpha;
    // forge-run passes update s the number of completed updates, s - 1.
    for (size_t i = 0; i < c.lrs.size(); ++i)
      EXPECT_NEAR(lrFactor(s, static_cast<int64_t>(i)), c.lrs[i], 1e-6)
          << c.label << ", optimizer step " << i + 1;
  }
}

/// One Newton–Schulz iteration on a singular value: a s + b s^3 + c s^5.
double nsScalar(double s, int steps) {
  for (int i = 0; i < steps; ++i)
    s = 3.4445 * s - 4.7750 * s * s * s + 2.0315 * s * s * s * s * s;
  return s;
}

TEST(RefKernels, NewtonSchulzActsOnSingularValues) {
  // diag(3, 4): X = G / 5 and every iteration maps each diagonal entry
  // (a singular value) through the quintic; off-diagonals stay 0.
  std::vector<float> g = {3, 0, 0, 4}, out(4);
  newtonSchulz(g.data(), 2, 2, 5, out.data());
  EXPECT_NEAR(out[0], nsScalar(3 / (5 + 1e-7), 5), 1e-5);
  EXPECT_NEAR(out[3], nsScalar(4 / (5 + 1e-7), 5), 1e-5);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[2], 0.0f);
  // A column (m > n, not transposed): its one singular value ||X|| goes
  // through the same quintic, in the column's direction.
  std::vector<float> col = {1, 2, 2, 4}, u(4);
  newtonSchulz(col.data(), 4, 1, 3, u.data());
  const double sv = nsScalar(5 / (5 + 1e-7), 3);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(u[i], sv * col[i] / 5, 1e-6);
}

TEST(RefKernels, NewtonSchulzCommutesWithRotations) {
  // NS(Q G) = Q NS(G) for orthogonal Q: it orthogonalizes, whatever the
  // basis. Q rotates the rows of a 3 x 5 G.
  Vec gd = randn(15, 7);
  std::vector<float> g(gd.begin(), gd.end()), qg(15), a(15), b(15);
  const double t = 0.7, co = std::cos(t), si = std::sin(t);
  const double q[3][3] = {{co, -si, 0}, {si, co, 0}, {0, 0, 1}};
  auto rotate = [&](const std::vector<float> &x, std::vector<float> &y) {
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 5; ++j) {
        double acc = 0;
        for (int k = 0; k < 3; ++k)
          acc += q[i][k] * x[k * 5 + j];
        y[i * 5 + j] = static_cast<float>(acc);
      }
  };
  rotate(g, qg);
  newtonSchulz(qg.data(), 3, 5, 5, a.data());
  newtonSchulz(g.data(), 3, 5, 5, b.data());
  std::vector<float> qb(15);
  rotate(b, qb);
  for (int i = 0; i < 15; ++i)
    EXPECT_NEAR(a[i], qb[i], 1e-5);
}

TEST(RefKernels, MuonUpdate) {
  // A 4 x 1 matrix (aspect 4, scale sqrt(4) = 2): plain momentum, then the
  // column's Newton–Schulz value: its direction times the quintic applied
  // to its singular value.
  std::vector<float> p = {1, 1, 1, 1}, g = {2, 4, 4, 8}, buf = {0.5f, 0, 0, 0};
  muonUpdate(p.data(), g.data(), buf.data(), 4, 1, 0.1, 0.5, 0.9, 2, 0.2);
  const float want[4] = {1.45f, 2, 2, 4}; // 0.9 * buf + 0.5 * g
  double norm = 0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(buf[i], want[i], 1e-6);
    norm += want[i] * want[i];
  }
  norm = std::sqrt(norm);
  const double sv = nsScalar(norm / (norm + 1e-7), 2);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(p[i], 1 * (1 - 0.1 * 0.2) - 0.1 * 2 * sv * want[i] / norm,
                1e-6);
  // A 1 x 4 row (m < n): no scale-up; one step maps the singular value 1 to
  // a + b + c.
  std::vector<float> r = {0, 0, 0, 0}, rg = {3, 0, 4, 0}, rb(4, 0.f);
  muonUpdate(r.data(), rg.data(), rb.data(), 1, 4, 1.0, 1.0, 0.9, 1, 0.0);
  EXPECT_NEAR(r[0], -0.701 * 0.6, 1e-6);
  EXPECT_NEAR(r[2], -0.701 * 0.8, 1e-6);
}

TEST(RefKernels, ScheduleFreeStateKeepsDoublePrecision) {
  float st[4];
  // Neither is an f32; the pair holds both exactly.
  writeScheduleFree({100000001.0, 0.1}, st);
  ScheduleFreeScalars s = readScheduleFree(st);
  EXPECT_EQ(s.k, 100000001.0);
  EXPECT_NEAR(s.weightSum, 0.1, 1e-15);
  // Counting: k + 1 and weight_sum + lr * warm * (1 - beta1).
  float zero[4] = {0, 0, 0, 0};
  scheduleFreeCount(zero, 0.1, 0.9, 4, st); // warm = 1/4
  s = readScheduleFree(st);
  EXPECT_EQ(s.k, 1.0);
  EXPECT_NEAR(s.weightSum, 0.1 * 0.25 * 0.1, 1e-12);
  scheduleFreeCount(st, 0.1, 0.9, 4, st); // aliasing; warm = 2/4
  s = readScheduleFree(st);
  EXPECT_EQ(s.k, 2.0);
  EXPECT_NEAR(s.weightSum, 0.0025 + 0.005, 1e-12);
  EXPECT_EQ(scheduleFreeWarm(7, 4), 1.0);
  EXPECT_EQ(scheduleFreeWarm(1, 0), 1.0);
}

TEST(RefKernels, ScheduleFreeAdamWTwoSteps) {
  // Hand values, lr 0.1, betas (0.9, 0.999), wd 0.1, no warmup. The z and
  // x buffers start at 0: the first step starts z from the parameter.
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, lr = 0.1;
  std::vector<float> p = {1.0f}, z = {0.f}, v = {0.f}, x = {0.f};
  float st[4] = {0, 0, 0, 0}, y0;
  scheduleFreeInterpolate(p.data(), z.data(), x.data(), 1, st, 1.0, &y0);
  EXPECT_EQ(y0, 1.0f); // no step yet: the parameter itself
  scheduleFreeCount(st, lr, b1, 0, st);
  std::vector<float> g = {1.0f};
  scheduleFreeAdamwUpdate(p.data(), g.data(), z.data(), v.data(), x.data(), 1,
                          lr, 0.5, st, b1, b2, eps, wd, 0);
  // g = 0.5; v = 0.001 * 0.25; sqrt(v / (1 - 0.999)) = 0.5.
  double z1 = (1.0 - lr * 0.5 / (0.5 + eps)) * (1 - lr * wd);
  EXPECT_NEAR(v[0], 2.5e-4, 1e-10);
  EXPECT_NEAR(z[0], z1, 1e-6);
  EXPECT_NEAR(x[0], z1, 1e-6); // x = z on the first step
  EXPECT_NEAR(p[0], z1, 1e-6); // y = (1 - b1) z + b1 x
  // Second step at y, gradient -0.5: weight_sum = 0.02, c = 0.5.
  scheduleFreeCount(st, lr, b1, 0, st);
  g = {-0.5f};
  scheduleFreeAdamwUpdate(p.data(), g.data(), z.data(), v.data(), x.data(), 1,
                          lr, 1.0, st, b1, b2, eps, wd, 0);
  double v2 = b2 * 2.5e-4 + (1 - b2) * 0.25;
  double den = std::sqrt(v2 / (1 - b2 * b2)) + eps;
  double z2 = (z1 + lr * 0.5 / den) * (1 - lr * wd);
  double x2 = z1 + 0.5 * (z2 - z1);
  EXPECT_NEAR(z[0], z2, 1e-6);
  EXPECT_NEAR(x[0], x2, 1e-6);
  EXPECT_NEAR(p[0], (1 - b1) * z2 + b1 * x2, 1e-6);
  // The eval point is x, the train point y again.
  float e, t;
  scheduleFreeInterpolate(p.data(), z.data(), x.data(), 1, st, 1.0, &e);
  scheduleFreeInterpolate(p.data(), z.data(), x.data(), 1, st, b1, &t);
  EXPECT_EQ(e, x[0]);
  EXPECT_NEAR(t, p[0], 1e-7);
}

TEST(RefKernels, ScheduleFreeWarmupScalesTheStep) {
  // warmup 4: the first step moves z by lr/4 (Adam's first step is lr-sized
  // in the direction of -sign(g)); a zero lr (a schedule's warmup) leaves z.
  std::vector<float> p = {2.0f}, z = {0.f}, v = {0.f}, x = {0.f}, g = {3.0f};
  float st[4] = {0, 0, 0, 0};
  scheduleFreeCount(st, 0.4, 0.9, 4, st);
  scheduleFreeAdamwUpdate(p.data(), g.data(), z.data(), v.data(), x.data(), 1,
                          0.4, 1.0, st, 0.9, 0.999, 1e-8, 0.0, 4);
  EXPECT_NEAR(z[0], 2.0 - 0.1, 1e-6);
  std::vector<float> q = {2.0f}, zq = {0.f}, vq = {0.f}, xq = {0.f};
  float s0[4] = {0, 0, 0, 0};
  scheduleFreeCount(s0, 0.0, 0.9, 0, s0);
  scheduleFreeAdamwUpdate(q.data(), g.data(), zq.data(), vq.data(), xq.data(),
                          1, 0.0, 1.0, s0, 0.9, 0.999, 1e-8, 0.1, 0);
  EXPECT_EQ(zq[0], 2.0f);
  EXPECT_EQ(xq[0], 2.0f);
  EXPECT_EQ(q[0], 2.0f);
}

// fp8 value sets by hand: e4m3fn has 3 mantissa bits (a quantum of 2^-3
// in [1, 2)), subnormals down to 2^-9 and a largest value of 448; e5m2 has
// 2 mantissa bits and 57344. Ties go to the even mantissa.
TEST(RefKernels, Fp8RoundingByHand) {
  EXPECT_EQ(roundFp8(0.3f, true), 0.3125f);  // 9.6 quanta of 2^-5 -> 10
  EXPECT_EQ(roundFp8(-17.2f, true), -18.0f); // quantum 2 at 2^4
  EXPECT_EQ(roundFp8(1.0625f, true), 1.0f);  // tie -> even (000)
  EXPECT_EQ(roundFp8(1.1875f, true), 1.25f); // tie -> even (010)
  EXPECT_EQ(roundFp8(448.0f, true), 448.0f);
  EXPECT_EQ(roundFp8(460.0f, true), 448.0f); // saturates, no 480
  EXPECT_EQ(roundFp8(-1e6f, true), -448.0f);
  EXPECT_EQ(roundFp8(0.0029f, true), 0.001953125f); // subnormal 2^-9
  EXPECT_EQ(roundFp8(0.0009f, true), 0.0f);         // below half of 2^-9
  EXPECT_EQ(roundFp8(0.3f, false), 0.3125f);        // 4.8 quanta of 2^-4 -> 5
  EXPECT_EQ(roundFp8(1.125f, false), 1.0f);         // tie -> even (00)
  EXPECT_EQ(roundFp8(1.375f, false), 1.5f);         // tie -> even (10)
  EXPECT_EQ(roundFp8(60000.0f, false), 57344.0f);
  EXPECT_EQ(roundFp8(0.0f, true), 0.0f);
}

// The fp8 all-gather's bytes: by hand for a few values (OCP FP8 layouts),
// then every finite value of both formats survives bytes -> value -> bytes,
// and a rounded value survives value -> bytes -> value.
TEST(RefKernels, Fp8Bytes) {
  EXPECT_EQ(fp8Bits(1.0f, true), 0x38);                    // 0 0111 000
  EXPECT_EQ(fp8Bits(-448.0f, true), 0xFE);                 // 1 1111 110
  EXPECT_EQ(fp8Bits(0.001953125f, true), 0x01);            // smallest subnormal
  EXPECT_EQ(fp8Bits(0.3125f, true), 0x2A);                 // 1.25 x 2^-2
  EXPECT_EQ(fp8Bits(57344.0f, false), 0x7B);               // 0 11110 11
  EXPECT_EQ(fp8Bits(-1.5f, false), 0xBE);                  // 1 01111 10
  EXPECT_EQ(fp8FromBits(0x01, false), 1.52587890625e-05f); // 2^-16
  // NaN survives the bytes (a diverging run must not turn finite), and so
  // does e5m2's infinity; e4m3fn has none, so its infinity becomes NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for (bool e4m3 : {true, false}) {
    EXPECT_EQ(fp8Bits(nan, e4m3), 0x7F);
    EXPECT_EQ(fp8Bits(-nan, e4m3), 0xFF);
    EXPECT_TRUE(std::isnan(fp8FromBits(fp8Bits(nan, e4m3), e4m3)));
    EXPECT_TRUE(
        std::isnan(fp8FromBits(fp8Bits(roundFp8(nan, e4m3), e4m3), e4m3)));
  }
  EXPECT_EQ(fp8Bits(inf, false), 0x7C);
  EXPECT_EQ(fp8Bits(-inf, false), 0xFC);
  EXPECT_EQ(fp8FromBits(0x7C, false), inf);
  EXPECT_EQ(fp8FromBits(0xFC, false), -inf);
  EXPECT_TRUE(std::isnan(fp8FromBits(0x7D, false)));
  EXPECT_TRUE(std::isnan(fp8FromBits(fp8Bits(inf, true), true)));
  for (int e4m3 = 0; e4m3 < 2; ++e4m3)
    for (int byte = 0; byte < 256; ++byte) {
      const int exponent = (byte & 0x7f) >> (e4m3 ? 3 : 2);
      // Skip NaN (e4m3fn: S.1111.111) and e5m2's Inf/NaN (exponent 31).
      if ((e4m3 && (byte & 0x7f) == 0x7f) || (!e4m3 && exponent == 31))
        continue;
      const float v = fp8FromBits(static_cast<uint8_t>(byte), e4m3);
      EXPECT_EQ(roundFp8(v, e4m3), v) << byte;
      if (v != 0.0f || !(byte & 0x80)) { // -0 encodes as 0x80 too
        EXPECT_EQ(fp8Bits(v, e4m3), byte) << byte;
      }
    }
  std::mt19937 gen(5);
  std::normal_distribution<float> dist(0.0f, 50.0f);
  for (int i = 0; i < 10000; ++i) {
    const float r = roundFp8(dist(gen), i % 2);
    EXPECT_EQ(fp8FromBits(fp8Bits(r, i % 2), i % 2), r);
  }
}

// The CUDA backend's fp8 matmuls re-encode forge.fp8_cast's stored result
// with the cast's own scale (runtime/cuda/Kernels.h, fp8EncodeMatrix). That
// gives back the cast's codes exactly when the result is stored in bf16:
// bf16(code / scale) is within 2^-9 (relative) of code / scale, and
// multiplied by the scale again it lands within far less than half an fp8
// step of the code. Checked for every finite code of both formats, under
// scales across 60 binades.
TEST(RefKernels, Fp8CodesSurviveBf16Storage) {
  std::mt19937 gen(11);
  std::uniform_real_distribution<double> log2Amax(-30.0, 30.0);
  for (int e4m3 = 0; e4m3 < 2; ++e4m3) {
    const float fmax = e4m3 ? 448.0f : 57344.0f;
    int wrong = 0, checked = 0;
    for (int trial = 0; trial < 400; ++trial) {
      const float amax = static_cast<float>(std::exp2(log2Amax(gen)));
      const float scale = fmax / amax; // as the cast computes it
      for (int byte = 0; byte < 256; ++byte) {
        const int exponent = (byte & 0x7f) >> (e4m3 ? 3 : 2);
        if ((e4m3 && (byte & 0x7f) == 0x7f) || (!e4m3 && exponent == 31))
          continue;
        const float code = fp8FromBits(static_cast<uint8_t>(byte), e4m3);
        const float stored =
            forge::runtime::bf16ToF32(forge::runtime::f32ToBf16(code / scale));
        const float again = roundFp8(stored * scale, e4m3);
        ++checked;
        if (again != code || fp8Bits(again, e4m3) != fp8Bits(code, e4m3)) {
          if (++wrong < 5)
            ADD_FAILURE() << (e4m3 ? "e4m3" : "e5m2") << " code " << code
                          << " under scale " << scale << " came back as "
                          << again;
        }
      }
    }
    EXPECT_EQ(wrong, 0) << "of " << checked;
  }
}

// The tensor-wise scale maps max|x| onto the format's largest value: here
// every scaled value is exactly representable, so the cast is exact; with
// max|x| = 448 the scale is 1 and 0.3 rounds as above.
TEST(RefKernels, Fp8CastScalesByAmax) {
  std::vector<float> x = {1.0f, -2.0f, 0.5f, 4.0f}, y(4);
  fp8Cast(x.data(), 4, true, y.data());
  EXPECT_EQ(y, x);
  x = {0.3f, 448.0f};
  y.resize(2);
  fp8Cast(x.data(), 2, true, y.data());
  EXPECT_EQ(y[0], 0.3125f);
  EXPECT_EQ(y[1], 448.0f);
  std::vector<float> zeros(3, 0.0f), out(3, 1.0f);
  fp8Cast(zeros.data(), 3, false, out.data());
  EXPECT_EQ(out, zeros);
}

} // namespace
