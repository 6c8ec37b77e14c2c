//===- Launch.cpp - Joining the ranks of a multi-rank plan ----------------===//

#include "runtime/comm/Launch.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace forge::comm {
namespace {

/// A non-negative integer variable, or -1 when unset.
bool readInt(const char *name, int &out, std::string &error) {
  const char *v = std::getenv(name);
  out = -1;
  if (!v || !*v)
    return true;
  char *end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end || x < 0) {
    error = std::string(name) + "='" + v + "' is not a non-negative integer";
    return false;
  }
  out = static_cast<int>(x);
  return true;
}

volatile sig_atomic_t forwarded = 0;
void onSignal(int sig) { forwarded = sig; }

} // namespace

std::string worldFromEnvironment(WorldInfo &world) {
  std::string error;
  int rank, size, local;
  const char *rankVar = "RANK", *sizeVar = "WORLD_SIZE",
             *localVar = "LOCAL_RANK";
  const bool slurm = !std::getenv("RANK") && std::getenv("SLURM_PROCID");
  if (slurm) {
    rankVar = "SLURM_PROCID";
    sizeVar = "SLURM_NTASKS";
    localVar = "SLURM_LOCALID";
  }
  if (!readInt(rankVar, rank, error) || !readInt(sizeVar, size, error) ||
      !readInt(localVar, local, error))
    return error;
  if (rank < 0 && size < 0)
    return ""; // not launched as one of several ranks
  if (rank < 0 || size < 1 || rank >= size)
    return std::string(rankVar) + " and " + sizeVar +
           " must both be set, with 0 <= " + rankVar + " < " + sizeVar;
  world.rank = rank;
  world.size = size;
  world.localRank = local < 0 ? 0 : local;
  if (const char *a = std::getenv("MASTER_ADDR"); a && *a)
    world.masterAddr = a;
  int port;
  if (!readInt("MASTER_PORT", port, error))
    return error;
  if (port > 0)
    world.masterPort = port;
  if (slurm) {
    // `srun forge-run plan.bin` on its own: every task of the job derives
    // the same rendezvous point.
    const char *list = std::getenv("SLURM_JOB_NODELIST");
    if (!list)
      list = std::getenv("SLURM_NODELIST");
    if (!std::getenv("MASTER_ADDR") && list) {
      world.masterAddr = firstSlurmHost(list);
      if (world.masterAddr.empty())
        return std::string(
                   "cannot read the first host of SLURM_JOB_NODELIST='") +
               list + "'; set MASTER_ADDR";
    }
    int job;
    if (port <= 0 && readInt("SLURM_JOB_ID", job, error) && job >= 0)
      world.masterPort = 20000 + job % 10000;
    if (!error.empty())
      return error;
  }
  if (const char *p = std::getenv("FORGE_STORE_PATH"); p && *p)
    world.storePath = p;
  if (const char *t = std::getenv("FORGE_COMM_TIMEOUT_SEC"); t && *t) {
    char *end = nullptr;
    double s = std::strtod(t, &end);
    if (*end || !(s > 0))
      return std::string("FORGE_COMM_TIMEOUT_SEC='") + t +
             "' is not a positive number of seconds";
    world.timeoutSec = s;
  }
  return "";
}

std::string firstSlurmHost(const std::string &nodeList) {
  // The first entry: up to a comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodeList.size(); ++end) {
    char c = nodeList[end];
    if (c == '[')
      ++depth;
    else if (c == ']' && --depth < 0)
      return "";
    else if (c == ',' && depth == 0)
      break;
  }
  // Each "[a-b,c]" group (there may be several: "rack[1-2]-n[01-04]")
  // becomes its first number.
  std::string entry = nodeList.substr(0, end), host;
  size_t at = 0;
  for (;;) {
    size_t open = entry.find('[', at);
    if (open == std::string::npos)
      break;
    size_t close = entry.find(']', open);
    if (close == std::string::npos)
      return "";
    std::string first = entry.substr(open + 1, close - open - 1);
    first = first.substr(0, first.find_first_of(",-"));
    if (first.empty() ||
        first.find_first_not_of("0123456789") != std::string::npos)
      return "";
    host += entry.substr(at, open - at) + first;
    at = close + 1;
  }
  host += entry.substr(at);
  return host.empty() || host[0] == '[' ? "" : host;
}

int launchLocal(int nproc, int argc, char **argv) {
  // The children get every argument but --nproc-per-node.
  std::vector<std::string> args = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--nproc-per-node") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc-per-node=", 0) == 0)
      continue;
    args.push_back(a);
  }
  char tmpl[] = "/tmp/forge-store-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::fprintf(stderr,
                 "forge-run: error: cannot create the rendezvous "
                 "directory: %s\n",
                 std::strerror(errno));
    return 1;
  }
  std::string store = tmpl;
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGUSR1, onSignal);
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "forge-run: error: cannot start rank %d: %s\n", r,
                   std::strerror(errno));
      for (pid_t p : pids)
        kill(p, SIGTERM);
      return 1;
    }
    if (pid == 0) {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      std::signal(SIGUSR1, SIG_DFL);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("FORGE_STORE_PATH", store.c_str(), 1);
      setenv("FORGE_GLOO_HOST", "127.0.0.1", 1);
      std::vector<char *> cargs;
      for (std::string &a : args)
        cargs.push_back(a.data());
      cargs.push_back(nullptr);
      execv("/proc/self/exe", cargs.data());
      std::fprintf(stderr, "forge-run: error: cannot run rank %d: %s\n", r,
                   std::strerror(errno));
      _exit(127);
    }
    pids.push_back(pid);
  }
  // Supervise: the first rank to fail stops the others (SIGKILL once they
  // had a moment to report), so no rank waits forever on a peer. Not
  // SIGTERM: a rank takes that for a preemption and would try to save a
  // checkpoint with a dead peer.
  int failedRank = -1, failedSignal = 0, code = 0, left = nproc;
  bool allClean = true; ///< every rank exited 0 (a graceful shutdown)
  bool stopping = false;
  auto stopAll = [&](int sig) {
    for (size_t i = 0; i < pids.size(); ++i)
      if (pids[i] > 0)
        kill(pids[i], sig);
  };
  auto deadline = std::chrono::steady_clock::time_point::max();
  auto termAt = std::chrono::steady_clock::time_point::max();
  // How long the supervisor sleeps when no rank has ended. A testing hook
  // (FORGE_LAUNCH_POLL_MS) makes it long, so that several ranks end
  // between two looks, as on a loaded machine.
  int pollMs = 1;
  if (const char *v = std::getenv("FORGE_LAUNCH_POLL_MS"); v && *v)
    pollMs = std::max(1, std::atoi(v));
  while (left > 0) {
    if (forwarded && !stopping) {
      // SIGTERM and SIGUSR1 (a preemption) let the ranks finish the step,
      // save and exit on their own (each ends itself after
      // train.shutdown_timeout_sec); SIGINT stops them.
      stopAll(forwarded);
      stopping = true;
      deadline = std::chrono::steady_clock::now() +
                 std::chrono::seconds(forwarded == SIGINT ? 30 : 3600);
    }
    if (std::chrono::steady_clock::now() > termAt) {
      stopAll(SIGKILL);
      termAt = std::chrono::steady_clock::time_point::max();
    }
    // Every rank that has ended since the last look, not only the first:
    // when a rank is killed, its peers fail their next collective and exit
    // too, and waitpid may hand one of them back before the rank whose
    // death caused it.
    std::vector<std::pair<int, int>> ended; ///< (rank, status)
    for (;;) {
      int status;
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0)
        break;
      for (size_t i = 0; i < pids.size(); ++i)
        if (pids[i] == pid) {
          ended.push_back({static_cast<int>(i), status});
          pids[i] = -1;
        }
    }
    if (ended.empty()) {
      if (std::chrono::steady_clock::now() > deadline) {
        stopAll(SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(pollMs));
      continue;
    }
    auto exitCode = [](int status) {
      return WIFEXITED(status)     ? WEXITSTATUS(status)
             : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                   : 1;
    };
    // The cause among them: a rank killed by a signal (nothing here has
    // sent one yet) before one that exited with an error, which is how a
    // rank leaves after a peer's death.
    const std::pair<int, int> *cause = nullptr;
    for (const auto &e : ended) {
      left -= 1;
      const int rc = exitCode(e.second);
      allClean &= rc == 0;
      if (rc != 0 &&
          (!cause || (WIFSIGNALED(e.second) && !WIFSIGNALED(cause->second))))
        cause = &e;
    }
    if (cause && failedRank < 0 && !stopping) {
      // The peers of a dead rank usually fail their next collective at
      // once and say where; give them a moment to report, then stop them.
      // 5 s, not less: on a loaded machine (CI runs two multi-rank tests
      // on two cores) a peer took over 2 s to reach its next collective,
      // and its report was lost.
      failedRank = cause->first;
      code = exitCode(cause->second);
      failedSignal = WIFSIGNALED(cause->second) ? WTERMSIG(cause->second) : 0;
      stopping = true;
      termAt = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(store, ec);
  if (failedRank >= 0) {
    if (failedSignal)
      std::fprintf(stderr,
                   "forge-run: rank %d of %d was killed by signal %d (%s); "
                   "stopped the other ranks\n",
                   failedRank, nproc, failedSignal, strsignal(failedSignal));
    else
      std::fprintf(stderr,
                   "forge-run: rank %d of %d exited with code %d; stopped "
                   "the other ranks\n",
                   failedRank, nproc, code);
    return code;
  }
  if (forwarded && !allClean)
    return 128 + forwarded;
  return 0;
}

} // namespace forge::comm
