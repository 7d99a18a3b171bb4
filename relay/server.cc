#include "relay/server.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace peerrelay::relay {

absl::StatusOr<std::unique_ptr<Server>> Server::Create(ServerConfig config,
                                                       int64_t now_ns) {
  if (sodium_init() < 0) {
    return absl::InternalError("libsodium failed to initialise");
  }
  if (config.bind_lifetime_ns <= 0 || config.steady_state_lifetime_ns <= 0) {
    return absl::InvalidArgumentError("lifetimes must be positive");
  }
  if (config.vni_limit == 0 || config.vni_limit > VniAllocator::kMaxVni) {
    return absl::InvalidArgumentError(
        absl::StrCat("vni_limit must be in 1..", VniAllocator::kMaxVni));
  }
  disco::KeyPair kp = config.key_pair.has_value()
                          ? *config.key_pair
                          : disco::KeyPair::Generate();
  return std::unique_ptr<Server>(new Server(std::move(config), kp, now_ns));
}

Server::Server(ServerConfig config, disco::KeyPair key_pair, int64_t now_ns)
    : key_pair_(std::move(key_pair)),
      dialect_(config.dialect),
      bind_lifetime_ns_(config.bind_lifetime_ns),
      steady_state_lifetime_ns_(config.steady_state_lifetime_ns),
      max_endpoints_(config.max_endpoints),
      max_per_caller_(config.max_endpoints_per_caller),
      allocation_rate_(config.allocation_rate),
      allocation_burst_(std::max(1.0, config.allocation_burst)),
      mac_(now_ns),
      vnis_(config.vni_limit),
      lamport_(config.lamport_start),
      lamport_reserved_(config.lamport_reserved),
      reserve_lamport_(std::move(config.reserve_lamport)),
      allocation_bucket_(std::max(1.0, config.allocation_burst), now_ns),
      addresses_(std::move(config.addresses)),
      table_(config.bind_lifetime_ns, config.steady_state_lifetime_ns) {}

Server::~Server() = default;

void Server::Close() {
  std::lock_guard<AllocationMutex> l(alloc_mu_);
  closed_ = true;
}

void Server::SetAddresses(std::vector<SocketAddress> addresses) {
  std::lock_guard<AllocationMutex> l(alloc_mu_);
  addresses_ = std::move(addresses);
}

Server::Allowlist Server::PrepareAllowlist(
    const absl::flat_hash_set<disco::DiscoKey>& keys,
    const disco::KeyPair& server) {
  Allowlist with_keys;
  for (const disco::DiscoKey& k : keys) {
    if (std::optional<disco::SharedKey> sk =
            disco::SharedKey::Compute(k, server)) {
      with_keys.emplace(k, *sk);
    }
  }
  return with_keys;
}

void Server::SetPreparedAllowlist(Allowlist prepared) {
  std::unique_lock<std::shared_mutex> l(allow_mu_);
  allowlist_ = std::move(prepared);
}

void Server::SetAllocateAllowlist(absl::flat_hash_set<disco::DiscoKey> keys) {
  SetPreparedAllowlist(PrepareAllowlist(keys, key_pair_));
}

DropReason Server::PrecheckControl(const uint8_t* pkt, size_t len,
                                   ControlSide* side) const {
  geneve::Header h;
  disco::EnvelopeView env;
  if (!geneve::Decode(pkt, len, &h)) return DropReason::kShortDatagram;
  if (!disco::PeekEnvelope(pkt + geneve::kHeaderSize,
                           len - geneve::kHeaderSize, &env)) {
    return DropReason::kNotDisco;
  }
  const disco::DiscoKey sender = disco::DiscoKey::FromBytes(env.sender_key);
  if (side != nullptr) *side = {h.vni, sender};
  if (h.vni == kAllocateVni) {
    std::shared_lock<std::shared_mutex> l(allow_mu_);
    return allowlist_.contains(sender) ? DropReason::kCount
                                       : DropReason::kAllocateNotAllowed;
  }
  return table_.WithShared(h.vni, [&](const Endpoint* ep) {
    if (ep == nullptr) return DropReason::kUnknownVni;
    if (ep->SideOf(sender) < 0) return DropReason::kUnknownSender;
    return DropReason::kCount;
  });
}

std::vector<SocketAddress> Server::addresses() const {
  std::lock_guard<AllocationMutex> l(alloc_mu_);
  return addresses_;
}

size_t Server::endpoint_count() const { return table_.size(); }

std::vector<SessionInfo> Server::Sessions(size_t limit, size_t* total,
                                          const SessionFilter& filter) const {
  return table_.Sessions(limit, total, filter);
}

Verdict Server::Classify(const uint8_t* pkt, size_t len, uint32_t count,
                         size_t total_bytes, const SocketAddress& from,
                         int64_t now_ns) {
  Verdict v;
  geneve::Header h;
  if (!geneve::Decode(pkt, len, &h)) {
    v.reason = DropReason::kShortDatagram;
    return v;
  }
  if (h.control) {
    if (h.protocol != geneve::kProtocolDisco) {
      v.reason = DropReason::kBadControlProtocol;
      return v;
    }
    v.kind = Verdict::kSlowPath;
    return v;
  }
  // Data, whatever its protocol field: clients relay their own disco pings
  // (0x7A11, control clear) through us as well as WireGuard.
  return table_.WithShared(h.vni, [&](const Endpoint* ep) {
    if (ep == nullptr) {
      v.reason = DropReason::kUnknownVni;
      return v;
    }
    if (!ep->BothBound()) {
      v.reason = DropReason::kNotBound;
      return v;
    }
    const int from_side = from == ep->sides[0].addr   ? 0
                          : from == ep->sides[1].addr ? 1
                                                      : -1;
    if (from_side < 0) {
      v.reason = DropReason::kUnknownSource;
      return v;
    }
    SideStats& st = ep->sides[from_side].stats;
    // The clock is read once per batch: store only when it moved, so a
    // burst writes the line once.
    if (st.last_seen_ns.load(std::memory_order_relaxed) != now_ns) {
      st.last_seen_ns.store(now_ns, std::memory_order_relaxed);
    }
    st.packets.fetch_add(count, std::memory_order_relaxed);
    st.bytes.fetch_add(total_bytes, std::memory_order_relaxed);
    v.kind = Verdict::kForward;
    v.destination = ep->sides[1 - from_side].addr;
    return v;
  });
}

size_t Server::Expire(int64_t now_ns) {
  size_t removed = 0;
  std::vector<uint32_t> expired;
  std::vector<std::unique_ptr<Endpoint>> gone;
  for (uint32_t shard = 0; shard < EndpointTable::kNumShards; ++shard) {
    expired.clear();
    table_.CollectExpired(shard, now_ns, &expired);
    if (expired.empty()) continue;
    {
      // Traffic or a handshake may have refreshed an endpoint since the
      // look above: the removal re-checks under the exclusive lock.
      std::lock_guard<AllocationMutex> al(alloc_mu_);
      for (uint32_t vni : expired) {
        if (auto ep = RemoveEndpointLocked(vni, now_ns)) {
          gone.push_back(std::move(ep));
        }
      }
    }
    removed += gone.size();
    // Logged (and freed) outside the lock.
    if (log::Enabled(log::Level::kDebug)) {
      for (const auto& ep : gone) {
        expiry_log_.Write(
            log::Level::kDebug,
            absl::StrCat("expired: VNI ", ep->vni, " after ",
                         (now_ns - ep->allocated_at_ns) / 1'000'000'000,
                         "s, ", int(ep->sides[0].bound) + int(ep->sides[1].bound),
                         " of 2 sides bound"),
            now_ns);
      }
    }
    gone.clear();
  }
  expired_total_.fetch_add(removed, std::memory_order_relaxed);
  if (removed > 0) {
    expiry_log_.Write(log::Level::kInfo,
                      absl::StrCat("expired ", removed, " endpoints, ",
                                   endpoint_count(), " left"),
                      now_ns);
  }
  return removed;
}

void Server::SetPairObserver(PairObserver* observer) {
  table_.SetObserver(observer);
}

bool Server::AddKernelTraffic(uint32_t vni, uint64_t lamport_id, int side,
                              uint64_t packets, uint64_t bytes,
                              int64_t now_ns) {
  return table_.WithShared(vni, [&](const Endpoint* ep) {
    if (ep == nullptr || ep->lamport_id != lamport_id) return false;
    SideStats& st = ep->sides[side].stats;
    st.packets.fetch_add(packets, std::memory_order_relaxed);
    st.bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (packets > 0 && st.last_seen_ns.load(std::memory_order_relaxed) <
                           now_ns) {
      st.last_seen_ns.store(now_ns, std::memory_order_relaxed);
    }
    return true;
  });
}

bool Server::BindForTesting(uint32_t vni, const SocketAddress& a,
                            const SocketAddress& b, int64_t now_ns) {
  return table_.Mutate(vni, [&](Endpoint* ep) {
    if (ep == nullptr) return false;
    const SocketAddress* addrs[2] = {&a, &b};
    for (int i = 0; i < 2; ++i) {
      Side& s = ep->sides[i];
      s.bound = true;
      s.addr = *addrs[i];
      s.stats.last_seen_ns.store(now_ns, std::memory_order_relaxed);
    }
    return true;
  });
}

}  // namespace peerrelay::relay
