//===- TcpStore.h - A key-value rendezvous store over TCP -------*- C++ -*-===//
//
// What torchrun's MASTER_ADDR:MASTER_PORT provides: rank 0 serves a small
// key-value store, every rank (rank 0 too) is a client. gloo's contexts
// exchange their addresses through it. `get` and `wait` block until the key
// exists or the timeout passes.
//
// Wire format, one request at a time per connection: a byte ('S' set, 'G'
// get), a u32 key length and the key; 'S' then a u32 value length and the
// value (answered by one byte), 'G' is answered by a u32 length and the
// value once the key exists. A get that times out leaves its request
// pending on the connection, so the store closes the connection then: a
// later call fails saying so rather than reading that request's answer.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_COMM_TCPSTORE_H
#define FORGE_RUNTIME_COMM_TCPSTORE_H

#include "runtime/comm/Communicator.h"

#include <gloo/rendezvous/store.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace forge::comm {

class TcpStore : public gloo::rendezvous::Store {
public:
  /// Serves the store on `port` when `serve` (rank 0), then connects to
  /// addr:port, retrying until `timeout`. Throws std::runtime_error saying
  /// what failed.
  TcpStore(const std::string &addr, int port, bool serve,
           std::chrono::milliseconds timeout);
  ~TcpStore() override;

  void set(const std::string &key, const std::vector<char> &data) override;
  std::vector<char> get(const std::string &key) override;
  void wait(const std::vector<std::string> &keys) override;
  void wait(const std::vector<std::string> &keys,
            const std::chrono::milliseconds &timeout) override;

  struct Server;

private:
  /// `key`'s value, waiting at most `left` for it to exist (what is left
  /// of the caller's `timeout`, which the error names).
  std::vector<char> fetch(const std::string &key,
                          std::chrono::milliseconds left,
                          std::chrono::milliseconds timeout);
  /// Throws, saying the connection is gone, when a timeout closed it.
  void checkOpen(const std::string &doing) const;

  std::shared_ptr<Server> server_;
  int fd_ = -1;
  std::mutex mu_;
  std::chrono::milliseconds timeout_;
};

/// The rendezvous of `world`: gloo's file store in world.storePath, or
/// the TCP store at masterAddr:masterPort, served by rank 0 unless
/// world.storeServedHere.
std::unique_ptr<gloo::rendezvous::Store>
openRendezvous(const WorldInfo &world, std::chrono::milliseconds timeout);

} // namespace forge::comm

#endif // FORGE_RUNTIME_COMM_TCPSTORE_H
