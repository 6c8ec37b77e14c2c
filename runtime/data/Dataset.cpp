//===- Dataset.cpp - Pre-tokenized token shards ---------------------------===//

#include "runtime/data/Dataset.h"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fnmatch.h>
#include <random>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace forge::data {

int64_t Shard::at(int64_t i) const {
  const uint8_t *p = tokens + i * elementBytes;
  switch (elementBytes) {
  case 2: {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
  }
  case 4: {
    if (isSigned) {
      int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  default: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  }
}

namespace {

/// Parses a .npy header; fills the element type and length.
std::string parseNpy(const uint8_t *data, size_t size, Shard &s) {
  if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0)
    return "not a .npy file (bad magic)";
  int major = data[6];
  size_t headerLen, start;
  if (major == 1) {
    headerLen = data[8] | (data[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return "truncated .npy header";
    headerLen = data[8] | (data[9] << 8) | (data[10] << 16) |
                (static_cast<size_t>(data[11]) << 24);
    start = 12;
  } else {
    return "unsupported .npy version " + std::to_string(major);
  }
  if (start + headerLen > size)
    return "truncated .npy header";
  std::string h(reinterpret_cast<const char *>(data + start), headerLen);
  auto value = [&](const std::string &key) -> std::string {
    size_t k = h.find("'" + key + "'");
    if (k == std::string::npos)
      return "";
    size_t colon = h.find(':', k);
    return colon == std::string::npos ? "" : h.substr(colon + 1);
  };
  std::string descr = value("descr");
  size_t q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos)
    return "unreadable .npy header";
  descr = descr.substr(q1 + 1, q2 - q1 - 1);
  if (descr == "<u2" || descr == "=u2")
    s.elementBytes = 2;
  else if (descr == "<u4" || descr == "=u4")
    s.elementBytes = 4;
  else if (descr == "<i4" || descr == "=i4") {
    s.elementBytes = 4;
    s.isSigned = true;
  } else if (descr == "<i8" || descr == "=i8") {
    s.elementBytes = 8;
    s.isSigned = true;
  } else {
    return "dtype '" + descr +
           "' is not a token dtype (uint16, uint32, int32 or int64)";
  }
  if (value("fortran_order").find("True") == 0 ||
      value("fortran_order").find(" True") == 0)
    return "Fortran-ordered arrays are not supported";
  std::string shape = value("shape");
  size_t open = shape.find('('), close = shape.find(')');
  if (open == std::string::npos || close == std::string::npos)
    return "unreadable .npy shape";
  std::string dims = shape.substr(open + 1, close - open - 1);
  std::vector<int64_t> ds;
  for (size_t i = 0; i < dims.size();) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ','))
      ++i;
    size_t j = i;
    while (j < dims.size() && std::isdigit(static_cast<unsigned char>(dims[j])))
      ++j;
    if (j > i)
      ds.push_back(std::stoll(dims.substr(i, j - i)));
    i = j == i ? i + 1 : j;
  }
  if (ds.size() != 1)
    return "expected a 1-D token array, got " + std::to_string(ds.size()) +
           " dimensions";
  s.length = ds[0];
  size_t dataStart = start + headerLen;
  if (dataStart + static_cast<size_t>(s.length) * s.elementBytes > size)
    return "file shorter than its header says";
  s.tokens = data + dataStart;
  return "";
}

} // namespace

TokenDataset::~TokenDataset() {
  for (Shard &s : shards_)
    if (s.mapping)
      munmap(s.mapping, s.mappingBytes);
}

int64_t TokenDataset::numTokens() const {
  int64_t n = 0;
  for (const Shard &s : shards_)
    n += s.length;
  return n;
}

std::string TokenDataset::open(const std::string &dir,
                               const std::string &pattern, int64_t seqLen,
                               int64_t vocabSize) {
  namespace fs = std::filesystem;
  seqLen_ = seqLen;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return "data.dataset_path '" + dir + "' is not a directory";
  std::vector<std::string> files;
  for (const auto &e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() &&
        fnmatch(pattern.c_str(), e.path().filename().c_str(), 0) == 0)
      files.push_back(e.path().string());
  if (files.empty())
    return "no file in '" + dir + "' matches data.file_pattern '" + pattern +
           "'";
  std::sort(files.begin(), files.end());
  for (const std::string &path : files) {
    Shard s;
    s.path = path;
    int fd = ::open(path.c_str(), O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      if (fd >= 0)
        ::close(fd);
      return path + ": cannot open";
    }
    s.mappingBytes = static_cast<size_t>(st.st_size);
    if (s.mappingBytes > 0) {
      s.mapping = mmap(nullptr, s.mappingBytes, PROT_READ, MAP_PRIVATE, fd, 0);
      if (s.mapping == MAP_FAILED) {
        ::close(fd);
        s.mapping = nullptr;
        return path + ": cannot memory-map";
      }
    }
    ::close(fd);
    const auto *bytes = static_cast<const uint8_t *>(s.mapping);
    std::string ext = fs::path(path).extension().string();
    std::string why;
    if (ext == ".npy") {
      why = parseNpy(bytes, s.mappingBytes, s);
    } else if (ext == ".bin") {
      s.elementBytes = vocabSize <= 65536 ? 2 : 4;
      if (s.mappingBytes % s.elementBytes != 0)
        why = "size " + std::to_string(s.mappingBytes) +
              " is not a multiple of " + std::to_string(s.elementBytes) +
              " (a .bin shard holds uint" + std::to_string(8 * s.elementBytes) +
              " tokens for vocab_size " + std::to_string(vocabSize) + ")";
      s.tokens = bytes;
      s.length = static_cast<int64_t>(s.mappingBytes) / s.elementBytes;
    } else {
      why = "unsupported shard extension '" + ext + "' (.npy or .bin)";
    }
    shards_.push_back(s);
    if (!why.empty())
      return path + ": " + why;
    int32_t index = static_cast<int32_t>(shards_.size() - 1);
    for (int64_t w = 0; w + seqLen + 1 <= s.length; w += seqLen + 1)
      windows_.push_back({index, w});
  }
  if (windows_.empty())
    return "the shards in '" + dir + "' hold " + std::to_string(numTokens()) +
           " tokens: not one window of seq_len + 1 = " +
           std::to_string(seqLen + 1) + " in any file";
  return "";
}

void TokenDataset::window(int64_t w, int64_t *input, int64_t *labels) const {
  const auto &[shard, start] = windows_[w];
  const Shard &s = shards_[shard];
  for (int64_t i = 0; i < seqLen_; ++i) {
    input[i] = s.at(start + i);
    labels[i] = s.at(start + i + 1);
  }
}

Loader::Loader(const TokenDataset &ds, int64_t batch, int64_t seqLen,
               uint64_t seed, int64_t rank, int64_t worldSize)
    : ds_(ds), batch_(batch), seqLen_(seqLen), rank_(rank), world_(worldSize),
      seed_(seed) {
  startPrefetch();
}

Loader::~Loader() {
  if (worker_.joinable())
    worker_.join();
}

void Loader::fill(std::vector<int64_t> &in, std::vector<int64_t> &lab) {
  in.resize(batch_ * seqLen_);
  lab.resize(batch_ * seqLen_);
  if (order_.empty() ||
      cursor_ + batch_ > static_cast<int64_t>(order_.size())) {
    // A new epoch (the last partial batch is dropped): a fresh permutation
    // seeded by (seed + epoch), cut to a multiple of the world size, and
    // this rank's stride of it.
    if (!order_.empty())
      ++epoch_;
    std::vector<int64_t> perm(ds_.numWindows());
    for (int64_t i = 0; i < ds_.numWindows(); ++i)
      perm[i] = i;
    std::mt19937_64 gen(seed_ + static_cast<uint64_t>(epoch_));
    std::shuffle(perm.begin(), perm.end(), gen);
    perm.resize(perm.size() / world_ * world_);
    order_.clear();
    for (size_t i = rank_; i < perm.size(); i += world_)
      order_.push_back(perm[i]);
    cursor_ = 0;
  }
  for (int64_t b = 0; b < batch_; ++b)
    ds_.window(order_[cursor_++], in.data() + b * seqLen_,
               lab.data() + b * seqLen_);
}

void Loader::startPrefetch() {
  worker_ = std::thread([this] { fill(nextIn_, nextLab_); });
}

void Loader::next(int64_t *input, int64_t *labels) {
  worker_.join();
  std::copy(nextIn_.begin(), nextIn_.end(), input);
  std::copy(nextLab_.begin(), nextLab_.end(), labels);
  startPrefetch();
}

} // namespace forge::data
