//===- Nccl.h - Collectives over NCCL for the CUDA backend ------*- C++ -*-===//
//
// The CUDA backend's Communicator: one NCCL communicator per mesh group
// (and the world), created with ncclCommInitRank from a unique id that the
// group's rank 0 publishes in the rendezvous store (the TCP store of
// MASTER_ADDR:MASTER_PORT, or the file store of FORGE_STORE_PATH, as gloo).
//
// Buffers are device memory on the process's GPU. Each call enqueues its
// NCCL operation on the group's own stream and waits for it; the wait polls
// the stream and ncclCommGetAsyncError, and after `timeout` seconds (from
// distributed.nccl_timeout_sec) aborts the communicator and returns the
// same message as gloo's: rank, collective, group and plan op.
//
// Point to point: NCCL matches sends and receives between two ranks in
// issue order and has no tags; `tag` is ignored (forge's pipeline schedule
// issues them in the same order on both sides).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_COMM_NCCL_H
#define FORGE_RUNTIME_COMM_NCCL_H

#include "runtime/comm/Communicator.h"

#include <memory>
#include <string>

namespace forge::comm {

/// Connects this process's GPU (`device`, already current) to the other
/// ranks over NCCL and builds the mesh groups. Returns null with `error`
/// set when the rendezvous or NCCL's initialization fails.
std::unique_ptr<Comms> connectNccl(const WorldInfo &world,
                                   const MeshShape &mesh, int device,
                                   std::string &error);

/// NCCL's version, e.g. "2.28.3", for forge-run --backends.
std::string ncclVersionString();

} // namespace forge::comm

#endif // FORGE_RUNTIME_COMM_NCCL_H
