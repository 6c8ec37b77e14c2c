//===- Dataset.cpp - Pre-tokenized token shards ---------------------------===//

#include "runtime/data/Dataset.h"

#include <algorithm>
#include <chrono>
#include <cmath>
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

std::vector<double> mixingProbabilities(const std::vector<double> &weights,
                                        double temperature) {
  std::vector<double> p(weights.size());
  if (temperature == 1.0) {
    double sum = 0;
    for (double w : weights)
      sum += w;
    for (size_t i = 0; i < weights.size(); ++i)
      p[i] = sum > 0 ? weights[i] / sum : 1.0 / weights.size();
    return p;
  }
  double top = -1e300;
  for (size_t i = 0; i < weights.size(); ++i) {
    p[i] = std::log(std::max(weights[i], 1e-12)) / temperature;
    top = std::max(top, p[i]);
  }
  double sum = 0;
  for (double &x : p)
    sum += (x = std::exp(x - top));
  for (double &x : p)
    x /= sum;
  return p;
}

void packWindow(const int64_t *input, int64_t *labels, int32_t *doc,
                int64_t seqLen, int64_t eos) {
  // The EOS belongs to the document it ends: the id rises after it, so the
  // label of an EOS input (the next document's first token) is masked.
  int32_t id = 0;
  for (int64_t i = 0; i < seqLen; ++i) {
    doc[i] = id;
    if (input[i] == eos) {
      labels[i] = -100;
      ++id;
    }
  }
}

Loader::Loader(std::vector<const TokenDataset *> sources,
               std::vector<double> weights, const LoaderOptions &options)
    : sources_(std::move(sources)), weights_(std::move(weights)), o_(options) {
  delivered_.assign(sources_.size(), 0);
  probs_ = mixingProbabilities(weights_, o_.temperature);
  buildOrder();
  batchesPerEpoch_ = static_cast<int64_t>(order_.size()) / o_.batch;
  startPrefetch();
}

Loader::Loader(const TokenDataset &ds, int64_t batch, int64_t seqLen,
               uint64_t seed, int64_t rank, int64_t worldSize)
    : Loader({&ds}, {1.0}, [&] {
        LoaderOptions o;
        o.batch = batch;
        o.seqLen = seqLen;
        o.seed = seed;
        o.rank = rank;
        o.worldSize = worldSize;
        return o;
      }()) {}

Loader::~Loader() { join(); }

void Loader::buildOrder() {
  // One generator per epoch, seeded by (seed + epoch), drives every
  // permutation of the epoch, so an epoch's order is reproducible alone.
  std::mt19937_64 gen(o_.seed + static_cast<uint64_t>(fillPos_.epoch));
  const int64_t R = o_.worldSize;
  // Window indices of source i this rank owns: a permutation (or the
  // identity), cut to a multiple of the world size, this rank's stride.
  auto rankShare = [&](size_t i) {
    std::vector<int64_t> perm(sources_[i]->numWindows());
    for (size_t w = 0; w < perm.size(); ++w)
      perm[w] = static_cast<int64_t>(w);
    if (o_.shuffle)
      std::shuffle(perm.begin(), perm.end(), gen);
    perm.resize(perm.size() / R * R);
    std::vector<int64_t> mine;
    for (size_t w = o_.rank; w < perm.size(); w += R)
      mine.push_back(perm[w]);
    return mine;
  };
  order_.clear();
  cursor_ = 0;
  built_ = true;
  if (sources_.size() == 1) {
    for (int64_t w : rankShare(0))
      order_.push_back({0, w});
    return;
  }
  // Targets: round(p_i * budget), the rounding residue given to (or taken
  // from) the most probable sources first.
  int64_t total = 0;
  for (const TokenDataset *d : sources_)
    total += d->numWindows();
  const int64_t budget = total / R;
  std::vector<int64_t> target(sources_.size());
  int64_t assigned = 0;
  for (size_t i = 0; i < target.size(); ++i)
    assigned += target[i] = std::llround(probs_[i] * budget);
  std::vector<size_t> byProb(target.size());
  for (size_t i = 0; i < byProb.size(); ++i)
    byProb[i] = i;
  std::stable_sort(byProb.begin(), byProb.end(),
                   [&](size_t a, size_t b) { return probs_[a] > probs_[b]; });
  for (size_t k = 0; assigned != budget; k = (k + 1) % byProb.size()) {
    size_t i = byProb[k];
    if (assigned < budget) {
      ++target[i];
      ++assigned;
    } else if (target[i] > 0) {
      --target[i];
      --assigned;
    }
  }
  for (size_t i = 0; i < sources_.size(); ++i) {
    std::vector<int64_t> mine = rankShare(i);
    if (mine.empty())
      continue;
    for (int64_t k = 0; k < target[i]; ++k) // cycled when oversampled
      order_.push_back({static_cast<int32_t>(i), mine[k % mine.size()]});
  }
  if (o_.shuffle)
    std::shuffle(order_.begin(), order_.end(), gen);
}

void Loader::fill(std::vector<int64_t> &in, std::vector<int64_t> &lab,
                  std::vector<int32_t> &doc, std::vector<int32_t> &src) {
  const int64_t B = o_.batch, S = o_.seqLen;
  in.resize(B * S);
  lab.resize(B * S);
  doc.assign(o_.pack ? B * S : 0, 0);
  src.resize(B);
  if (!built_ || cursor_ + B > static_cast<int64_t>(order_.size())) {
    // A new epoch; the last partial batch is dropped.
    if (built_) {
      ++fillPos_.epoch;
      fillPos_.batchesYielded = 0;
    }
    buildOrder();
  }
  if (static_cast<int64_t>(order_.size()) < B)
    return; // checked by the caller (batchesPerEpoch() == 0)
  for (int64_t b = 0; b < B; ++b) {
    auto [source, w] = order_[cursor_++];
    sources_[source]->window(w, in.data() + b * S, lab.data() + b * S);
    if (o_.pack)
      packWindow(in.data() + b * S, lab.data() + b * S, doc.data() + b * S, S,
                 o_.eos);
    src[b] = source;
  }
  ++fillPos_.batchesYielded;
  nextPos_ = fillPos_;
}

void Loader::startPrefetch() {
  worker_ =
      std::thread([this] { fill(nextIn_, nextLab_, nextDoc_, nextSrc_); });
}

void Loader::join() {
  if (worker_.joinable())
    worker_.join();
}

void Loader::next(int64_t *input, int64_t *labels, int32_t *docIds) {
  auto start = std::chrono::steady_clock::now();
  join();
  lastWait_ = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            start)
                  .count();
  std::copy(nextIn_.begin(), nextIn_.end(), input);
  std::copy(nextLab_.begin(), nextLab_.end(), labels);
  if (docIds)
    std::copy(nextDoc_.begin(), nextDoc_.end(), docIds);
  for (int32_t s : nextSrc_)
    ++delivered_[s];
  pos_ = nextPos_;
  startPrefetch();
}

void Loader::setWeights(std::vector<double> weights) {
  join();
  weights_ = std::move(weights);
  probs_ = mixingProbabilities(weights_, o_.temperature);
  fillPos_ = {pos_.epoch, 0};
  pos_ = fillPos_;
  buildOrder();
  batchesPerEpoch_ = static_cast<int64_t>(order_.size()) / o_.batch;
  startPrefetch();
}

void Loader::restore(const LoaderPosition &p) {
  join();
  fillPos_ = {p.epoch, 0};
  buildOrder();
  cursor_ = std::min<int64_t>(p.batchesYielded * o_.batch,
                              static_cast<int64_t>(order_.size()));
  fillPos_.batchesYielded = p.batchesYielded;
  pos_ = p;
  startPrefetch();
}

} // namespace forge::data
