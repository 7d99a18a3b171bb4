// EndpointTable: every endpoint of the relay, in kNumShards shards keyed by
// VNI, each behind its own std::shared_mutex. It owns the per-endpoint state
// (the two sides, their bound addresses and handshake state, their traffic
// figures), removal, the expiry test and the session view; it knows nothing
// of allocation (Server) or of the handshake rules (handshake.h).
//
// Locking. Readers (the fast path, on every core) take one shard shared;
// writers (handshakes, removal) take it exclusively and only to change
// state, never across crypto. One shard lock at a time, and never before
// the allocation mutex (lock_order.h; checked in debug builds).
//
//   table.WithShared(vni, [&](const Endpoint* ep) { ... });  // may be null
//   table.WithExclusive(vni, [&](Endpoint* ep) { ... });
#ifndef PEERRELAY_RELAY_ENDPOINT_TABLE_H_
#define PEERRELAY_RELAY_ENDPOINT_TABLE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/socket_address.h"
#include "disco/key.h"
#include "disco/message.h"
#include "relay/lock_order.h"

namespace peerrelay::relay {

// Hot per-side state the fast path writes, on its own cache line so the
// two sides (often relayed by different cores) never share one. Written
// under the shard's shared lock, hence atomic.
struct alignas(64) SideStats {
  std::atomic<int64_t> last_seen_ns{0};
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
};

// One client of an endpoint. Guarded by the shard lock except `stats`.
struct Side {
  disco::DiscoKey key;
  // Computed on the first control message from this side (not at
  // allocation, so allocation floods cost no Curve25519 work) and cached.
  std::optional<disco::SharedKey> shared;
  bool bound = false;
  SocketAddress addr;  // valid when bound
  // current dialect: the nonces (first 8 bytes) of the last
  // kAnswersRemembered Answers that bound this side. A replayed Answer is
  // refused by its nonce: its MAC alone would still verify, from the
  // address it was captured at, until the MAC secret has rotated twice.
  static constexpr size_t kAnswersRemembered = 8;
  std::array<uint64_t, kAnswersRemembered> answer_nonces{};
  uint8_t next_answer = 0;
  // seed dialect: the address the first Bind came from, and the challenge.
  bool bind_seen = false;
  SocketAddress bind_addr;
  disco::Challenge seed_challenge{};
  // Atomics the fast path updates under the shard's *shared* lock, so
  // writable through a const Endpoint.
  mutable SideStats stats;
};

struct Endpoint {
  uint32_t vni = 0;
  uint64_t lamport_id = 0;
  std::string owner;  // who allocated it (per-caller cap); may be empty
  int64_t allocated_at_ns = 0;
  std::array<Side, 2> sides;  // sorted by key

  bool BothBound() const { return sides[0].bound && sides[1].bound; }
  int SideOf(const disco::DiscoKey& k) const {
    if (sides[0].key == k) return 0;
    if (sides[1].key == k) return 1;
    return -1;
  }
};

// One endpoint as the session view shows it.
struct SessionInfo {
  uint32_t vni = 0;
  uint64_t lamport_id = 0;
  std::array<disco::DiscoKey, 2> client_keys;
  std::array<std::optional<SocketAddress>, 2> bound;
  int64_t allocated_at_ns = 0;
  std::array<int64_t, 2> last_seen_ns{};  // 0: never
  // Relayed *from* side i (to the other side).
  std::array<uint64_t, 2> packets{};
  std::array<uint64_t, 2> bytes{};
};

// Endpoints by how many of their sides have completed a handshake, named
// as Tailscale's relay names them: open (none yet), semi_bound (one),
// bound (both; data flows).
struct EndpointStates {
  size_t open = 0;
  size_t semi_bound = 0;
  size_t bound = 0;
};

// Which endpoints a session listing shows: every one, or those with a
// client whose key's hex text starts with `key_hex_prefix`, and/or one
// bound to `address` (any port when its port is 0).
struct SessionFilter {
  std::string key_hex_prefix;  // lowercase hex; empty: any key
  std::optional<SocketAddress> address;
  bool empty() const { return key_hex_prefix.empty() && !address; }
  bool Matches(const Endpoint& ep) const;
};

// Who keeps a copy of the bound pairs: the XDP tier's map of pairs it
// forwards in the kernel (engine/xdp_tier.h). The table calls it with the
// endpoint's shard lock held exclusively, right where the state changes, so
// the calls for one VNI arrive in the order the table changed: a removal is
// never overtaken by the bind it cancels. It must not call back into the
// table (it may take locks of its own that it never holds while calling the
// table).
class PairObserver {
 public:
  virtual ~PairObserver() = default;
  // `ep` is now bound on both sides: newly, or one side moved (re-bind).
  virtual void PairBound(const Endpoint& ep) = 0;
  // `ep`, bound on both sides until now, is leaving the table.
  virtual void PairRemoved(const Endpoint& ep) = 0;
};

class EndpointTable {
 public:
  // 256 shards: with VNIs handed out in sequence, endpoints spread evenly,
  // and two cores contend only when they touch the same shard at once.
  static constexpr uint32_t kNumShards = 256;

  EndpointTable(int64_t bind_lifetime_ns, int64_t steady_state_lifetime_ns)
      : bind_lifetime_ns_(bind_lifetime_ns),
        steady_state_lifetime_ns_(steady_state_lifetime_ns) {}

  // Calls fn(const Endpoint*) under the shard's shared lock (nullptr when
  // `vni` is not in the table) and returns what it returns. The pointer is
  // valid only inside fn.
  template <typename Fn>
  auto WithShared(uint32_t vni, Fn&& fn) const {
    const Shard& shard = ShardFor(vni);
    ShardLockScope scope;
    std::shared_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(vni);
    return fn(it == shard.endpoints.end() ? nullptr : it->second.get());
  }
  // The same with the shard's exclusive lock and a mutable endpoint.
  template <typename Fn>
  auto WithExclusive(uint32_t vni, Fn&& fn) {
    Shard& shard = ShardFor(vni);
    ShardLockScope scope;
    std::unique_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(vni);
    return fn(it == shard.endpoints.end() ? nullptr : it->second.get());
  }

  // WithExclusive for a change to an endpoint's sides: when it leaves the
  // endpoint bound on both sides with addresses other than before, the
  // observer hears of it under the same lock.
  template <typename Fn>
  auto Mutate(uint32_t vni, Fn&& fn) {
    return WithExclusive(vni, [&](Endpoint* ep) {
      const Forwarding before = ForwardingOf(ep);
      auto result = fn(ep);
      if (PairObserver* o = observer_.load(std::memory_order_acquire)) {
        const Forwarding after = ForwardingOf(ep);
        if (after && after != before) o->PairBound(*ep);
      }
      return result;
    });
  }
  // Sets (or clears, with null) who mirrors the bound pairs, and tells it
  // of every pair bound now, one shard at a time under its exclusive lock.
  void SetObserver(PairObserver* observer);

  void Insert(std::unique_ptr<Endpoint> ep);
  // Removes `vni` (only if it has expired at `if_expired_at`, when given)
  // and returns it; nullptr when nothing was removed.
  std::unique_ptr<Endpoint> Remove(uint32_t vni,
                                   std::optional<int64_t> if_expired_at);
  // Not bound on both sides and older than the bind lifetime, or bound and
  // either side silent for longer than the steady-state lifetime.
  bool Expired(const Endpoint& ep, int64_t now_ns) const;
  // Appends the VNIs of shard `shard` that have expired at `now_ns` (read
  // under the shared lock; Remove re-checks).
  void CollectExpired(uint32_t shard, int64_t now_ns,
                      std::vector<uint32_t>* out) const;

  // The `limit` lowest VNIs (a scan of 4 bytes per endpoint first, then a
  // copy of those only); `total` (when given) gets how many there are.
  // Only endpoints `filter` matches are listed and counted.
  std::vector<SessionInfo> Sessions(
      size_t limit = std::numeric_limits<size_t>::max(),
      size_t* total = nullptr, const SessionFilter& filter = {}) const;
  size_t size() const { return count_.load(std::memory_order_relaxed); }
  // Endpoints by state, counted without copying sessions.
  EndpointStates StateCounts() const;
  size_t bound_count() const { return StateCounts().bound; }

 private:
  struct alignas(64) Shard {
    mutable std::shared_mutex mu;
    absl::flat_hash_map<uint32_t, std::unique_ptr<Endpoint>> endpoints;
  };
  // The two bound addresses, when `ep` is bound on both sides.
  using Forwarding = std::optional<std::array<SocketAddress, 2>>;
  static Forwarding ForwardingOf(const Endpoint* ep) {
    if (ep == nullptr || !ep->BothBound()) return std::nullopt;
    return std::array<SocketAddress, 2>{ep->sides[0].addr, ep->sides[1].addr};
  }
  Shard& ShardFor(uint32_t vni) { return shards_[vni % kNumShards]; }
  const Shard& ShardFor(uint32_t vni) const {
    return shards_[vni % kNumShards];
  }

  const int64_t bind_lifetime_ns_;
  const int64_t steady_state_lifetime_ns_;
  std::atomic<size_t> count_{0};
  std::atomic<PairObserver*> observer_{nullptr};
  std::array<Shard, kNumShards> shards_;
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_ENDPOINT_TABLE_H_
