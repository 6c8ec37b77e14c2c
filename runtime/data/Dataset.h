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

#include <cstdint>
#include <memory>
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

/// How a Loader draws and shapes batches.
struct LoaderOptions {
  int64_t batch = 1, seqLen = 1;
  uint64_t seed = 0;
  int64_t rank = 0, worldSize = 1;
  /// Shuffle each epoch (training) or read the windows in order (eval).
  bool shuffle = true;
  /// Mixing temperature over the sources' weights (reference §5.2).
  double temperature = 1.0;
  /// Sequence packing (reference §5.1): document ids restart at 0 in each
  /// window and increase after every `eos`; labels that cross a document
  /// boundary (at each EOS) become -100.
  bool pack = false;
  int64_t eos = -1;
};

/// Where a Loader stands, to resume it exactly (reference §5.4).
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batchesYielded = 0; ///< in this epoch
};

/// Batches over one or more datasets, with a prefetch thread. One source is
/// KempnerForge's DistributedSampler: a permutation of the windows seeded by
/// (seed + epoch), cut to a multiple of the world size, every world-th
/// element from this rank. Several sources are its MixtureSampler: source i
/// is drawn with probability softmax(log(w_i) / T); each epoch takes
/// round(p_i * budget) windows of source i (budget = this rank's share of
/// all windows; a source with fewer windows is cycled), shuffled together.
class Loader {
public:
  Loader(std::vector<const TokenDataset *> sources, std::vector<double> weights,
         const LoaderOptions &options);
  /// One dataset, shuffled.
  Loader(const TokenDataset &ds, int64_t batch, int64_t seqLen, uint64_t seed,
         int64_t rank = 0, int64_t worldSize = 1);
  ~Loader();

  /// Copies the next batch ([batch, seqLen] each; `docIds` may be null)
  /// and starts preparing the one after it.
  void next(int64_t *input, int64_t *labels, int32_t *docIds = nullptr);

  /// New mixing weights (a phase change): the sampler is rebuilt for the
  /// current epoch and starts from its beginning, as KempnerForge rebuilds
  /// its iterator.
  void setWeights(std::vector<double> weights);

  /// Starts over from `p` (reading the first batch after it).
  void restore(const LoaderPosition &p);
  LoaderPosition position() const { return pos_; }

  /// Batches in one epoch of this rank (0: fewer windows than one batch).
  int64_t batchesPerEpoch() const { return batchesPerEpoch_; }

  /// The realized sampling probabilities of the current weights.
  const std::vector<double> &probabilities() const { return probs_; }
  /// Seconds the last next() waited for the prefetch thread (0 when the
  /// batch was ready: loading overlapped the step before).
  double lastWaitSeconds() const { return lastWait_; }

  /// Windows delivered from each source so far.
  const std::vector<int64_t> &samplesPerSource() const { return delivered_; }

private:
  void buildOrder();
  void fill(std::vector<int64_t> &in, std::vector<int64_t> &lab,
            std::vector<int32_t> &doc, std::vector<int32_t> &src);
  void startPrefetch();
  void join();

  std::vector<const TokenDataset *> sources_;
  std::vector<double> weights_, probs_;
  LoaderOptions o_;
  LoaderPosition pos_;     ///< of the batches handed out
  LoaderPosition fillPos_; ///< of the batches prepared
  LoaderPosition nextPos_; ///< after the prepared batch
  int64_t batchesPerEpoch_ = 0;
  double lastWait_ = 0;
  std::vector<std::pair<int32_t, int64_t>> order_; // (source, window)
  int64_t cursor_ = 0;
  bool built_ = false;
  std::vector<int64_t> nextIn_, nextLab_;
  std::vector<int32_t> nextDoc_, nextSrc_;
  std::vector<int64_t> delivered_;
  std::thread worker_;
};

/// Packs one window in place: `doc` gets the document ids of the inputs and
/// labels crossing a document boundary become -100 (reference §5.1).
void packWindow(const int64_t *input, int64_t *labels, int32_t *doc,
                int64_t seqLen, int64_t eos);

/// Mixing probabilities: w_i / sum(w) at temperature 1, else
/// softmax(log(max(w_i, 1e-12)) / T).
std::vector<double> mixingProbabilities(const std::vector<double> &weights,
                                        double temperature);

} // namespace forge::data

#endif // FORGE_RUNTIME_DATA_DATASET_H
