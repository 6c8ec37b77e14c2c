//===- Bf16Gemm.h - bf16 GEMMs on the CPU's bf16 instructions ---*- C++ -*-===//
//
// With train.mixed_precision = "bf16" every linear layer multiplies bf16
// tensors. sgemm would need f32 copies of both operands and of the result;
// oneDNN's matmul instead reads the bf16 data as it is and multiplies with
// the CPU's bf16 dot-product instructions (AVX-512 BF16, AMX), which do
// twice the work of an f32 FMA per instruction. The result is the same up to
// the order of the f32 additions: products of bf16 values are exact in f32,
// accumulation is f32, and the result is rounded to bf16 once, to nearest
// even, as the f32 path's conversion does.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CPU_BF16GEMM_H
#define FORGE_RUNTIME_CPU_BF16GEMM_H

#include <cstdint>
#include <memory>
#include <string>

namespace forge::cpu {

/// C[m, n] = op(A) @ op(B), bf16 in and out, f32 accumulation; row-major,
/// A stored [m, k] ([k, m] when transA), B stored [k, n] ([n, k] when
/// transB). Shapes are fixed when it is made (the plan's shapes are
/// static), so the kernel is chosen once, at bind time.
class Bf16Gemm {
public:
  /// The GEMM, or null with `why` set when oneDNN has no kernel for this
  /// shape that uses bf16 instructions (a CPU without them): there sgemm on
  /// f32 copies is the faster path.
  static std::unique_ptr<Bf16Gemm> create(int64_t m, int64_t n, int64_t k,
                                          bool transA, bool transB,
                                          std::string *why);
  ~Bf16Gemm();
  void run(const uint16_t *a, const uint16_t *b, uint16_t *c) const;
  /// oneDNN's name of the chosen kernel, e.g. "brg:avx512_core_bf16".
  const std::string &kernel() const;

private:
  struct Impl;
  explicit Bf16Gemm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// FORGE_CPU_BF16_GEMM: "onednn" (the default when unset) or "sgemm",
/// which keeps bf16 GEMMs on f32 copies and sgemm (for comparisons). False
/// with `error` set for any other value.
bool bf16GemmUseOneDnn(bool *useOneDnn, std::string *error);

/// Whether bf16 GEMMs here run on bf16 instructions through oneDNN (the
/// setting allows it and the CPU has them): MFU then divides by the bf16
/// peak.
bool bf16GemmActive();

/// One line for forge-run --backends: the path bf16 GEMMs take on this
/// machine ("oneDNN brg:avx512_core_bf16", or sgemm and why).
std::string bf16GemmStatus();

} // namespace forge::cpu

#endif // FORGE_RUNTIME_CPU_BF16GEMM_H
