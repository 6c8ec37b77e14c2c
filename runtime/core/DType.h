//===- DType.h - Element conversions shared by the runtime ------*- C++ -*-===//
//
// bf16 is the upper half of an f32; stores round to nearest, ties to even,
// as PyTorch does when it casts f32 to bf16.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CORE_DTYPE_H
#define FORGE_RUNTIME_CORE_DTYPE_H

#include <cstdint>
#include <cstring>

namespace forge::runtime {

inline float bf16ToF32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) // NaN: keep it a (quiet) NaN
    return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1); // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_DTYPE_H
