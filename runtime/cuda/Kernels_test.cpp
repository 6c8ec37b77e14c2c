//===- Kernels_test.cpp - CUDA backend conformance suite ------------------===//
//
// Every CUDA kernel (and the cuBLASLt matmuls) against the CPU reference
// kernels (runtime/cpu/RefKernels, in double) on random inputs, with a
// tolerance per dtype: 2e-5 of the largest reference value for f32 (the
// kernels compute in f32), 2e-2 for bf16 operands. Built wherever nvcc is;
// on a machine without a GPU every test skips with a notice saying so.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/DType.h"
#include "runtime/cpu/RefKernels.h"
#include "runtime/cuda/Composite.h"
#include "runtime/cuda/Device.h"
#include "runtime/cuda/Gemm.h"
#include "runtime/cuda/Kernels.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace forge::cuda {
namespace {

namespace ref = forge::cpu::ref;

struct AttentionRun;

class CudaKernels : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    if (deviceCount(&why) == 0)
      GTEST_SKIP() << "no CUDA device on this machine ("
                   << (why.empty() ? "none found" : why)
                   << "): the CUDA conformance suite did not run";
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  }
  void TearDown() override {
    for (void *p : owned)
      cudaFree(p);
    if (s)
      cudaStreamDestroy(s);
  }

  /// A device copy of `v` in dtype `dt`, `offset` bytes into its own
  /// allocation (an arena buffer is only 64-byte aligned).
  Tensor up(const std::vector<double> &v, Dt dt = Dt::f32, size_t offset = 0) {
    const size_t n = v.size();
    void *p = static_cast<char *>(alloc(n * (dt == Dt::f32 ? 4 : 2) + offset)) +
              offset;
    if (dt == Dt::f32) {
      std::vector<float> f(v.begin(), v.end());
      cudaMemcpy(p, f.data(), n * 4, cudaMemcpyHostToDevice);
    } else {
      std::vector<uint16_t> h(n);
      for (size_t i = 0; i < n; ++i)
        h[i] = runtime::f32ToBf16(static_cast<float>(v[i]));
      cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice);
    }
    return {p, dt};
  }
  Tensor zeros(size_t n, Dt dt = Dt::f32, size_t offset = 0) {
    return up(std::vector<double>(n, 0.0), dt, offset);
  }
  template <typename T> T *upInts(const std::vector<T> &v) {
    void *p = alloc(v.size() * sizeof(T));
    cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    return static_cast<T *>(p);
  }
  std::vector<double> down(Tensor t, size_t n) {
    EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    std::vector<double> out(n);
    if (t.dt == Dt::f32) {
      std::vector<float> f(n);
      cudaMemcpy(f.data(), t.p, n * 4, cudaMemcpyDeviceToHost);
      std::copy(f.begin(), f.end(), out.begin());
    } else {
      std::vector<uint16_t> h(n);
      cudaMemcpy(h.data(), t.p, n * 2, cudaMemcpyDeviceToHost);
      for (size_t i = 0; i < n; ++i)
        out[i] = runtime::bf16ToF32(h[i]);
    }
    return out;
  }
  void *alloc(size_t bytes) {
    void *p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(bytes, 16)), cudaSuccess);
    owned.push_back(p);
    return p;
  }
  std::vector<double> random(size_t n, double scale = 1.0) {
    std::normal_distribution<double> d(0.0, scale);
    std::vector<double> v(n);
    for (double &x : v)
      x = d(gen);
    return v;
  }
  /// The values a bf16 tensor holds (inputs are rounded on upload).
  static std::vector<double> roundBf16(std::vector<double> v) {
    for (double &x : v)
      x = runtime::bf16ToF32(runtime::f32ToBf16(static_cast<float>(x)));
    return v;
  }
  static void near(const std::vector<double> &got,
                   const std::vector<double> &want, double tol,
                   const char *what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    double scale = 1.0, worst = 0;
    size_t at = 0;
    for (double w : want)
      scale = std::max(scale, std::fabs(w));
    for (size_t i = 0; i < got.size(); ++i)
      if (std::fabs(got[i] - want[i]) > worst || std::isnan(got[i])) {
        worst = std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - want[i]);
        at = i;
      }
    EXPECT_LE(worst, tol * scale) << what << ": element " << at << " is "
                                  << got[at] << ", want " << want[at];
  }

  /// Attention problems (AttentionRun, below).
  AttentionRun attentionRun(int64_t b, int64_t sq, int64_t h, int64_t kv,
                            int64_t hd, bool causal, bool docs, int64_t docLen,
                            Dt dt);
  void checkAttention(AttentionRun &r, double tol, double lseTol);

  cudaStream_t s = nullptr;
  std::vector<void *> owned;
  std::mt19937_64 gen{20261206};
};

constexpr double kF32 = 2e-5, kBf16 = 2e-2;

TEST_F(CudaKernels, UnaryAndGradients) {
  const int64_t n = 10007;
  auto x = random(n, 2.0), dy = random(n);
  for (ref::Unary kind : {ref::Unary::Silu, ref::Unary::Gelu, ref::Unary::Relu,
                          ref::Unary::Tanh}) {
    std::vector<double> y(n), dx(n, 0.0);
    ref::unaryFwd(kind, x.data(), n, y.data());
    ref::unaryBwd(kind, x.data(), dy.data(), n, dx.data());
    Tensor tx = up(x), ty = zeros(n), tdy = up(dy), tdx = zeros(n);
    unary(static_cast<Unary>(kind), tx, ty, n, s);
    unaryGrad(static_cast<Unary>(kind), tx, tdy, tdx, n, s);
    near(down(ty, n), y, kF32, "forward");
    near(down(tdx, n), dx, kF32, "gradient");
  }
}

TEST_F(CudaKernels, ElementwiseAndConversions) {
  const int64_t n = 4099;
  auto a = random(n), b = random(n);
  std::vector<double> sum(n), prod(n), scaled(n);
  for (int64_t i = 0; i < n; ++i) {
    sum[i] = static_cast<float>(a[i]) + static_cast<float>(b[i]);
    prod[i] = static_cast<float>(a[i]) * static_cast<float>(b[i]);
    scaled[i] = static_cast<float>(a[i]) * 0.25f;
  }
  Tensor ta = up(a), tb = up(b), tz = zeros(n), tm = zeros(n), tsc = zeros(n),
         tf = zeros(n), tbf = zeros(n, Dt::bf16);
  binary(false, ta, tb, tz, n, s);
  binary(true, ta, tb, tm, n, s);
  scale(ta, 0.25f, tsc, n, s);
  fill(tf, 3.5f, n, s);
  convert(ta, tbf, n, s);
  near(down(tz, n), sum, 0, "add");
  near(down(tm, n), prod, 0, "mul");
  near(down(tsc, n), scaled, 0, "scale");
  near(down(tf, n), std::vector<double>(n, 3.5), 0, "fill");
  // Rounding to bf16 is the CPU backend's (nearest even), bit for bit.
  near(down(tbf, n), roundBf16(a), 0, "f32 -> bf16");
}

TEST_F(CudaKernels, EmbeddingAndGradient) {
  const int64_t vocab = 50, d = 24, n = 300;
  auto table = random(vocab * d), dout = random(n * d);
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i)
    ids[i] = (i * 7 + 3) % vocab;
  std::vector<double> y(n * d), dt(vocab * d, 0.0);
  ref::embeddingFwd(table.data(), ids.data(), n, d, y.data());
  ref::embeddingBwd(ids.data(), n, d, dout.data(), dt.data());
  auto *err = static_cast<ErrorSlot *>(alloc(sizeof(ErrorSlot)));
  cudaMemset(err, 0, sizeof(ErrorSlot));
  Tensor ty = zeros(n * d), tg = up(dout);
  const int64_t *dids = upInts(ids);
  embedding(up(table), dids, n, d, vocab, ty, err, 7, s);
  const size_t sortBytes = embeddingGradScratchBytes(n, vocab);
  void *sorted = alloc(sortBytes);
  Tensor acc = zeros(vocab * d);
  embeddingGrad(tg, dids, n, d, vocab, acc, sorted, sortBytes, s);
  near(down(ty, n * d), y, 0, "embedding");
  near(down(acc, vocab * d), dt, kF32, "embedding gradient");
  // Each row is summed in f32 in token order, as the CPU backend does:
  // the same bits, run after run (no atomics), in f32 and in bf16.
  std::vector<float> doutF(dout.begin(), dout.end()), dtF(vocab * d, 0.0f);
  ref::embeddingBwd(ids.data(), n, d, doutF.data(), dtF.data());
  const std::vector<double> cpu(dtF.begin(), dtF.end());
  near(down(acc, vocab * d), cpu, 0, "embedding gradient, bit for bit");
  Tensor again = zeros(vocab * d, Dt::bf16);
  embeddingGrad(tg, dids, n, d, vocab, again, sorted, sortBytes, s);
  near(down(again, vocab * d), roundBf16(cpu), 0, "bf16 embedding gradient");
  ErrorSlot slot;
  cudaMemcpy(&slot, err, sizeof(slot), cudaMemcpyDeviceToHost);
  EXPECT_EQ(slot.kind, 0);
  // An id outside the vocabulary is recorded with its step and value.
  ids[5] = vocab + 9;
  embedding(up(table), upInts(ids), n, d, vocab, ty, err, 7, s);
  cudaStreamSynchronize(s);
  cudaMemcpy(&slot, err, sizeof(slot), cudaMemcpyDeviceToHost);
  EXPECT_EQ(slot.kind, kTokenOutOfRange);
  EXPECT_EQ(slot.step, 7);
  EXPECT_EQ(slot.value, vocab + 9);
  EXPECT_EQ(slot.bound, vocab);
}

/// The three matmuls of a linear layer through Gemm, as the executor binds
/// them: y = x w^T, dx = dy w, dw = dy^T x; with operands as cudaMalloc
/// gives them and only 64-byte aligned, as the arena's.
TEST_F(CudaKernels, LinearMatmuls) {
  cublasLtHandle_t lt;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  void *ws = alloc(32 << 20);
  const int64_t m = 67, k = 96, n = 80;
  for (size_t off : {0, 64})
    for (Dt dt : {Dt::f32, Dt::bf16}) {
      SCOPED_TRACE("operands " + std::to_string(off) + " bytes past 256");
      auto x = random(m * k), w = random(n * k, 0.1), dy = random(m * n);
      if (dt == Dt::bf16)
        x = roundBf16(x), w = roundBf16(w), dy = roundBf16(dy);
      std::vector<double> y(m * n), dx(m * k, 0.0), dw(n * k, 0.0);
      ref::linearFwd(x.data(), w.data(), m, k, n, y.data());
      ref::linearBwd(x.data(), w.data(), dy.data(), m, k, n, dx.data(),
                     dw.data());
      Tensor tx = up(x, dt, off), tw = up(w, dt, off), tdy = up(dy, dt, off);
      Tensor ty = zeros(m * n, Dt::f32, off), tdx = zeros(m * k, Dt::f32, off),
             tdw = zeros(n * k, Dt::f32, off);
      const uint32_t align =
          commonAlignment({tx.p, tw.p, tdy.p, ty.p, tdx.p, tdw.p});
      EXPECT_EQ(align, off ? off : 256);
      Gemm fwd, gin, gw;
      const size_t wsb = 32 << 20;
      ASSERT_EQ(fwd.init(lt, false, true, m, n, k, dt, Dt::f32, wsb, align),
                "");
      ASSERT_EQ(gin.init(lt, false, false, m, k, n, dt, Dt::f32, wsb, align),
                "");
      ASSERT_EQ(gw.init(lt, true, false, n, k, m, dt, Dt::f32, wsb, align), "");
      ASSERT_EQ(fwd.run(tx.p, tw.p, ty.p, ws, wsb, s), CUBLAS_STATUS_SUCCESS);
      ASSERT_EQ(gin.run(tdy.p, tw.p, tdx.p, ws, wsb, s), CUBLAS_STATUS_SUCCESS);
      ASSERT_EQ(gw.run(tdy.p, tx.p, tdw.p, ws, wsb, s), CUBLAS_STATUS_SUCCESS);
      // bf16 operands are exact here (rounded before the reference), and
      // cuBLASLt accumulates in f32: f32 tolerance for both.
      near(down(ty, m * n), y, 1e-5, "linear");
      near(down(tdx, m * k), dx, 1e-5, "linear_grad_input");
      near(down(tdw, n * k), dw, 1e-5, "linear_grad_weight");
    }
  cublasLtDestroy(lt);
}

/// The three matmuls of an fp8 linear on fp8 tensor cores, as the
/// executor binds them (bindFp8Linear): the operands go through
/// forge.fp8_cast (bf16 storage), are re-encoded into codes with the cast's
/// amax, transposed where the plan's layout is not cuBLASLt's "TN" one,
/// and multiplied with their dequantization factors. The reference
/// multiplies the reference cast's values (code / scale) in double.
TEST_F(CudaKernels, Fp8LinearMatmuls) {
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  if (major * 10 + minor < 89)
    GTEST_SKIP() << "sm_" << major << minor
                 << " has no fp8 tensor cores: the fp8 matmuls did not run";
  cublasLtHandle_t lt;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  const size_t wsb = 32 << 20;
  void *ws = alloc(wsb);
  const int64_t m = 64, k = 96, n = 80;
  auto cast = [&](const std::vector<double> &v, bool e4m3, Tensor &dev,
                  float *amax) {
    std::vector<float> f(v.begin(), v.end()), y(v.size());
    ref::fp8Cast(f.data(), static_cast<int64_t>(v.size()), e4m3, y.data());
    dev = zeros(v.size(), Dt::bf16);
    fp8Cast(up(v, Dt::bf16), static_cast<int64_t>(v.size()), e4m3, dev, amax,
            s);
    return std::vector<double>(y.begin(), y.end());
  };
  // bf16 inputs, so that the device cast sees the reference's values.
  auto x = roundBf16(random(m * k)), w = roundBf16(random(n * k, 0.1)),
       dy = roundBf16(random(m * n, 0.01));
  auto *amax = static_cast<float *>(alloc(3 * sizeof(float)));
  Tensor cx, cw, cdy;
  auto rx = cast(x, true, cx, amax), rw = cast(w, true, cw, amax + 1),
       rdy = cast(dy, false, cdy, amax + 2);
  std::vector<double> y(m * n), dx(m * k, 0.0), dw(n * k, 0.0);
  ref::linearFwd(rx.data(), rw.data(), m, k, n, y.data());
  ref::linearBwd(rx.data(), rw.data(), rdy.data(), m, k, n, dx.data(),
                 dw.data());
  auto *codes = static_cast<uint8_t *>(alloc(2 * 96 * 96));
  auto *dequant = static_cast<float *>(alloc(2 * sizeof(float)));
  struct Case {
    const char *what;
    int64_t m, n, k;
    Tensor a, b;
    int64_t rowsA, colsA, rowsB, colsB;
    bool transposeA, transposeB, e4m3A, e4m3B;
    float *amaxA, *amaxB;
    const std::vector<double> *want;
  };
  const Case cases[] = {
      // y[m, n] = x[m, k] w[n, k]^T: both already k-contiguous.
      {"linear", m, n, k, cx, cw, m, k, n, k, false, false, true, true, amax,
       amax + 1, &y},
      // dx[m, k] = dy[m, n] w[n, k]: w is encoded as w^T [k, n].
      {"linear_grad_input", m, k, n, cdy, cw, m, n, n, k, false, true, false,
       true, amax + 2, amax + 1, &dx},
      // dw[n, k] = dy^T x: dy^T [n, m] and x^T [k, m], both transposed.
      {"linear_grad_weight", n, k, m, cdy, cx, m, n, m, k, true, true, false,
       true, amax + 2, amax, &dw},
  };
  for (const Case &c : cases)
    for (Dt out : {Dt::bf16, Dt::f32}) {
      Gemm g;
      ASSERT_EQ(g.initFp8(lt, c.m, c.n, c.k, c.e4m3A, c.e4m3B, out, dequant,
                          dequant + 1, wsb, 256),
                "")
          << c.what;
      fp8EncodeMatrix(c.a, c.rowsA, c.colsA, c.transposeA, c.e4m3A, c.amaxA,
                      codes, dequant, s);
      fp8EncodeMatrix(c.b, c.rowsB, c.colsB, c.transposeB, c.e4m3B, c.amaxB,
                      codes + 96 * 96, dequant + 1, s);
      Tensor got = zeros(c.m * c.n, out);
      ASSERT_EQ(g.run(codes, codes + 96 * 96, got.p, ws, wsb, s),
                CUBLAS_STATUS_SUCCESS)
          << c.what;
      // Products of fp8 codes are exact in f32 and accumulate in f32.
      near(down(got, c.m * c.n), *c.want, out == Dt::f32 ? 1e-5 : kBf16,
           c.what);
    }
  cublasLtDestroy(lt);
}

/// Re-encoding a cast's bf16 result with the cast's amax gives the
/// reference's codes, bit for bit, in both layouts.
TEST_F(CudaKernels, Fp8EncodeMatrixGivesTheCastsCodes) {
  const int64_t rows = 45, cols = 70; // not multiples of the 32 x 32 tile
  auto x = roundBf16(random(rows * cols, 4.0));
  // A NaN stays one through the codes (S.1111.111), or a diverging run
  // would multiply finite codes; the amax skips it, as the cast's does.
  const int64_t nanAt = 17 * cols + 3;
  x[nanAt] = std::numeric_limits<double>::quiet_NaN();
  std::vector<float> xf(x.begin(), x.end());
  float mx = 0;
  for (float v : xf)
    if (!std::isnan(v))
      mx = std::max(mx, std::fabs(v));
  auto *amax = static_cast<float *>(alloc(sizeof(float)));
  auto *dequant = static_cast<float *>(alloc(sizeof(float)));
  auto *bytes = static_cast<uint8_t *>(alloc(rows * cols));
  for (bool e4m3 : {true, false})
    for (bool transpose : {false, true}) {
      const float scale = (e4m3 ? 448.0f : 57344.0f) / mx;
      Tensor y = zeros(rows * cols, Dt::bf16);
      fp8Cast(up(x, Dt::bf16), rows * cols, e4m3, y, amax, s);
      fp8EncodeMatrix(y, rows, cols, transpose, e4m3, amax, bytes, dequant, s);
      ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
      std::vector<uint8_t> got(rows * cols);
      float dq = 0;
      cudaMemcpy(got.data(), bytes, got.size(), cudaMemcpyDeviceToHost);
      cudaMemcpy(&dq, dequant, sizeof(float), cudaMemcpyDeviceToHost);
      int wrong = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const uint8_t want =
              ref::fp8Bits(ref::roundFp8(xf[r * cols + c] * scale, e4m3), e4m3);
          const uint8_t code = got[transpose ? c * rows + r : r * cols + c];
          // A NaN's sign is the hardware's choice.
          wrong += r * cols + c == nanAt ? (code & 0x7f) != 0x7f : code != want;
        }
      EXPECT_EQ(wrong, 0) << (e4m3 ? "e4m3" : "e5m2")
                          << (transpose ? " transposed" : "");
      EXPECT_EQ(dq, 1.0f / scale);
    }
}

TEST_F(CudaKernels, Norms) {
  const int64_t rows = 37, d = 300;
  auto x = random(rows * d, 3.0), w = random(d), b = random(d),
       dy = random(rows * d);
  std::vector<double> y(rows * d), dx(rows * d, 0.0), dw(d, 0.0), db(d, 0.0);
  ref::rmsnormFwd(x.data(), w.data(), rows, d, 1e-5, y.data());
  ref::rmsnormBwd(x.data(), w.data(), dy.data(), rows, d, 1e-5, dx.data(),
                  dw.data());
  Tensor tx = up(x), tw = up(w), tb = up(b), tdy = up(dy);
  Tensor ty = zeros(rows * d), tdx = zeros(rows * d), tdw = zeros(d),
         tdb = zeros(d);
  auto *scratch = static_cast<float *>(alloc(rows * 8));
  rmsnorm(tx, tw, ty, rows, d, 1e-5f, s);
  rmsnormGrad(tx, tw, tdy, tdx, tdw, rows, d, 1e-5f, scratch, s);
  near(down(ty, rows * d), y, kF32, "rmsnorm");
  near(down(tdx, rows * d), dx, kF32, "rmsnorm dx");
  near(down(tdw, d), dw, kF32, "rmsnorm dw");

  std::fill(dx.begin(), dx.end(), 0.0);
  std::fill(dw.begin(), dw.end(), 0.0);
  ref::layernormFwd(x.data(), w.data(), b.data(), rows, d, 1e-5, y.data());
  ref::layernormBwd(x.data(), w.data(), dy.data(), rows, d, 1e-5, dx.data(),
                    dw.data(), db.data());
  layernorm(tx, tw, tb, ty, rows, d, 1e-5f, s);
  layernormGrad(tx, tw, tdy, tdx, tdw, tdb, rows, d, 1e-5f, scratch, s);
  near(down(ty, rows * d), y, kF32, "layernorm");
  near(down(tdx, rows * d), dx, kF32, "layernorm dx");
  near(down(tdw, d), dw, kF32, "layernorm dw");
  near(down(tdb, d), db, kF32, "layernorm db");

  // bf16 storage (mixed_precision = "bf16"): f32 math, rounded output.
  auto xr = roundBf16(x), wr = roundBf16(w);
  ref::rmsnormFwd(xr.data(), wr.data(), rows, d, 1e-5, y.data());
  Tensor yb = zeros(rows * d, Dt::bf16);
  rmsnorm(up(x, Dt::bf16), up(w, Dt::bf16), yb, rows, d, 1e-5f, s);
  near(down(yb, rows * d), y, kBf16, "rmsnorm bf16");
}

TEST_F(CudaKernels, RotaryEmbedding) {
  const int64_t b = 2, sq = 33, h = 3, hd = 16;
  const int64_t n = b * sq * h * hd;
  auto x = random(n), dy = random(n);
  std::vector<double> y(n), dx(n, 0.0);
  ref::ropeFwd(x.data(), b, sq, h, hd, 10000.0, y.data());
  ref::ropeBwd(dy.data(), b, sq, h, hd, 10000.0, dx.data());
  Tensor ty = zeros(n), tdx = zeros(n);
  rope(up(x), ty, b, sq, h, hd, 10000.0, false, s);
  rope(up(dy), tdx, b, sq, h, hd, 10000.0, true, s);
  near(down(ty, n), y, kF32, "rope");
  near(down(tdx, n), dx, kF32, "rope gradient");
}

/// One attention problem: random inputs (bf16 values with `bf16`), the
/// reference's outputs and gradients, and the device tensors of a run. The
/// reference's backward starts from the output as the kernels store it.
struct AttentionRun {
  std::vector<double> q, k, v, dout, o, lse, dq, dk, dv;
  Tensor tq, tk, tv, to, tdo, tdq, tdk, tdv;
  float *lseDev, *rowScratch;
  const int32_t *docDev;
  AttentionShape sh;
};

AttentionRun CudaKernels::attentionRun(int64_t b, int64_t sq, int64_t h,
                                       int64_t kv, int64_t hd, bool causal,
                                       bool docs, int64_t docLen, Dt dt) {
  AttentionRun r;
  const double sc = 1.0 / std::sqrt(static_cast<double>(hd));
  auto in = [&](int64_t n) {
    auto x = random(n);
    return dt == Dt::f32 ? x : roundBf16(x);
  };
  r.q = in(b * sq * h * hd), r.k = in(b * sq * kv * hd);
  r.v = in(b * sq * kv * hd), r.dout = in(b * sq * h * hd);
  std::vector<int32_t> doc(b * sq);
  for (int64_t i = 0; i < b * sq; ++i)
    doc[i] = static_cast<int32_t>((i % sq) / docLen);
  const int32_t *hdoc = docs ? doc.data() : nullptr;
  ref::AttentionShape rs{b, sq, h, kv, hd, causal, sc};
  r.o.resize(r.q.size()), r.lse.resize(b * h * sq);
  r.dq.assign(r.q.size(), 0.0), r.dk.assign(r.k.size(), 0.0);
  r.dv.assign(r.v.size(), 0.0);
  ref::attentionFwd(r.q.data(), r.k.data(), r.v.data(), hdoc, rs, r.o.data(),
                    r.lse.data());
  const std::vector<double> stored = dt == Dt::f32 ? r.o : roundBf16(r.o);
  ref::attentionBwd(r.q.data(), r.k.data(), r.v.data(), hdoc, rs, stored.data(),
                    r.lse.data(), r.dout.data(), r.dq.data(), r.dk.data(),
                    r.dv.data());
  r.sh = {b, sq, h, kv, hd, causal, static_cast<float>(sc)};
  r.tq = up(r.q, dt), r.tk = up(r.k, dt), r.tv = up(r.v, dt);
  r.to = zeros(r.q.size(), dt), r.tdo = up(r.dout, dt);
  r.tdq = zeros(r.q.size(), dt), r.tdk = zeros(r.k.size(), dt);
  r.tdv = zeros(r.v.size(), dt);
  r.lseDev = static_cast<float *>(alloc(r.lse.size() * 4));
  r.rowScratch = static_cast<float *>(alloc(r.lse.size() * 4));
  r.docDev = docs ? upInts(doc) : nullptr;
  return r;
}

void CudaKernels::checkAttention(AttentionRun &r, double tol, double lseTol) {
  near(down(r.to, r.q.size()), r.o, tol, "attention");
  near(down({r.lseDev, Dt::f32}, r.lse.size()), r.lse, lseTol, "log-sum-exp");
  near(down(r.tdq, r.q.size()), r.dq, tol, "dq");
  near(down(r.tdk, r.k.size()), r.dk, tol, "dk");
  near(down(r.tdv, r.v.size()), r.dv, tol, "dv");
}

TEST_F(CudaKernels, AttentionCausalGqaWithDocuments) {
  for (bool causal : {true, false})
    for (bool docs : {false, true}) {
      // 3 documents a row; head dim 40: the row kernels.
      AttentionRun r = attentionRun(2, 45, 4, 2, 40, causal, docs, 17, Dt::f32);
      attention(r.tq, r.tk, r.tv, r.docDev, r.sh, r.to, r.lseDev, s);
      attentionGrad(r.tq, r.tk, r.tv, r.docDev, r.sh, r.to, r.lseDev, r.tdo,
                    r.tdq, r.tdk, r.tdv, r.rowScratch, s);
      SCOPED_TRACE(std::string(causal ? "causal" : "full") +
                   (docs ? ", documents" : ""));
      checkAttention(r, kF32, kF32);
    }
}

/// The tensor-core kernels (AttentionTc.cu) that bf16 plans with head
/// dimension 64 or 128 run: against the reference on the bf16 inputs, over
/// three query and key tiles (the last one partial), causal or not, with
/// and without documents, GQA. P and dS are rounded to bf16 before their
/// products, hence bf16's tolerance.
TEST_F(CudaKernels, AttentionOnTensorCoresBf16) {
  for (int64_t hd : {64, 128})
    for (bool causal : {true, false})
      for (bool docs : {false, true}) {
        AttentionRun r =
            attentionRun(2, 150, 4, 2, hd, causal, docs, 70, Dt::bf16);
        SCOPED_TRACE("head dim " + std::to_string(hd) +
                     (causal ? ", causal" : ", full") +
                     (docs ? ", documents" : ""));
        ASSERT_TRUE(attentionOnTensorCores(r.tq, r.tk, r.tv, r.docDev, r.sh,
                                           r.to, r.lseDev, s));
        ASSERT_TRUE(attentionGradOnTensorCores(r.tq, r.tk, r.tv, r.docDev, r.sh,
                                               r.to, r.lseDev, r.tdo, r.tdq,
                                               r.tdk, r.tdv, r.rowScratch, s));
        ASSERT_EQ(cudaGetLastError(), cudaSuccess);
        checkAttention(r, kBf16, 1e-4);
      }
  // f32 tensors stay on the row kernels (no TF32).
  Tensor x = zeros(64 * 64);
  AttentionShape f32{1, 64, 1, 1, 64, true, 0.125f};
  auto *l = static_cast<float *>(alloc(64 * 4));
  EXPECT_FALSE(attentionOnTensorCores(x, x, x, nullptr, f32, x, l, s));
}

TEST_F(CudaKernels, CrossEntropyWithIgnoredRows) {
  const int64_t rows = 70, c = 1000, ignore = -100;
  auto logits = random(rows * c, 3.0);
  std::vector<int64_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r)
    labels[r] = r % 9 == 4 ? ignore : (r * 37) % c;
  const double want =
      ref::crossEntropyFwd(logits.data(), labels.data(), rows, c, ignore);
  std::vector<double> dl(rows * c, 0.0);
  ref::crossEntropyBwd(logits.data(), labels.data(), rows, c, ignore, 0.5,
                       dl.data());
  Tensor tl = up(logits), loss = zeros(1), dloss = up({0.5}),
         tdl = zeros(rows * c);
  auto *scratch = static_cast<float *>(alloc(rows * 4));
  auto *err = static_cast<ErrorSlot *>(alloc(sizeof(ErrorSlot)));
  cudaMemset(err, 0, sizeof(ErrorSlot));
  const int64_t *dlab = upInts(labels);
  crossEntropy(tl, dlab, rows, c, ignore, loss, scratch, err, 0, s);
  crossEntropyGrad(tl, dlab, rows, c, ignore, dloss, tdl, scratch, s);
  near(down(loss, 1), {want}, kF32, "loss");
  near(down(tdl, rows * c), dl, kF32, "dlogits");
  labels[3] = c; // outside the classes, not the ignore index
  crossEntropy(tl, upInts(labels), rows, c, ignore, loss, scratch, err, 4, s);
  cudaStreamSynchronize(s);
  ErrorSlot slot;
  cudaMemcpy(&slot, err, sizeof(slot), cudaMemcpyDeviceToHost);
  EXPECT_EQ(slot.kind, kLabelOutOfRange);
  EXPECT_EQ(slot.step, 4);
  EXPECT_EQ(slot.value, c);
}

TEST_F(CudaKernels, GlobalNormClipAndSchedules) {
  auto a = random(100000), b = random(77);
  double sq = 0;
  for (double x : a)
    sq += static_cast<double>(static_cast<float>(x)) * static_cast<float>(x);
  for (double x : b)
    sq += static_cast<double>(static_cast<float>(x)) * static_cast<float>(x);
  auto *partial = static_cast<double *>(alloc(2 * kNormPartials * 8));
  int used = sumSquaresPartials(up(a), a.size(), partial, s);
  used += sumSquaresPartials(up(b), b.size(), partial + used, s);
  Tensor norm = zeros(1), clip = zeros(1);
  finishNorm(partial, used, false, norm, s);
  clipCoefficient(norm, 1.0, clip, s);
  near(down(norm, 1), {std::sqrt(sq)}, 1e-7, "global norm");
  near(down(clip, 1), {ref::clipCoefficient(std::sqrt(sq), 1.0)}, 1e-6,
       "clip coefficient");

  struct Case {
    const char *name;
    int kind;
    const char *wsd;
    int wsdKind;
  };
  for (Case c : {Case{"none", 0, "cosine", 0}, Case{"constant", 1, "cosine", 0},
                 Case{"cosine", 2, "cosine", 0}, Case{"linear", 3, "cosine", 0},
                 Case{"wsd", 4, "cosine", 0}, Case{"wsd", 4, "linear", 1},
                 Case{"wsd", 4, "sqrt", 2}, Case{"rex", 5, "cosine", 0}})
    for (int64_t step : {0, 3, 10, 25, 60, 99, 150}) {
      ref::Schedule rs;
      rs.name = c.name;
      rs.warmup = 10;
      rs.stable = 20;
      rs.maxSteps = 100;
      rs.minLrRatio = 0.1;
      rs.wsdDecay = c.wsd;
      rs.rexAlpha = 0.5;
      Schedule sched{c.kind, c.wsdKind, 10, 0, 20, 100, 0.1, 0.5};
      Tensor y = zeros(1);
      lrFactor(sched, upInts(std::vector<int64_t>{step}), y, s);
      SCOPED_TRACE(std::string(c.name) + "/" + c.wsd + " at step " +
                   std::to_string(step));
      near(down(y, 1), {ref::lrFactor(rs, step)}, 1e-7, "lr factor");
    }
}

TEST_F(CudaKernels, OptimizerUpdates) {
  const int64_t n = 5000;
  auto p = random(n), g = random(n), m = random(n, 0.1), v = random(n, 0.01);
  for (double &x : v)
    x = std::fabs(x);
  std::vector<float> P(p.begin(), p.end()), G(g.begin(), g.end()),
      M(m.begin(), m.end()), V(v.begin(), v.end());
  ref::adamwUpdate(P.data(), G.data(), M.data(), V.data(), n, 1e-3, 0.5, 4, 0.9,
                   0.95, 1e-8, 0.1);
  Tensor tp = up(p), tg = up(g), tm = up(m), tv = up(v), lr = up({1e-3}),
         clip = up({0.5});
  adamw(tp, tg, tm, tv, n, lr, clip, upInts(std::vector<int64_t>{4}), 0.9f,
        0.95f, 1e-8f, 0.1f, tp, tm, tv, s);
  near(down(tp, n), std::vector<double>(P.begin(), P.end()), 1e-6, "adamw p");
  near(down(tm, n), std::vector<double>(M.begin(), M.end()), 1e-6, "adamw m");
  near(down(tv, n), std::vector<double>(V.begin(), V.end()), 1e-6, "adamw v");

  std::vector<float> LP(p.begin(), p.end()), LM(m.begin(), m.end());
  ref::lionUpdate(LP.data(), G.data(), LM.data(), n, 1e-4, 0.5, 0.9, 0.99, 0.1);
  Tensor lp = up(p), lm = up(m), llr = up({1e-4});
  lion(lp, tg, lm, n, llr, clip, 0.9, 0.99, 0.1, lp, lm, s);
  near(down(lp, n), std::vector<double>(LP.begin(), LP.end()), 1e-6, "lion p");
  near(down(lm, n), std::vector<double>(LM.begin(), LM.end()), 1e-6, "lion m");
}

/// A cuBLAS handle on the fixture's stream, in pedantic (no TF32) mode as
/// the executor's.
struct Blas {
  explicit Blas(cudaStream_t s) {
    EXPECT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cublasSetStream(h, s);
    cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH);
  }
  ~Blas() { cublasDestroy(h); }
  cublasHandle_t h = nullptr;
};

TEST_F(CudaKernels, ZLoss) {
  const int64_t rows = 33, c = 517;
  auto l = random(rows * c, 2.0);
  const double want = ref::zLossFwd(l.data(), rows, c);
  std::vector<double> dl(rows * c, 0.0);
  ref::zLossBwd(l.data(), rows, c, 0.7, dl.data());
  Tensor tl = up(l), loss = zeros(1), dx = zeros(rows * c);
  auto *lse = static_cast<float *>(alloc(rows * 4));
  rowLogSumExp(tl, rows, c, lse, s);
  zLoss(lse, rows, loss, s);
  zLossGrad(tl, lse, rows, c, up({0.7}), dx, s);
  near(down(loss, 1), {want}, kF32, "z-loss");
  near(down(dx, rows * c), dl, kF32, "z-loss gradient");
}

TEST_F(CudaKernels, ChunkedCrossEntropy) {
  // 45 rows in chunks of 16 (the last one short), a z-loss term and
  // ignored rows.
  const int64_t rows = 45, d = 32, vocab = 300, chunk = 16, ignore = -100;
  const double zw = 1e-3;
  auto h = random(rows * d), w = random(vocab * d, 0.2);
  std::vector<int64_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r)
    labels[r] = r % 7 == 3 ? ignore : (r * 13) % vocab;
  const double want = ref::chunkedCrossEntropyFwd(
      h.data(), w.data(), labels.data(), rows, d, vocab, chunk, ignore, zw);
  std::vector<double> dh(rows * d, 0.0), dw(vocab * d, 0.0);
  ref::chunkedCrossEntropyBwd(h.data(), w.data(), labels.data(), rows, d, vocab,
                              chunk, ignore, zw, 0.5, dh.data(), dw.data());
  Blas blas(s);
  ChunkedCeScratch sc{static_cast<float *>(alloc(chunk * vocab * 4)),
                      static_cast<float *>(alloc(chunk * 4)),
                      static_cast<float *>(alloc(rows * 4)),
                      static_cast<float *>(alloc(rows * 4)),
                      static_cast<float *>(alloc(4))};
  auto *err = static_cast<ErrorSlot *>(alloc(sizeof(ErrorSlot)));
  cudaMemset(err, 0, sizeof(ErrorSlot));
  Tensor th = up(h), tw = up(w), loss = zeros(1), tdh = zeros(rows * d),
         tdw = zeros(vocab * d);
  const int64_t *dlab = upInts(labels);
  chunkedCrossEntropy(blas.h, static_cast<float *>(th.p),
                      static_cast<float *>(tw.p), dlab, rows, d, vocab, chunk,
                      ignore, zw, loss, sc, err, 0, s, "test");
  chunkedCrossEntropyGrad(
      blas.h, static_cast<float *>(th.p), static_cast<float *>(tw.p), dlab,
      rows, d, vocab, chunk, ignore, zw, up({0.5}), static_cast<float *>(tdh.p),
      static_cast<float *>(tdw.p), sc, s, "test");
  near(down(loss, 1), {want}, kF32, "loss");
  near(down(tdh, rows * d), dh, kF32, "dh");
  near(down(tdw, vocab * d), dw, kF32, "dw");
}

TEST_F(CudaKernels, Fp8CastIsTheReferenceBitForBit) {
  const int64_t n = 6000;
  auto x = random(n, 3.0);
  std::vector<float> xf(x.begin(), x.end()), yf(n);
  auto *amax = static_cast<float *>(alloc(4));
  for (bool e4m3 : {true, false}) {
    ref::fp8Cast(xf.data(), n, e4m3, yf.data());
    Tensor y = zeros(n);
    fp8Cast(up(x), n, e4m3, y, amax, s);
    near(down(y, n), std::vector<double>(yf.begin(), yf.end()), 0,
         e4m3 ? "e4m3" : "e5m2");
  }
}

TEST_F(CudaKernels, Fp8GatherBytesRoundTrip) {
  // The fp8 FSDP gather's encoding: the reference's bytes, and decoding
  // them gives forge.fp8_cast's values.
  const int64_t n = 5000;
  auto x = random(n, 2.0);
  std::vector<float> xf(x.begin(), x.end()), cast(n);
  auto *amax = static_cast<float *>(alloc(4));
  auto *bytes = static_cast<uint8_t *>(alloc(n));
  for (bool e4m3 : {true, false}) {
    ref::fp8Cast(xf.data(), n, e4m3, cast.data());
    float mx = 0;
    for (float v : xf)
      mx = std::max(mx, std::fabs(v));
    const float scale = (e4m3 ? 448.0f : 57344.0f) / mx;
    Tensor tx = up(x), y = zeros(n);
    fp8Amax(tx, n, amax, s);
    fp8Encode(tx, n, e4m3, amax, bytes, s);
    fp8Decode(bytes, n, e4m3, amax, y, s);
    cudaStreamSynchronize(s);
    std::vector<uint8_t> got(n);
    cudaMemcpy(got.data(), bytes, n, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int64_t i = 0; i < n; ++i)
      wrong += got[i] != ref::fp8Bits(ref::roundFp8(xf[i] * scale, e4m3), e4m3);
    EXPECT_EQ(wrong, 0) << (e4m3 ? "e4m3" : "e5m2") << " bytes";
    near(down(y, n), std::vector<double>(cast.begin(), cast.end()), 0,
         "decoded");
  }
}

TEST_F(CudaKernels, ScheduleFreeAdamW) {
  const int64_t n = 3001;
  auto p = random(n), g = random(n), z = random(n), x = random(n),
       v = random(n, 0.01);
  for (double &e : v)
    e = std::fabs(e);
  // Two steps: the first (z and x start from p), then a later one.
  std::vector<float> state = {0, 0, 0, 0};
  std::vector<float> P(p.begin(), p.end()), G(g.begin(), g.end()),
      Z(z.begin(), z.end()), V(v.begin(), v.end()), X(x.begin(), x.end());
  Tensor tp = up(p), tg = up(g), tz = up(z), tv = up(v), tx = up(x),
         lr = up({0.01}), clip = up({0.8});
  auto *dstate = static_cast<float *>(alloc(16));
  cudaMemset(dstate, 0, 16);
  for (int step = 0; step < 2; ++step) {
    ref::scheduleFreeCount(state.data(), 0.01, 0.9, 5, state.data());
    ref::scheduleFreeAdamwUpdate(P.data(), G.data(), Z.data(), V.data(),
                                 X.data(), n, 0.01, 0.8, state.data(), 0.9,
                                 0.999, 1e-8, 0.1, 5);
    scheduleFreeCount(dstate, lr, 0.9, 5, dstate, s);
    scheduleFreeUpdate(tp, tg, tz, tv, tx, n, lr, clip, dstate, 0.9, 0.999,
                       1e-8, 0.1, 5, tp, tz, tv, tx, s);
  }
  auto f64 = [](const std::vector<float> &f) {
    return std::vector<double>(f.begin(), f.end());
  };
  near(down(tp, n), f64(P), 1e-6, "p");
  near(down(tz, n), f64(Z), 1e-6, "z");
  near(down(tv, n), f64(V), 1e-6, "v");
  near(down(tx, n), f64(X), 1e-6, "x");
  std::vector<float> out(n);
  ref::scheduleFreeInterpolate(P.data(), Z.data(), X.data(), n, state.data(),
                               0.9, out.data());
  Tensor y = zeros(n);
  scheduleFreeInterpolate(tp, tz, tx, n, dstate, 0.9, y, s);
  near(down(y, n), f64(out), 1e-6, "interpolate");
}

TEST_F(CudaKernels, MuonUpdate) {
  const int64_t m = 24, cols = 40, n = m * cols;
  auto p = random(n), g = random(n), buf = random(n, 0.1);
  std::vector<float> P(p.begin(), p.end()), G(g.begin(), g.end()),
      B(buf.begin(), buf.end());
  ref::muonUpdate(P.data(), G.data(), B.data(), m, cols, 0.02, 0.5, 0.95, 5,
                  0.1);
  // The executor's sequence (runtime/cuda/Executor.cpp, forge.muon_update).
  Blas blas(s);
  Tensor tp = up(p), tb = up(buf), lr = up({0.02});
  auto *x = static_cast<float *>(alloc(n * 4));
  auto *next = static_cast<float *>(alloc(n * 4));
  auto *aa = static_cast<float *>(alloc(m * m * 4));
  auto *bb = static_cast<float *>(alloc(m * m * 4));
  auto *partial = static_cast<double *>(alloc(kNormPartials * 8));
  muonMomentum(tb, up(g), up({0.5}), n, 0.95f, tb, x, s);
  const Tensor xf{x, Dt::f32};
  const int used = sumSquaresPartials(xf, n, partial, s);
  muonNormalize(xf, n, partial, used, x, s);
  newtonSchulz(blas.h, x, m, cols, 5, aa, bb, next, s, "test");
  muonApply(tp, x, n, lr, 0.1, 1.0f, tp, s);
  near(down(tb, n), std::vector<double>(B.begin(), B.end()), 1e-6, "buffer");
  near(down(tp, n), std::vector<double>(P.begin(), P.end()), 1e-5, "param");
}

TEST_F(CudaKernels, Routers) {
  const int64_t t = 50, e = 16, k = 3;
  auto logits = random(t * e, 2.0), bias = random(e, 0.1), dw = random(t * k),
       dp = random(t * e);
  std::vector<double> w(t * k), probs(t * e), dl(t * e, 0.0), db(e, 0.0);
  std::vector<int64_t> idx(t * k);
  ref::softmaxTopKFwd(logits.data(), t, e, k, w.data(), idx.data(),
                      probs.data());
  ref::softmaxTopKBwd(probs.data(), idx.data(), t, e, k, dw.data(), dp.data(),
                      dl.data());
  Tensor tw = zeros(t * k), tp = zeros(t * e), tdl = zeros(t * e);
  auto *didx = static_cast<int64_t *>(alloc(t * k * 8));
  softmaxTopK(up(logits), t, e, k, tw, didx, tp, s);
  softmaxTopKGrad(tp, didx, t, e, k, up(dw), up(dp), tdl, s);
  std::vector<int64_t> gotIdx(t * k);
  cudaStreamSynchronize(s);
  cudaMemcpy(gotIdx.data(), didx, t * k * 8, cudaMemcpyDeviceToHost);
  EXPECT_EQ(gotIdx, idx) << "softmax top-k indices";
  near(down(tw, t * k), w, kF32, "softmax top-k weights");
  near(down(tp, t * e), probs, kF32, "probabilities");
  near(down(tdl, t * e), dl, kF32, "softmax router gradient");

  std::fill(dl.begin(), dl.end(), 0.0);
  std::vector<double> scores(t * e);
  ref::sigmoidTopKFwd(logits.data(), bias.data(), t, e, k, w.data(), idx.data(),
                      scores.data());
  ref::sigmoidTopKBwd(scores.data(), idx.data(), t, e, k, dw.data(), dp.data(),
                      dl.data(), db.data());
  Tensor ts = zeros(t * e), tdb = zeros(e);
  auto *rowScratch = static_cast<float *>(alloc(t * e * 4));
  sigmoidTopK(up(logits), up(bias), t, e, k, tw, didx, ts, s);
  sigmoidTopKGrad(ts, didx, t, e, k, up(dw), up(dp), tdl, tdb, rowScratch, s);
  cudaStreamSynchronize(s);
  cudaMemcpy(gotIdx.data(), didx, t * k * 8, cudaMemcpyDeviceToHost);
  EXPECT_EQ(gotIdx, idx) << "sigmoid top-k indices";
  near(down(tw, t * k), w, kF32, "sigmoid top-k weights");
  near(down(ts, t * e), scores, kF32, "scores");
  near(down(tdl, t * e), dl, kF32, "sigmoid router gradient");
  near(down(tdb, e), db, kF32, "bias gradient");
}

TEST_F(CudaKernels, CapacityDispatchCombineAuxLoss) {
  const int64_t t = 40, e = 6, k = 2, d = 20;
  std::vector<int64_t> idx(t * k);
  for (int64_t r = 0; r < t; ++r) {
    idx[r * k] = (r * 5) % e;
    idx[r * k + 1] = (r * 5 + 1 + r % 3) % e;
  }
  auto w = random(t * k), x = random(t * d), dy = random(t * d),
       probs = random(t * e);
  for (double &p : probs)
    p = std::fabs(p);
  // Capacity 0.8: some copies are dropped.
  std::vector<double> capped(t * k), dcap(t * k, 0.0);
  ref::moeCapacityFwd(idx.data(), w.data(), t, k, e, 0.8, capped.data());
  ref::moeCapacityBwd(idx.data(), t, k, e, 0.8, dy.data(), dcap.data());
  const int64_t *didx = upInts(idx);
  auto *used = static_cast<int64_t *>(alloc(k * e * 8));
  Tensor tc = zeros(t * k), tdc = zeros(t * k);
  moeCapacity(didx, up(w), t, k, e, 0.8, tc, used, s);
  moeCapacityGrad(didx, t, k, e, 0.8, up(dy), tdc, used, s);
  near(down(tc, t * k), capped, 0, "capacity");
  near(down(tdc, t * k), dcap, 0, "capacity gradient");

  std::vector<double> rows(t * k * d), dx(t * d, 0.0);
  std::vector<int64_t> sizes(e), order(t * k);
  ref::moeDispatchFwd(x.data(), idx.data(), t, d, k, e, rows.data(),
                      sizes.data(), order.data());
  auto drows = random(t * k * d);
  ref::moeDispatchBwd(order.data(), t, d, k, drows.data(), dx.data());
  Tensor trows = zeros(t * k * d), tdx = zeros(t * d);
  auto *dsizes = static_cast<int64_t *>(alloc(e * 8));
  auto *dorder = static_cast<int64_t *>(alloc(t * k * 8));
  auto *inverse = static_cast<int64_t *>(alloc(t * k * 8));
  moeDispatch(up(x), didx, t, d, k, e, trows, dsizes, dorder, s);
  moeDispatchGrad(dorder, t, d, k, up(drows), tdx, inverse, s);
  cudaStreamSynchronize(s);
  std::vector<int64_t> gotSizes(e), gotOrder(t * k);
  cudaMemcpy(gotSizes.data(), dsizes, e * 8, cudaMemcpyDeviceToHost);
  cudaMemcpy(gotOrder.data(), dorder, t * k * 8, cudaMemcpyDeviceToHost);
  EXPECT_EQ(gotSizes, sizes);
  EXPECT_EQ(gotOrder, order);
  near(down(trows, t * k * d), rows, 0, "dispatched rows");
  near(down(tdx, t * d), dx, kF32, "dispatch gradient");

  // The expert of each copy, for the reference's combine scale.
  std::vector<int64_t> ex(t * k);
  for (int64_t r = 0, j = 0; j < e; ++j)
    for (int64_t c = 0; c < sizes[j]; ++c, ++r)
      ex[order[r]] = j;
  for (bool scale : {false, true}) {
    std::vector<double> y(t * d), dr(t * k * d, 0.0), dwt(t * k, 0.0);
    ref::moeCombineFwd(rows.data(), order.data(), w.data(), sizes.data(), t, d,
                       k, e, scale, ex.data(), y.data());
    ref::moeCombineBwd(rows.data(), order.data(), w.data(), sizes.data(), t, d,
                       k, e, scale, ex.data(), dy.data(), dr.data(),
                       dwt.data());
    Tensor ty = zeros(t * d), tdr = zeros(t * k * d), tdw = zeros(t * k);
    moeCombine(trows, dorder, up(w), dsizes, t, d, k, e, scale, ty, inverse, s);
    moeCombineGrad(trows, dorder, up(w), dsizes, t, d, k, e, scale, up(dy), tdr,
                   tdw, s);
    SCOPED_TRACE(scale ? "gradient scale" : "plain");
    near(down(ty, t * d), y, kF32, "combine");
    near(down(tdr, t * k * d), dr, kF32, "combine row gradient");
    near(down(tdw, t * k), dwt, kF32, "combine weight gradient");
  }

  const double aux = ref::moeAuxLossFwd(probs.data(), idx.data(), t, e, k);
  std::vector<double> dprobs(t * e, 0.0);
  ref::moeAuxLossBwd(idx.data(), t, e, k, 0.3, dprobs.data());
  auto *fraction = static_cast<float *>(alloc(e * 4));
  Tensor loss = zeros(1), tdp = zeros(t * e);
  moeAuxLoss(up(probs), didx, t, e, k, loss, fraction, s);
  moeAuxLossGrad(didx, t, e, k, up({0.3}), tdp, fraction, s);
  near(down(loss, 1), {aux}, kF32, "aux loss");
  near(down(tdp, t * e), dprobs, kF32, "aux loss gradient");
}

TEST_F(CudaKernels, GroupedLinearBothLayouts) {
  const int64_t e = 3, k = 24, n = 40;
  const std::vector<int64_t> sizes = {7, 0, 12};
  const int64_t rows = 19;
  Blas blas(s);
  // f32, and bf16 operands (on tensor cores, f32 accumulation) into bf16
  // or f32 results.
  const std::pair<Dt, Dt> types[] = {
      {Dt::f32, Dt::f32}, {Dt::bf16, Dt::bf16}, {Dt::bf16, Dt::f32}};
  for (auto [ab, cd] : types)
    for (bool outIn : {true, false}) {
      auto x = random(rows * k), w = random(e * k * n, 0.2),
           dy = random(rows * n);
      if (ab == Dt::bf16)
        x = roundBf16(x), w = roundBf16(w), dy = roundBf16(dy);
      std::vector<double> y(rows * n), dx(rows * k, 0.0), dw(e * k * n, 0.0);
      ref::groupedLinearFwd(x.data(), w.data(), sizes.data(), e, k, n, outIn,
                            y.data());
      ref::groupedLinearBwd(x.data(), w.data(), sizes.data(), e, k, n, outIn,
                            dy.data(), dx.data(), dw.data());
      Tensor tx = up(x, ab), tw = up(w, ab), tdy = up(dy, ab),
             ty = zeros(rows * n, cd), tdx = zeros(rows * k, cd),
             tdw = zeros(e * k * n, cd);
      groupedLinear(blas.h, GroupedKind::Forward, outIn, sizes, k, n, tx, tw,
                    ty, rows * n, s, "test");
      groupedLinear(blas.h, GroupedKind::GradInput, outIn, sizes, k, n, tdy, tw,
                    tdx, rows * k, s, "test");
      groupedLinear(blas.h, GroupedKind::GradWeight, outIn, sizes, k, n, tdy,
                    tx, tdw, e * k * n, s, "test");
      SCOPED_TRACE(std::string(outIn ? "out-in" : "in-out") +
                   (ab == Dt::bf16 ? ", bf16" : ", f32") +
                   (cd == Dt::bf16 ? " into bf16" : " into f32"));
      // bf16 operands are exact here; only a bf16 result rounds.
      const double tol = cd == Dt::bf16 ? kBf16 : 1e-5;
      near(down(ty, rows * n), y, tol, "grouped forward");
      near(down(tdx, rows * k), dx, tol, "grouped input gradient");
      near(down(tdw, e * k * n), dw, tol, "grouped weight gradient");
    }
}

TEST_F(CudaKernels, FiniteCheck) {
  auto x = random(3000);
  auto *flag = static_cast<int *>(alloc(4));
  cudaMemset(flag, 0, 4);
  checkFinite(up(x), x.size(), flag, s);
  cudaStreamSynchronize(s);
  int h = -1;
  cudaMemcpy(&h, flag, 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(h, 0);
  x[1234] = NAN;
  checkFinite(up(x, Dt::bf16), x.size(), flag, s);
  cudaStreamSynchronize(s);
  cudaMemcpy(&h, flag, 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(h, 1);
}

} // namespace
} // namespace forge::cuda
