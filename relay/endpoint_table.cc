#include "relay/endpoint_table.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace peerrelay::relay {

void EndpointTable::Insert(std::unique_ptr<Endpoint> ep) {
  const uint32_t vni = ep->vni;
  WithExclusive(vni, [&](Endpoint*) {
    ShardFor(vni).endpoints.emplace(vni, std::move(ep));
  });
  count_.fetch_add(1, std::memory_order_relaxed);
}

void EndpointTable::SetObserver(PairObserver* observer) {
  observer_.store(observer, std::memory_order_release);
  if (observer == nullptr) return;
  for (Shard& shard : shards_) {
    ShardLockScope scope;
    std::unique_lock<std::shared_mutex> l(shard.mu);
    for (const auto& [vni, ep] : shard.endpoints) {
      if (ep->BothBound()) observer->PairBound(*ep);
    }
  }
}

std::unique_ptr<Endpoint> EndpointTable::Remove(
    uint32_t vni, std::optional<int64_t> if_expired_at) {
  std::unique_ptr<Endpoint> gone = WithExclusive(
      vni, [&](Endpoint* ep) -> std::unique_ptr<Endpoint> {
        if (ep == nullptr) return nullptr;
        if (if_expired_at && !Expired(*ep, *if_expired_at)) return nullptr;
        if (ep->BothBound()) {
          if (PairObserver* o = observer_.load(std::memory_order_acquire)) {
            o->PairRemoved(*ep);
          }
        }
        auto& map = ShardFor(vni).endpoints;
        auto it = map.find(vni);
        std::unique_ptr<Endpoint> out = std::move(it->second);
        map.erase(it);
        return out;
      });
  if (gone) count_.fetch_sub(1, std::memory_order_relaxed);
  return gone;
}

bool EndpointTable::Expired(const Endpoint& ep, int64_t now_ns) const {
  if (!ep.BothBound()) {
    return now_ns - ep.allocated_at_ns > bind_lifetime_ns_;
  }
  for (const Side& s : ep.sides) {
    if (now_ns - s.stats.last_seen_ns.load(std::memory_order_relaxed) >
        steady_state_lifetime_ns_) {
      return true;
    }
  }
  return false;
}

void EndpointTable::CollectExpired(uint32_t shard, int64_t now_ns,
                                   std::vector<uint32_t>* out) const {
  const Shard& s = shards_[shard % kNumShards];
  ShardLockScope scope;
  std::shared_lock<std::shared_mutex> l(s.mu);
  for (const auto& [vni, ep] : s.endpoints) {
    if (Expired(*ep, now_ns)) out->push_back(vni);
  }
}

EndpointStates EndpointTable::StateCounts() const {
  EndpointStates n;
  for (const Shard& shard : shards_) {
    ShardLockScope scope;
    std::shared_lock<std::shared_mutex> l(shard.mu);
    for (const auto& [vni, ep] : shard.endpoints) {
      const int sides = int(ep->sides[0].bound) + int(ep->sides[1].bound);
      (sides == 0 ? n.open : sides == 1 ? n.semi_bound : n.bound) += 1;
    }
  }
  return n;
}

bool SessionFilter::Matches(const Endpoint& ep) const {
  bool key_ok = key_hex_prefix.empty();
  bool addr_ok = !address.has_value();
  for (const Side& side : ep.sides) {
    if (!key_ok) {
      // ToText() is "discokey:" + 64 hex digits.
      key_ok = absl::StartsWith(
          absl::string_view(side.key.ToText()).substr(9), key_hex_prefix);
    }
    if (!addr_ok && side.bound) {
      addr_ok = address->port() == 0 ? side.addr.bytes() == address->bytes()
                                     : side.addr == *address;
    }
  }
  return key_ok && addr_ok;
}

std::vector<SessionInfo> EndpointTable::Sessions(
    size_t limit, size_t* total, const SessionFilter& filter) const {
  // Pass 1: the VNIs only, then the lowest `limit` of them.
  std::vector<uint32_t> vnis;
  vnis.reserve(filter.empty() ? size() : 0);
  for (const Shard& shard : shards_) {
    ShardLockScope scope;
    std::shared_lock<std::shared_mutex> l(shard.mu);
    for (const auto& [vni, ep] : shard.endpoints) {
      if (filter.empty() || filter.Matches(*ep)) vnis.push_back(vni);
    }
  }
  if (total != nullptr) *total = vnis.size();
  if (vnis.size() > limit) {
    std::nth_element(vnis.begin(), vnis.begin() + limit, vnis.end());
    vnis.resize(limit);
  }
  std::sort(vnis.begin(), vnis.end());
  // Pass 2: copy those (an endpoint removed in between is skipped).
  std::vector<SessionInfo> out;
  out.reserve(vnis.size());
  for (uint32_t vni : vnis) {
    WithShared(vni, [&](const Endpoint* ep) {
      if (ep == nullptr) return;
      SessionInfo s;
      s.vni = vni;
      s.lamport_id = ep->lamport_id;
      s.allocated_at_ns = ep->allocated_at_ns;
      for (int i = 0; i < 2; ++i) {
        const Side& side = ep->sides[i];
        s.client_keys[i] = side.key;
        if (side.bound) s.bound[i] = side.addr;
        s.last_seen_ns[i] =
            side.stats.last_seen_ns.load(std::memory_order_relaxed);
        s.packets[i] = side.stats.packets.load(std::memory_order_relaxed);
        s.bytes[i] = side.stats.bytes.load(std::memory_order_relaxed);
      }
      out.push_back(std::move(s));
    });
  }
  return out;
}

}  // namespace peerrelay::relay
