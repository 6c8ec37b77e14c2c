//===- Executor.cpp - Runs a verified plan on the CPU ---------------------===//
//
// Every kernel here is a reference kernel (runtime/cpu/RefKernels) or a fast
// one tested against it (FastKernels), except the matmuls of linear layers
// and of Muon's Newton–Schulz iteration, which go to OpenBLAS sgemm; all are
// f32.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Executor.h"
#include "runtime/comm/Communicator.h"
#include "runtime/core/DType.h"
#include "runtime/cpu/Bf16Gemm.h"
#include "runtime/cpu/FastKernels.h"
#include "runtime/cpu/RefKernels.h"

#include <cblas-openblas.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>

namespace forge::cpu {
namespace {

using Fn = std::function<void()>;

bool isFloat(plan::DType t) {
  return t == plan::DType::f32 || t == plan::DType::bf16 ||
         t == plan::DType::f16;
}

/// f32 scratch for the f32 copies of bf16/f16 operands and results. A bf16
/// step converts on every run, and a fresh buffer of tens of MB is mapped
/// and page-faulted (zeroed by the kernel) on every call, which costs as
/// much as the conversion; so freed buffers are kept for the next taker.
/// The kept set settles at the buffers one step uses, at most kMaxKept of
/// them and kMaxKeptBytes in all (the oldest go first): larger conversions
/// (a 7B model's [vocab, dim] embedding gradient is 0.5 GB in f32) are
/// mapped afresh rather than held for the whole run.
class ScratchPool {
public:
  static ScratchPool &get() {
    static ScratchPool *pool = new ScratchPool; // used until exit
    return *pool;
  }
  /// A buffer of at least n floats, not zeroed.
  std::unique_ptr<float[]> take(int64_t n, int64_t *capacity) {
    if (n >= kKeepFrom) {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest kept buffer that fits without wasting half of it.
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].cap >= n && free_[i].cap <= 2 * n &&
            (best == free_.size() || free_[i].cap < free_[best].cap))
          best = i;
      if (best != free_.size()) {
        *capacity = free_[best].cap;
        keptBytes_ -= free_[best].cap * 4;
        auto buf = std::move(free_[best].buf);
        free_.erase(free_.begin() + static_cast<ptrdiff_t>(best));
        return buf;
      }
    }
    *capacity = n;
    return std::unique_ptr<float[]>(new float[static_cast<size_t>(n)]);
  }
  void give(std::unique_ptr<float[]> buf, int64_t capacity) {
    if (capacity < kKeepFrom)
      return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back({capacity, std::move(buf)});
    keptBytes_ += capacity * 4;
    while (free_.size() > kMaxKept || keptBytes_ > kMaxKeptBytes) {
      keptBytes_ -= free_.front().cap * 4;
      free_.erase(free_.begin());
    }
  }

private:
  /// Below this (256 KiB) malloc reuses its own memory and nothing faults.
  static constexpr int64_t kKeepFrom = 1 << 16;
  static constexpr size_t kMaxKept = 64;
  static constexpr int64_t kMaxKeptBytes = int64_t(512) << 20;
  struct Kept {
    int64_t cap;
    std::unique_ptr<float[]> buf;
  };
  std::mutex mu_;
  std::vector<Kept> free_;
  int64_t keptBytes_ = 0;
};

/// A scratch buffer of ScratchPool, returned to it when destroyed.
class Scratch {
public:
  Scratch() = default;
  explicit Scratch(int64_t n) { buf_ = ScratchPool::get().take(n, &cap_); }
  Scratch(Scratch &&) = default;
  Scratch &operator=(Scratch &&) = default;
  ~Scratch() {
    if (buf_)
      ScratchPool::get().give(std::move(buf_), cap_);
  }
  float *data() const { return buf_.get(); }

private:
  std::unique_ptr<float[]> buf_;
  int64_t cap_ = 0;
};

/// f32 copy of a floating buffer (or its own storage when it is f32).
struct In {
  Scratch tmp;
  const float *p;
};
/// A step that copies `x` into `y` unchanged (same dtype and size).
Fn copyStep(View x, View y) {
  return [=] {
    if (y.data != x.data)
      std::memcpy(y.data, x.data,
                  static_cast<size_t>(x.numel()) * runtime::dtypeSize(x.dtype));
  };
}

In read(const View &v) {
  In r;
  if (v.dtype == plan::DType::f32) {
    r.p = static_cast<const float *>(v.data);
    return r;
  }
  int64_t n = v.numel();
  r.tmp = Scratch(n);
  if (v.dtype == plan::DType::bf16) {
    fast::bf16ToF32(static_cast<const uint16_t *>(v.data), n, r.tmp.data());
  } else {
    auto *s = static_cast<const _Float16 *>(v.data);
    float *d = r.tmp.data();
    for (int64_t i = 0; i < n; ++i)
      d[i] = static_cast<float>(s[i]);
  }
  r.p = r.tmp.data();
  return r;
}

/// An f32 destination for a floating buffer; commit() stores it.
struct Out {
  View v;
  Scratch tmp;
  float *p;
  /// `zero`: kernels that accumulate need a zeroed destination; kernels
  /// that overwrite every element pass false and skip the fill.
  explicit Out(const View &view, bool zero = true) : v(view) {
    if (v.dtype == plan::DType::f32) {
      p = static_cast<float *>(v.data);
    } else {
      tmp = Scratch(v.numel());
      p = tmp.data();
    }
    if (zero)
      std::fill(p, p + v.numel(), 0.0f);
  }
  void commit() {
    int64_t n = v.numel();
    if (v.dtype == plan::DType::bf16) {
      fast::f32ToBf16(p, n, static_cast<uint16_t *>(v.data));
    } else if (v.dtype == plan::DType::f16) {
      auto *d = static_cast<_Float16 *>(v.data);
      for (int64_t i = 0; i < n; ++i)
        d[i] = static_cast<_Float16>(p[i]);
    }
  }
};

/// Runs an element-wise kernel over all n elements of the outputs block by
/// block, on all cores. bf16/f16 operands are converted a block at a time
/// into per-thread f32 buffers that stay in cache, rather than whole-tensor
/// copies that go through memory twice; f32 operands are used in place.
/// `kernel(in, count, out)` sees arrays of f32 pointers to one block; with
/// `zero` its out blocks are zeroed first (for kernels that accumulate). An
/// output may be one of the inputs (in place): a block is read before it is
/// written. Every operand has the outputs' element count.
template <size_t N, size_t M, typename K>
void elementwiseN(const std::array<View, N> &ins,
                  const std::array<View, M> &outs, bool zero, K kernel) {
  constexpr int64_t kBlockElems = 8192; // 32 KiB of f32 per operand
  const int64_t n = outs[0].numel();
  auto load = [](const View &v, int64_t begin, int64_t count, float *buf) {
    if (v.dtype == plan::DType::f32)
      return static_cast<const float *>(v.data) + begin;
    if (v.dtype == plan::DType::bf16) {
      fast::bf16ToF32(static_cast<const uint16_t *>(v.data) + begin, count,
                      buf);
    } else {
      auto *s = static_cast<const _Float16 *>(v.data) + begin;
      for (int64_t i = 0; i < count; ++i)
        buf[i] = static_cast<float>(s[i]);
    }
    return static_cast<const float *>(buf);
  };
  fast::parallelFor((n + kBlockElems - 1) / kBlockElems, [&](int64_t blk) {
    thread_local std::vector<float> bufs;
    bufs.resize((N + M) * kBlockElems);
    const int64_t begin = blk * kBlockElems,
                  count = std::min(kBlockElems, n - begin);
    std::array<const float *, N> in;
    for (size_t i = 0; i < N; ++i)
      in[i] = load(ins[i], begin, count, bufs.data() + i * kBlockElems);
    std::array<float *, M> o;
    for (size_t j = 0; j < M; ++j) {
      o[j] = outs[j].dtype == plan::DType::f32
                 ? static_cast<float *>(outs[j].data) + begin
                 : bufs.data() + (N + j) * kBlockElems;
      if (zero)
        std::fill(o[j], o[j] + count, 0.0f);
    }
    kernel(in, count, o);
    for (size_t j = 0; j < M; ++j) {
      if (outs[j].dtype == plan::DType::bf16) {
        fast::f32ToBf16(o[j], count,
                        static_cast<uint16_t *>(outs[j].data) + begin);
      } else if (outs[j].dtype == plan::DType::f16) {
        auto *d = static_cast<_Float16 *>(outs[j].data) + begin;
        for (int64_t i = 0; i < count; ++i)
          d[i] = static_cast<_Float16>(o[j][i]);
      }
    }
  });
}

/// elementwiseN with one output; `kernel(in, count, out)` gets its pointer.
template <size_t N, typename K>
void elementwise(const std::array<View, N> &ins, const View &out, bool zero,
                 K kernel) {
  elementwiseN<N, 1>(
      ins, {out}, zero,
      [&](const std::array<const float *, N> &in, int64_t n,
          const std::array<float *, 1> &o) { kernel(in, n, o[0]); });
}

const int64_t *ints(const View &v) {
  return static_cast<const int64_t *>(v.data);
}
int64_t *mutInts(const View &v) { return static_cast<int64_t *>(v.data); }

/// One step being bound to its kernel.
struct Bind {
  const plan::Step *step;
  std::vector<View> ops, res;

  const plan::Attr *attr(const char *name) const {
    if (step->attrs())
      for (const plan::Attr *a : *step->attrs())
        if (a->name() && a->name()->str() == name)
          return a;
    return nullptr;
  }
  int64_t i(const char *name, int64_t dflt = 0) const {
    const plan::Attr *a = attr(name);
    return a ? a->i() : dflt;
  }
  double f(const char *name, double dflt = 0) const {
    const plan::Attr *a = attr(name);
    return a ? a->f() : dflt;
  }
  std::string s(const char *name) const {
    const plan::Attr *a = attr(name);
    return a && a->s() ? a->s()->str() : "";
  }
  bool has(const char *name) const { return attr(name) != nullptr; }
};

const uint16_t *bf16(const View &v) {
  return static_cast<const uint16_t *>(v.data);
}
uint16_t *bf16Out(const View &v) { return static_cast<uint16_t *>(v.data); }

/// Binds `fn` to oneDNN's GEMM c = op(a) @ op(b) (Bf16Gemm) when a, b and c
/// are all bf16 (train.mixed_precision = "bf16") and the CPU has bf16
/// instructions; `*bound` says whether it did (sgemm on f32 copies
/// otherwise). A non-empty return is a bind error (a bad
/// FORGE_CPU_BF16_GEMM).
std::string bindBf16Gemm(View a, View b, View c, int64_t m, int64_t n,
                         int64_t k, bool transA, bool transB, Fn &fn,
                         bool *bound) {
  *bound = false;
  for (const View &v : {a, b, c})
    if (v.dtype != plan::DType::bf16)
      return std::string();
  bool oneDnn = false;
  std::string err;
  if (!bf16GemmUseOneDnn(&oneDnn, &err))
    return err;
  std::shared_ptr<Bf16Gemm> gemm;
  if (oneDnn)
    gemm = Bf16Gemm::create(m, n, k, transA, transB, nullptr);
  if (gemm) {
    fn = [=] { gemm->run(bf16(a), bf16(b), bf16Out(c)); };
    *bound = true;
  }
  return std::string();
}

/// y[M, N] = x[M, K] @ w[N, K]^T with sgemm.
void gemmXWt(const float *x, const float *w, int64_t m, int64_t k, int64_t n,
             float *y, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w,
              k, beta, y, n);
}

/// Muon's Newton–Schulz iteration (same math as ref::newtonSchulz) with
/// sgemm: each iteration is O(m^2 n + m^3), which plain loops cannot afford
/// at real layer sizes. `x` is [m, n] and is overwritten with the result.
void newtonSchulzBlas(float *x, int64_t m, int64_t n, int64_t steps) {
  const float a = 3.4445f, b = -4.7750f, c = 2.0315f;
  double sq = 0;
  for (int64_t i = 0; i < m * n; ++i)
    sq += static_cast<double>(x[i]) * x[i];
  const float denom = static_cast<float>(std::sqrt(sq)) + 1e-7f;
  for (int64_t i = 0; i < m * n; ++i)
    x[i] /= denom;
  std::vector<float> aa(m * m), bb(m * m), next(m * n);
  for (int64_t s = 0; s < steps; ++s) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, n, 1.0f, x, n, x,
                n, 0.0f, aa.data(), m); // A = X X^T
    for (int64_t i = 0; i < m * m; ++i)
      bb[i] = b * aa[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, c,
                aa.data(), m, aa.data(), m, 1.0f, bb.data(),
                m); // B = b A + c A A
    for (int64_t i = 0; i < m * n; ++i)
      next[i] = a * x[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, m, 1.0f,
                bb.data(), m, x, n, 1.0f, next.data(), n); // X = a X + B X
    std::copy(next.begin(), next.end(), x);
  }
}

using Binder = std::function<std::string(Bind &, Fn &)>;

/// Labels come from data: an id outside [0, classes) other than the ignore
/// index would index outside the logits, so it stops the run with a reason.
void checkLabels(const int64_t *labels, int64_t n, int64_t classes,
                 int64_t ignore) {
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] != ignore && (labels[i] < 0 || labels[i] >= classes)) {
      std::fprintf(stderr,
                   "forge-run: error: label %lld at position %lld is outside "
                   "[0, %lld) and is not the ignore index %lld\n",
                   static_cast<long long>(labels[i]), static_cast<long long>(i),
                   static_cast<long long>(classes),
                   static_cast<long long>(ignore));
      std::exit(1);
    }
}

std::string need(bool ok, const Bind &b, const std::string &what) {
  if (ok)
    return "";
  return std::string(b.step->op()->c_str()) + ": " + what;
}

std::map<std::string, Binder> &binders() {
  static std::map<std::string, Binder> m = [] {
    std::map<std::string, Binder> m;
    auto unary = [](ref::Unary kind) {
      return [kind](Bind &b, Fn &fn) {
        View x = b.ops[0], y = b.res[0];
        fn = [=] {
          elementwise<1>({x}, y, false, [&](auto in, int64_t n, float *o) {
            fast::unary(kind, in[0], n, o);
          });
        };
        return std::string();
      };
    };
    auto unaryGrad = [](ref::Unary kind) {
      return [kind](Bind &b, Fn &fn) {
        View x = b.ops[0], dy = b.ops[1], dx = b.res[0];
        fn = [=] {
          elementwise<2>({x, dy}, dx, true, [&](auto in, int64_t n, float *o) {
            fast::unaryGrad(kind, in[0], in[1], n, o);
          });
        };
        return std::string();
      };
    };
    m["forge.silu"] = unary(ref::Unary::Silu);
    m["forge.gelu"] = unary(ref::Unary::Gelu);
    m["forge.relu"] = unary(ref::Unary::Relu);
    m["forge.tanh"] = unary(ref::Unary::Tanh);
    m["forge.silu_grad"] = unaryGrad(ref::Unary::Silu);
    m["forge.gelu_grad"] = unaryGrad(ref::Unary::Gelu);
    m["forge.relu_grad"] = unaryGrad(ref::Unary::Relu);
    m["forge.tanh_grad"] = unaryGrad(ref::Unary::Tanh);

    m["forge.embedding"] = [](Bind &b, Fn &fn) {
      View t = b.ops[0], ids = b.ops[1], y = b.res[0];
      int64_t vocab = t.dim(0);
      fn = [=] {
        const int64_t *id = ints(ids);
        for (int64_t i = 0; i < ids.numel(); ++i)
          if (id[i] < 0 || id[i] >= vocab) {
            std::fprintf(stderr,
                         "forge-run: error: token id %lld outside "
                         "the vocabulary [0, %lld)\n",
                         static_cast<long long>(id[i]),
                         static_cast<long long>(vocab));
            std::exit(1);
          }
        In tab = read(t);
        Out out(y);
        ref::embeddingFwd(tab.p, id, ids.numel(), t.dim(1), out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.embedding_grad"] = [](Bind &b, Fn &fn) {
      View dout = b.ops[0], ids = b.ops[1], dt = b.res[0];
      fn = [=] {
        In g = read(dout);
        Out out(dt);
        ref::embeddingBwd(ints(ids), ids.numel(), dt.dim(1), g.p, out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.linear"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], w = b.ops[1], y = b.res[0];
      int64_t k = w.dim(1), n = w.dim(0), rows = x.numel() / k;
      bool bound = false;
      if (std::string err =
              bindBf16Gemm(x, w, y, rows, n, k, false, true, fn, &bound);
          !err.empty() || bound)
        return err;
      fn = [=] {
        In xi = read(x), wi = read(w);
        Out out(y, false);
        gemmXWt(xi.p, wi.p, rows, k, n, out.p, 0.0f);
        out.commit();
      };
      return std::string();
    };
    m["forge.linear_grad_input"] = [](Bind &b, Fn &fn) {
      View dy = b.ops[0], w = b.ops[1], dx = b.res[0];
      int64_t n = w.dim(0), k = w.dim(1), rows = dy.numel() / n;
      bool bound = false;
      if (std::string err =
              bindBf16Gemm(dy, w, dx, rows, k, n, false, false, fn, &bound);
          !err.empty() || bound)
        return err;
      fn = [=] {
        In g = read(dy), wi = read(w);
        Out out(dx, false);
        // dx[rows, k] = dy[rows, n] @ w[n, k]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, k, n, 1.0f,
                    g.p, n, wi.p, k, 0.0f, out.p, k);
        out.commit();
      };
      return std::string();
    };
    m["forge.linear_grad_weight"] = [](Bind &b, Fn &fn) {
      View dy = b.ops[0], x = b.ops[1], dw = b.res[0];
      int64_t n = dw.dim(0), k = dw.dim(1), rows = dy.numel() / n;
      bool bound = false;
      if (std::string err =
              bindBf16Gemm(dy, x, dw, n, k, rows, true, false, fn, &bound);
          !err.empty() || bound)
        return err;
      fn = [=] {
        In g = read(dy), xi = read(x);
        Out out(dw, false);
        // dw[n, k] = dy^T[n, rows] @ x[rows, k]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, rows, 1.0f,
                    g.p, n, xi.p, k, 0.0f, out.p, k);
        out.commit();
      };
      return std::string();
    };
    m["forge.grouped_linear"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], w = b.ops[1], sz = b.ops[2], y = b.res[0];
      bool outIn = b.s("layout") != "in_out";
      fn = [=] {
        In xi = read(x), wi = read(w);
        Out out(y);
        ref::groupedLinearFwd(xi.p, wi.p, ints(sz), w.dim(0), x.dim(1),
                              y.dim(1), outIn, out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.grouped_linear_grad_input"] = [](Bind &b, Fn &fn) {
      View dy = b.ops[0], w = b.ops[1], sz = b.ops[2], dx = b.res[0];
      bool outIn = b.s("layout") != "in_out";
      fn = [=] {
        In g = read(dy), wi = read(w);
        Out out(dx);
        // Only dx is wanted: the weight gradient goes to a scratch.
        std::vector<float> dw(w.numel(), 0.0f), zeros(dx.numel(), 0.0f);
        ref::groupedLinearBwd(zeros.data(), wi.p, ints(sz), w.dim(0), dx.dim(1),
                              dy.dim(1), outIn, g.p, out.p, dw.data());
        out.commit();
      };
      return std::string();
    };
    m["forge.grouped_linear_grad_weight"] = [](Bind &b, Fn &fn) {
      View dy = b.ops[0], x = b.ops[1], sz = b.ops[2], dw = b.res[0];
      bool outIn = b.s("layout") != "in_out";
      fn = [=] {
        In g = read(dy), xi = read(x);
        Out out(dw);
        std::vector<float> w(dw.numel(), 0.0f), dx(x.numel(), 0.0f);
        ref::groupedLinearBwd(xi.p, w.data(), ints(sz), dw.dim(0), x.dim(1),
                              dy.dim(1), outIn, g.p, dx.data(), out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.stack"] = [](Bind &b, Fn &fn) {
      std::vector<View> ins = b.ops;
      View y = b.res[0];
      fn = [=] {
        Out out(y);
        int64_t each = ins[0].numel();
        for (size_t i = 0; i < ins.size(); ++i) {
          In in = read(ins[i]);
          std::copy(in.p, in.p + each, out.p + i * each);
        }
        out.commit();
      };
      return std::string();
    };
    m["forge.unstack"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0];
      std::vector<View> outs = b.res;
      fn = [=] {
        In in = read(x);
        int64_t each = outs[0].numel();
        for (size_t i = 0; i < outs.size(); ++i) {
          Out out(outs[i]);
          std::copy(in.p + i * each, in.p + (i + 1) * each, out.p);
          out.commit();
        }
      };
      return std::string();
    };
    m["forge.rmsnorm"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], w = b.ops[1], y = b.res[0];
      double eps = b.f("eps");
      const bool allBf16 = x.dtype == plan::DType::bf16 && w.dtype == x.dtype &&
                           y.dtype == x.dtype;
      fn = [=] {
        if (allBf16) { // converted row by row
          fast::rmsnormFwd(bf16(x), bf16(w), x.numel() / x.dim(-1), x.dim(-1),
                           eps, bf16Out(y));
          return;
        }
        In xi = read(x), wi = read(w);
        Out out(y, false); // every element written
        fast::rmsnormFwd(xi.p, wi.p, x.numel() / x.dim(-1), x.dim(-1), eps,
                         out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.rmsnorm_grad"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], w = b.ops[1], dy = b.ops[2], dx = b.res[0],
           dw = b.res[1];
      double eps = b.f("eps");
      bool allBf16 = true;
      for (const View &t : {x, w, dy, dx, dw})
        allBf16 = allBf16 && t.dtype == plan::DType::bf16;
      fn = [=] {
        if (allBf16) { // converted row by row; dx and dw written
          fast::rmsnormBwd(bf16(x), bf16(w), bf16(dy), x.numel() / x.dim(-1),
                           x.dim(-1), eps, bf16Out(dx), bf16Out(dw));
          return;
        }
        In xi = read(x), wi = read(w), g = read(dy);
        Out ox(dx), ow(dw);
        fast::rmsnormBwd(xi.p, wi.p, g.p, x.numel() / x.dim(-1), x.dim(-1), eps,
                         ox.p, ow.p);
        ox.commit();
        ow.commit();
      };
      return std::string();
    };
    m["forge.layernorm"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], w = b.ops[1], bias = b.ops[2], y = b.res[0];
      double eps = b.f("eps");
      fn = [=] {
        In xi = read(x), wi = read(w), bi = read(bias);
        Out out(y);
        ref::layernormFwd(xi.p, wi.p, bi.p, x.numel() / x.dim(-1), x.dim(-1),
                          eps, out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.layernorm_grad"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], w = b.ops[1], dy = b.ops[2];
      View dx = b.res[0], dw = b.res[1], db = b.res[2];
      double eps = b.f("eps");
      fn = [=] {
        In xi = read(x), wi = read(w), g = read(dy);
        Out ox(dx), ow(dw), ob(db);
        ref::layernormBwd(xi.p, wi.p, g.p, x.numel() / x.dim(-1), x.dim(-1),
                          eps, ox.p, ow.p, ob.p);
        ox.commit();
        ow.commit();
        ob.commit();
      };
      return std::string();
    };
    m["forge.rope"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], y = b.res[0];
      double theta = b.f("theta");
      const bool allBf16 =
          x.dtype == plan::DType::bf16 && y.dtype == plan::DType::bf16;
      fn = [=] {
        if (allBf16) {
          fast::rope(bf16(x), x.dim(0), x.dim(1), x.dim(2), x.dim(3), theta,
                     false, bf16Out(y));
          return;
        }
        In xi = read(x);
        Out out(y, false);
        fast::rope(xi.p, x.dim(0), x.dim(1), x.dim(2), x.dim(3), theta, false,
                   out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.rope_grad"] = [](Bind &b, Fn &fn) {
      View dy = b.ops[0], dx = b.res[0];
      double theta = b.f("theta");
      const bool allBf16 =
          dy.dtype == plan::DType::bf16 && dx.dtype == plan::DType::bf16;
      fn = [=] {
        if (allBf16) { // dx written, not accumulated
          fast::rope(bf16(dy), dy.dim(0), dy.dim(1), dy.dim(2), dy.dim(3),
                     theta, true, bf16Out(dx));
          return;
        }
        In g = read(dy);
        Out out(dx);
        fast::rope(g.p, dy.dim(0), dy.dim(1), dy.dim(2), dy.dim(3), theta, true,
                   out.p);
        out.commit();
      };
      return std::string();
    };
    auto shapeOf = [](const Bind &b, const View &q, const View &k) {
      return ref::AttentionShape{q.dim(0),    q.dim(1), q.dim(2),
                                 k.dim(2),    q.dim(3), b.has("causal"),
                                 b.f("scale")};
    };
    m["forge.attention"] = [shapeOf](Bind &b, Fn &fn) {
      if (b.ops.size() != 3 && b.ops.size() != 4)
        return need(false, b, "expects q, k, v and optional doc_ids");
      View q = b.ops[0], k = b.ops[1], v = b.ops[2], o = b.res[0];
      bool docs = b.ops.size() == 4;
      View d = docs ? b.ops[3] : View();
      if (docs && d.dtype != plan::DType::i32)
        return need(false, b, "doc_ids must be i32");
      ref::AttentionShape sh = shapeOf(b, q, k);
      const bool allBf16 = q.dtype == plan::DType::bf16 && k.dtype == q.dtype &&
                           v.dtype == q.dtype && o.dtype == q.dtype;
      fn = [=] {
        const int32_t *doc =
            docs ? static_cast<const int32_t *>(d.data) : nullptr;
        std::vector<float> lse(sh.b * sh.h * sh.s);
        if (allBf16) { // converted head by head inside the kernel
          fast::attentionFwd(bf16(q), bf16(k), bf16(v), doc, sh, bf16Out(o),
                             lse.data());
          return;
        }
        In qi = read(q), ki = read(k), vi = read(v);
        Out out(o, false); // every element written
        fast::attentionFwd(qi.p, ki.p, vi.p, doc, sh, out.p, lse.data());
        out.commit();
      };
      return std::string();
    };
    m["forge.attention_grad"] = [shapeOf](Bind &b, Fn &fn) {
      if (b.ops.size() != 5 && b.ops.size() != 6)
        return need(false, b,
                    "expects q, k, v, out, dout and optional doc_ids");
      View q = b.ops[0], k = b.ops[1], v = b.ops[2], out = b.ops[3],
           dout = b.ops[4];
      bool docs = b.ops.size() == 6;
      View d = docs ? b.ops[5] : View();
      View dq = b.res[0], dk = b.res[1], dv = b.res[2];
      ref::AttentionShape sh = shapeOf(b, q, k);
      bool allBf16 = true;
      for (const View &t : {q, k, v, out, dout, dq, dk, dv})
        allBf16 = allBf16 && t.dtype == plan::DType::bf16;
      fn = [=] {
        const int32_t *doc =
            docs ? static_cast<const int32_t *>(d.data) : nullptr;
        if (allBf16) { // converted head by head inside the kernel
          fast::attentionBwd(bf16(q), bf16(k), bf16(v), doc, sh, bf16(out),
                             bf16(dout), bf16Out(dq), bf16Out(dk), bf16Out(dv));
          return;
        }
        In qi = read(q), ki = read(k), vi = read(v), g = read(dout);
        In oi = read(out);
        // The kernel stores every element once.
        Out oq(dq, false), ok(dk, false), ov(dv, false);
        fast::attentionBwd(qi.p, ki.p, vi.p, doc, sh, oi.p, nullptr, g.p, oq.p,
                           ok.p, ov.p);
        oq.commit();
        ok.commit();
        ov.commit();
      };
      return std::string();
    };
    auto binary = [](bool mul) {
      return [mul](Bind &b, Fn &fn) {
        View x = b.ops[0], y = b.ops[1], z = b.res[0];
        fn = [=] {
          elementwise<2>({x, y}, z, false, [&](auto in, int64_t n, float *o) {
            fast::binary(mul, in[0], in[1], n, o);
          });
        };
        return std::string();
      };
    };
    m["forge.add"] = binary(false);
    m["forge.mul"] = binary(true);
    m["forge.scale"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], y = b.res[0];
      float factor = static_cast<float>(b.f("factor"));
      fn = [=] {
        elementwise<1>({x}, y, false, [&](auto in, int64_t n, float *o) {
          fast::scale(in[0], factor, n, o);
        });
      };
      return std::string();
    };
    m["forge.fp8_cast"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], y = b.res[0];
      const bool e4m3 = b.s("format") == "e4m3";
      fn = [=] {
        In a = read(x);
        Out out(y, false);
        ref::fp8Cast(a.p, y.numel(), e4m3, out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.fp8_grad_cast"] = [](Bind &b, Fn &fn) {
      // Identity: the e5m2 rounding is its VJP's (a forge.fp8_cast).
      fn = copyStep(b.ops[0], b.res[0]);
      return std::string();
    };
    m["forge.fill"] = [](Bind &b, Fn &fn) {
      View y = b.res[0];
      float value = static_cast<float>(b.f("value"));
      fn = [=] {
        Out out(y);
        std::fill(out.p, out.p + y.numel(), value);
        out.commit();
      };
      return std::string();
    };
    m["forge.set_param"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], p = b.res[0];
      if (x.dtype != p.dtype || x.numel() != p.numel())
        return need(false, b, "value and parameter differ in type or size");
      int64_t bytes =
          x.numel() * static_cast<int64_t>(runtime::dtypeSize(x.dtype));
      fn = [=] {
        if (x.data != p.data)
          std::memmove(p.data, x.data, bytes);
      };
      return std::string();
    };
    m["forge.softmax_topk"] = [](Bind &b, Fn &fn) {
      View l = b.ops[0], w = b.res[0], idx = b.res[1], p = b.res[2];
      int64_t k = b.i("k");
      fn = [=] {
        In li = read(l);
        Out ow(w), op(p);
        ref::softmaxTopKFwd(li.p, l.dim(0), l.dim(1), k, ow.p, mutInts(idx),
                            op.p);
        ow.commit();
        op.commit();
      };
      return std::string();
    };
    m["forge.softmax_topk_grad"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], idx = b.ops[1], dw = b.ops[2], dp = b.ops[3],
           dl = b.res[0];
      fn = [=] {
        In pi = read(p), dwi = read(dw), dpi = read(dp);
        Out out(dl);
        ref::softmaxTopKBwd(pi.p, ints(idx), p.dim(0), p.dim(1), idx.dim(1),
                            dwi.p, dpi.p, out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.sigmoid_topk"] = [](Bind &b, Fn &fn) {
      View l = b.ops[0], bias = b.ops[1], w = b.res[0], idx = b.res[1],
           s = b.res[2];
      int64_t k = b.i("k");
      fn = [=] {
        In li = read(l), bi = read(bias);
        Out ow(w), os(s);
        ref::sigmoidTopKFwd(li.p, bi.p, l.dim(0), l.dim(1), k, ow.p,
                            mutInts(idx), os.p);
        ow.commit();
        os.commit();
      };
      return std::string();
    };
    m["forge.sigmoid_topk_grad"] = [](Bind &b, Fn &fn) {
      View s = b.ops[0], idx = b.ops[1], dw = b.ops[2], ds = b.ops[3],
           dl = b.res[0], db = b.res[1];
      fn = [=] {
        In si = read(s), dwi = read(dw), dsi = read(ds);
        Out ol(dl), ob(db);
        ref::sigmoidTopKBwd(si.p, ints(idx), s.dim(0), s.dim(1), idx.dim(1),
                            dwi.p, dsi.p, ol.p, ob.p);
        ol.commit();
        ob.commit();
      };
      return std::string();
    };
    m["forge.moe_capacity"] = [](Bind &b, Fn &fn) {
      View idx = b.ops[0], w = b.ops[1], y = b.res[0];
      int64_t e = b.i("experts");
      double factor = b.f("factor");
      fn = [=] {
        In wi = read(w);
        Out out(y);
        ref::moeCapacityFwd(ints(idx), wi.p, idx.dim(0), idx.dim(1), e, factor,
                            out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.moe_capacity_grad"] = [](Bind &b, Fn &fn) {
      View idx = b.ops[0], dy = b.ops[1], dw = b.res[0];
      int64_t e = b.i("experts");
      double factor = b.f("factor");
      fn = [=] {
        In g = read(dy);
        Out out(dw);
        ref::moeCapacityBwd(ints(idx), idx.dim(0), idx.dim(1), e, factor, g.p,
                            out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.moe_dispatch"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], idx = b.ops[1], rows = b.res[0], sizes = b.res[1],
           order = b.res[2];
      int64_t e = b.i("experts");
      fn = [=] {
        In xi = read(x);
        Out out(rows);
        ref::moeDispatchFwd(xi.p, ints(idx), x.dim(0), x.dim(1), idx.dim(1), e,
                            out.p, mutInts(sizes), mutInts(order));
        out.commit();
      };
      return std::string();
    };
    m["forge.moe_dispatch_grad"] = [](Bind &b, Fn &fn) {
      View drows = b.ops[0], order = b.ops[1], dx = b.res[0];
      fn = [=] {
        In g = read(drows);
        Out out(dx);
        int64_t k = drows.dim(0) / dx.dim(0);
        ref::moeDispatchBwd(ints(order), dx.dim(0), dx.dim(1), k, g.p, out.p);
        out.commit();
      };
      return std::string();
    };
    // Expert of each routed copy, by flat (token * k + slot) index: rows are
    // grouped by expert, so copy r belongs to the expert whose group holds r.
    auto expertsOf = [](const int64_t *order, const int64_t *sizes,
                        int64_t experts, int64_t copies) {
      std::vector<int64_t> ex(copies);
      int64_t r = 0;
      for (int64_t e = 0; e < experts; ++e)
        for (int64_t j = 0; j < sizes[e]; ++j, ++r)
          ex[order[r]] = e;
      return ex;
    };
    m["forge.moe_combine"] = [expertsOf](Bind &b, Fn &fn) {
      View rows = b.ops[0], order = b.ops[1], w = b.ops[2], sizes = b.ops[3],
           y = b.res[0];
      bool scale = b.has("gradient_scale");
      fn = [=] {
        In ri = read(rows), wi = read(w);
        Out out(y);
        int64_t t = w.dim(0), k = w.dim(1), e = sizes.dim(0);
        std::vector<int64_t> ex = expertsOf(ints(order), ints(sizes), e, t * k);
        ref::moeCombineFwd(ri.p, ints(order), wi.p, ints(sizes), t, y.dim(1), k,
                           e, scale, ex.data(), out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.moe_combine_grad"] = [expertsOf](Bind &b, Fn &fn) {
      View rows = b.ops[0], order = b.ops[1], w = b.ops[2], sizes = b.ops[3],
           dy = b.ops[4], drows = b.res[0], dw = b.res[1];
      bool scale = b.has("gradient_scale");
      fn = [=] {
        In ri = read(rows), wi = read(w), g = read(dy);
        Out orow(drows), ow(dw);
        int64_t t = w.dim(0), k = w.dim(1), e = sizes.dim(0);
        std::vector<int64_t> ex = expertsOf(ints(order), ints(sizes), e, t * k);
        ref::moeCombineBwd(ri.p, ints(order), wi.p, ints(sizes), t, rows.dim(1),
                           k, e, scale, ex.data(), g.p, orow.p, ow.p);
        orow.commit();
        ow.commit();
      };
      return std::string();
    };
    m["forge.moe_aux_loss"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], idx = b.ops[1], y = b.res[0];
      fn = [=] {
        In pi = read(p);
        Out out(y);
        out.p[0] =
            ref::moeAuxLossFwd(pi.p, ints(idx), p.dim(0), p.dim(1), idx.dim(1));
        out.commit();
      };
      return std::string();
    };
    m["forge.moe_aux_loss_grad"] = [](Bind &b, Fn &fn) {
      View idx = b.ops[0], dl = b.ops[1], dp = b.res[0];
      fn = [=] {
        In g = read(dl);
        Out out(dp);
        ref::moeAuxLossBwd(ints(idx), dp.dim(0), dp.dim(1), idx.dim(1), g.p[0],
                           out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.z_loss"] = [](Bind &b, Fn &fn) {
      View l = b.ops[0], y = b.res[0];
      fn = [=] {
        In li = read(l);
        Out out(y);
        out.p[0] = ref::zLossFwd(li.p, l.dim(0), l.dim(1));
        out.commit();
      };
      return std::string();
    };
    m["forge.z_loss_grad"] = [](Bind &b, Fn &fn) {
      View l = b.ops[0], dl = b.ops[1], dx = b.res[0];
      fn = [=] {
        In li = read(l), g = read(dl);
        Out out(dx);
        ref::zLossBwd(li.p, l.dim(0), l.dim(1), g.p[0], out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.cross_entropy"] = [](Bind &b, Fn &fn) {
      View l = b.ops[0], lab = b.ops[1], y = b.res[0];
      int64_t ignore = b.i("ignore_index", -100);
      fn = [=] {
        checkLabels(ints(lab), lab.numel(), l.dim(-1), ignore);
        Out out(y);
        int64_t c = l.dim(-1);
        if (l.dtype == plan::DType::bf16) { // converted row by row
          out.p[0] = fast::crossEntropyFwd(bf16(l), ints(lab), l.numel() / c, c,
                                           ignore);
        } else {
          In li = read(l);
          out.p[0] =
              fast::crossEntropyFwd(li.p, ints(lab), l.numel() / c, c, ignore);
        }
        out.commit();
      };
      return std::string();
    };
    m["forge.cross_entropy_grad"] = [](Bind &b, Fn &fn) {
      View l = b.ops[0], lab = b.ops[1], dl = b.ops[2], dx = b.res[0];
      int64_t ignore = b.i("ignore_index", -100);
      fn = [=] {
        In g = read(dl);
        int64_t c = l.dim(-1);
        if (l.dtype == plan::DType::bf16 && dx.dtype == plan::DType::bf16) {
          // Converted row by row: no f32 copy of [rows, vocab] either way.
          fast::crossEntropyBwd(bf16(l), ints(lab), l.numel() / c, c, ignore,
                                g.p[0], bf16Out(dx));
          return;
        }
        In li = read(l);
        Out out(dx, false); // the kernel writes every element
        fast::crossEntropyBwd(li.p, ints(lab), l.numel() / c, c, ignore, g.p[0],
                              out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.chunked_cross_entropy"] = [](Bind &b, Fn &fn) {
      View h = b.ops[0], w = b.ops[1], lab = b.ops[2], y = b.res[0];
      int64_t chunk = b.i("chunk"), ignore = b.i("ignore_index", -100);
      double zw = b.f("z_weight");
      fn = [=] {
        checkLabels(ints(lab), lab.numel(), w.dim(0), ignore);
        In hi = read(h), wi = read(w);
        Out out(y);
        int64_t d = h.dim(-1);
        out.p[0] =
            ref::chunkedCrossEntropyFwd(hi.p, wi.p, ints(lab), h.numel() / d, d,
                                        w.dim(0), chunk, ignore, zw);
        out.commit();
      };
      return std::string();
    };
    m["forge.chunked_cross_entropy_grad"] = [](Bind &b, Fn &fn) {
      View h = b.ops[0], w = b.ops[1], lab = b.ops[2], dl = b.ops[3],
           dh = b.res[0], dw = b.res[1];
      int64_t chunk = b.i("chunk"), ignore = b.i("ignore_index", -100);
      double zw = b.f("z_weight");
      fn = [=] {
        In hi = read(h), wi = read(w), g = read(dl);
        Out oh(dh), ow(dw);
        int64_t d = h.dim(-1);
        ref::chunkedCrossEntropyBwd(hi.p, wi.p, ints(lab), h.numel() / d, d,
                                    w.dim(0), chunk, ignore, zw, g.p[0], oh.p,
                                    ow.p);
        oh.commit();
        ow.commit();
      };
      return std::string();
    };
    m["forge.global_norm"] = [](Bind &b, Fn &fn) {
      std::vector<View> gs = b.ops;
      View y = b.res[0];
      bool squared = b.has("squared");
      fn = [=] {
        double acc = 0;
        for (const View &g : gs) {
          In gi = read(g);
          acc += fast::sumSquares(gi.p, g.numel());
        }
        Out out(y);
        out.p[0] = static_cast<float>(squared ? acc : std::sqrt(acc));
        out.commit();
      };
      return std::string();
    };
    m["forge.sqrt"] = [](Bind &b, Fn &fn) {
      View x = b.ops[0], y = b.res[0];
      fn = [=] {
        In xi = read(x);
        Out out(y);
        out.p[0] = std::sqrt(xi.p[0]);
        out.commit();
      };
      return std::string();
    };
    m["forge.clip_coefficient"] = [](Bind &b, Fn &fn) {
      View n = b.ops[0], y = b.res[0];
      double maxNorm = b.f("max_norm");
      fn = [=] {
        In ni = read(n);
        Out out(y);
        out.p[0] = static_cast<float>(ref::clipCoefficient(ni.p[0], maxNorm));
        out.commit();
      };
      return std::string();
    };
    m["forge.lr_factor"] = [](Bind &b, Fn &fn) {
      View step = b.ops[0], y = b.res[0];
      // The strings must outlive the closure: keep copies in it.
      std::string name = b.s("schedule"), wsd = b.s("wsd_decay");
      // Refused here rather than computed as cosine, which lrFactor falls
      // back to (the CUDA backend refuses the same names).
      static const std::set<std::string> names = {
          "none", "constant", "cosine", "linear", "wsd", "rex"};
      static const std::set<std::string> decays = {"", "cosine", "linear",
                                                   "sqrt"};
      if (!names.count(name) || !decays.count(wsd))
        return "unknown schedule '" + name + "' (wsd_decay '" + wsd + "')";
      ref::Schedule s;
      s.warmup = b.i("warmup");
      s.decay = b.i("decay");
      s.stable = b.i("stable");
      s.minLrRatio = b.f("min_lr_ratio");
      s.maxSteps = b.i("max_steps");
      s.rexAlpha = b.f("rex_alpha");
      fn = [=]() mutable {
        s.name = name.c_str();
        s.wsdDecay = wsd.c_str();
        Out out(y);
        out.p[0] = static_cast<float>(ref::lrFactor(s, ints(step)[0]));
        out.commit();
      };
      return std::string();
    };
    m["forge.lion_update"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], g = b.ops[1], mv = b.ops[2], lr = b.ops[3],
           clip = b.ops[4], np = b.res[0], nm = b.res[1];
      double b1 = b.f("beta1"), b2 = b.f("beta2"), wd = b.f("weight_decay");
      fn = [=] {
        In pi = read(p), gi = read(g), mi = read(mv), li = read(lr),
           ci = read(clip);
        std::vector<float> P(pi.p, pi.p + p.numel()), M(mi.p, mi.p + p.numel());
        ref::lionUpdate(P.data(), gi.p, M.data(), p.numel(), li.p[0], ci.p[0],
                        b1, b2, wd);
        Out op(np, false), om(nm, false);
        std::copy(P.begin(), P.end(), op.p);
        std::copy(M.begin(), M.end(), om.p);
        op.commit();
        om.commit();
      };
      return std::string();
    };
    m["forge.adamw_update"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], g = b.ops[1], mv = b.ops[2], vv = b.ops[3],
           lr = b.ops[4], clip = b.ops[5], step = b.ops[6];
      View np = b.res[0], nm = b.res[1], nv = b.res[2];
      double b1 = b.f("beta1"), b2 = b.f("beta2"), eps = b.f("eps"),
             wd = b.f("weight_decay");
      fn = [=] {
        In li = read(lr), ci = read(clip);
        const float lrv = li.p[0], clipv = ci.p[0];
        const int64_t t = ints(step)[0];
        elementwiseN<4, 3>({p, g, mv, vv}, {np, nm, nv}, false,
                           [&](const std::array<const float *, 4> &in,
                               int64_t n, const std::array<float *, 3> &o) {
                             fast::adamwUpdate(
                                 in[0], in[1], in[2], in[3], n, lrv, clipv, t,
                                 static_cast<float>(b1), static_cast<float>(b2),
                                 static_cast<float>(eps),
                                 static_cast<float>(wd), o[0], o[1], o[2]);
                           });
      };
      return std::string();
    };
    m["forge.muon_update"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], g = b.ops[1], buf = b.ops[2], lr = b.ops[3],
           clip = b.ops[4], np = b.res[0], nb = b.res[1];
      float mu = static_cast<float>(b.f("momentum"));
      double wd = b.f("weight_decay");
      int64_t steps = b.i("ns_steps");
      // Flattened to [dim 0, the rest], as KempnerForge's view(m, -1).
      int64_t rows = p.dim(0), cols = p.numel() / p.dim(0);
      fn = [=] {
        In pi = read(p), gi = read(g), bi = read(buf), li = read(lr),
           ci = read(clip);
        const int64_t n = p.numel();
        const float rate = li.p[0], c = ci.p[0];
        Out ob(nb, false), op(np, false);
        for (int64_t i = 0; i < n; ++i)
          ob.p[i] = mu * bi.p[i] + gi.p[i] * c;
        std::vector<float> u(ob.p, ob.p + n);
        newtonSchulzBlas(u.data(), rows, cols, steps);
        const float scale = static_cast<float>(std::sqrt(std::max(
            1.0, static_cast<double>(rows) / static_cast<double>(cols))));
        const float decay = static_cast<float>(1 - rate * wd);
        for (int64_t i = 0; i < n; ++i)
          op.p[i] = pi.p[i] * decay - rate * (u[i] * scale);
        ob.commit();
        op.commit();
      };
      return std::string();
    };
    m["forge.schedule_free_count"] = [](Bind &b, Fn &fn) {
      View st = b.ops[0], lr = b.ops[1], ns = b.res[0];
      double b1 = b.f("beta1");
      int64_t warmup = b.i("warmup");
      fn = [=] {
        In si = read(st), li = read(lr);
        float next[4];
        ref::scheduleFreeCount(si.p, li.p[0], b1, warmup, next);
        Out out(ns, false);
        std::copy(next, next + 4, out.p);
        out.commit();
      };
      return std::string();
    };
    m["forge.schedule_free_adamw_update"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], g = b.ops[1], z = b.ops[2], v = b.ops[3], x = b.ops[4],
           lr = b.ops[5], clip = b.ops[6], st = b.ops[7];
      View np = b.res[0], nz = b.res[1], nv = b.res[2], nx = b.res[3];
      double b1 = b.f("beta1"), b2 = b.f("beta2"), eps = b.f("eps"),
             wd = b.f("weight_decay");
      int64_t warmup = b.i("warmup");
      fn = [=] {
        In pi = read(p), gi = read(g), zi = read(z), vi = read(v), xi = read(x),
           li = read(lr), ci = read(clip), si = read(st);
        const int64_t n = p.numel();
        Out op(np, false), oz(nz, false), ov(nv, false), ox(nx, false);
        std::copy(pi.p, pi.p + n, op.p);
        std::copy(zi.p, zi.p + n, oz.p);
        std::copy(vi.p, vi.p + n, ov.p);
        std::copy(xi.p, xi.p + n, ox.p);
        // Element-wise: the reference kernel, on chunks across the cores.
        const int64_t chunk = 1 << 16;
        const double rate = li.p[0], c = ci.p[0];
        const float *state = si.p;
        fast::parallelFor((n + chunk - 1) / chunk, [&](int64_t k) {
          const int64_t at = k * chunk, len = std::min(chunk, n - at);
          ref::scheduleFreeAdamwUpdate(op.p + at, gi.p + at, oz.p + at,
                                       ov.p + at, ox.p + at, len, rate, c,
                                       state, b1, b2, eps, wd, warmup);
        });
        op.commit();
        oz.commit();
        ov.commit();
        ox.commit();
      };
      return std::string();
    };
    m["forge.schedule_free_interpolate"] = [](Bind &b, Fn &fn) {
      View p = b.ops[0], z = b.ops[1], x = b.ops[2], st = b.ops[3],
           y = b.res[0];
      double w = b.f("weight");
      fn = [=] {
        In pi = read(p), zi = read(z), xi = read(x), si = read(st);
        Out out(y, false);
        ref::scheduleFreeInterpolate(pi.p, zi.p, xi.p, p.numel(), si.p, w,
                                     out.p);
        out.commit();
      };
      return std::string();
    };
    return m;
  }();
  return m;
}

/// The shape relations each kernel indexes with; a plan that breaks one is
/// rejected at prepare time instead of reading outside a buffer.
std::string checkShapes(const std::string &op, const Bind &b) {
  auto n = [&](const View &v) { return v.numel(); };
  auto rank = [&](const View &v) {
    return static_cast<int64_t>(v.shape.size());
  };
  auto isInt = [&](const View &v) { return v.dtype == plan::DType::i64; };
  // Schedule-free AdamW's scalars: [k_hi, k_lo, weight_sum_hi, _lo] in f32.
  auto isState = [&](const View &v) {
    return v.dtype == plan::DType::f32 && v.numel() == 4;
  };
  auto bad = [&](const char *why) { return std::string(why); };
  const std::vector<View> &o = b.ops, &r = b.res;
  if (op == "forge.silu" || op == "forge.gelu" || op == "forge.relu" ||
      op == "forge.tanh" || op == "forge.scale" || op == "forge.rope_grad" ||
      op == "forge.fp8_cast" || op == "forge.fp8_grad_cast" ||
      op == "forge.moe_capacity_grad")
    return n(o.back()) == n(r[0]) ? "" : bad("input and result sizes differ");
  if (op.ends_with("_grad") &&
      (op == "forge.silu_grad" || op == "forge.gelu_grad" ||
       op == "forge.relu_grad" || op == "forge.tanh_grad"))
    return n(o[0]) == n(o[1]) && n(o[0]) == n(r[0])
               ? ""
               : bad("operand sizes differ");
  if (op == "forge.add" || op == "forge.mul")
    return n(o[0]) == n(o[1]) && n(o[0]) == n(r[0])
               ? ""
               : bad("operand sizes differ");
  if (op == "forge.embedding")
    return rank(o[0]) == 2 && isInt(o[1]) && n(o[1]) * o[0].dim(1) == n(r[0])
               ? ""
               : bad("needs a [vocab, dim] table, i64 ids and ids x dim "
                     "results");
  if (op == "forge.embedding_grad")
    return rank(r[0]) == 2 && isInt(o[1]) && n(o[1]) * r[0].dim(1) == n(o[0])
               ? ""
               : bad("needs i64 ids and a [vocab, dim] result");
  if (op == "forge.linear")
    return rank(o[1]) == 2 && rank(o[0]) >= 1 && o[0].dim(-1) == o[1].dim(1) &&
                   n(r[0]) == n(o[0]) / o[1].dim(1) * o[1].dim(0)
               ? ""
               : bad("input, [out, in] weight and result disagree");
  if (op == "forge.linear_grad_input")
    return rank(o[1]) == 2 && o[0].dim(-1) == o[1].dim(0) &&
                   n(r[0]) == n(o[0]) / o[1].dim(0) * o[1].dim(1)
               ? ""
               : bad("dy, [out, in] weight and result disagree");
  if (op == "forge.linear_grad_weight")
    return rank(r[0]) == 2 && o[0].dim(-1) == r[0].dim(0) &&
                   o[1].dim(-1) == r[0].dim(1) &&
                   n(o[0]) / r[0].dim(0) == n(o[1]) / r[0].dim(1)
               ? ""
               : bad("dy, input and [out, in] result disagree");
  if (op == "forge.rmsnorm" || op == "forge.layernorm" ||
      op == "forge.rmsnorm_grad" || op == "forge.layernorm_grad")
    return rank(o[0]) >= 1 && n(o[1]) == o[0].dim(-1) && n(r[0]) == n(o[0])
               ? ""
               : bad("weight must match the input's last dimension");
  if (op == "forge.rope")
    return rank(o[0]) == 4 && o[0].dim(3) % 2 == 0 && n(r[0]) == n(o[0])
               ? ""
               : bad("needs [batch, seq, heads, even head_dim]");
  if (op == "forge.attention" || op == "forge.attention_grad") {
    const View &q = o[0], &k = o[1], &v = o[2];
    bool ok = rank(q) == 4 && rank(k) == 4 && k.shape == v.shape &&
              q.dim(0) == k.dim(0) && q.dim(1) == k.dim(1) &&
              q.dim(3) == k.dim(3) && k.dim(2) > 0 && q.dim(2) % k.dim(2) == 0;
    size_t docAt = op == "forge.attention" ? 3 : 5;
    if (o.size() > docAt)
      ok = ok && o[docAt].dtype == plan::DType::i32 &&
           n(o[docAt]) == q.dim(0) * q.dim(1);
    return ok ? "" : bad("q, k, v (and doc_ids) shapes disagree");
  }
  if (op == "forge.cross_entropy" || op == "forge.cross_entropy_grad")
    return isInt(o[1]) && rank(o[0]) >= 2 && n(o[1]) * o[0].dim(-1) == n(o[0])
               ? ""
               : bad("labels must be i64 with the logits' rows");
  if (op == "forge.chunked_cross_entropy" ||
      op == "forge.chunked_cross_entropy_grad")
    return isInt(o[2]) && rank(o[1]) == 2 && o[0].dim(-1) == o[1].dim(1) &&
                   n(o[2]) * o[1].dim(1) == n(o[0]) && b.i("chunk") > 0
               ? ""
               : bad("hidden, [vocab, dim] head and i64 labels disagree");
  if (op == "forge.z_loss" || op == "forge.z_loss_grad")
    return rank(o[0]) == 2 ? "" : bad("logits must be [rows, classes]");
  if (op == "forge.lion_update")
    return n(o[1]) == n(o[0]) && n(o[2]) == n(o[0])
               ? ""
               : bad("parameter, gradient and moment differ in size");
  if (op == "forge.adamw_update") {
    for (size_t i = 1; i < 4; ++i)
      if (n(o[i]) != n(o[0]))
        return bad("parameter, gradient and moments differ in size");
    return isInt(o[6]) ? "" : bad("the step must be i64");
  }
  if (op == "forge.muon_update")
    return rank(o[0]) >= 2 && o[0].dim(0) > 0 && n(o[1]) == n(o[0]) &&
                   n(o[2]) == n(o[0])
               ? ""
               : bad("needs a parameter of rank >= 2 and a gradient and "
                     "momentum buffer of its size");
  if (op == "forge.schedule_free_count")
    return isState(o[0]) && isState(r[0]) ? ""
                                          : bad("the state must be f32 [4]");
  if (op == "forge.schedule_free_adamw_update") {
    for (size_t i = 1; i < 5; ++i)
      if (n(o[i]) != n(o[0]))
        return bad("parameter, gradient and state differ in size");
    return isState(o[7]) ? "" : bad("the state must be f32 [4]");
  }
  if (op == "forge.schedule_free_interpolate")
    return n(o[1]) == n(o[0]) && n(o[2]) == n(o[0]) && n(r[0]) == n(o[0]) &&
                   isState(o[3])
               ? ""
               : bad("parameter, z and x differ in size, or the state is "
                     "not f32 [4]");
  if (op == "forge.stack" || op == "forge.unstack") {
    const std::vector<View> &parts = op == "forge.stack" ? o : r;
    const View &whole = op == "forge.stack" ? r[0] : o[0];
    for (const View &part : parts)
      if (n(part) * static_cast<int64_t>(parts.size()) != n(whole))
        return bad("parts and the stacked tensor differ in size");
    return "";
  }
  if (op == "forge.softmax_topk" || op == "forge.sigmoid_topk")
    return rank(o[0]) == 2 && isInt(r[1]) && b.i("k") >= 1 &&
                   b.i("k") <= o[0].dim(1) && n(r[0]) == o[0].dim(0) * b.i("k")
               ? ""
               : bad("logits, k and results disagree");
  if (op == "forge.moe_dispatch")
    return rank(o[0]) == 2 && isInt(o[1]) && rank(o[1]) == 2 &&
                   n(r[1]) == b.i("experts") && n(r[2]) == n(o[1])
               ? ""
               : bad("tokens, indices and expert count disagree");
  return "";
}

/// True when every element of a floating buffer is finite.
bool allFinite(const View &v) {
  const int64_t n = v.numel();
  switch (v.dtype) {
  case plan::DType::f32: {
    const auto *x = static_cast<const float *>(v.data);
    // Summing x * 0 keeps this a vectorizable reduction: any Inf or NaN
    // makes the sum NaN.
    float acc = 0;
    for (int64_t i = 0; i < n; ++i)
      acc += x[i] * 0.0f;
    return acc == 0.0f;
  }
  case plan::DType::bf16:
  case plan::DType::f16: {
    // All-ones exponent: 8 bits at 0x7F80 for bf16, 5 at 0x7C00 for f16.
    const uint16_t mask = v.dtype == plan::DType::bf16 ? 0x7F80 : 0x7C00;
    const auto *x = static_cast<const uint16_t *>(v.data);
    for (int64_t i = 0; i < n; ++i)
      if ((x[i] & mask) == mask)
        return false;
    return true;
  }
  default:
    return true;
  }
}

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// Binds a `dist.*` collective to this rank's communicator of its group.
/// Collectives run on f32 (reference §3.6: reductions in fp32); bf16/f16
/// buffers are widened for the call and rounded back. A failure throws
/// CollectiveError naming the rank, the collective, the group and the op.
/// The tag of a pipeline send or receive: its direction (the plan's tag)
/// and micro-batch, above the tags of gloo's collectives.
uint32_t p2pTag(int64_t tag, int64_t micro) {
  // 8 bits of the plan's tag (2 per model chunk boundary: forward and
  // gradient) and 20 of the micro-batch, clear of the collectives' tags.
  return 0x40000000u | (static_cast<uint32_t>(micro & 0xFFFFF) << 8) |
         static_cast<uint32_t>(tag & 0xFF);
}

/// The op that issued a step, for messages and traces: its location
/// `loc("NAME"("FILE":L:C))` reads as `NAME (FILE:L:C)`; `fallback` when
/// it has none.
std::string origin(const plan::Step *step, const std::string &fallback) {
  std::string why = step->loc() ? step->loc()->str() : fallback;
  if (why.rfind("loc(\"", 0) == 0) {
    std::string pretty;
    for (char ch : why.substr(4))
      if (ch != '"' && ch != ')')
        pretty += ch == '(' ? ' ' : ch;
    size_t paren = pretty.find(' ');
    why = paren == std::string::npos
              ? pretty
              : pretty.substr(0, paren) + " (" + pretty.substr(paren + 1) + ")";
  }
  return why;
}

std::string bindCollective(const std::string &op, Bind &b, comm::Comms *comms,
                           std::vector<uint8_t> *scratch, Fn &fn,
                           const int64_t *micro,
                           const std::function<CommQueue &(int64_t)> &sender) {
  if (!comms)
    return "a collective in a plan run without communicators (a multi-rank "
           "plan needs forge-run to join its ranks)";
  std::string group = b.s("group");
  comm::Communicator *c = comms->group(group);
  if (!c)
    return "no communicator for mesh dim '" + group + "'";
  if (c->size() != b.i("group_size"))
    return "group '" + group + "' has " + std::to_string(c->size()) +
           " ranks, the plan expects " + std::to_string(b.i("group_size"));
  if (op == "dist.copy") {
    // The forward half of Megatron's f: no communication (its VJP is an
    // all_reduce of its own).
    fn = copyStep(b.ops[0], b.res[0]);
    return "";
  }
  std::string why = origin(b.step, op);
  View x = b.ops.empty() ? View() : b.ops[0], y = b.res[0];
  // Named by world rank: the launcher and the other ranks' messages use it.
  const int worldRank = comms->world().rank();
  auto check = [worldRank](const std::string &e) {
    if (!e.empty())
      throw CollectiveError("rank " + std::to_string(worldRank) + ": " + e);
  };
  std::string reduce = b.s("reduce");
  comm::ReduceOp rop = reduce == "avg"   ? comm::ReduceOp::Avg
                       : reduce == "max" ? comm::ReduceOp::Max
                                         : comm::ReduceOp::Sum;
  // Along dim d a rank's block (`small`, c long along d) is `outer` runs of
  // c rows of `row` contiguous elements; the whole tensor (`big`) has B
  // rows per run, B = n * c or, for an uneven split, less (the last blocks
  // end in zero padding). Along dim 0 of an even split the blocks are
  // contiguous and the collective works in place; otherwise rows move
  // through a scratch buffer.
  const int64_t n = c->size();
  struct Runs {
    int64_t outer = 1, row = 1, c = 0, big = 0;
  };
  auto runs = [](const View &small, const View &big, int64_t dim) {
    Runs r;
    for (int64_t d = 0; d < static_cast<int64_t>(small.shape.size()); ++d) {
      if (d < dim)
        r.outer *= small.shape[d];
      else if (d > dim)
        r.row *= small.shape[d];
    }
    r.c = small.shape[dim];
    r.big = big.shape[dim];
    return r;
  };
  if (op == "dist.all_gather" && !b.s("fp8").empty()) {
    // forge.fp8_cast of the gathered tensor, moving fp8 bytes: the global
    // amax (max over the group of each shard's), the scale, each rank's
    // shard cast to one byte per element, gathered, then each byte's value
    // over the scale, rounded into the result's dtype as fp8_cast's output
    // is. Every step is the cast's own arithmetic, so the result is
    // bit-identical to gathering first and casting after.
    const bool e4m3 = b.s("fp8") == "e4m3";
    if (!isFloat(x.dtype) || !isFloat(y.dtype))
      return std::string("an fp8 all_gather needs floating tensors");
    const Runs g = runs(x, y, b.i("dim"));
    fn = [=] {
      In xi = read(x);
      const int64_t m = x.numel();
      float amax = 0;
      for (int64_t i = 0; i < m; ++i)
        amax = std::max(amax, std::fabs(xi.p[i]));
      check(c->allReduce(&amax, 1, comm::ReduceOp::Max,
                         why + " (the fp8 scale's amax)"));
      const float fmax = e4m3 ? 448.0f : 57344.0f;
      const float scale = amax > 0 ? fmax / amax : 1.0f;
      std::vector<uint8_t> mine(m), all(static_cast<size_t>(m * n));
      for (int64_t i = 0; i < m; ++i)
        mine[i] = ref::fp8Bits(ref::roundFp8(xi.p[i] * scale, e4m3), e4m3);
      check(c->allGather(mine.data(), all.data(), static_cast<size_t>(m), why));
      Out out(y, false);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < g.outer; ++o)
          for (int64_t j = 0; j < g.c && r * g.c + j < g.big; ++j) {
            float *dst = out.p + (o * g.big + r * g.c + j) * g.row;
            const uint8_t *src = all.data() + r * m + (o * g.c + j) * g.row;
            for (int64_t e = 0; e < g.row; ++e)
              dst[e] = ref::fp8FromBits(src[e], e4m3) / scale;
          }
      out.commit();
    };
    return "";
  }
  if (op == "dist.all_gather") {
    // Any dtype: the blocks are bytes, in rank order along dim.
    const Runs g = runs(x, y, b.i("dim"));
    const size_t es = runtime::dtypeSize(x.dtype);
    const bool direct = g.outer == 1 && g.big == n * g.c;
    // One scratch buffer serves every collective: they run one at a time.
    scratch->resize(std::max<size_t>(
        scratch->size(), runtime::collectiveScratchBytes(
                             op, b.i("dim"), n, x.shape, y.shape, x.dtype)));
    fn = [=] {
      size_t bytes = static_cast<size_t>(x.numel()) * es;
      if (direct) {
        check(c->allGather(x.data, y.data, bytes, why));
        return;
      }
      check(c->allGather(x.data, scratch->data(), bytes, why));
      auto *dst = static_cast<uint8_t *>(y.data);
      const size_t row = static_cast<size_t>(g.row) * es;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < g.outer; ++o)
          for (int64_t j = 0; j < g.c && r * g.c + j < g.big; ++j)
            std::memcpy(dst + (o * g.big + r * g.c + j) * row,
                        scratch->data() + r * bytes + (o * g.c + j) * row, row);
    };
    return "";
  }
  if (op == "dist.reduce_scatter") {
    const Runs g = runs(y, x, b.i("dim"));
    const bool direct = g.outer == 1 && g.big == n * g.c;
    scratch->resize(std::max<size_t>(
        scratch->size(), runtime::collectiveScratchBytes(
                             op, b.i("dim"), n, x.shape, y.shape, x.dtype)));
    fn = [=] {
      In xi = read(x);
      Out out(y, /*zero=*/false);
      const float *src = xi.p;
      if (!direct) {
        // Rank r's block first, then rank r+1's, each contiguous and
        // zero-padded to c rows.
        float *blocks = reinterpret_cast<float *>(scratch->data());
        std::fill(blocks, blocks + y.numel() * n, 0.0f);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t o = 0; o < g.outer; ++o)
            for (int64_t j = 0; j < g.c && r * g.c + j < g.big; ++j)
              std::copy_n(xi.p + (o * g.big + r * g.c + j) * g.row, g.row,
                          blocks + ((r * g.outer + o) * g.c + j) * g.row);
        src = blocks;
      }
      check(c->reduceScatter(src, out.p, static_cast<size_t>(y.numel()), rop,
                             why));
      out.commit();
    };
    return "";
  }
  if (op == "dist.slice") {
    // No communication: this rank's block of a replicated tensor.
    const Runs g = runs(y, x, b.i("dim"));
    const size_t es = runtime::dtypeSize(x.dtype);
    const int64_t r = c->rank();
    fn = [=] {
      const size_t row = static_cast<size_t>(g.row) * es;
      auto *dst = static_cast<uint8_t *>(y.data);
      for (int64_t o = 0; o < g.outer; ++o)
        for (int64_t j = 0; j < g.c; ++j) {
          if (r * g.c + j < g.big)
            std::memcpy(dst + (o * g.c + j) * row,
                        static_cast<const uint8_t *>(x.data) +
                            (o * g.big + r * g.c + j) * row,
                        row);
          else
            std::memset(dst + (o * g.c + j) * row, 0, row);
        }
    };
    return "";
  }
  if (op == "dist.send") {
    // A copy goes to the peer's queue: the stage does not wait for its
    // receiver (a blocking send could deadlock two stages that send to each
    // other), and the arena bytes may be reused at once.
    const int64_t peer = b.i("peer"), tag = b.i("tag");
    CommQueue *queue = &sender(peer);
    const size_t bytes =
        static_cast<size_t>(x.numel()) * runtime::dtypeSize(x.dtype);
    fn = [=] {
      auto copy = std::make_shared<std::vector<uint8_t>>(
          static_cast<const uint8_t *>(x.data),
          static_cast<const uint8_t *>(x.data) + bytes);
      const uint32_t t = p2pTag(tag, *micro);
      queue->push([=] {
        check(c->send(copy->data(), copy->size(), static_cast<int>(peer), t,
                      why));
      });
      std::memset(y.data, 0, runtime::dtypeSize(y.dtype));
    };
    return "";
  }
  if (op == "dist.recv") {
    const int64_t peer = b.i("peer"), tag = b.i("tag");
    const size_t bytes =
        static_cast<size_t>(y.numel()) * runtime::dtypeSize(y.dtype);
    fn = [=] {
      check(c->recv(y.data, bytes, static_cast<int>(peer), p2pTag(tag, *micro),
                    why));
    };
    return "";
  }
  if (op == "dist.expert_dispatch" || op == "dist.expert_combine") {
    // Rows of any dtype move as bytes. Rank r of the group holds experts
    // [r * El, (r+1) * El); the rows a rank sends are grouped by global
    // expert, so each destination's rows are one contiguous block.
    const bool dispatch = op == "dist.expert_dispatch";
    const View sent = dispatch ? b.ops[0] : b.res[0];
    const View sizes = b.ops[dispatch ? 1 : 2];
    const View counts = dispatch ? b.res[2] : b.ops[1];
    const bool knownCounts = dispatch && b.ops.size() > 2;
    const View given = knownCounts ? b.ops[2] : View();
    const int64_t E = sizes.numel(), El = E / n;
    const size_t row =
        static_cast<size_t>(sent.dim(1)) * runtime::dtypeSize(sent.dtype);
    scratch->resize(std::max<size_t>(
        scratch->size(), static_cast<size_t>(n * sent.dim(0)) * row));
    fn = [=] {
      const int64_t *sz = ints(sizes);
      auto *cnt = static_cast<int64_t *>(counts.data);
      std::vector<size_t> toRank(n, 0), fromRank(n, 0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < El; ++j)
          toRank[r] += static_cast<size_t>(sz[r * El + j]) * row;
      if (dispatch) {
        // counts[s][j]: rows rank s sends to local expert j.
        if (knownCounts)
          std::memcpy(cnt, given.data, static_cast<size_t>(n * El) * 8);
        else
          check(c->allToAll(sz, cnt, static_cast<size_t>(El) * 8, why));
      }
      for (int64_t s = 0; s < n; ++s)
        for (int64_t j = 0; j < El; ++j)
          fromRank[s] += static_cast<size_t>(cnt[s * El + j]) * row;
      // The received side in source order (source s, then local expert j)
      // lives in the scratch; the result side is grouped by local expert,
      // then source.
      auto *staged = scratch->data();
      auto *grouped =
          static_cast<uint8_t *>(dispatch ? b.res[0].data : b.ops[0].data);
      auto move = [&](bool toGrouped) {
        std::vector<size_t> at(n, 0); // offset of source s's block j
        size_t off = 0;
        for (int64_t s = 0; s < n; ++s) {
          at[s] = off;
          off += fromRank[s];
        }
        size_t g = 0;
        for (int64_t j = 0; j < El; ++j)
          for (int64_t s = 0; s < n; ++s) {
            size_t bytes = static_cast<size_t>(cnt[s * El + j]) * row;
            if (toGrouped)
              std::memcpy(grouped + g, staged + at[s], bytes);
            else
              std::memcpy(staged + at[s], grouped + g, bytes);
            at[s] += bytes;
            g += bytes;
          }
        return g;
      };
      if (dispatch) {
        auto *local = static_cast<int64_t *>(b.res[1].data);
        for (int64_t j = 0; j < El; ++j) {
          local[j] = 0;
          for (int64_t s = 0; s < n; ++s)
            local[j] += cnt[s * El + j];
        }
        check(c->allToAllV(sent.data, toRank, staged, fromRank, why));
        size_t used = move(/*toGrouped=*/true);
        std::memset(grouped + used, 0,
                    static_cast<size_t>(b.res[0].dim(0)) * row - used);
      } else {
        move(/*toGrouped=*/false);
        check(c->allToAllV(staged, fromRank, b.res[0].data, toRank, why));
      }
    };
    return "";
  }
  if (op == "dist.all_reduce") {
    fn = [=] {
      In xi = read(x);
      Out out(y, /*zero=*/false);
      if (out.p != xi.p)
        std::copy(xi.p, xi.p + x.numel(), out.p);
      check(c->allReduce(out.p, static_cast<size_t>(y.numel()), rop, why));
      out.commit();
    };
    return "";
  }
  return "no CPU kernel for collective " + op;
}

} // namespace

float Executor::readFloat(const View &v, int64_t i) {
  return runtime::readFloat(v, i);
}

std::string Executor::prepareLayout(const plan::Plan *plan) {
  plan_ = plan;
  arenaBytes_ = plan->arena_bytes();
  auto *mem = static_cast<std::byte *>(std::aligned_alloc(
      runtime::kArenaAlignment,
      std::max<uint64_t>(arenaBytes_, runtime::kArenaAlignment)));
  if (!mem)
    return "cannot allocate the arena of " + std::to_string(arenaBytes_) +
           " bytes";
  arena_ = {mem, [](std::byte *p) { std::free(p); }};
  for (const plan::Buffer *b : *plan->buffers()) {
    View v;
    v.data = mem + b->offset();
    v.dtype = b->dtype();
    if (b->shape())
      v.shape.assign(b->shape()->begin(), b->shape()->end());
    views_.push_back(v);
  }
  for (const plan::Program *p : *plan->programs()) {
    Program prog;
    prog.name = p->name() ? p->name()->str() : "";
    if (p->inputs())
      for (uint32_t i : *p->inputs())
        prog.inputs.push_back(views_[i]);
    if (p->outputs())
      for (uint32_t i : *p->outputs())
        prog.outputs.push_back(views_[i]);
    programs_.push_back(std::move(prog));
  }
  return "";
}

std::string Executor::prepare(const plan::Plan *plan) {
  const char *env = std::getenv("FORGE_PROFILE");
  profile_ = env && *env && std::string(env) != "0";
  const char *ov = std::getenv("FORGE_COMM_OVERLAP");
  const bool overlap = !ov || std::string(ov) != "0";
  if (std::string e = prepareLayout(plan); !e.empty())
    return e;
  for (size_t pi = 0; pi < plan->programs()->size(); ++pi) {
    const plan::Program *p = plan->programs()->Get(pi);
    Program &prog = programs_[pi];
    if (p->steps()) {
      for (size_t s = 0; s < p->steps()->size(); ++s) {
        const plan::Step *st = p->steps()->Get(s);
        std::string opName = st->op()->str();
        bool collective = opName.rfind("dist.", 0) == 0;
        auto it = binders().find(opName);
        std::string where = "program " + prog.name + " step " +
                            std::to_string(s) + " (" + opName + ")";
        if (!collective && it == binders().end())
          return where + ": no CPU kernel";
        Bind b{st, {}, {}};
        if (st->operands())
          for (uint32_t i : *st->operands())
            b.ops.push_back(views_[i]);
        if (st->results())
          for (uint32_t i : *st->results())
            b.res.push_back(views_[i]);
        for (const View &v : b.res)
          if (!isFloat(v.dtype) && v.dtype != plan::DType::i64 &&
              st->op()->str() != "forge.set_param")
            return where + ": unsupported result dtype";
        if (std::string e = checkShapes(st->op()->str(), b); !e.empty())
          return where + ": " + e;
        Fn fn;
        auto sender = [this](int64_t peer) -> CommQueue & {
          std::unique_ptr<CommQueue> &q = senders_[peer];
          if (!q)
            q = std::make_unique<CommQueue>();
          return *q;
        };
        if (std::string e =
                collective ? bindCollective(opName, b, comms_, &commScratch_,
                                            fn, &micro_, sender)
                           : it->second(b, fn);
            !e.empty())
          return where + ": " + e;
        if (profile_) {
          // Time every step under its op name (FORGE_PROFILE=1).
          std::string op = st->op()->str();
          fn = [this, op, inner = std::move(fn)] {
            auto t0 = std::chrono::steady_clock::now();
            inner();
            double sec = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - t0)
                             .count();
            std::lock_guard<std::mutex> lock(profileMu_);
            opSeconds_[op] += sec;
          };
        }
        // Collectives that communicate run on the communication stream
        // (FORGE_COMM_OVERLAP=0 keeps them on the compute thread).
        const bool async = overlap && collective && opName != "dist.copy" &&
                           opName != "dist.slice";
        if (tracer_) {
          // [profiling]: the step's span on the thread that runs it, when
          // the tracer is in its window; a dense linear's 2 m n k FLOPs.
          double flops = 0;
          if (opName == "forge.linear" || opName == "forge.linear_grad_input" ||
              opName == "forge.linear_grad_weight") {
            // linear: x[rows, k] w[n, k]; the VJPs: dy[rows, n] with w or x.
            const View &w =
                opName == "forge.linear_grad_weight" ? b.res[0] : b.ops[1];
            const double n = static_cast<double>(w.dim(0)),
                         k = static_cast<double>(w.dim(1));
            const double rows = static_cast<double>(b.ops[0].numel()) /
                                (opName == "forge.linear" ? k : n);
            flops = 2.0 * rows * n * k;
          }
          fn = [tracer = tracer_, opName, flops,
                kind = runtime::traceKindOfOp(opName),
                thread = async ? "collectives" : "compute",
                detail = prog.name + " step " + std::to_string(s) + ": " +
                         origin(st, opName),
                inner = std::move(fn)] {
            if (!tracer->active()) {
              inner();
              return;
            }
            const double t0 = tracer->nowUs();
            inner();
            tracer->record(opName, kind, thread, t0, tracer->nowUs(), detail,
                           flops);
          };
        }
        prog.steps.push_back(std::move(fn));
        prog.async.push_back(async);
      }
    }
    prog.waitFor = planCommWaits(plan, p, prog.async);
  }
  return "";
}

void Executor::zeroRole(plan::Role role) {
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i)
    if (plan_->buffers()->Get(i)->role() == role)
      std::memset(views_[i].data, 0, plan_->buffers()->Get(i)->bytes());
}

bool Executor::finiteRole(plan::Role role) {
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i)
    if (plan_->buffers()->Get(i)->role() == role && !allFinite(views_[i]))
      return false;
  return true;
}

void Executor::initialize(uint64_t seed) {
  for (size_t i = 0; i < views_.size(); ++i) {
    const plan::Buffer *b = plan_->buffers()->Get(i);
    if (b->role() == plan::Role::activation)
      continue;
    const View &v = views_[i];
    if (!isFloat(v.dtype)) {
      std::memset(v.data, 0, b->bytes());
      continue;
    }
    Out out(v);
    // A shard (TP, FSDP) takes its block of the full tensor's values, so
    // every layout initializes the same model as one rank does.
    runtime::Block block;
    std::string e = runtime::localBlock(
        b,
        [&](const std::string &g) -> int64_t {
          comm::Communicator *c = comms_ ? comms_->group(g) : nullptr;
          return c ? c->size() : 1;
        },
        [&](const std::string &g) -> int64_t {
          return comms_ ? comms_->coordinate(g) : 0;
        },
        block);
    if (!e.empty())
      throw std::runtime_error(e);
    if (b->role() == plan::Role::parameter && b->init() == plan::Init::normal) {
      const std::string name = b->name() ? b->name()->str() : "";
      // A stacked buffer draws each row from its own name's stream, as the
      // unstacked tensors do on one rank.
      const bool stacked = runtime::isStacked(name);
      int64_t per = 1;
      for (size_t d = 1; d < block.global.size(); ++d)
        per *= block.global[d];
      int64_t row = -1;
      std::mt19937_64 gen(seed ^ fnv1a(name));
      std::normal_distribution<double> dist(0.0, b->std());
      // Draw the global tensor in order up to this block's last element,
      // keeping the ones inside it (padding of uneven splits stays zero).
      int64_t drawn = 0;
      for (int64_t j = 0; j < v.numel(); ++j) {
        int64_t g;
        if (!block.globalIndex(j, g)) {
          out.p[j] = 0;
          continue;
        }
        if (stacked) {
          if (g / per != row) {
            row = g / per;
            gen.seed(seed ^ fnv1a(runtime::stackedName(name, row)));
            dist.reset();
            drawn = 0;
          }
          g %= per;
        }
        for (; drawn < g; ++drawn)
          dist(gen);
        out.p[j] = static_cast<float>(dist(gen));
        ++drawn;
      }
    } else if (b->role() == plan::Role::parameter &&
               b->init() == plan::Init::ones) {
      for (int64_t j = 0; j < v.numel(); ++j) {
        int64_t g;
        out.p[j] = block.globalIndex(j, g) ? 1.0f : 0.0f;
      }
    }
    out.commit();
  }
}

std::string Executor::profileReport() const {
  return runtime::opSecondsTable(opSeconds_, "time by op (FORGE_PROFILE)");
}

void Executor::run(const std::string &name) {
  for (Program &p : programs_) {
    if (p.name != name)
      continue;
    const bool traced = tracer_ && tracer_->active();
    const double start = traced ? tracer_->nowUs() : 0;
    // The compute thread waiting for the communication stream, traced.
    auto wait = [&](uint64_t ticket, const char *what) {
      if (!traced) {
        comm_.waitFor(ticket);
        return;
      }
      const double t0 = tracer_->nowUs();
      comm_.waitFor(ticket);
      const double t1 = tracer_->nowUs();
      if (t1 - t0 > 1.0) // a wait that did not block is not worth a span
        tracer_->record(what, runtime::TraceKind::Wait, "compute", t0, t1);
    };
    const uint64_t base = comm_.issued();
    for (size_t i = 0; i < p.steps.size(); ++i) {
      if (p.waitFor[i])
        wait(base + p.waitFor[i], "wait for a collective");
      if (p.async[i])
        comm_.push(p.steps[i]);
      else
        p.steps[i]();
    }
    // Nothing is in flight between programs: the runtime reads outputs and
    // writes inputs and persistent state between runs.
    wait(comm_.issued(), "wait for the collectives");
    if (traced)
      tracer_->record(p.name, runtime::TraceKind::Program, "compute", start,
                      tracer_->nowUs());
  }
}

std::vector<uint64_t> planCommWaits(const plan::Plan *plan,
                                    const plan::Program *p,
                                    const std::vector<bool> &async) {
  // Decided once by replaying the program, so run() only compares tickets.
  struct Range {
    uint64_t begin, end;
  };
  struct Pending {
    uint64_t ticket;
    std::vector<Range> reads, writes;
  };
  auto ranges = [&](const flatbuffers::Vector<uint32_t> *idx) {
    std::vector<Range> out;
    if (idx)
      for (uint32_t i : *idx) {
        const plan::Buffer *b = plan->buffers()->Get(i);
        out.push_back({b->offset(), b->offset() + b->bytes()});
      }
    return out;
  };
  auto overlaps = [](const std::vector<Range> &a, const std::vector<Range> &b) {
    for (const Range &x : a)
      for (const Range &y : b)
        if (x.begin < y.end && y.begin < x.end)
          return true;
    return false;
  };
  std::deque<Pending> pending;
  uint64_t issued = 0;
  std::vector<uint64_t> waitFor(async.size(), 0);
  for (size_t s = 0; s < async.size(); ++s) {
    const plan::Step *st = p->steps()->Get(s);
    std::vector<Range> reads = ranges(st->operands()),
                       writes = ranges(st->results());
    uint64_t need = 0;
    if (async[s]) {
      if (pending.size() >= runtime::kCommWindow)
        need = pending[pending.size() - runtime::kCommWindow].ticket;
    } else {
      for (const Pending &c : pending)
        if (overlaps(writes, c.reads) || overlaps(writes, c.writes) ||
            overlaps(reads, c.writes))
          need = std::max(need, c.ticket);
    }
    waitFor[s] = need;
    while (!pending.empty() && pending.front().ticket <= need)
      pending.pop_front();
    if (async[s])
      pending.push_back({++issued, std::move(reads), std::move(writes)});
  }
  return waitFor;
}

CommQueue::~CommQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable())
    worker_.join();
}

uint64_t CommQueue::push(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!worker_.joinable())
      worker_ = std::thread([this] { loop(); });
    queue_.push_back(std::move(fn));
    ++issued_;
  }
  cv_.notify_all();
  return issued_;
}

void Executor::finishSends() {
  const bool traced = tracer_ && tracer_->active();
  const double t0 = traced ? tracer_->nowUs() : 0;
  for (auto &[peer, queue] : senders_)
    queue->drain();
  if (traced && !senders_.empty())
    tracer_->record("wait for the pipeline sends", runtime::TraceKind::Wait,
                    "compute", t0, tracer_->nowUs());
}

void CommQueue::waitFor(uint64_t ticket) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_ >= ticket || error_; });
  if (error_)
    std::rethrow_exception(error_);
}

void CommQueue::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty())
      return; // stopping
    std::function<void()> fn = std::move(queue_.front());
    queue_.pop_front();
    // After a failure the rest are skipped: the compute thread rethrows it
    // at its next wait.
    if (!error_) {
      lock.unlock();
      std::exception_ptr e;
      try {
        fn();
      } catch (...) {
        e = std::current_exception();
      }
      lock.lock();
      if (e && !error_)
        error_ = e;
    }
    ++done_;
    cv_.notify_all();
  }
}

const std::vector<View> &Executor::inputs(const std::string &program) const {
  for (const Program &p : programs_)
    if (p.name == program)
      return p.inputs;
  static const std::vector<View> none;
  return none;
}

const std::vector<View> &Executor::outputs(const std::string &program) const {
  for (const Program &p : programs_)
    if (p.name == program)
      return p.outputs;
  static const std::vector<View> none;
  return none;
}

} // namespace forge::cpu
