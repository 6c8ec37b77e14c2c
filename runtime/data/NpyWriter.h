//===- NpyWriter.h - Token shards as .npy files -----------------*- C++ -*-===//
//
// Writes what TokenDataset (Dataset.h) reads: 1-D little-endian uint16
// (`<u2`) or uint32 (`<u4`) NumPy arrays, format version 1.0. Tokens stream
// to disk: the header is written first with room for any length (a fixed
// 128-byte header, padded with spaces as the format allows) and the length
// is filled in when the file is closed, so a shard never has to fit in
// memory.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_DATA_NPYWRITER_H
#define FORGE_RUNTIME_DATA_NPYWRITER_H

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace forge::data {

/// One .npy file being written.
class NpyWriter {
public:
  NpyWriter() = default;
  NpyWriter(const NpyWriter &) = delete;
  NpyWriter &operator=(const NpyWriter &) = delete;
  ~NpyWriter();

  /// Creates `path` for tokens of `elementBytes` (2 or 4) bytes. Returns an
  /// empty string or why it failed.
  std::string open(const std::string &path, int elementBytes);
  /// Appends tokens; each must fit the element type (the caller checks the
  /// vocabulary against the dtype once).
  std::string write(const uint32_t *ids, size_t n);
  /// Writes the final header and closes the file.
  std::string close();

  bool isOpen() const { return file_ != nullptr; }
  uint64_t count() const { return count_; }
  const std::string &path() const { return path_; }

  /// The header bytes for `count` tokens.
  static std::string header(int elementBytes, uint64_t count);
  static constexpr size_t kHeaderBytes = 128;

private:
  std::FILE *file_ = nullptr;
  std::string path_;
  int elementBytes_ = 0;
  uint64_t count_ = 0;
  std::vector<unsigned char> buffer_;
};

/// Token shards `<dir>/<prefix>_00000.npy`, `..._00001.npy`, ..., each
/// holding at most `shardTokens` tokens (documents continue across shards).
class ShardSink {
public:
  ShardSink(std::string dir, std::string prefix, int elementBytes,
            uint64_t shardTokens)
      : dir_(std::move(dir)), prefix_(std::move(prefix)),
        elementBytes_(elementBytes), shardTokens_(shardTokens) {}

  std::string write(const std::vector<uint32_t> &ids);
  /// Closes the last shard. Returns an empty string or the error.
  std::string finish();

  uint64_t tokens() const { return tokens_; }
  const std::vector<std::string> &files() const { return files_; }

  /// "<dir>/<prefix>_<index, 5 digits>.npy"
  std::string shardPath(size_t index) const;

private:
  std::string dir_, prefix_;
  int elementBytes_;
  uint64_t shardTokens_;
  uint64_t tokens_ = 0;
  NpyWriter current_;
  std::vector<std::string> files_;
};

} // namespace forge::data

#endif // FORGE_RUNTIME_DATA_NPYWRITER_H
