//===- Nccl.cpp - Collectives over NCCL for the CUDA backend --------------===//
//
// Communicators are non-blocking (ncclConfig_t::blocking = 0): NCCL calls
// return at once, possibly with ncclInProgress, and every wait here polls
// ncclCommGetAsyncError and the stream against the deadline. That is what
// lets a dead or hung peer end the run with a message naming it instead of
// blocking forever inside NCCL.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Nccl.h"
#include "runtime/comm/TcpStore.h"

#include <cuda_runtime.h>
#include <gloo/rendezvous/prefix_store.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace forge::comm {
namespace {

using Clock = std::chrono::steady_clock;

class NcclCommunicator : public Communicator {
public:
  /// `failed` is shared by every communicator of one connection (groups
  /// and pipeline channels): after any of them fails, all are aborted at
  /// teardown rather than destroyed, since ncclCommDestroy may wait for
  /// peers that are stuck in another collective.
  NcclCommunicator(std::string name, std::vector<int> members, int rank,
                   double timeoutSec, std::shared_ptr<std::atomic<bool>> failed)
      : name_(std::move(name)), members_(std::move(members)), rank_(rank),
        timeoutSec_(timeoutSec), failed_(std::move(failed)) {}
  ~NcclCommunicator() override {
    if (comm_)
      (broken_ || failed_->load() ? ncclCommAbort : ncclCommDestroy)(comm_);
    if (scratch_)
      cudaFree(scratch_);
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  /// ncclCommInitRank with the group's unique id from `store` (published
  /// by group rank 0). Throws on failure.
  void init(gloo::rendezvous::Store &store) {
    ncclUniqueId id;
    const std::string key = "nccl-unique-id";
    if (rank_ == 0) {
      check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      store.set(key,
                std::vector<char>(reinterpret_cast<char *>(&id),
                                  reinterpret_cast<char *>(&id) + sizeof(id)));
    } else {
      // A file store's get waits only gloo's fixed 30 s: wait first, for
      // the job's timeout (a TCP store's get honours it anyway).
      store.wait({key}, std::chrono::milliseconds(
                            static_cast<int64_t>(timeoutSec_ * 1000.0)));
      std::vector<char> bytes = store.get(key);
      if (bytes.size() != sizeof(id))
        throw std::runtime_error("the NCCL unique id in the store has " +
                                 std::to_string(bytes.size()) + " bytes, not " +
                                 std::to_string(sizeof(id)));
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
    if (cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) !=
        cudaSuccess)
      throw std::runtime_error("cannot create the communication stream");
    if (cudaMalloc(&scratch_, sizeof(float)) != cudaSuccess)
      throw std::runtime_error("cannot allocate the barrier's scratch");
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t st =
        ncclCommInitRankConfig(&comm_, size(), id, rank_, &config);
    if (st != ncclSuccess && st != ncclInProgress) {
      // Possibly half made: abort it at teardown, never destroy it.
      markBroken();
      check(st, "ncclCommInitRankConfig");
    }
    if (std::string e = settle("ncclCommInitRank"); !e.empty())
      throw std::runtime_error(e);
  }

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  const std::string &name() const override { return name_; }
  double setTimeout(double seconds) override {
    const double previous = timeoutSec_;
    timeoutSec_ = seconds;
    return previous;
  }

  std::string allReduce(float *data, size_t count, ReduceOp op,
                        const std::string &why) override {
    return run("all_reduce", why, [&] {
      return ncclAllReduce(data, data, count, ncclFloat32, ncclOp(op), comm_,
                           stream_);
    });
  }
  std::string allGather(const void *in, void *out, size_t bytesPerRank,
                        const std::string &why) override {
    return run("all_gather", why, [&] {
      return ncclAllGather(in, out, bytesPerRank, ncclUint8, comm_, stream_);
    });
  }
  std::string reduceScatter(const float *in, float *out, size_t countPerRank,
                            ReduceOp op, const std::string &why) override {
    return run("reduce_scatter", why, [&] {
      return ncclReduceScatter(in, out, countPerRank, ncclFloat32, ncclOp(op),
                               comm_, stream_);
    });
  }
  std::string allToAll(const void *in, void *out, size_t bytesPerRank,
                       const std::string &why) override {
    std::vector<size_t> sizes(size(), bytesPerRank);
    return allToAllV(in, sizes, out, sizes, why);
  }
  std::string allToAllV(const void *in, const std::vector<size_t> &inBytes,
                        void *out, const std::vector<size_t> &outBytes,
                        const std::string &why) override {
    if (inBytes.size() != static_cast<size_t>(size()) ||
        outBytes.size() != static_cast<size_t>(size()))
      return "all_to_all in group '" + name_ + "' for " + why + ": " +
             std::to_string(inBytes.size()) + " send and " +
             std::to_string(outBytes.size()) + " receive sizes for " +
             std::to_string(size()) + " ranks";
    return run("all_to_all", why, [&] {
      ncclResult_t st = ncclGroupStart();
      size_t at = 0, from = 0;
      for (int peer = 0; peer < size() && st == ncclSuccess; ++peer) {
        st = ncclSend(static_cast<const char *>(in) + at, inBytes[peer],
                      ncclUint8, peer, comm_, stream_);
        if (st == ncclSuccess)
          st = ncclRecv(static_cast<char *>(out) + from, outBytes[peer],
                        ncclUint8, peer, comm_, stream_);
        at += inBytes[peer];
        from += outBytes[peer];
      }
      ncclResult_t end = ncclGroupEnd();
      return st != ncclSuccess ? st : end;
    });
  }
  std::string broadcast(void *data, size_t bytes, int root,
                        const std::string &why) override {
    return run("broadcast", why, [&] {
      return ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_);
    });
  }
  std::string send(const void *data, size_t bytes, int peer, uint32_t,
                   const std::string &why) override {
    return run("send", why, [&] {
      return ncclSend(data, bytes, ncclUint8, peer, comm_, stream_);
    });
  }
  std::string recv(void *data, size_t bytes, int peer, uint32_t,
                   const std::string &why) override {
    return run("recv", why, [&] {
      return ncclRecv(data, bytes, ncclUint8, peer, comm_, stream_);
    });
  }
  std::string barrier(const std::string &why) override {
    return run("barrier", why, [&] {
      return ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_,
                           stream_);
    });
  }

private:
  static ncclRedOp_t ncclOp(ReduceOp op) {
    return op == ReduceOp::Max   ? ncclMax
           : op == ReduceOp::Avg ? ncclAvg
                                 : ncclSum;
  }
  void markBroken() {
    broken_ = true;
    failed_->store(true);
  }
  static void check(ncclResult_t st, const char *what) {
    if (st != ncclSuccess)
      throw std::runtime_error(std::string(what) + ": " +
                               ncclGetErrorString(st));
  }

  /// Waits until the communicator's pending call has been taken (and, with
  /// `drain`, the stream has finished it), an error or the deadline.
  std::string settle(const char *what, bool drain = false) {
    const auto deadline =
        Clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(timeoutSec_ * 1000.0));
    for (;;) {
      ncclResult_t st = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &st) != ncclSuccess)
        st = ncclInternalError;
      if (st != ncclSuccess && st != ncclInProgress) {
        markBroken();
        return std::string(what) + ": " + ncclGetErrorString(st);
      }
      if (st == ncclSuccess) {
        if (!drain)
          return "";
        cudaError_t q = cudaStreamQuery(stream_);
        if (q == cudaSuccess)
          return "";
        if (q != cudaErrorNotReady) {
          markBroken();
          return std::string(what) + ": " + cudaGetErrorString(q);
        }
      }
      if (Clock::now() > deadline) {
        markBroken();
        ncclCommAbort(comm_);
        comm_ = nullptr;
        return std::string(what) + ": timed out (aborted the communicator)";
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  template <typename F>
  std::string run(const char *what, const std::string &why, F &&enqueue) {
    std::string e;
    if (!comm_) {
      e = "the communicator was aborted by an earlier failure";
    } else {
      ncclResult_t st = enqueue();
      if (st != ncclSuccess && st != ncclInProgress) {
        markBroken();
        e = ncclGetErrorString(st);
      } else {
        e = settle(what, true);
      }
    }
    if (e.empty())
      return "";
    // Appended piece by piece: GCC 12 warns (-Wrestrict, a known false
    // positive) on the equivalent chain of operator+.
    std::string message = what;
    message += " in group '";
    message += name_;
    message += "' (world ranks ";
    for (size_t i = 0; i < members_.size(); ++i) {
      if (i)
        message += ',';
      message += std::to_string(members_[i]);
    }
    message += ") for ";
    message += why;
    message += " failed: ";
    message += e;
    message += " (a peer rank died, hung, or timed out after ";
    message += std::to_string(static_cast<int64_t>(timeoutSec_));
    message += " s)";
    return message;
  }

  std::string name_;
  std::vector<int> members_;
  int rank_;
  double timeoutSec_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  float *scratch_ = nullptr;
  bool broken_ = false;
  std::shared_ptr<std::atomic<bool>> failed_;
};

class NcclComms : public Comms {
public:
  Communicator &world() override { return *world_; }
  Communicator *group(const std::string &dim) override {
    for (auto &[name, c] : groups_)
      if (name == dim)
        return c.get();
    return nullptr;
  }
  int coordinate(const std::string &dim) const override {
    for (auto &[name, c] : groups_)
      if (name == dim)
        return c->rank();
    return 0;
  }

  std::string
  openChannels(const std::vector<ChannelKey> &keys,
               std::vector<std::unique_ptr<Communicator>> &out) override {
    out.clear();
    out.resize(keys.size());
    // Each channel's init waits for its other end. Every rank opens its
    // channels in the same global order, so the lowest channel not yet open
    // always has both ends waiting on it: no cycle of waits.
    std::vector<size_t> order(keys.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return keys[a] < keys[b]; });
    for (size_t i : order) {
      const ChannelKey &k = keys[i];
      const MeshGroup *g = nullptr;
      for (const MeshGroup &m : meshGroups_)
        if (m.dim == k.dim)
          g = &m;
      const int n = g ? static_cast<int>(g->members.size()) : 0;
      if (!g || k.src < 0 || k.dst < 0 || k.src >= n || k.dst >= n ||
          k.src == k.dst || (g->coordinate != k.src && g->coordinate != k.dst))
        return "no channel from rank " + std::to_string(k.src) + " to " +
               std::to_string(k.dst) + " of group '" + k.dim +
               "' through this rank";
      const std::string name = k.dim + " channel " + std::to_string(k.src) +
                               "->" + std::to_string(k.dst) + " (tag " +
                               std::to_string(k.tag) + ")";
      try {
        gloo::rendezvous::PrefixStore prefixed(
            "nccl/" + g->prefix + "/p2p/" + std::to_string(k.src) + "-" +
                std::to_string(k.dst) + "-" + std::to_string(k.tag),
            *store_);
        auto c = std::make_unique<NcclCommunicator>(
            name, std::vector<int>{g->members[k.src], g->members[k.dst]},
            g->coordinate == k.src ? 0 : 1, timeoutSec_, failed_);
        c->init(prefixed);
        out[i] = std::move(c);
      } catch (const std::exception &e) {
        out.clear();
        return "opening the " + name + ": " + e.what();
      }
    }
    return "";
  }

  std::unique_ptr<NcclCommunicator> world_;
  std::vector<std::pair<std::string, std::unique_ptr<NcclCommunicator>>>
      groups_;
  /// For channels opened after connecting: the rendezvous (kept open), the
  /// mesh groups through this rank and the collectives' timeout.
  std::unique_ptr<gloo::rendezvous::Store> store_;
  std::vector<MeshGroup> meshGroups_;
  double timeoutSec_ = 0;
  std::shared_ptr<std::atomic<bool>> failed_ =
      std::make_shared<std::atomic<bool>>(false);
};

} // namespace

std::string ncclVersionString() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess)
    return "unknown";
  // NCCL_VERSION(X, Y, Z) = X * 10000 + Y * 100 + Z since 2.9.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

std::unique_ptr<Comms> connectNccl(const WorldInfo &world,
                                   const MeshShape &mesh, int device,
                                   std::string &error) {
  int64_t product = 1;
  for (int64_t s : mesh.sizes)
    product *= s;
  if (mesh.dims.size() != mesh.sizes.size() || product != world.size) {
    error = "the mesh has " + std::to_string(product) + " ranks, the world " +
            std::to_string(world.size);
    return nullptr;
  }
  auto comms = std::make_unique<NcclComms>();
  try {
    if (cudaSetDevice(device) != cudaSuccess)
      throw std::runtime_error("cannot use cuda:" + std::to_string(device));
    const auto timeout = std::chrono::milliseconds(
        static_cast<int64_t>(world.timeoutSec * 1000.0));
    std::unique_ptr<gloo::rendezvous::Store> storage =
        openRendezvous(world, timeout);
    std::vector<int> all(world.size);
    for (int r = 0; r < world.size; ++r)
      all[r] = r;
    {
      gloo::rendezvous::PrefixStore prefixed("nccl/world", *storage);
      comms->world_ = std::make_unique<NcclCommunicator>(
          "world", all, world.rank, world.timeoutSec, comms->failed_);
      comms->world_->init(prefixed);
    }
    for (const MeshGroup &g : meshGroups(world.rank, mesh)) {
      gloo::rendezvous::PrefixStore prefixed("nccl/" + g.prefix, *storage);
      auto c = std::make_unique<NcclCommunicator>(
          g.dim, g.members, g.coordinate, world.timeoutSec, comms->failed_);
      c->init(prefixed);
      comms->groups_.push_back({g.dim, std::move(c)});
      comms->meshGroups_.push_back(g);
    }
    comms->store_ = std::move(storage);
    comms->timeoutSec_ = world.timeoutSec;
  } catch (const std::exception &e) {
    error = "rank " + std::to_string(world.rank) + " of " +
            std::to_string(world.size) + ": connecting over NCCL through " +
            (world.storePath.empty()
                 ? world.masterAddr + ":" + std::to_string(world.masterPort)
                 : world.storePath) +
            " failed: " + e.what();
    return nullptr;
  }
  return comms;
}

} // namespace forge::comm
