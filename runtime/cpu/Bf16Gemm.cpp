//===- Bf16Gemm.cpp - bf16 GEMMs on the CPU's bf16 instructions -----------===//

#include "runtime/cpu/Bf16Gemm.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdlib>
#include <cstring>

namespace forge::cpu {

namespace {

dnnl::engine &engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

/// A kernel name that says it multiplies with bf16 instructions. oneDNN
/// also runs bf16 on plain AVX-512 or AVX2 by converting to f32 inside its
/// kernels, which gains nothing over sgemm and rounds the same.
bool usesBf16Instructions(const std::string &kernel) {
  return kernel.find("bf16") != std::string::npos ||
         kernel.find("amx") != std::string::npos;
}

} // namespace

struct Bf16Gemm::Impl {
  dnnl::memory::desc a, b, c;
  dnnl::matmul prim;
  std::string kernel;
};

Bf16Gemm::Bf16Gemm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Bf16Gemm::~Bf16Gemm() = default;

std::unique_ptr<Bf16Gemm> Bf16Gemm::create(int64_t m, int64_t n, int64_t k,
                                           bool transA, bool transB,
                                           std::string *why) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  try {
    auto impl = std::make_unique<Impl>();
    // The logical shapes are [m, k] @ [k, n]; a transposed operand is the
    // same matrix with the other memory order.
    impl->a = dnnl::memory::desc({m, k}, dt::bf16, transA ? tag::ba : tag::ab);
    impl->b = dnnl::memory::desc({k, n}, dt::bf16, transB ? tag::ba : tag::ab);
    impl->c = dnnl::memory::desc({m, n}, dt::bf16, tag::ab);
    dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(impl->a, impl->b, impl->c), engine());
    impl->kernel = pd.impl_info_str();
    if (!usesBf16Instructions(impl->kernel)) {
      if (why)
        *why = "oneDNN's bf16 kernel here is " + impl->kernel +
               ", without bf16 instructions";
      return nullptr;
    }
    impl->prim = dnnl::matmul(pd);
    return std::unique_ptr<Bf16Gemm>(new Bf16Gemm(std::move(impl)));
  } catch (const dnnl::error &e) {
    if (why)
      *why = std::string("oneDNN has no bf16 matmul here: ") + e.what();
    return nullptr;
  }
}

void Bf16Gemm::run(const uint16_t *a, const uint16_t *b, uint16_t *c) const {
  // One stream per calling thread: a oneDNN stream must not be shared by
  // threads that execute at the same time.
  thread_local dnnl::stream stream(engine());
  dnnl::memory ma(impl_->a, engine(), const_cast<uint16_t *>(a));
  dnnl::memory mb(impl_->b, engine(), const_cast<uint16_t *>(b));
  dnnl::memory mc(impl_->c, engine(), c);
  impl_->prim.execute(
      stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
  stream.wait();
}

const std::string &Bf16Gemm::kernel() const { return impl_->kernel; }

bool bf16GemmUseOneDnn(bool *useOneDnn, std::string *error) {
  const char *env = std::getenv("FORGE_CPU_BF16_GEMM");
  if (!env || !*env || std::strcmp(env, "onednn") == 0) {
    *useOneDnn = true;
    return true;
  }
  if (std::strcmp(env, "sgemm") == 0) {
    *useOneDnn = false;
    return true;
  }
  if (error)
    *error = std::string("FORGE_CPU_BF16_GEMM is '") + env +
             "'; allowed values: onednn, sgemm";
  return false;
}

bool bf16GemmActive() {
  bool oneDnn = false;
  return bf16GemmUseOneDnn(&oneDnn, nullptr) && oneDnn &&
         Bf16Gemm::create(256, 256, 256, false, true, nullptr) != nullptr;
}

std::string bf16GemmStatus() {
  bool oneDnn = false;
  std::string error;
  if (!bf16GemmUseOneDnn(&oneDnn, &error))
    return error;
  if (!oneDnn)
    return "sgemm on f32 copies (FORGE_CPU_BF16_GEMM=sgemm)";
  std::string why;
  auto probe = Bf16Gemm::create(256, 256, 256, false, true, &why);
  if (!probe)
    return "sgemm on f32 copies (" + why + ")";
  const dnnl_version_t *v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) +
         "." + std::to_string(v->patch) + " " + probe->kernel();
}

} // namespace forge::cpu
