//===- FastKernels_test.cpp - Optimized kernels against the reference -----===//

#include "runtime/cpu/FastKernels.h"

#include "runtime/core/DType.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

std::vector<uint16_t> toBf16(const std::vector<float> &x) {
  std::vector<uint16_t> y(x.size());
  fast::f32ToBf16(x.data(), static_cast<int64_t>(x.size()), y.data());
  return y;
}

std::vector<float> toF32(const std::vector<uint16_t> &x) {
  std::vector<float> y(x.size());
  fast::bf16ToF32(x.data(), static_cast<int64_t>(x.size()), y.data());
  return y;
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
  // The fast kernel stores its gradients: what the arrays held must not
  // show.
  std::vector<float> dq1(qn, 0), dk1(kn, 0), dv1(kn, 0), dq2(qn, 5), dk2(kn, 5),
      dv2(kn, 5);
  ref::attentionBwd(q.data(), k.data(), v.data(), d, sh, o1.data(), l1.data(),
                    g.data(), dq1.data(), dk1.data(), dv1.data());
  fast::attentionBwd(q.data(), k.data(), v.data(), d, sh, o1.data(), l1.data(),
                     g.data(), dq2.data(), dk2.data(), dv2.data());
  expectClose(dq2, dq1, "dq");
  expectClose(dk2, dk1, "dk");
  expectClose(dv2, dv1, "dv");

  // bf16 storage: the f32 kernel on the same (rounded) values, each result
  // rounded once.
  auto qb = toBf16(q), kb = toBf16(k), vb = toBf16(v), gb = toBf16(g);
  auto qr = toF32(qb), kr = toF32(kb), vr = toF32(vb), gr = toF32(gb);
  std::vector<float> o3(qn), l3(l1.size()), l4(l1.size());
  std::vector<uint16_t> o4(qn);
  fast::attentionFwd(qr.data(), kr.data(), vr.data(), d, sh, o3.data(),
                     l3.data());
  fast::attentionFwd(qb.data(), kb.data(), vb.data(), d, sh, o4.data(),
                     l4.data());
  EXPECT_EQ(o4, toBf16(o3));
  EXPECT_EQ(l4, l3);
  auto o3b = toBf16(o3);
  auto o3r = toF32(o3b);
  std::vector<float> dq3(qn), dk3(kn), dv3(kn);
  std::vector<uint16_t> dq4(qn), dk4(kn), dv4(kn);
  fast::attentionBwd(qr.data(), kr.data(), vr.data(), d, sh, o3r.data(),
                     nullptr, gr.data(), dq3.data(), dk3.data(), dv3.data());
  fast::attentionBwd(qb.data(), kb.data(), vb.data(), d, sh, o3b.data(),
                     gb.data(), dq4.data(), dk4.data(), dv4.data());
  EXPECT_EQ(dq4, toBf16(dq3));
  EXPECT_EQ(dk4, toBf16(dk3));
  EXPECT_EQ(dv4, toBf16(dv3));
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
  // The fast kernel overwrites: whatever d2 held must not show.
  std::vector<float> d1(rows * c, 0), d2(rows * c, 7.0f);
  ref::crossEntropyBwd(l.data(), labels.data(), rows, c, -100, 0.5f, d1.data());
  fast::crossEntropyBwd(l.data(), labels.data(), rows, c, -100, 0.5f,
                        d2.data());
  expectClose(d2, d1, "dlogits");
  // bf16 logits and gradient: the f32 kernel's result on the same values,
  // rounded once.
  std::vector<uint16_t> lb(rows * c), db(rows * c, 0x4000);
  fast::f32ToBf16(l.data(), rows * c, lb.data());
  std::vector<float> lr(rows * c), d3(rows * c);
  fast::bf16ToF32(lb.data(), rows * c, lr.data());
  EXPECT_FLOAT_EQ(
      fast::crossEntropyFwd(lb.data(), labels.data(), rows, c, -100),
      fast::crossEntropyFwd(lr.data(), labels.data(), rows, c, -100));
  fast::crossEntropyBwd(lb.data(), labels.data(), rows, c, -100, 0.5f,
                        db.data());
  fast::crossEntropyBwd(lr.data(), labels.data(), rows, c, -100, 0.5f,
                        d3.data());
  for (int64_t i = 0; i < rows * c; ++i)
    ASSERT_EQ(db[i], forge::runtime::f32ToBf16(d3[i])) << "element " << i;
  // Every label ignored: a zero gradient, not the old contents.
  std::vector<int64_t> none(rows, -100);
  fast::crossEntropyBwd(l.data(), none.data(), rows, c, -100, 0.5f, d2.data());
  for (float v : d2)
    ASSERT_EQ(v, 0.0f);
}

TEST(FastKernels, RmsNorm) {
  // 77 rows: more than one row block, and rows that do not split evenly
  // over the blocks; d = 45 leaves a vector tail.
  const int64_t rows = 77, d = 45;
  auto x = randn(rows * d, 14), w = randn(d, 15), dy = randn(rows * d, 16);
  std::vector<float> y1(rows * d), y2(rows * d);
  ref::rmsnormFwd(x.data(), w.data(), rows, d, 1e-5, y1.data());
  fast::rmsnormFwd(x.data(), w.data(), rows, d, 1e-5, y2.data());
  expectClose(y2, y1, "y");
  // Both add into their outputs.
  std::vector<float> dx1(rows * d, 0.5f), dx2 = dx1, dw1(d, -1.0f), dw2 = dw1;
  ref::rmsnormBwd(x.data(), w.data(), dy.data(), rows, d, 1e-5, dx1.data(),
                  dw1.data());
  fast::rmsnormBwd(x.data(), w.data(), dy.data(), rows, d, 1e-5, dx2.data(),
                   dw2.data());
  expectClose(dx2, dx1, "dx");
  expectClose(dw2, dw1, "dw");

  // bf16: the f32 kernel on the same values (from zero), rounded once.
  auto xb = toBf16(x), wb = toBf16(w), gb = toBf16(dy);
  auto xr = toF32(xb), wr = toF32(wb), gr = toF32(gb);
  std::vector<float> y3(rows * d), dx3(rows * d, 0.0f), dw3(d, 0.0f);
  std::vector<uint16_t> y4(rows * d), dx4(rows * d, 0x4000), dw4(d, 0x4000);
  fast::rmsnormFwd(xr.data(), wr.data(), rows, d, 1e-5, y3.data());
  fast::rmsnormFwd(xb.data(), wb.data(), rows, d, 1e-5, y4.data());
  EXPECT_EQ(y4, toBf16(y3));
  fast::rmsnormBwd(xr.data(), wr.data(), gr.data(), rows, d, 1e-5, dx3.data(),
                   dw3.data());
  fast::rmsnormBwd(xb.data(), wb.data(), gb.data(), rows, d, 1e-5, dx4.data(),
                   dw4.data());
  EXPECT_EQ(dx4, toBf16(dx3));
  EXPECT_EQ(dw4, toBf16(dw3));
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

  // bf16: the f32 kernel on the same values (the gradient from zero),
  // rounded once.
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> xb(n), y4(n), d4(n, 0x4000);
  fast::f32ToBf16(x.data(), n, xb.data());
  std::vector<float> xr(n), y3(n), d3(n, 0.0f);
  fast::bf16ToF32(xb.data(), n, xr.data());
  for (bool backward : {false, true}) {
    fast::rope(xr.data(), B, S, H, HD, 500000.0, backward,
               backward ? d3.data() : y3.data());
    fast::rope(xb.data(), B, S, H, HD, 500000.0, backward,
               backward ? d4.data() : y4.data());
    const std::vector<float> &want = backward ? d3 : y3;
    const std::vector<uint16_t> &got = backward ? d4 : y4;
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[i], forge::runtime::f32ToBf16(want[i]))
          << (backward ? "rope_grad " : "rope ") << i;
  }
}

TEST(FastKernels, AdamW) {
  const int64_t n = 70003; // more than one chunk, and a vector tail
  auto p = randn(n, 10), g = randn(n, 11), m = randn(n, 12), v = randn(n, 13);
  for (float &x : v)
    x = x * x;
  std::vector<float> p1 = p, m1 = m, v1 = v, p2(n), m2(n), v2(n);
  ref::adamwUpdate(p1.data(), g.data(), m1.data(), v1.data(), n, 3e-3, 0.5, 4,
                   0.9, 0.95, 1e-8, 0.1);
  fast::adamwUpdate(p.data(), g.data(), m.data(), v.data(), n, 3e-3f, 0.5f, 4,
                    0.9f, 0.95f, 1e-8f, 0.1f, p2.data(), m2.data(), v2.data());
  expectClose(p2, p1, "param");
  expectClose(m2, m1, "exp_avg");
  expectClose(v2, v1, "exp_avg_sq");
  // In place, as the executor runs it.
  fast::adamwUpdate(p.data(), g.data(), m.data(), v.data(), n, 3e-3f, 0.5f, 4,
                    0.9f, 0.95f, 1e-8f, 0.1f, p.data(), m.data(), v.data());
  expectClose(p, p1, "param in place");
}

TEST(FastKernels, Bf16Conversions) {
  // Random values, and the cases rounding must get right: ties to even
  // both ways, values that round up into the next binade and to infinity,
  // infinities, NaNs (which must stay NaN), zeros and subnormals.
  std::vector<uint32_t> bits = {
      0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3fffffffu, 0x7f7fffffu,
      0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu,
      0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu};
  auto r = randn(70001, 17);
  for (float v : r) {
    uint32_t u;
    std::memcpy(&u, &v, sizeof(u));
    bits.push_back(u);
  }
  const int64_t n = static_cast<int64_t>(bits.size());
  std::vector<float> x(n);
  std::memcpy(x.data(), bits.data(), n * sizeof(float));
  std::vector<uint16_t> h(n);
  fast::f32ToBf16(x.data(), n, h.data());
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(h[i], forge::runtime::f32ToBf16(x[i])) << "element " << i;
  std::vector<float> back(n);
  fast::bf16ToF32(h.data(), n, back.data());
  for (int64_t i = 0; i < n; ++i) {
    const float want = forge::runtime::bf16ToF32(h[i]);
    ASSERT_EQ(std::memcmp(&back[i], &want, sizeof(float)), 0) << i;
  }
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
