//===- Dataset_test.cpp - Windows, epochs and ranks of the loader ---------===//

#include "runtime/data/Dataset.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

using namespace forge::data;

namespace {

/// A .npy of uint16 tokens 0, 1, 2, ... (token t sits at position t).
void writeNpy(const std::string &path, int n, int first) {
  std::string header = "{'descr': '<u2', 'fortran_order': False, 'shape': (" +
                       std::to_string(n) + ",), }";
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char *>(&len), 2);
  f << header;
  for (int i = 0; i < n; ++i) {
    uint16_t v = static_cast<uint16_t>(first + i);
    f.write(reinterpret_cast<const char *>(&v), 2);
  }
}

struct Dir {
  std::string path;
  Dir() {
    char tmpl[] = "/tmp/forge-data-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Dir() { std::filesystem::remove_all(path); }
};

TEST(Dataset, WindowsNeverCrossFiles) {
  Dir d;
  writeNpy(d.path + "/a.npy", 25, 0);   // 3 windows of 8 (1 token left)
  writeNpy(d.path + "/b.npy", 17, 100); // 2 windows of 8 (1 token left)
  TokenDataset ds;
  ASSERT_EQ(ds.open(d.path, "*.npy", 7, 1000), "");
  EXPECT_EQ(ds.numWindows(), 5);
  std::vector<int64_t> in(7), lab(7);
  ds.window(2, in.data(), lab.data()); // a.npy [16, 24)
  EXPECT_EQ(in[0], 16);
  EXPECT_EQ(lab[6], 23);
  ds.window(3, in.data(), lab.data()); // b.npy [0, 8)
  EXPECT_EQ(in[0], 100);
  EXPECT_EQ(lab[0], 101);
}

TEST(Dataset, EpochsAreSeededAndDropTheLastPartialBatch) {
  Dir d;
  writeNpy(d.path + "/a.npy", 40, 0); // 10 windows of 4 (seq 3)
  TokenDataset ds;
  ASSERT_EQ(ds.open(d.path, "*.npy", 3, 1000), "");
  auto run = [&](uint64_t seed) {
    Loader l(ds, 3, 3, seed);
    std::vector<int64_t> starts;
    std::vector<int64_t> in(9), lab(9);
    for (int b = 0; b < 4; ++b) {
      l.next(in.data(), lab.data());
      for (int i = 0; i < 3; ++i)
        starts.push_back(in[i * 3]);
    }
    return std::make_pair(starts, l.position().epoch);
  };
  auto [a, epochA] = run(7);
  auto [b, epochB] = run(7);
  EXPECT_EQ(a, b); // reproducible
  // 10 windows, batches of 3: 3 batches per epoch, the 10th window dropped;
  // the 4th batch opens epoch 1 (the loader is one batch ahead).
  std::set<int64_t> first(a.begin(), a.begin() + 9);
  EXPECT_EQ(first.size(), 9u);
  EXPECT_EQ(epochA, 1);
  auto [c, epochC] = run(8);
  EXPECT_NE(a, c); // another seed, another order
}

TEST(Dataset, RanksTakeDisjointWindows) {
  Dir d;
  writeNpy(d.path + "/a.npy", 40, 0);
  TokenDataset ds;
  ASSERT_EQ(ds.open(d.path, "*.npy", 3, 1000), "");
  std::set<int64_t> seen;
  for (int rank = 0; rank < 2; ++rank) {
    Loader l(ds, 5, 3, 1, rank, 2);
    std::vector<int64_t> in(15), lab(15);
    l.next(in.data(), lab.data());
    for (int i = 0; i < 5; ++i)
      EXPECT_TRUE(seen.insert(in[i * 3]).second) << "window shared by ranks";
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(Dataset, PackingMasksLabelsAcrossDocuments) {
  // Window tokens 5 7 EOS 3 4 EOS 9 (+ label 8); EOS = 2.
  std::vector<int64_t> in = {5, 7, 2, 3, 4, 2, 9};
  std::vector<int64_t> lab = {7, 2, 3, 4, 2, 9, 8};
  std::vector<int32_t> doc(7);
  packWindow(in.data(), lab.data(), doc.data(), 7, 2);
  EXPECT_EQ(doc, (std::vector<int32_t>{0, 0, 0, 1, 1, 1, 2}));
  // The EOS predicts its own document's end only: the label after it (the
  // next document's first token) is ignored.
  EXPECT_EQ(lab, (std::vector<int64_t>{7, 2, -100, 4, 2, -100, 8}));
}

TEST(Dataset, MixingProbabilities) {
  auto p1 = mixingProbabilities({3, 1}, 1.0);
  EXPECT_DOUBLE_EQ(p1[0], 0.75);
  // T = 2: proportional to sqrt(w).
  auto p2 = mixingProbabilities({4, 1}, 2.0);
  EXPECT_NEAR(p2[0], 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(p2[1], 1.0 / 3.0, 1e-12);
  // A zero weight is (almost) never drawn.
  auto p0 = mixingProbabilities({1, 0}, 2.0);
  EXPECT_LT(p0[1], 1e-5);
}

/// Opens a dataset of `n` windows (seq 3) whose tokens start at `first`.
void openDataset(TokenDataset &ds, const std::string &dir, int n, int first) {
  std::filesystem::create_directories(dir);
  writeNpy(dir + "/a.npy", 4 * n, first);
  ASSERT_EQ(ds.open(dir, "*.npy", 3, 60000), "");
}

TEST(Dataset, MixtureRealizesTheTemperedProportions) {
  Dir d;
  TokenDataset a, b;
  openDataset(a, d.path + "/a", 300, 0);     // tokens < 1200
  openDataset(b, d.path + "/b", 100, 20000); // tokens >= 20000
  LoaderOptions o;
  o.batch = 4;
  o.seqLen = 3;
  o.seed = 3;
  o.temperature = 2.0;
  Loader l({&a, &b}, {4.0, 1.0}, o);
  // p = (2/3, 1/3); budget 400 windows: 267 from a, 133 from b (b cycled).
  EXPECT_EQ(l.batchesPerEpoch(), 100);
  std::vector<int64_t> in(12), lab(12);
  int64_t fromA = 0, fromB = 0;
  for (int i = 0; i < 100; ++i) {
    l.next(in.data(), lab.data());
    for (int r = 0; r < 4; ++r)
      (in[r * 3] < 20000 ? fromA : fromB) += 1;
  }
  EXPECT_EQ(fromA, 267);
  EXPECT_EQ(fromB, 133);
  EXPECT_EQ(l.samplesPerSource()[0], 267);
  EXPECT_EQ(l.position().epoch, 0);
  // A phase switches the weights: from now on only b.
  l.setWeights({0.0, 1.0});
  for (int i = 0; i < 10; ++i) {
    l.next(in.data(), lab.data());
    for (int r = 0; r < 4; ++r)
      EXPECT_GE(in[r * 3], 20000);
  }
}

TEST(Dataset, PositionResumesTheSameBatches) {
  Dir d;
  TokenDataset a;
  openDataset(a, d.path + "/a", 10, 0);
  auto batches = [&](Loader &l, int n) {
    std::vector<int64_t> in(6), lab(6), all;
    for (int i = 0; i < n; ++i) {
      l.next(in.data(), lab.data());
      all.insert(all.end(), in.begin(), in.end());
    }
    return all;
  };
  Loader full(a, 2, 3, 11);
  batches(full, 7); // into epoch 1 (5 batches per epoch)
  LoaderPosition at = full.position();
  EXPECT_EQ(at.epoch, 1);
  EXPECT_EQ(at.batchesYielded, 2);
  std::vector<int64_t> rest = batches(full, 6);
  Loader resumed(a, 2, 3, 11);
  resumed.restore(at);
  EXPECT_EQ(batches(resumed, 6), rest);
}

} // namespace
