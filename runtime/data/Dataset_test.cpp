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
    return std::make_pair(starts, l.epoch());
  };
  auto [a, epochA] = run(7);
  auto [b, epochB] = run(7);
  EXPECT_EQ(a, b); // reproducible
  // 10 windows, batches of 3: 3 batches per epoch, the 10th window dropped;
  // the 4th batch opens epoch 1 (the loader is one batch ahead).
  std::set<int64_t> first(a.begin(), a.begin() + 9);
  EXPECT_EQ(first.size(), 9u);
  EXPECT_GE(epochA, 1);
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

} // namespace
