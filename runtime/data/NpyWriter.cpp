//===- NpyWriter.cpp - Token shards as .npy files -------------------------===//

#include "runtime/data/NpyWriter.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace forge::data {

namespace {
std::string ioError(const std::string &path, const char *what) {
  return path + ": cannot " + what + " (" + std::strerror(errno) + ")";
}
} // namespace

std::string NpyWriter::header(int elementBytes, uint64_t count) {
  std::string dict =
      std::string("{'descr': '<u") + (elementBytes == 2 ? "2" : "4") +
      "', 'fortran_order': False, 'shape': (" + std::to_string(count) + ",), }";
  // Magic, version 1.0, the little-endian header length, then the dict
  // padded with spaces and ended by a newline: 128 bytes in all, a multiple
  // of 64 as NumPy aligns them, wide enough for any 64-bit length.
  std::string h = "\x93NUMPY";
  h += '\x01';
  h += '\x00';
  size_t headerLen = kHeaderBytes - 10;
  h += static_cast<char>(headerLen & 0xFF);
  h += static_cast<char>(headerLen >> 8);
  h += dict;
  h.append(kHeaderBytes - 1 - h.size(), ' ');
  h += '\n';
  return h;
}

NpyWriter::~NpyWriter() {
  if (file_)
    std::fclose(file_);
}

std::string NpyWriter::open(const std::string &path, int elementBytes) {
  if (file_)
    return path_ + ": already open";
  path_ = path;
  elementBytes_ = elementBytes;
  count_ = 0;
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_)
    return ioError(path, "create");
  std::string h = header(elementBytes, 0);
  if (std::fwrite(h.data(), 1, h.size(), file_) != h.size())
    return ioError(path, "write");
  return "";
}

std::string NpyWriter::write(const uint32_t *ids, size_t n) {
  // Explicit little-endian bytes: the format says `<`, whatever the host.
  buffer_.resize(n * elementBytes_);
  unsigned char *p = buffer_.data();
  for (size_t i = 0; i < n; ++i) {
    uint32_t v = ids[i];
    for (int b = 0; b < elementBytes_; ++b)
      *p++ = static_cast<unsigned char>(v >> (8 * b));
  }
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
    return ioError(path_, "write");
  count_ += n;
  return "";
}

std::string NpyWriter::close() {
  if (!file_)
    return "";
  std::string h = header(elementBytes_, count_);
  bool ok = std::fflush(file_) == 0 && std::fseek(file_, 0, SEEK_SET) == 0 &&
            std::fwrite(h.data(), 1, h.size(), file_) == h.size();
  int closed = std::fclose(file_);
  file_ = nullptr;
  if (!ok || closed != 0)
    return ioError(path_, "write");
  return "";
}

std::string ShardSink::shardPath(size_t index) const {
  char name[32];
  std::snprintf(name, sizeof name, "_%05zu.npy", index);
  return dir_ + "/" + prefix_ + name;
}

std::string ShardSink::write(const std::vector<uint32_t> &ids) {
  size_t done = 0;
  while (done < ids.size()) {
    if (current_.isOpen() && current_.count() >= shardTokens_)
      if (std::string e = current_.close(); !e.empty())
        return e;
    if (!current_.isOpen()) {
      // Five digits keep the names in order when sorted by name, as the
      // dataset reads them.
      if (files_.size() >= 100000)
        return "more than 100000 shards in " + dir_ +
               "; use a larger --shard-tokens";
      files_.push_back(shardPath(files_.size()));
      if (std::string e = current_.open(files_.back(), elementBytes_);
          !e.empty())
        return e;
    }
    size_t n =
        std::min<uint64_t>(ids.size() - done, shardTokens_ - current_.count());
    if (std::string e = current_.write(ids.data() + done, n); !e.empty())
      return e;
    done += n;
    tokens_ += n;
  }
  return "";
}

std::string ShardSink::finish() { return current_.close(); }

} // namespace forge::data
