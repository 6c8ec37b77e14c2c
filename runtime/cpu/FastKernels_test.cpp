//===- FastKernels_test.cpp - Optimized kernels against the reference -----===//

#include "runtime/cpu/FastKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace forge::cpu;

namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(gen);
  return v;
}

void expectClose(const std::vector<float> &a, const std::vector<float> &b,
                 const char *what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], 2e-4f * std::max(1.0f, std::abs(b[i])))
        << what << "[" << i << "]";
}

void compareAttention(ref::AttentionShape sh, bool docs) {
  const size_t qn = sh.b * sh.s * sh.h * sh.hd,
               kn = sh.b * sh.s * sh.kv * sh.hd;
  auto q = randn(qn, 1), k = randn(kn, 2), v = randn(kn, 3), g = randn(qn, 4);
  std::vector<int32_t> doc(sh.b * sh.s);
  for (size_t i = 0; i < doc.size(); ++i)
    doc[i] = static_cast<int32_t>(i / 23); // documents of 23 tokens
  const int32_t *d = docs ? doc.data() : nullptr;
  std::vector<float> o1(qn), o2(qn), l1(sh.b * sh.h * sh.s), l2(l1.size());
  ref::attentionFwd(q.data(), k.data(), v.data(), d, sh, o1.data(), l1.data());
  fast::attentionFwd(q.data(), k.data(), v.data(), d, sh, o2.data(), l2.data());
  expectClose(o2, o1, "o");
  expectClose(l2, l1, "lse");
  std::vector<float> dq1(qn, 0), dk1(kn, 0), dv1(kn, 0), dq2(qn, 0), dk2(kn, 0),
      dv2(kn, 0);
  ref::attentionBwd(q.data(), k.data(), v.data(), d, sh, o1.data(), l1.data(),
                    g.data(), dq1.data(), dk1.data(), dv1.data());
  fast::attentionBwd(q.data(), k.data(), v.data(), d, sh, o1.data(), l1.data(),
                     g.data(), dq2.data(), dk2.data(), dv2.data());
  expectClose(dq2, dq1, "dq");
  expectClose(dk2, dk1, "dk");
  expectClose(dv2, dv1, "dv");
}

TEST(FastKernels, AttentionCausalGQA) {
  compareAttention({2, 70, 4, 2, 16, true, 0.25}, false);
}
TEST(FastKernels, AttentionDocumentMask) {
  compareAttention({1, 130, 2, 1, 8, true, 0.35}, true);
}
TEST(FastKernels, AttentionNonCausal) {
  compareAttention({2, 33, 2, 2, 8, false, 0.5}, false);
}

TEST(FastKernels, SumSquares) {
  // Against a plain double loop, across the chunk and lane boundaries.
  for (int64_t n : {0, 1, 7, 8, 9, 65535, 65536, 200003}) {
    auto x = randn(n, 11);
    double want = 0;
    for (float v : x)
      want += static_cast<double>(v) * v;
    EXPECT_NEAR(fast::sumSquares(x.data(), n), want, 1e-12 * (1 + want)) << n;
  }
}

TEST(FastKernels, ApproxExp) {
  // Against libm's exp in double, over the range softmax and SiLU use.
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(fast::approxExp(x) - want) / want);
  }
  EXPECT_LT(worst, 3e-7);
  // Below the normal range it saturates instead of underflowing to 0.
  EXPECT_GT(fast::approxExp(-1000.0f), 0.0f);
  EXPECT_LT(fast::approxExp(-1000.0f), 2e-38f);
}

TEST(FastKernels, CrossEntropy) {
  const int64_t rows = 37, c = 101;
  auto l = randn(rows * c, 5);
  std::vector<int64_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r)
    labels[r] = r % 5 == 0 ? -100 : (r * 7) % c;
  EXPECT_NEAR(fast::crossEntropyFwd(l.data(), labels.data(), rows, c, -100),
              ref::crossEntropyFwd(l.data(), labels.data(), rows, c, -100),
              1e-5);
  std::vector<float> d1(rows * c, 0), d2(rows * c, 0);
  ref::crossEntropyBwd(l.data(), labels.data(), rows, c, -100, 0.5f, d1.data());
  fast::crossEntropyBwd(l.data(), labels.data(), rows, c, -100, 0.5f,
                        d2.data());
  expectClose(d2, d1, "dlogits");
}

} // namespace

namespace {

TEST(FastKernels, Rope) {
  const int64_t B = 2, S = 9, H = 3, HD = 8;
  auto x = randn(B * S * H * HD, 7);
  std::vector<float> y1(x.size()), y2(x.size()), d1(x.size(), 0.5f),
      d2(x.size(), 0.5f);
  ref::ropeFwd(x.data(), B, S, H, HD, 500000.0, y1.data());
  fast::rope(x.data(), B, S, H, HD, 500000.0, false, y2.data());
  expectClose(y2, y1, "rope");
  ref::ropeBwd(x.data(), B, S, H, HD, 500000.0, d1.data());
  fast::rope(x.data(), B, S, H, HD, 500000.0, true, d2.data());
  expectClose(d2, d1, "rope_grad");
}

TEST(FastKernels, ElementWise) {
  const int64_t n = 70000; // more than one chunk
  auto x = randn(n, 8), y = randn(n, 9);
  for (ref::Unary kind : {ref::Unary::Silu, ref::Unary::Gelu, ref::Unary::Relu,
                          ref::Unary::Tanh}) {
    std::vector<float> a(n), b(n), da(n, 1.0f), db(n, 1.0f);
    ref::unaryFwd(kind, x.data(), n, a.data());
    fast::unary(kind, x.data(), n, b.data());
    expectClose(b, a, "unary");
    ref::unaryBwd(kind, x.data(), y.data(), n, da.data());
    fast::unaryGrad(kind, x.data(), y.data(), n, db.data());
    expectClose(db, da, "unary grad");
  }
  std::vector<float> z(n), s(n);
  fast::binary(true, x.data(), y.data(), n, z.data());
  EXPECT_FLOAT_EQ(z[n - 1], x[n - 1] * y[n - 1]);
  fast::binary(false, x.data(), y.data(), n, z.data());
  EXPECT_FLOAT_EQ(z[12345], x[12345] + y[12345]);
  fast::scale(x.data(), 0.25f, n, s.data());
  EXPECT_FLOAT_EQ(s[n / 2], x[n / 2] * 0.25f);
}

} // namespace
