// HandshakeLimiter: how much slow-path (crypto) work one worker hands on,
// per source address (IP and port) and in total, before the datagram is
// even queued. Datagrams
// over either limit are dropped and counted as kRateLimited, so a handshake
// flood costs a hash lookup per datagram and cannot crowd the queue.
//
// One per worker, used only by that worker's thread (no locking). A
// source's datagrams (one 4-tuple) always reach the same worker, so the
// per-source limit holds per worker; the total is divided among workers.
//
// The per-source key is the whole address, not the IP alone: many clients
// share one IP behind a NAT (each with its own port), and one of them must
// not use up the others' handshakes. A flood from many ports of one host is
// what the total limit is for. (WireGuard, under load, allows 20
// handshakes/s per source IP with a burst of 5; a disco client sends a
// handful of handshake messages per path every few seconds.)
#ifndef PEERRELAY_ENGINE_HANDSHAKE_LIMITER_H_
#define PEERRELAY_ENGINE_HANDSHAKE_LIMITER_H_

#include <cstdint>

#include "common/socket_address.h"
#include "common/token_bucket.h"

namespace peerrelay::engine {

class HandshakeLimiter {
 public:
  // Sources tracked at most; beyond it, idle (refilled) entries are evicted
  // and, while none is, new sources are limited.
  static constexpr size_t kMaxSources = 65536;

  // A rate of 0 disables that limit.
  HandshakeLimiter(double per_source_rate, double per_source_burst,
                   double total_rate, double total_burst);

  bool Allow(const SocketAddress& from, int64_t now_ns);
  size_t tracked_sources() const { return sources_.size(); }

 private:
  const bool per_source_on_;
  const double total_rate_, total_burst_;
  TokenBucket total_;
  KeyedTokenBuckets<SocketAddress> sources_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_HANDSHAKE_LIMITER_H_
