// Server: the relay's semantics, with no I/O (docs/protocol.md, "Server
// behaviour"). Bytes, a source address and `now` go in; a verdict, or a
// reply to send, comes out. The engine (engine/) owns the sockets. The
// endpoints live in an EndpointTable (endpoint_table.h); the handshake rules
// of each dialect are in handshake.h.
//
// Pipeline of one datagram:
//   engine recv -> Classify() -> Forward{dest} -> engine sends it unchanged
//                             -> SlowPath      -> queue -> HandleControl()
//                                                 -> reply bytes + dest
//                             -> Drop{reason}  (counted, nothing sent)
//
// Concurrency. Classify() (every core, every data datagram) takes one shard
// lock of the table shared and never a global lock; the slow path and
// expiry take a shard lock exclusively only to apply a state change, never
// while doing crypto. Allocation and the key-pair index are behind
// `alloc_mu_`; lock order is alloc_mu_, then one shard (lock_order.h,
// checked in debug builds).
//
// Time is int64 nanoseconds on a monotonic clock, passed in by the caller
// (read once per batch), so tests drive it with a fake clock.
//
//   auto server = Server::Create(config, now).value();
//   EndpointInfo ep = server->Allocate(key_a, key_b, now).value();
//   Verdict v = server->Classify(pkt, len, 1, len, from, now);
//   if (v.kind == Verdict::kSlowPath) {
//     ControlReply reply;
//     if (server->HandleControl(pkt, len, from, now, &counters, &reply))
//       send(reply.bytes, reply.len, reply.destination);
//   }
//   server->Expire(now);  // periodically
#ifndef PEERRELAY_RELAY_SERVER_H_
#define PEERRELAY_RELAY_SERVER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/log.h"
#include "common/socket_address.h"
#include "common/token_bucket.h"
#include "disco/envelope.h"
#include "disco/key.h"
#include "disco/message.h"
#include "geneve/geneve.h"
#include "relay/challenge_mac.h"
#include "relay/counters.h"
#include "relay/endpoint_table.h"
#include "relay/lock_order.h"
#include "relay/vni_allocator.h"

namespace peerrelay::relay {

inline constexpr int64_t kSecond = 1'000'000'000;
// Three paths of up to 10 s latency each (Tailscale's default).
inline constexpr int64_t kDefaultBindLifetime = 30 * kSecond;
inline constexpr int64_t kDefaultSteadyStateLifetime = 5 * 60 * kSecond;

struct ServerConfig {
  // The server's identity; generated when absent.
  std::optional<disco::KeyPair> key_pair;
  // Candidate addresses (with the relay port) handed to clients.
  std::vector<SocketAddress> addresses;
  int64_t bind_lifetime_ns = kDefaultBindLifetime;
  int64_t steady_state_lifetime_ns = kDefaultSteadyStateLifetime;
  disco::Dialect dialect = disco::Dialect::kCurrent;
  // Cap on endpoints alive at once; 0 means the whole VNI space.
  uint32_t max_endpoints = 0;
  // Cap on endpoints alive at once that one caller (an HTTP client's IP, a
  // UDP requester's key) allocated; 0: none.
  uint32_t max_endpoints_per_caller = 0;
  // New endpoints per second over all callers and transports (token
  // bucket); 0: no limit. Over it, Allocate fails with Unavailable.
  double allocation_rate = 0;
  double allocation_burst = 0;
  // Highest VNI handed out (tests shrink the space to exhaust it).
  uint32_t vni_limit = VniAllocator::kMaxVni;
  // Lamport IDs. Clients keep the endpoint with the highest LamportID per
  // server disco key, so with a key that outlives the process the IDs must
  // keep growing across restarts: the first ID handed out is
  // `lamport_start + 1`; IDs up to `lamport_reserved` need nothing more, and
  // the next one past it calls `reserve_lamport(id)` (under the allocation
  // lock, so rarely: relayd reserves large blocks) for a new high mark
  // (>= id). Without a callback every ID is free to use.
  uint64_t lamport_start = 0;
  uint64_t lamport_reserved = UINT64_MAX;
  std::function<uint64_t(uint64_t id)> reserve_lamport;
};

// What an allocation returns to the client (docs/protocol.md, "Allocation").
struct EndpointInfo {
  disco::DiscoKey server_key;
  std::array<disco::DiscoKey, 2> client_keys;  // sorted
  uint64_t lamport_id = 0;
  uint32_t vni = 0;
  std::vector<SocketAddress> addresses;
  int64_t bind_lifetime_ns = 0;
  int64_t steady_state_lifetime_ns = 0;
};

// Whom a control datagram that passed PrecheckControl names: an endpoint
// side (its VNI and the sender's disco key; VNI 0 and the key for a UDP
// allocation request). Both are in the clear, so anyone can name a live
// side: the handshake budget is shared per side (handshake_limiter.h).
struct ControlSide {
  uint32_t vni = 0;
  disco::DiscoKey sender;
  bool operator==(const ControlSide& o) const {
    return vni == o.vni && sender == o.sender;
  }
  template <typename H>
  friend H AbslHashValue(H h, const ControlSide& s) {
    return H::combine(std::move(h), s.vni, s.sender);
  }
};

struct Verdict {
  enum Kind : uint8_t { kForward, kSlowPath, kDrop };
  Kind kind = kDrop;
  DropReason reason = DropReason::kCount;  // set when kind == kDrop
  SocketAddress destination;               // set when kind == kForward
};

// The appliance's allocation-over-UDP constants (kAllocateVni,
// kMaxResponseAddresses, kAllocateRequestPaddedSize) live in disco/message.h,
// shared with the client.
using disco::kAllocateRequestPaddedSize;
using disco::kAllocateVni;
using disco::kMaxResponseAddresses;
// The largest allocate request plaintext the relay opens.
inline constexpr size_t kMaxAllocateRequest = 400;

// The largest control reply: an allocate response with the most addresses
// (a handshake Challenge is smaller).
inline constexpr size_t kMaxControlReply =
    geneve::kHeaderSize + disco::kEnvelopeOverhead +
    disco::kAllocateResponseFixedSize +
    kMaxResponseAddresses * disco::kAddressEntrySize;

struct ControlReply {
  SocketAddress destination;
  size_t len = 0;
  std::array<uint8_t, kMaxControlReply> bytes;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServerConfig config,
                                                        int64_t now_ns);
  ~Server();

  const disco::DiscoKey& server_key() const { return key_pair_.public_key(); }
  disco::Dialect dialect() const { return dialect_; }

  // Allocates (or returns) the endpoint for the unordered pair {a, b}.
  // Errors: InvalidArgument (a key equals the server's, a == b),
  // Unavailable (no address to advertise yet), ResourceExhausted ("VNI pool
  // exhausted", endpoint cap), FailedPrecondition (server closed).
  // `caller` names who asks, for the per-caller cap (empty: not counted).
  absl::StatusOr<EndpointInfo> Allocate(const disco::DiscoKey& a,
                                        const disco::DiscoKey& b,
                                        int64_t now_ns,
                                        absl::string_view caller = {});

  // The fast-path verdict for a run of `count` datagrams from `from` whose
  // first 8 bytes (the Geneve header) are identical, `total_bytes` in all,
  // `pkt` and `len` being the first of them (a GRO buffer from one client is
  // such a run; a lone datagram is a run of 1): the verdict is the same for
  // each, so it is taken once. On kForward the endpoint side's own
  // packet/byte/last-seen figures move by the run. Nothing else is counted:
  // the engine counts received, relayed and drops itself
  // (engine/worker_path.h), because a drop verdict it may turn into a wait
  // behind the source's queued control datagram ("Per-client order").
  // Control datagrams are a kSlowPath verdict and must be handed on one by
  // one. Never allocates, never blocks on anything but one shard's shared
  // lock.
  Verdict Classify(const uint8_t* pkt, size_t len, uint32_t count,
                   size_t total_bytes, const SocketAddress& from,
                   int64_t now_ns);

  // The slow path for a control datagram (a kSlowPath verdict). Returns true
  // with `reply` filled when a reply must be sent; false when nothing is sent
  // (the handshake completed, or the datagram was dropped: counted in `c`).
  // Thread-safe; does its crypto outside every lock.
  bool HandleControl(const uint8_t* pkt, size_t len, const SocketAddress& from,
                     int64_t now_ns, Counters* c, ControlReply* reply);

  // Removes endpoints whose lifetime has passed and frees their VNIs.
  // Locks one shard at a time. Returns how many were removed.
  size_t Expire(int64_t now_ns);

  // Further allocations fail; relaying goes on.
  void Close();
  void SetAddresses(std::vector<SocketAddress> addresses);
  // Client keys allowed to allocate over UDP (VNI 0 requests). Empty: none.
  // Their shared keys are computed here, once per load, so a forged request
  // naming an allowlisted key costs a box open, not a Curve25519 operation.
  // Low-order keys are left out.
  void SetAllocateAllowlist(absl::flat_hash_set<disco::DiscoKey> keys);
  // The same in two steps, so that a reload computes the shared keys (one
  // Curve25519 each: a large list takes a while) on a thread of its own and
  // only swaps the result in: PrepareAllowlist runs anywhere, with a copy of
  // the server's key pair (server_key_pair()).
  using Allowlist = absl::flat_hash_map<disco::DiscoKey, disco::SharedKey>;
  static Allowlist PrepareAllowlist(
      const absl::flat_hash_set<disco::DiscoKey>& keys,
      const disco::KeyPair& server);
  void SetPreparedAllowlist(Allowlist prepared);
  const disco::KeyPair& server_key_pair() const { return key_pair_; }

  // The workers' check of a control datagram before it is charged to the
  // handshake budget or queued, without crypto: its envelope must name a
  // client of an existing endpoint (or, for VNI 0, an allowlisted key).
  // kCount when it does (and `*side`, if given, says which side it names),
  // else the drop reason.
  DropReason PrecheckControl(const uint8_t* pkt, size_t len,
                             ControlSide* side = nullptr) const;
  std::vector<SocketAddress> addresses() const;

  // Every endpoint, by VNI. With `limit`, only the `limit` lowest VNIs are
  // copied (a scan of 4 bytes per endpoint first, not a full copy), and
  // `total` (when given) receives how many there are.
  std::vector<SessionInfo> Sessions(
      size_t limit = std::numeric_limits<size_t>::max(),
      size_t* total = nullptr, const SessionFilter& filter = {}) const;
  size_t endpoint_count() const;
  // Endpoints by state (open, semi_bound, bound), without copying sessions.
  EndpointStates StateCounts() const { return table_.StateCounts(); }
  // Endpoints bound on both sides.
  size_t bound_count() const { return table_.bound_count(); }
  // Endpoints removed because they expired, since start.
  uint64_t expired_total() const {
    return expired_total_.load(std::memory_order_relaxed);
  }
  // Who mirrors the bound pairs (the XDP tier), or null; it hears of every
  // pair bound now at once (endpoint_table.h, PairObserver).
  void SetPairObserver(PairObserver* observer);
  // Traffic forwarded outside the relay core (by the XDP tier in the
  // kernel) from `side` of the endpoint `vni` while it was the allocation
  // `lamport_id`: moves the side's packet and byte figures, and its last
  // seen time to `now_ns` when `packets` > 0, so the pair does not look
  // idle to expiry. False when that endpoint is gone.
  bool AddKernelTraffic(uint32_t vni, uint64_t lamport_id, int side,
                        uint64_t packets, uint64_t bytes, int64_t now_ns);
  // Test and benchmark hook: marks both sides of `vni` bound to the given
  // addresses as if their handshakes had completed at `now_ns`.
  bool BindForTesting(uint32_t vni, const SocketAddress& a,
                      const SocketAddress& b, int64_t now_ns);

 private:
  using KeyPairIndex =
      absl::flat_hash_map<std::pair<disco::DiscoKey, disco::DiscoKey>,
                          uint32_t>;
  struct OpenedControl;

  Server(ServerConfig config, disco::KeyPair key_pair, int64_t now_ns);

  // Removes `vni` from the table, the pair index and the VNI pool (only if
  // it has expired at `if_expired_at`, when given). Needs alloc_mu_ held.
  std::unique_ptr<Endpoint> RemoveEndpointLocked(
      uint32_t vni, std::optional<int64_t> if_expired_at);
  // Allocate without its log line (which is written outside the lock).
  absl::StatusOr<EndpointInfo> AllocateUnlogged(const disco::DiscoKey& a,
                                                const disco::DiscoKey& b,
                                                int64_t now_ns,
                                                absl::string_view caller);
  EndpointInfo InfoLocked(const Endpoint& ep) const;
  // The pair's endpoint when Allocate must return it as it is (not bound,
  // or bound in the current dialect); removes a dead or replaced one.
  std::optional<EndpointInfo> ExistingLocked(
      const std::pair<disco::DiscoKey, disco::DiscoKey>& pair,
      int64_t now_ns);
  // The caps a new endpoint must pass: total, per caller, rate.
  absl::Status CheckCapsLocked(absl::string_view caller, int64_t now_ns);
  // Step 1 of a handshake message: look up its endpoint and side, get the
  // side's shared key (computed once, then cached), open the box, parse
  // it, and check what needs no endpoint state. Crypto runs outside every
  // lock. kCount when `out` is ready to apply.
  DropReason OpenControl(const geneve::Header& h,
                         const disco::EnvelopeView& env,
                         const SocketAddress& from, int64_t now_ns,
                         Counters* c, OpenedControl* out);
  // The side's cached shared key, computing and caching it on first use.
  std::optional<disco::SharedKey> SharedKeyFor(uint32_t vni, int side,
                                               uint64_t lamport,
                                               const disco::DiscoKey& sender,
                                               Counters* c);
  // Geneve (control, Disco, `vni`) + an envelope from the server sealing
  // `pt` with `key`; returns the reply's length. Used for Challenges and
  // allocate responses alike.
  size_t SealReply(uint32_t vni, const uint8_t* pt, size_t pt_len,
                   const disco::SharedKey& key, uint8_t* out) const;
  bool HandleAllocateRequest(const disco::EnvelopeView& env,
                             size_t request_len, const SocketAddress& from,
                             int64_t now_ns, Counters* c,
                             ControlReply* reply);
  // True the first time `nonce` (of an allocate request from `sender`) is
  // seen; remembers the last kAllocateNoncesKept of each sender.
  bool FirstAllocateNonce(const disco::DiscoKey& sender,
                          const uint8_t* nonce);

  const disco::KeyPair key_pair_;
  const disco::Dialect dialect_;
  const int64_t bind_lifetime_ns_;
  const int64_t steady_state_lifetime_ns_;
  const uint32_t max_endpoints_;
  const uint32_t max_per_caller_;
  const double allocation_rate_, allocation_burst_;
  ChallengeMac mac_;

  mutable AllocationMutex alloc_mu_;
  VniAllocator vnis_;                          // guarded by alloc_mu_
  KeyPairIndex by_pair_;                       // guarded by alloc_mu_
  uint64_t lamport_ = 0;                       // guarded by alloc_mu_
  uint64_t lamport_reserved_;                  // guarded by alloc_mu_
  const std::function<uint64_t(uint64_t)> reserve_lamport_;
  bool closed_ = false;                        // guarded by alloc_mu_
  absl::flat_hash_map<std::string, uint32_t> per_caller_;  // alloc_mu_
  TokenBucket allocation_bucket_;              // guarded by alloc_mu_
  std::vector<SocketAddress> addresses_;       // guarded by alloc_mu_
  std::atomic<uint64_t> expired_total_{0};

  // Events a peer can cause at will are logged within a budget.
  mutable log::RateLimitedLog allocation_log_{10, 50};
  mutable log::RateLimitedLog handshake_log_{10, 50};
  mutable log::RateLimitedLog expiry_log_{10, 50};

  // Allowlisted keys and their shared keys; read by every worker.
  mutable std::shared_mutex allow_mu_;
  Allowlist allowlist_;

  // Nonces of recent allocate requests, per requester (replays get
  // nothing). Only allowlisted keys with a box that opened get here, so the
  // table holds at most one ring per allowlisted key.
  static constexpr size_t kAllocateNoncesKept = 256;
  struct NonceRing {
    std::array<uint64_t, kAllocateNoncesKept> seen{};
    size_t next = 0;
  };
  std::mutex nonce_mu_;
  absl::flat_hash_map<disco::DiscoKey, NonceRing> allocate_nonces_;

  EndpointTable table_;
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_SERVER_H_
