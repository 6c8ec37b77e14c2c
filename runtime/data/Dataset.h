//===- Dataset.h - Pre-tokenized token shards -------------------*- C++ -*-===//
//
// Reference §5.1/§5.2: the shards matching `file_pattern` in `dataset_path`
// (sorted by name) are memory-mapped; each yields floor(len / (seq + 1))
// non-overlapping windows that never cross files; a window w gives
// input = w[0:seq] and labels = w[1:seq+1]. A seeded, epoch-aware sampler
// shuffles the windows; batches drop the remainder; a prefetch thread
// prepares the next batch while the current step runs.
//
// `.npy` files must be 1-D uint16, uint32, int32 or int64. A raw `.bin`
// file has no header, so its element type follows the vocabulary: uint16
// when vocab_size <= 65536, else uint32 (KempnerForge guesses from the file
// size, which misreads even-length uint16 files).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_DATA_DATASET_H
#define FORGE_RUNTIME_DATA_DATASET_H

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace forge::data {

/// One memory-mapped shard.
struct Shard {
  std::string path;
  const uint8_t *tokens = nullptr; ///< first token
  int64_t length = 0;              ///< tokens
  int elementBytes = 0;
  bool isSigned = false;
  void *mapping = nullptr;
  size_t mappingBytes = 0;

  int64_t at(int64_t i) const;
};

class TokenDataset {
public:
  ~TokenDataset();

  /// Opens every shard. Returns an empty string, or why the data is unusable
  /// (missing directory, no file matches, wrong dtype or rank, too short).
  std::string open(const std::string &dir, const std::string &pattern,
                   int64_t seqLen, int64_t vocabSize);

  int64_t numWindows() const { return static_cast<int64_t>(windows_.size()); }
  int64_t numTokens() const;
  size_t numShards() const { return shards_.size(); }

  /// Writes window `w` as input ids and labels ([seqLen] each).
  void window(int64_t w, int64_t *input, int64_t *labels) const;

private:
  std::vector<Shard> shards_;
  std::vector<std::pair<int32_t, int64_t>> windows_; // (shard, start)
  int64_t seqLen_ = 0;
};

/// Shuffled batches over a dataset, with a prefetch thread.
class Loader {
public:
  Loader(const TokenDataset &ds, int64_t batch, int64_t seqLen, uint64_t seed,
         int64_t rank = 0, int64_t worldSize = 1);
  ~Loader();

  /// Copies the next batch ([batch, seqLen] each) and starts preparing the
  /// one after it.
  void next(int64_t *input, int64_t *labels);

  int64_t epoch() const { return epoch_; }

private:
  void fill(std::vector<int64_t> &in, std::vector<int64_t> &lab);
  void startPrefetch();

  const TokenDataset &ds_;
  int64_t batch_, seqLen_, rank_, world_;
  uint64_t seed_;
  int64_t epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> order_;
  std::vector<int64_t> nextIn_, nextLab_;
  std::thread worker_;
  bool ready_ = false;
};

} // namespace forge::data

#endif // FORGE_RUNTIME_DATA_DATASET_H
