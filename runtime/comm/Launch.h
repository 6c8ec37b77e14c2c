//===- Launch.h - Joining the ranks of a multi-rank plan --------*- C++ -*-===//
//
// How a forge-run process learns its place among the ranks: from
// torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK) or Slurm's
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), set by `forge-run
// --nproc-per-node N` itself for local ranks. The ranks meet at rank 0's
// TCP store at MASTER_ADDR:MASTER_PORT (under Slurm without them: the first
// host of SLURM_JOB_NODELIST and a port derived from SLURM_JOB_ID, the
// same in every task of the job), or through gloo's file store in
// FORGE_STORE_PATH, a directory every rank can reach.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_COMM_LAUNCH_H
#define FORGE_RUNTIME_COMM_LAUNCH_H

#include "runtime/comm/Communicator.h"

#include <string>

namespace forge::comm {

/// Fills `world` from the environment; a single rank when no launcher
/// variables are set. Returns why the variables are unusable, or "".
std::string worldFromEnvironment(WorldInfo &world);

/// The first host of a Slurm node list (SLURM_JOB_NODELIST): "node07" for
/// "node07", "gpu[03-05,09],cpu1" gives "gpu03" (the range's own digits,
/// zero padding kept). Empty for an empty or malformed list.
std::string firstSlurmHost(const std::string &nodeList);

/// `forge-run --nproc-per-node N ...`: runs N copies of this program with
/// the other arguments as local ranks 0..N-1 (RANK, WORLD_SIZE, LOCAL_RANK,
/// a fresh FORGE_STORE_PATH), forwards SIGINT/SIGTERM, and when a rank
/// fails stops the others. Returns the exit code: 0 when every rank
/// succeeded, else that of the first rank to fail (128 + signal when it was
/// killed), after printing which rank it was.
int launchLocal(int nproc, int argc, char **argv);

} // namespace forge::comm

#endif // FORGE_RUNTIME_COMM_LAUNCH_H
