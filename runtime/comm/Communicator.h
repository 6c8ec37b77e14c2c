//===- Communicator.h - Collectives over one mesh-axis group ----*- C++ -*-===//
//
// The runtime's only view of communication (design.md §3): one Communicator
// per group of ranks that share every mesh coordinate but one (a dp_shard
// group, a tp group, ...), plus the world group. Backends: gloo over TCP on
// the CPU (comm/Gloo*), NCCL on CUDA (later). Every call names the plan op
// that issued it (`why`, e.g. "layers.0.attention.q_proj.weight
// all_gather"), so a failure or timeout on any rank reports the rank, the
// collective, its group and that op — never a silent hang.
//
// Errors are returned as strings ("" = success); nothing throws across
// this interface.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_COMM_COMMUNICATOR_H
#define FORGE_RUNTIME_COMM_COMMUNICATOR_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace forge::comm {

enum class ReduceOp { Sum, Avg, Max };

/// Collectives among the ranks of one group. Buffers are host memory;
/// reductions are over f32 (reference §3.6: gradients reduce in fp32).
/// Rank i's part of a gathered or scattered buffer is the i-th contiguous
/// block, in group-rank order.
class Communicator {
public:
  virtual ~Communicator() = default;

  /// This process's rank in the group, and the group's size.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// The group's name for messages: "world", "dp_shard", "tp", ...
  virtual const std::string &name() const = 0;

  /// In place: every rank ends with the reduction of all ranks' `data`.
  virtual std::string allReduce(float *data, size_t count, ReduceOp op,
                                const std::string &why) = 0;
  /// `out` (size() * bytesPerRank) gets every rank's `in` block, in rank
  /// order. `in` may alias this rank's block of `out`.
  virtual std::string allGather(const void *in, void *out, size_t bytesPerRank,
                                const std::string &why) = 0;
  /// `in` holds size() blocks of countPerRank floats; `out` (countPerRank)
  /// gets the reduction of every rank's block number rank().
  virtual std::string reduceScatter(const float *in, float *out,
                                    size_t countPerRank, ReduceOp op,
                                    const std::string &why) = 0;
  /// Block i of `in` goes to rank i; block j of `out` comes from rank j.
  virtual std::string allToAll(const void *in, void *out, size_t bytesPerRank,
                               const std::string &why) = 0;
  /// Variable-size all-to-all: `inBytes[i]` bytes (contiguous, in rank
  /// order) go to rank i; `outBytes[j]` bytes arrive from rank j.
  virtual std::string allToAllV(const void *in,
                                const std::vector<size_t> &inBytes, void *out,
                                const std::vector<size_t> &outBytes,
                                const std::string &why) = 0;
  /// `data` of rank `root` is copied to every rank.
  virtual std::string broadcast(void *data, size_t bytes, int root,
                                const std::string &why) = 0;
  /// Point to point (pipeline stages); matched by (peer, tag).
  virtual std::string send(const void *data, size_t bytes, int peer,
                           uint32_t tag, const std::string &why) = 0;
  virtual std::string recv(void *data, size_t bytes, int peer, uint32_t tag,
                           const std::string &why) = 0;
  virtual std::string barrier(const std::string &why) = 0;
  /// How long this group's collectives wait for a peer before failing
  /// (seconds); returns the previous limit. Between collectives only (the
  /// health check shortens it around its probe).
  virtual double setTimeout(double seconds) = 0;
};

/// Where this process sits among all ranks, and how they meet.
struct WorldInfo {
  int rank = 0;
  int size = 1;
  int localRank = 0;
  /// Rendezvous: a TCP store served by rank 0 at masterAddr:masterPort, or
  /// (when storePath is set) gloo's file store in that shared directory.
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  std::string storePath;
  /// Rank 0 of this process already serves the TCP store (gloo's
  /// connection did, and its server lives as long as the process): later
  /// connections (NCCL's, from libforge-cuda.so, whose copy of the store
  /// code cannot see the executable's) join it as clients.
  bool storeServedHere = false;
  /// Every collective and the rendezvous give up after this long and report
  /// which rank is missing (distributed.nccl_timeout_sec).
  double timeoutSec = 1800;
};

/// The mesh of reference §3.1: dims [pp, dp_replicate, dp_shard, ep, tp]
/// (tp innermost); sizes multiply to the world size.
struct MeshShape {
  std::vector<std::string> dims;
  std::vector<int64_t> sizes;
};

/// The group along one mesh dim through a rank: its members (world ranks,
/// in group-rank order), the rank's place in it, and a rendezvous prefix
/// that names the group the same way on every member.
struct MeshGroup {
  std::string dim;
  std::vector<int> members;
  int coordinate = 0;
  std::string prefix;
};
/// The groups of `rank` along every dim of size > 1, in mesh order
/// (row-major coordinates: dim d's stride is the product of later sizes).
std::vector<MeshGroup> meshGroups(int rank, const MeshShape &mesh);

/// The process's communicators: the world and one per mesh dim of size > 1.
/// One direction of one pipeline edge: the messages of plan tag `tag` from
/// group rank `src` to group rank `dst` of the group along `dim`.
struct ChannelKey {
  std::string dim;
  int src = 0, dst = 0;
  uint32_t tag = 0;
  bool operator<(const ChannelKey &o) const {
    return std::tie(dim, src, dst, tag) < std::tie(o.dim, o.src, o.dst, o.tag);
  }
};

class Comms {
public:
  virtual ~Comms() = default;
  virtual Communicator &world() = 0;
  /// The group along `dim` through this rank; null when the dim has size 1
  /// or is unknown.
  virtual Communicator *group(const std::string &dim) = 0;
  /// This rank's coordinate along `dim` (0 for a size-1 or unknown dim).
  virtual int coordinate(const std::string &dim) const = 0;
  /// A two-rank communicator of its own (group rank 0 = `src`) for each
  /// channel this rank is an end of, in `keys`' order: for transports whose
  /// point-to-point calls block until the peer's matching call and match in
  /// issue order (NCCL), so that each edge's messages go from one sender
  /// thread to one receiving thread, in micro-batch order, independent of
  /// the other edges. Every rank calls it once with the channels of its own
  /// plan; they are opened in one global order. gloo matches messages by
  /// tag on one communicator and has no need of it.
  virtual std::string
  openChannels(const std::vector<ChannelKey> &keys,
               std::vector<std::unique_ptr<Communicator>> &out) {
    (void)keys;
    (void)out;
    return "this transport has no dedicated point-to-point channels";
  }
};

/// NCCL's network settings as KempnerForge sets them (reference §7.5), each
/// only when the user has not: NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME to
/// the first InfiniBand (ib*) interface that is up, running and has an IPv4
/// address (KempnerForge asks only "up"), NCCL_IB_DISABLE=0 and
/// NCCL_NET_GDR_LEVEL=2. Returns what it set, for the log.
std::string setNcclEnvironment();
/// The first interface named ib* that is usable, from (name, usable) pairs
/// in the system's order; empty when none.
std::string firstInfinibandInterface(
    const std::vector<std::pair<std::string, bool>> &interfaces);

/// Connects this process to the others (gloo, TCP transport) and builds the
/// mesh groups. Returns null with `error` set (naming the missing ranks on
/// a timeout).
std::unique_ptr<Comms> connectGloo(const WorldInfo &world,
                                   const MeshShape &mesh, std::string &error);

} // namespace forge::comm

#endif // FORGE_RUNTIME_COMM_COMMUNICATOR_H
