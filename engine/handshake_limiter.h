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
//
// Between the two, a budget per endpoint side (VNI and client key, which
// every disco datagram carries in the clear): forgeries naming a live side
// from any number of ports pass the per-source limit and the precheck, and
// without this would spend the total budget, failing other clients'
// handshakes. With it they spend only that side's share. What the named
// side can lose: while the flood lasts its own Binds and Answers compete
// with the forgeries for its share, so it may not (re-)bind until the
// flood stops; its bound path keeps relaying (data is not limited), and no
// other endpoint is affected. Allocation requests (VNI 0, from allowlisted
// keys, which may allocate many endpoints a second) are not shared per
// key: forgeries naming an allowlisted key are bounded by the per-source
// and total limits only.
#ifndef PEERRELAY_ENGINE_HANDSHAKE_LIMITER_H_
#define PEERRELAY_ENGINE_HANDSHAKE_LIMITER_H_

#include <cstdint>

#include "common/socket_address.h"
#include "common/token_bucket.h"
#include "relay/server.h"

namespace peerrelay::engine {

class HandshakeLimiter {
 public:
  // Sources tracked at most; beyond it, idle (refilled) entries are evicted
  // and, while none is, new sources are limited.
  static constexpr size_t kMaxSources = 65536;
  // Endpoint sides tracked at most (only live sides pass the precheck).
  static constexpr size_t kMaxSides = 65536;

  // A rate of 0 disables that limit.
  HandshakeLimiter(double per_source_rate, double per_source_burst,
                   double total_rate, double total_burst,
                   double per_side_rate = 0, double per_side_burst = 0);

  // `side`: whom the datagram names (Server::PrecheckControl).
  bool Allow(const SocketAddress& from, const relay::ControlSide& side,
             int64_t now_ns);
  size_t tracked_sources() const { return sources_.size(); }

 private:
  const bool per_source_on_;
  const double total_rate_, total_burst_;
  TokenBucket total_;
  KeyedTokenBuckets<SocketAddress> sources_;
  const bool per_side_on_;
  KeyedTokenBuckets<relay::ControlSide> sides_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_HANDSHAKE_LIMITER_H_
