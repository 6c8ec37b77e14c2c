//===- TcpStore.cpp - A key-value rendezvous store over TCP ---------------===//

#include "runtime/comm/TcpStore.h"

#include <gloo/rendezvous/file_store.h>

#include <algorithm>
#include <arpa/inet.h>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace forge::comm {
namespace {

[[noreturn]] void fail(const std::string &what) {
  throw std::runtime_error("TCP store: " + what);
}

/// Reads or writes exactly `n` bytes; false on EOF or error.
bool readAll(int fd, void *p, size_t n) {
  auto *c = static_cast<char *>(p);
  while (n) {
    ssize_t r = ::read(fd, c, n);
    if (r <= 0)
      return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool writeAll(int fd, const void *p, size_t n) {
  const auto *c = static_cast<const char *>(p);
  while (n) {
    ssize_t r = ::send(fd, c, n, MSG_NOSIGNAL);
    if (r <= 0)
      return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// Whether the other end of `fd` has closed it (a request is pending, so
/// there is nothing else to read).
bool hungUp(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

bool readString(int fd, std::string &s) {
  uint32_t n;
  if (!readAll(fd, &n, 4))
    return false;
  s.resize(n);
  return readAll(fd, s.data(), n);
}

} // namespace

/// The store itself, on rank 0: one thread per client connection.
struct TcpStore::Server {
  int listenFd = -1;
  std::mutex mu;
  std::condition_variable changed;
  std::map<std::string, std::string> data;

  void serveClient(int fd) {
    for (;;) {
      char op;
      std::string key;
      if (!readAll(fd, &op, 1) || !readString(fd, key))
        break;
      if (op == 'S') {
        std::string value;
        if (!readString(fd, value))
          break;
        {
          std::lock_guard<std::mutex> lock(mu);
          data[key] = std::move(value);
        }
        changed.notify_all();
        char ok = 1;
        if (!writeAll(fd, &ok, 1))
          break;
      } else if (op == 'G') {
        std::string value;
        bool gone = false;
        {
          // A client whose read timed out closes its connection: stop
          // waiting for it then, instead of holding a thread forever.
          std::unique_lock<std::mutex> lock(mu);
          while (!changed.wait_for(lock, std::chrono::milliseconds(200),
                                   [&] { return data.count(key) > 0; }))
            if ((gone = hungUp(fd)))
              break;
          if (!gone)
            value = data[key];
        }
        if (gone)
          break;
        uint32_t n = static_cast<uint32_t>(value.size());
        if (!writeAll(fd, &n, 4) || !writeAll(fd, value.data(), n))
          break;
      } else {
        break;
      }
    }
    ::close(fd);
  }
};

namespace {
/// The stores this process serves, by port. A server outlives its TcpStore
/// (below), and rank 0 opens the rendezvous more than once (gloo, then
/// NCCL with --device cuda): a second TcpStore that serves a port this
/// process already serves joins that server instead of failing to bind.
std::mutex servedMu;
std::map<int, std::weak_ptr<TcpStore::Server>> served;
} // namespace

TcpStore::TcpStore(const std::string &addr, int port, bool serve,
                   std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  std::unique_lock<std::mutex> servedLock(servedMu);
  if (serve)
    server_ = served[port].lock();
  if (serve && !server_) {
    server_ = std::make_shared<Server>();
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) ||
        ::listen(fd, 1024))
      fail("rank 0 cannot listen on port " + std::to_string(port) + ": " +
           std::strerror(errno));
    server_->listenFd = fd;
    served[port] = server_;
    // The server lives as long as the process: ranks may still read keys
    // after rank 0 has finished its own rendezvous.
    std::thread([s = server_] {
      for (;;) {
        int c = ::accept(s->listenFd, nullptr, nullptr);
        if (c < 0)
          return;
        std::thread([s, c] { s->serveClient(c); }).detach();
      }
    }).detach();
  }
  servedLock.unlock();
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = ::getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints,
                            &res))
    fail("cannot resolve MASTER_ADDR '" + addr + "': " + gai_strerror(e));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ >= 0 && ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0)
      break;
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::freeaddrinfo(res);
      fail("no store at " + addr + ":" + std::to_string(port) + " after " +
           std::to_string(timeout.count() / 1000) +
           " s (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::freeaddrinfo(res);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

TcpStore::~TcpStore() {
  if (fd_ >= 0)
    ::close(fd_);
}

void TcpStore::checkOpen(const std::string &doing) const {
  if (fd_ < 0)
    fail("cannot " + doing +
         ": the connection to rank 0 was closed when an "
         "earlier read timed out");
}

void TcpStore::set(const std::string &key, const std::vector<char> &value) {
  std::lock_guard<std::mutex> lock(mu_);
  checkOpen("set '" + key + "'");
  uint32_t k = static_cast<uint32_t>(key.size()),
           v = static_cast<uint32_t>(value.size());
  char ok = 0;
  if (!writeAll(fd_, "S", 1) || !writeAll(fd_, &k, 4) ||
      !writeAll(fd_, key.data(), k) || !writeAll(fd_, &v, 4) ||
      !writeAll(fd_, value.data(), v) || !readAll(fd_, &ok, 1))
    fail("lost the connection to rank 0 while setting '" + key + "'");
}

std::vector<char> TcpStore::get(const std::string &key) {
  return fetch(key, timeout_, timeout_);
}

std::vector<char> TcpStore::fetch(const std::string &key,
                                  std::chrono::milliseconds left,
                                  std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  checkOpen("read '" + key + "'");
  uint32_t k = static_cast<uint32_t>(key.size());
  if (!writeAll(fd_, "G", 1) || !writeAll(fd_, &k, 4) ||
      !writeAll(fd_, key.data(), k))
    fail("lost the connection to rank 0 while reading '" + key + "'");
  pollfd p{fd_, POLLIN, 0};
  const auto ms = std::clamp<int64_t>(left.count(), 0, INT32_MAX);
  if (::poll(&p, 1, static_cast<int>(ms)) <= 0) {
    // The request is still pending: its answer must never be taken for a
    // later request's.
    ::close(fd_);
    fd_ = -1;
    char within[32];
    std::snprintf(within, sizeof(within), "%g",
                  static_cast<double>(timeout.count()) / 1000.0);
    fail("'" + key + "' did not appear within " + within +
         " s (a rank did not reach the rendezvous)");
  }
  uint32_t n;
  std::vector<char> out;
  if (!readAll(fd_, &n, 4))
    fail("lost the connection to rank 0 while reading '" + key + "'");
  out.resize(n);
  if (!readAll(fd_, out.data(), n))
    fail("lost the connection to rank 0 while reading '" + key + "'");
  return out;
}

void TcpStore::wait(const std::vector<std::string> &keys) {
  wait(keys, timeout_);
}

void TcpStore::wait(const std::vector<std::string> &keys,
                    const std::chrono::milliseconds &timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const std::string &k : keys)
    fetch(k,
          std::max(std::chrono::milliseconds(0),
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       deadline - std::chrono::steady_clock::now())),
          timeout);
}

std::unique_ptr<gloo::rendezvous::Store>
openRendezvous(const WorldInfo &world, std::chrono::milliseconds timeout) {
  if (!world.storePath.empty())
    return std::make_unique<gloo::rendezvous::FileStore>(world.storePath);
  return std::make_unique<TcpStore>(world.masterAddr, world.masterPort,
                                    world.rank == 0 && !world.storeServedHere,
                                    timeout);
}

} // namespace forge::comm
