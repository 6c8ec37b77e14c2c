//===- Gloo.cpp - Communicators over gloo's TCP transport -----------------===//
//
// One gloo context per group: the world, and for each mesh dim of size > 1
// the ranks that share every other coordinate (row-major mesh, last dim
// innermost, like torch's DeviceMesh). Contexts meet through a file store
// (a shared directory) or a TCP store served by rank 0, under a per-group
// prefix. gloo reports a dead or hung peer by throwing
// (I/O error, timeout); every call turns that into a message naming this
// rank, the collective, the group, its ranks and the op that issued it.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Communicator.h"
#include "runtime/comm/TcpStore.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace forge::comm {
namespace {

class GlooCommunicator : public Communicator {
public:
  GlooCommunicator(std::string name, std::vector<int> members, int rank,
                   std::shared_ptr<gloo::Context> ctx,
                   std::chrono::milliseconds timeout)
      : name_(std::move(name)), members_(std::move(members)), rank_(rank),
        ctx_(std::move(ctx)), timeout_(timeout) {}

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  double setTimeout(double seconds) override {
    const double previous = static_cast<double>(timeout_.count()) / 1000.0;
    timeout_ = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    return previous;
  }
  const std::string &name() const override { return name_; }

  std::string allReduce(float *data, size_t count, ReduceOp op,
                        const std::string &why) override {
    return guard("all_reduce", why, [&] {
      gloo::AllreduceOptions o(ctx_);
      o.setOutput(data, count);
      o.setTimeout(timeout_);
      o.setTag(nextTag());
      using Reduce = void (*)(void *, const void *, const void *, size_t);
      Reduce fn = op == ReduceOp::Max ? static_cast<Reduce>(&gloo::max<float>)
                                      : static_cast<Reduce>(&gloo::sum<float>);
      o.setReduceFunction(fn);
      gloo::allreduce(o);
      if (op == ReduceOp::Avg)
        for (size_t i = 0; i < count; ++i)
          data[i] /= static_cast<float>(size());
    });
  }

  std::string allGather(const void *in, void *out, size_t bytesPerRank,
                        const std::string &why) override {
    return guard("all_gather", why, [&] {
      auto *dst = static_cast<char *>(out);
      char *mine = dst + rank_ * bytesPerRank;
      if (in != mine)
        std::memcpy(mine, in, bytesPerRank);
      gloo::AllgatherOptions o(ctx_);
      o.setOutput(dst, bytesPerRank * size());
      o.setTimeout(timeout_);
      o.setTag(nextTag());
      gloo::allgather(o);
    });
  }

  std::string reduceScatter(const float *in, float *out, size_t countPerRank,
                            ReduceOp op, const std::string &why) override {
    // An all-reduce of the whole buffer, then this rank's block: the same
    // result as a reduce-scatter at size() times its traffic. Correctness
    // first; gloo's halving-doubling reduce-scatter can replace it.
    std::vector<float> all(in, in + countPerRank * size());
    if (std::string e = allReduce(all.data(), all.size(), op, why); !e.empty())
      return e;
    std::memcpy(out, all.data() + rank_ * countPerRank,
                countPerRank * sizeof(float));
    return "";
  }

  std::string allToAll(const void *in, void *out, size_t bytesPerRank,
                       const std::string &why) override {
    return guard("all_to_all", why, [&] {
      gloo::AlltoallOptions o(ctx_);
      o.setInput(const_cast<char *>(static_cast<const char *>(in)),
                 bytesPerRank * size());
      o.setOutput(static_cast<char *>(out), bytesPerRank * size());
      o.setTimeout(timeout_);
      o.setTag(nextTag());
      gloo::alltoall(o);
    });
  }

  std::string allToAllV(const void *in, const std::vector<size_t> &inBytes,
                        void *out, const std::vector<size_t> &outBytes,
                        const std::string &why) override {
    return guard("all_to_all_v", why, [&] {
      gloo::AlltoallvOptions o(ctx_);
      o.setInput(const_cast<char *>(static_cast<const char *>(in)),
                 std::vector<int64_t>(inBytes.begin(), inBytes.end()));
      o.setOutput(static_cast<char *>(out),
                  std::vector<int64_t>(outBytes.begin(), outBytes.end()));
      o.setTimeout(timeout_);
      o.setTag(nextTag());
      gloo::alltoallv(o);
    });
  }

  std::string broadcast(void *data, size_t bytes, int root,
                        const std::string &why) override {
    return guard("broadcast", why, [&] {
      gloo::BroadcastOptions o(ctx_);
      o.setOutput(static_cast<char *>(data), bytes);
      o.setRoot(root);
      o.setTimeout(timeout_);
      o.setTag(nextTag());
      gloo::broadcast(o);
    });
  }

  std::string send(const void *data, size_t bytes, int peer, uint32_t tag,
                   const std::string &why) override {
    return guard("send", why, [&] {
      auto buf = ctx_->createUnboundBuffer(const_cast<void *>(data), bytes);
      buf->send(peer, tag);
      if (!buf->waitSend(timeout_))
        throw std::runtime_error("timed out sending to rank " +
                                 std::to_string(peer));
    });
  }

  std::string recv(void *data, size_t bytes, int peer, uint32_t tag,
                   const std::string &why) override {
    return guard("recv", why, [&] {
      auto buf = ctx_->createUnboundBuffer(data, bytes);
      buf->recv(peer, tag);
      if (!buf->waitRecv(timeout_))
        throw std::runtime_error("timed out receiving from rank " +
                                 std::to_string(peer));
    });
  }

  std::string barrier(const std::string &why) override {
    return guard("barrier", why, [&] {
      gloo::BarrierOptions o(ctx_);
      o.setTimeout(timeout_);
      o.setTag(nextTag());
      gloo::barrier(o);
    });
  }

private:
  /// Collectives of one group run in the same order on every member, so a
  /// per-group counter gives matching tags.
  uint32_t nextTag() { return tag_++; }

  template <typename F>
  std::string guard(const char *what, const std::string &why, F &&f) {
    try {
      f();
      return "";
    } catch (const std::exception &e) {
      std::string ranks;
      for (size_t i = 0; i < members_.size(); ++i)
        ranks += (i ? "," : "") + std::to_string(members_[i]);
      return std::string(what) + " in group '" + name_ + "' (world ranks " +
             ranks + ") for " + why + " failed: " + e.what() +
             " (a peer rank died, hung, or timed out after " +
             std::to_string(timeout_.count() / 1000) + " s)";
    }
  }

  std::string name_;
  std::vector<int> members_; ///< world ranks, in group-rank order
  int rank_;
  std::shared_ptr<gloo::Context> ctx_;
  std::chrono::milliseconds timeout_;
  uint32_t tag_ = 1;
};

class GlooComms : public Comms {
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

  std::unique_ptr<GlooCommunicator> world_;
  std::vector<std::pair<std::string, std::unique_ptr<GlooCommunicator>>>
      groups_;
};

} // namespace

std::unique_ptr<Comms> connectGloo(const WorldInfo &world,
                                   const MeshShape &mesh, std::string &error) {
  int64_t product = 1;
  for (int64_t s : mesh.sizes)
    product *= s;
  if (mesh.dims.size() != mesh.sizes.size() || product != world.size) {
    error = "the mesh has " + std::to_string(product) + " ranks, the world " +
            std::to_string(world.size);
    return nullptr;
  }
  auto timeout = std::chrono::milliseconds(
      static_cast<int64_t>(world.timeoutSec * 1000.0));
  auto comms = std::make_unique<GlooComms>();
  try {
    gloo::transport::tcp::attr attr;
    if (const char *iface = std::getenv("GLOO_SOCKET_IFNAME"); iface && *iface)
      attr.iface = iface;
    else if (const char *host = std::getenv("FORGE_GLOO_HOST"); host && *host)
      attr.hostname = host;
    else {
      char name[256] = {};
      gethostname(name, sizeof(name) - 1);
      attr.hostname = name;
    }
    auto device = gloo::transport::tcp::CreateDevice(attr);
    // The rendezvous: gloo's file store in a shared directory, or the TCP
    // store rank 0 serves at MASTER_ADDR:MASTER_PORT (torchrun's way).
    std::unique_ptr<gloo::rendezvous::Store> storage =
        openRendezvous(world, timeout);
    gloo::rendezvous::Store &store = *storage;
    auto connect = [&](const std::string &prefix, int rank, int size) {
      gloo::rendezvous::PrefixStore prefixed(prefix, store);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
      ctx->setTimeout(timeout);
      ctx->connectFullMesh(prefixed, device);
      return ctx;
    };
    std::vector<int> all(world.size);
    for (int r = 0; r < world.size; ++r)
      all[r] = r;
    comms->world_ = std::make_unique<GlooCommunicator>(
        "world", all, world.rank, connect("world", world.rank, world.size),
        timeout);
    for (const MeshGroup &g : meshGroups(world.rank, mesh))
      comms->groups_.push_back(
          {g.dim, std::make_unique<GlooCommunicator>(
                      g.dim, g.members, g.coordinate,
                      connect(g.prefix, g.coordinate,
                              static_cast<int>(g.members.size())),
                      timeout)});
  } catch (const std::exception &e) {
    error = "rank " + std::to_string(world.rank) + " of " +
            std::to_string(world.size) + ": connecting through " +
            (world.storePath.empty()
                 ? world.masterAddr + ":" + std::to_string(world.masterPort)
                 : world.storePath) +
            " failed: " + e.what();
    return nullptr;
  }
  return comms;
}

} // namespace forge::comm
