//===- SafeTensors.h - Reading and writing .safetensors files ---*- C++ -*-===//
//
// The Hugging Face safetensors format: an 8-byte little-endian header size,
// a JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}},
// then the raw tensor bytes. forge-run uses it to load initial weights
// (--init-from), read a fixed batch (--batch-from) and dump state for the
// golden tests (--dump-state). Only the subset of JSON the format uses is
// parsed; anything else is rejected with a reason.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_TRAIN_SAFETENSORS_H
#define FORGE_RUNTIME_TRAIN_SAFETENSORS_H

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace forge::train {

struct Tensor {
  std::string dtype; ///< "F32", "BF16", "F16", "I64", "I32", "U8"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

using TensorMap = std::map<std::string, Tensor>;

/// Reads `path`. Returns an empty string on success, else the reason.
std::string readSafeTensors(const std::string &path, TensorMap &out);

/// Where a tensor lies in a file, from the header alone.
struct TensorInfo {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; ///< byte range in the file
};
using TensorIndex = std::map<std::string, TensorInfo>;

/// Reads only the header of `path` (checked against the file size).
std::string readSafeTensorsIndex(const std::string &path, TensorIndex &out);

/// Reads the bytes of one tensor of `path`.
std::string readSafeTensorsData(const std::string &path, const TensorInfo &t,
                                std::vector<uint8_t> &out);

/// Writes `tensors` to `path`. Returns an empty string on success. With
/// `crc`, also the CRC-32 (zlib's) of every byte written.
std::string writeSafeTensors(const std::string &path, const TensorMap &tensors,
                             uint32_t *crc = nullptr);

/// The CRC-32 (zlib's) of the whole file `path`, for checkpoint integrity.
std::string fileCrc32(const std::string &path, uint32_t &crc);

/// Bytes per element of a safetensors dtype name, or 0 when unknown.
int64_t safeTensorsDtypeSize(const std::string &dtype);

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_SAFETENSORS_H
