//===- Bf16Gemm_test.cpp - oneDNN bf16 GEMMs against f32 sgemm -----------===//

#include "runtime/core/DType.h"
#include "runtime/cpu/Bf16Gemm.h"

#include <cblas-openblas.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

using forge::cpu::Bf16Gemm;
using forge::runtime::bf16ToF32;
using forge::runtime::f32ToBf16;

namespace {

std::vector<uint16_t> randomBf16(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> v(n);
  for (uint16_t &x : v)
    x = f32ToBf16(dist(gen));
  return v;
}

std::vector<float> toF32(const std::vector<uint16_t> &v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = bf16ToF32(v[i]);
  return out;
}

/// The linear layer's three GEMMs (forward, input and weight gradients) in
/// each operand layout, against sgemm on the same values: the products are
/// exact in f32 in both, so the f32 sums differ only in order, and the bf16
/// results by at most one unit in the last place.
void check(int64_t m, int64_t n, int64_t k, bool transA, bool transB) {
  std::string why;
  auto gemm = Bf16Gemm::create(m, n, k, transA, transB, &why);
  if (!gemm)
    GTEST_SKIP() << "bf16 GEMMs take the sgemm path here: " << why;
  auto a = randomBf16(m * k, 1), b = randomBf16(k * n, 2);
  std::vector<uint16_t> c(m * n, 0xFFFF);
  gemm->run(a.data(), b.data(), c.data());
  auto af = toF32(a), bf = toF32(b);
  std::vector<float> want(m * n);
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, af.data(),
              transA ? m : k, bf.data(), transB ? k : n, 0.0f, want.data(), n);
  for (int64_t i = 0; i < m * n; ++i) {
    const float got = bf16ToF32(c[i]), w = want[i];
    // One bf16 ulp of the exact value, plus the f32 summation's own error.
    const float ulp = std::ldexp(1.0f, std::ilogb(w) - 7);
    ASSERT_LE(std::abs(got - w), ulp + 1e-5f * std::sqrt(float(k)))
        << "element " << i << " of [" << m << ", " << n << "], k " << k << " ("
        << gemm->kernel() << ")";
  }
}

TEST(Bf16Gemm, LinearForward) { check(70, 48, 96, false, true); }
TEST(Bf16Gemm, LinearGradInput) { check(70, 96, 48, false, false); }
TEST(Bf16Gemm, LinearGradWeight) { check(48, 96, 70, true, false); }

TEST(Bf16Gemm, PathSetting) {
  bool oneDnn = false;
  std::string err;
  setenv("FORGE_CPU_BF16_GEMM", "sgemm", 1);
  ASSERT_TRUE(forge::cpu::bf16GemmUseOneDnn(&oneDnn, &err));
  EXPECT_FALSE(oneDnn);
  EXPECT_NE(forge::cpu::bf16GemmStatus().find("FORGE_CPU_BF16_GEMM=sgemm"),
            std::string::npos);
  setenv("FORGE_CPU_BF16_GEMM", "mkl", 1);
  EXPECT_FALSE(forge::cpu::bf16GemmUseOneDnn(&oneDnn, &err));
  EXPECT_EQ(err, "FORGE_CPU_BF16_GEMM is 'mkl'; allowed values: onednn, sgemm");
  unsetenv("FORGE_CPU_BF16_GEMM");
  ASSERT_TRUE(forge::cpu::bf16GemmUseOneDnn(&oneDnn, &err));
  EXPECT_TRUE(oneDnn);
}

} // namespace
