//===- Comm_test.cpp - gloo communicators across forked ranks -------------===//
//
// Each test forks its ranks; every child connects through a fresh file
// store, runs the collectives with known data, and exits with the number of
// mismatches, so the parent's assertion says how many ranks disagreed.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Communicator.h"
#include "runtime/comm/Launch.h"
#include "runtime/comm/TcpStore.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace forge::comm;

namespace {

/// Runs `body(comms, worldRank)` on `n` forked ranks of `mesh`; returns the
/// exit codes (the number of failed checks, or 100 when connecting failed).
std::vector<int> runRanks(int n, const MeshShape &mesh,
                          const std::function<int(Comms &, int)> &body,
                          double timeoutSec = 20) {
  char tmpl[] = "/tmp/forge-comm-test-XXXXXX";
  std::string store = mkdtemp(tmpl);
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      // As forge-run: a write to a dead peer's socket fails (EPIPE) and is
      // reported, rather than killing the rank.
      std::signal(SIGPIPE, SIG_IGN);
      WorldInfo w;
      w.rank = r;
      w.size = n;
      w.storePath = store;
      w.timeoutSec = timeoutSec;
      setenv("FORGE_GLOO_HOST", "127.0.0.1", 1);
      std::string error;
      std::unique_ptr<Comms> comms = connectGloo(w, mesh, error);
      if (!comms) {
        std::fprintf(stderr, "rank %d: %s\n", r, error.c_str());
        _exit(100);
      }
      _exit(body(*comms, r));
    }
    pids.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 200);
  }
  std::filesystem::remove_all(store);
  return codes;
}

int check(bool ok, const char *what, int rank) {
  if (!ok)
    std::fprintf(stderr, "rank %d: %s\n", rank, what);
  return ok ? 0 : 1;
}

TEST(Comm, WorldCollectives) {
  MeshShape mesh{{"dp_shard"}, {4}};
  auto codes = runRanks(4, mesh, [](Comms &c, int r) {
    int bad = 0;
    Communicator &w = c.world();
    bad += check(w.rank() == r && w.size() == 4, "rank/size", r);
    float x[2] = {float(r), 1.0f};
    bad += check(w.allReduce(x, 2, ReduceOp::Sum, "t").empty() && x[0] == 6 &&
                     x[1] == 4,
                 "allReduce sum", r);
    float a = float(r);
    bad += check(w.allReduce(&a, 1, ReduceOp::Avg, "t").empty() && a == 1.5f,
                 "allReduce avg", r);
    float m = float(r * r);
    bad += check(w.allReduce(&m, 1, ReduceOp::Max, "t").empty() && m == 9,
                 "allReduce max", r);
    int32_t mine = 10 + r, all[4] = {};
    bad += check(w.allGather(&mine, all, 4, "t").empty() && all[0] == 10 &&
                     all[3] == 13,
                 "allGather", r);
    // Block b of rank r holds r + 10 * b: rank r gets sum over ranks of
    // (rank + 10 r) = 6 + 40 r.
    float in[4], out = 0;
    for (int b = 0; b < 4; ++b)
      in[b] = float(r + 10 * b);
    bad += check(w.reduceScatter(in, &out, 1, ReduceOp::Sum, "t").empty() &&
                     out == 6 + 40 * r,
                 "reduceScatter", r);
    int32_t send[4], recv[4];
    for (int b = 0; b < 4; ++b)
      send[b] = 100 * r + b;
    bad += check(w.allToAll(send, recv, 4, "t").empty() && recv[0] == r &&
                     recv[3] == 300 + r,
                 "allToAll", r);
    int32_t v = r == 2 ? 77 : 0;
    bad += check(w.broadcast(&v, 4, 2, "t").empty() && v == 77, "broadcast", r);
    int32_t token = r;
    if (r % 2 == 0)
      bad += check(w.send(&token, 4, r + 1, 7, "t").empty(), "send", r);
    else
      bad += check(w.recv(&token, 4, r - 1, 7, "t").empty() && token == r - 1,
                   "recv", r);
    bad += check(w.barrier("t").empty(), "barrier", r);
    return bad;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0, 0, 0}));
}

TEST(Comm, MeshGroupsAreRowMajor) {
  // Mesh [dp_replicate 2, dp_shard 2]: dp_shard groups {0,1}, {2,3};
  // dp_replicate groups {0,2}, {1,3}.
  MeshShape mesh{{"dp_replicate", "dp_shard"}, {2, 2}};
  auto codes = runRanks(4, mesh, [](Comms &c, int r) {
    int bad = 0;
    Communicator *shard = c.group("dp_shard"), *rep = c.group("dp_replicate");
    bad += check(shard && rep && !c.group("tp"), "groups", r);
    if (bad)
      return bad;
    bad += check(c.coordinate("dp_shard") == r % 2 &&
                     c.coordinate("dp_replicate") == r / 2,
                 "coordinates", r);
    float x = float(r);
    bad += check(shard->allReduce(&x, 1, ReduceOp::Sum, "t").empty() &&
                     x == (r < 2 ? 1 : 5),
                 "dp_shard sum", r);
    float y = float(r);
    bad += check(rep->allReduce(&y, 1, ReduceOp::Sum, "t").empty() &&
                     y == (r % 2 == 0 ? 2 : 4),
                 "dp_replicate sum", r);
    return bad;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0, 0, 0}));
}

TEST(Comm, DeadPeerIsReportedNotAwaited) {
  // Rank 1 exits without taking part; rank 0's all-reduce fails with a
  // message naming the collective, the group, its ranks and the op.
  MeshShape mesh{{"dp_shard"}, {2}};
  auto codes = runRanks(
      2, mesh,
      [](Comms &c, int r) {
        // Both are connected before rank 1 leaves.
        if (!c.world().barrier("start").empty())
          return 2;
        if (r == 1)
          return 0;
        float x = 1;
        std::string e = c.world().allReduce(&x, 1, ReduceOp::Sum, "the op");
        bool ok = e.find("all_reduce in group 'world' (world ranks 0,1) for "
                         "the op failed") != std::string::npos;
        if (!ok)
          std::fprintf(stderr, "got: %s\n", e.c_str());
        return ok ? 0 : 1;
      },
      // The dead peer is seen at once (its socket closes); the timeout only
      // bounds a regression, and leaves the rendezvous room on a busy CI.
      /*timeoutSec=*/10);
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

/// A loopback port that was free a moment ago (0 if none could be bound),
/// below the kernel's ephemeral range (32768 up): a port handed out for
/// bind(0) could be taken again, before the test binds it, by any socket a
/// concurrent multi-rank test opens.
int freePort() {
  std::mt19937 pick(std::random_device{}());
  std::uniform_int_distribution<int> ports(10000, 31999);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = ports(pick);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      return 0;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    const bool free =
        bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) == 0;
    close(fd);
    if (free)
      return port;
  }
  return 0;
}

// Rank 0 opens the rendezvous twice with --device cuda (gloo, then NCCL):
// the second store that serves the port joins this process's server, whose
// keys both see, instead of failing to bind it.
TEST(Comm, TcpStoreServedTwiceInOneProcess) {
  const int port = freePort();
  ASSERT_GT(port, 0);
  const std::chrono::milliseconds timeout(5000);
  TcpStore first("127.0.0.1", port, true, timeout);
  first.set("gloo/key", {'a'});
  std::unique_ptr<TcpStore> second;
  ASSERT_NO_THROW(
      second = std::make_unique<TcpStore>("127.0.0.1", port, true, timeout));
  second->set("nccl/key", {'b'});
  EXPECT_EQ(second->get("gloo/key"), std::vector<char>{'a'});
  EXPECT_EQ(first.get("nccl/key"), std::vector<char>{'b'});
}

// libforge-cuda.so has its own copy of the store code, which cannot see the
// executable's record of the port it serves: NCCL's rendezvous on rank 0
// must be told (WorldInfo::storeServedHere) to join the server gloo's
// started rather than bind the port again. Here the server is held by
// another process, which no registry of this one can see either.
TEST(Comm, RendezvousJoinsTheStoreServedHere) {
  const int port = freePort();
  ASSERT_GT(port, 0);
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    TcpStore server("127.0.0.1", port, true, std::chrono::milliseconds(5000));
    server.set("gloo/key", {'g'});
    char c = 1;
    if (write(ready[1], &c, 1) != 1)
      _exit(1);
    close(done[1]);
    (void)!read(done[0], &c, 1); // until the test is done with the server
    _exit(0);
  }
  close(done[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  WorldInfo w;
  w.rank = 0;
  w.size = 2;
  w.masterAddr = "127.0.0.1";
  w.masterPort = port;
  std::string error = "no error";
  try {
    openRendezvous(w, std::chrono::milliseconds(2000));
  } catch (const std::exception &e) {
    error = e.what();
  }
  EXPECT_NE(error.find("rank 0 cannot listen on port " + std::to_string(port) +
                       ": Address already in use"),
            std::string::npos)
      << error;
  w.storeServedHere = true;
  auto store = openRendezvous(w, std::chrono::milliseconds(5000));
  EXPECT_EQ(store->get("gloo/key"), std::vector<char>{'g'});
  store->set("nccl/key", {'n'});
  EXPECT_EQ(store->get("nccl/key"), std::vector<char>{'n'});
  close(done[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// A read that times out leaves its request pending on the connection: the
// client closes it, so a later call fails saying why instead of taking that
// request's answer for its own; the server stops waiting for the closed
// client; wait() honours its own timeout; other clients go on.
TEST(Comm, TcpStoreReadTimeoutClosesTheConnection) {
  const int port = freePort();
  ASSERT_GT(port, 0);
  TcpStore server("127.0.0.1", port, true, std::chrono::milliseconds(5000));
  TcpStore client("127.0.0.1", port, false, std::chrono::milliseconds(300));
  auto message = [](const std::function<void()> &f) {
    try {
      f();
    } catch (const std::exception &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { client.get("late"); }),
            "TCP store: 'late' did not appear within 0.3 s (a rank did not "
            "reach the rendezvous)");
  server.set("late", {'x'});
  EXPECT_EQ(message([&] { client.get("late"); }),
            "TCP store: cannot read 'late': the connection to rank 0 was "
            "closed when an earlier read timed out");
  EXPECT_EQ(message([&] { client.set("k", {'y'}); }),
            "TCP store: cannot set 'k': the connection to rank 0 was closed "
            "when an earlier read timed out");
  // The server's own store (default timeout 5 s) waits 1.5 s when told to,
  // for all the keys together (room for 'late' on a busy machine).
  EXPECT_EQ(message([&] {
              server.wait({"late", "never"}, std::chrono::milliseconds(1500));
            }),
            "TCP store: 'never' did not appear within 1.5 s (a rank did not "
            "reach the rendezvous)");
  TcpStore other("127.0.0.1", port, false, std::chrono::milliseconds(5000));
  EXPECT_EQ(other.get("late"), std::vector<char>{'x'});
}

TEST(Comm, TcpStoreRendezvous) {
  // No FORGE_STORE_PATH: rank 0 serves the store at MASTER_ADDR:MASTER_PORT.
  const int port = freePort();
  ASSERT_GT(port, 0);
  std::vector<pid_t> pids;
  for (int r = 0; r < 3; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      WorldInfo w;
      w.rank = r;
      w.size = 3;
      w.masterAddr = "127.0.0.1";
      w.masterPort = port;
      w.timeoutSec = 20;
      setenv("FORGE_GLOO_HOST", "127.0.0.1", 1);
      std::string error;
      auto comms = connectGloo(w, MeshShape{{"dp_shard"}, {3}}, error);
      if (!comms) {
        std::fprintf(stderr, "rank %d: %s\n", r, error.c_str());
        _exit(100);
      }
      float x = 1;
      _exit(comms->world().allReduce(&x, 1, ReduceOp::Sum, "t").empty() &&
                    x == 3
                ? 0
                : 1);
    }
    pids.push_back(pid);
  }
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

TEST(Comm, NoStoreServerIsAnError) {
  WorldInfo w;
  w.rank = 1;
  w.size = 2;
  w.masterAddr = "127.0.0.1";
  w.masterPort = 1; // nothing listens there
  w.timeoutSec = 0.3;
  std::string error;
  EXPECT_EQ(connectGloo(w, MeshShape{{"dp_shard"}, {2}}, error), nullptr);
  EXPECT_NE(error.find("no store at 127.0.0.1:1"), std::string::npos) << error;
}

TEST(Comm, MismatchedMeshIsAnError) {
  WorldInfo w;
  w.size = 2;
  std::string error;
  w.storePath = "/tmp";
  EXPECT_EQ(connectGloo(w, MeshShape{{"dp_shard"}, {4}}, error), nullptr);
  EXPECT_NE(error.find("the mesh has 4 ranks, the world 2"), std::string::npos)
      << error;
}

} // namespace

TEST(Launch, FirstSlurmHost) {
  EXPECT_EQ(forge::comm::firstSlurmHost("node07"), "node07");
  EXPECT_EQ(forge::comm::firstSlurmHost("gpu[03-05,09],cpu1"), "gpu03");
  EXPECT_EQ(forge::comm::firstSlurmHost("a1,b[1-2]"), "a1");
  EXPECT_EQ(forge::comm::firstSlurmHost("rack[2-3]-n[01-04]"), "rack2-n01");
  EXPECT_EQ(forge::comm::firstSlurmHost("gpu[x-y]"), "");
  EXPECT_EQ(forge::comm::firstSlurmHost("gpu[03"), "");
  EXPECT_EQ(forge::comm::firstSlurmHost(""), "");
}

namespace {

TEST(Mesh, GroupsAlongEveryDimOfSizeAboveOne) {
  // [pp 2, dp_shard 2, tp 2]: rank 5 = (1, 0, 1).
  MeshShape mesh{{"pp", "dp_replicate", "dp_shard", "tp"}, {2, 1, 2, 2}};
  std::vector<MeshGroup> g = meshGroups(5, mesh);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].dim, "pp");
  EXPECT_EQ(g[0].members, (std::vector<int>{1, 5}));
  EXPECT_EQ(g[0].coordinate, 1);
  EXPECT_EQ(g[1].dim, "dp_shard");
  EXPECT_EQ(g[1].members, (std::vector<int>{5, 7}));
  EXPECT_EQ(g[1].coordinate, 0);
  EXPECT_EQ(g[2].dim, "tp");
  EXPECT_EQ(g[2].members, (std::vector<int>{4, 5}));
  EXPECT_EQ(g[2].coordinate, 1);
  // The prefix names the group the same way on every member.
  EXPECT_EQ(meshGroups(7, mesh)[1].prefix, g[1].prefix);
}

TEST(Mesh, FirstInfinibandInterfaceThatIsUp) {
  EXPECT_EQ(firstInfinibandInterface(
                {{"lo", true}, {"ib0", false}, {"eth0", true}, {"ib1", true}}),
            "ib1");
  EXPECT_EQ(firstInfinibandInterface({{"lo", true}, {"eth0", true}}), "");
}

TEST(Mesh, NcclEnvironmentKeepsWhatTheUserSet) {
  setenv("NCCL_IB_DISABLE", "1", 1);
  unsetenv("NCCL_NET_GDR_LEVEL");
  std::string set = setNcclEnvironment();
  EXPECT_STREQ(std::getenv("NCCL_IB_DISABLE"), "1");
  EXPECT_STREQ(std::getenv("NCCL_NET_GDR_LEVEL"), "2");
  EXPECT_NE(set.find("NCCL_NET_GDR_LEVEL=2"), std::string::npos);
  EXPECT_EQ(set.find("NCCL_IB_DISABLE"), std::string::npos);
}

} // namespace
