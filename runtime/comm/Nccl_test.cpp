//===- Nccl_test.cpp - NCCL communicators on the GPUs of this machine -----===//
//
// One thread per GPU (up to 2), each a rank of a world that meets through a
// fresh file store, runs every collective of the Communicator interface on
// device buffers with known data and counts mismatches. With one GPU the
// world has one rank (the collectives are then copies, which still runs the
// rendezvous, the non-blocking init and the waits); without a GPU the test
// skips with a notice.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Nccl.h"
#include "runtime/cuda/Device.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

using namespace forge::comm;

namespace {

int rankBody(int rank, int n, const std::string &store) {
  if (cudaSetDevice(rank) != cudaSuccess)
    return 100;
  WorldInfo w;
  w.rank = rank;
  w.size = n;
  w.storePath = store;
  w.timeoutSec = 60;
  MeshShape mesh{{"dp_shard"}, {n}};
  std::string error;
  std::unique_ptr<Comms> comms = connectNccl(w, mesh, rank, error);
  if (!comms) {
    std::fprintf(stderr, "rank %d: %s\n", rank, error.c_str());
    return 100;
  }
  Communicator &c = comms->world();
  int bad = 0;
  const size_t k = 1000;
  float *d = nullptr;
  cudaMalloc(&d, k * n * sizeof(float) * 2);
  std::vector<float> h(k * n);
  auto put = [&](const std::vector<float> &v) {
    cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice);
  };
  auto get = [&](size_t count) {
    std::vector<float> v(count);
    cudaMemcpy(v.data(), d, count * 4, cudaMemcpyDeviceToHost);
    return v;
  };
  // all_reduce: sum of (rank + 1) * i.
  for (size_t i = 0; i < k; ++i)
    h[i] = static_cast<float>((rank + 1) * i);
  put(std::vector<float>(h.begin(), h.begin() + k));
  bad += !c.allReduce(d, k, ReduceOp::Sum, "test").empty();
  auto r = get(k);
  for (size_t i = 0; i < k; ++i)
    bad += r[i] != static_cast<float>(n * (n + 1) / 2 * i);
  // all_gather of each rank's block (in place).
  std::vector<float> mine(k * n, 0.0f);
  for (size_t i = 0; i < k; ++i)
    mine[rank * k + i] = static_cast<float>(rank * 10000 + i);
  put(mine);
  bad += !c.allGather(d + rank * k, d, k * 4, "test").empty();
  r = get(k * n);
  for (int q = 0; q < n; ++q)
    for (size_t i = 0; i < k; ++i)
      bad += r[q * k + i] != static_cast<float>(q * 10000 + i);
  // reduce_scatter: block q of every rank is q + rank; this rank gets the
  // sum of its block over ranks.
  std::vector<float> blocks(k * n);
  for (int q = 0; q < n; ++q)
    for (size_t i = 0; i < k; ++i)
      blocks[q * k + i] = static_cast<float>(q + rank);
  put(blocks);
  bad += !c.reduceScatter(d, d + k * n, k, ReduceOp::Sum, "test").empty();
  std::vector<float> rs(k);
  cudaMemcpy(rs.data(), d + k * n, k * 4, cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < k; ++i)
    bad += rs[i] != static_cast<float>(n * rank + n * (n - 1) / 2);
  // all_to_all: block q goes to rank q.
  for (int q = 0; q < n; ++q)
    for (size_t i = 0; i < k; ++i)
      blocks[q * k + i] = static_cast<float>(rank * 100 + q);
  put(blocks);
  bad += !c.allToAll(d, d + k * n, k * 4, "test").empty();
  std::vector<float> got(k * n);
  cudaMemcpy(got.data(), d + k * n, k * n * 4, cudaMemcpyDeviceToHost);
  for (int q = 0; q < n; ++q)
    for (size_t i = 0; i < k; ++i)
      bad += got[q * k + i] != static_cast<float>(q * 100 + rank);
  // broadcast from the last rank, and a barrier.
  std::vector<float> own(k, static_cast<float>(rank));
  put(own);
  bad += !c.broadcast(d, k * 4, n - 1, "test").empty();
  r = get(k);
  for (size_t i = 0; i < k; ++i)
    bad += r[i] != static_cast<float>(n - 1);
  bad += !c.barrier("test").empty();
  // The mesh group is the world here.
  bad += comms->group("dp_shard") == nullptr && n > 1;
  cudaFree(d);
  return bad;
}

TEST(Nccl, EveryCollectiveOnTheGpus) {
  std::string why;
  const int gpus = forge::cuda::deviceCount(&why);
  if (gpus == 0)
    GTEST_SKIP() << "no CUDA device on this machine ("
                 << (why.empty() ? "none found" : why)
                 << "): the NCCL communicator test did not run";
  const int n = std::min(gpus, 2);
  char tmpl[] = "/tmp/forge-nccl-test-XXXXXX";
  std::string store = mkdtemp(tmpl);
  std::vector<int> codes(n, -1);
  std::vector<std::thread> ranks;
  for (int r = 0; r < n; ++r)
    ranks.emplace_back([&, r] { codes[r] = rankBody(r, n, store); });
  for (std::thread &t : ranks)
    t.join();
  std::filesystem::remove_all(store);
  for (int r = 0; r < n; ++r)
    EXPECT_EQ(codes[r], 0) << "rank " << r << " of " << n;
  std::printf("NCCL %s, %d rank(s)\n", ncclVersionString().c_str(), n);
}

/// Pipeline channels (Comms::openChannels): each direction of each edge is
/// a communicator of its own, so one thread can block sending on one while
/// another receives on another. Rank 0 sends three messages on tag 0 from a
/// thread while its main thread receives three on tag 1; rank 1 does the
/// mirror image, each in the order that would deadlock on one communicator.
int channelBody(int rank, const std::string &store) {
  if (cudaSetDevice(rank) != cudaSuccess)
    return 100;
  WorldInfo w;
  w.rank = rank;
  w.size = 2;
  w.storePath = store;
  w.timeoutSec = 60;
  std::string error;
  std::unique_ptr<Comms> comms =
      connectNccl(w, MeshShape{{"pp"}, {2}}, rank, error);
  if (!comms) {
    std::fprintf(stderr, "rank %d: %s\n", rank, error.c_str());
    return 100;
  }
  // Listed in a different order on each rank: openChannels orders them.
  std::vector<ChannelKey> keys(2);
  keys[rank].dim = keys[1 - rank].dim = "pp";
  keys[rank].src = 0, keys[rank].dst = 1, keys[rank].tag = 0;
  keys[1 - rank].src = 1, keys[1 - rank].dst = 0, keys[1 - rank].tag = 1;
  std::vector<std::unique_ptr<Communicator>> ch;
  if (std::string e = comms->openChannels(keys, ch); !e.empty()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.c_str());
    return 100;
  }
  // keys[0] is this rank's outgoing channel on both ranks.
  Communicator &out = *ch[0], &in = *ch[1];
  const size_t k = 1 << 20; // large enough for NCCL's rendezvous protocol
  float *send = nullptr, *recv = nullptr;
  cudaMalloc(&send, 3 * k * sizeof(float));
  cudaMalloc(&recv, k * sizeof(float));
  std::vector<float> h(3 * k);
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = static_cast<float>(rank * 1000 + i / k);
  cudaMemcpy(send, h.data(), h.size() * 4, cudaMemcpyHostToDevice);
  int bad = 0, sendBad = 0;
  std::thread sender([&] {
    cudaSetDevice(rank);
    for (size_t m = 0; m < 3; ++m)
      sendBad +=
          !out.send(send + m * k, k * 4, 1 - out.rank(), 0, "test").empty();
  });
  std::vector<float> got(k);
  for (size_t m = 0; m < 3; ++m) {
    bad += !in.recv(recv, k * 4, 1 - in.rank(), 0, "test").empty();
    cudaMemcpy(got.data(), recv, k * 4, cudaMemcpyDeviceToHost);
    for (float v : got)
      bad += v != static_cast<float>((1 - rank) * 1000 + m);
  }
  sender.join();
  cudaFree(send);
  cudaFree(recv);
  return bad + sendBad;
}

TEST(Nccl, PipelineChannelsAreIndependent) {
  std::string why;
  const int gpus = forge::cuda::deviceCount(&why);
  if (gpus < 2)
    GTEST_SKIP() << gpus << " CUDA device(s) on this machine"
                 << (why.empty() ? "" : " (" + why + ")")
                 << ": the pipeline channel test needs 2 and did not run";
  char tmpl[] = "/tmp/forge-nccl-test-XXXXXX";
  std::string store = mkdtemp(tmpl);
  std::vector<int> codes(2, -1);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] { codes[r] = channelBody(r, store); });
  for (std::thread &t : ranks)
    t.join();
  std::filesystem::remove_all(store);
  for (int r = 0; r < 2; ++r)
    EXPECT_EQ(codes[r], 0) << "rank " << r;
}

} // namespace
