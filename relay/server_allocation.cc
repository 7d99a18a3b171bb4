// Server's allocation: the pair index, the VNI pool, the caps (total, per
// caller, rate) and removal, all under the allocation mutex (docs/protocol.md,
// "Allocation"). The endpoints themselves live in the EndpointTable.
#include <sodium.h>

#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "relay/server.h"

namespace peerrelay::relay {

EndpointInfo Server::InfoLocked(const Endpoint& ep) const {
  EndpointInfo info;
  info.server_key = key_pair_.public_key();
  info.client_keys = {ep.sides[0].key, ep.sides[1].key};
  info.lamport_id = ep.lamport_id;
  info.vni = ep.vni;
  info.addresses = addresses_;
  info.bind_lifetime_ns = bind_lifetime_ns_;
  info.steady_state_lifetime_ns = steady_state_lifetime_ns_;
  return info;
}

std::unique_ptr<Endpoint> Server::RemoveEndpointLocked(
    uint32_t vni, std::optional<int64_t> if_expired_at) {
  std::unique_ptr<Endpoint> gone = table_.Remove(vni, if_expired_at);
  if (!gone) return nullptr;
  if (auto it = per_caller_.find(gone->owner); it != per_caller_.end()) {
    if (--it->second == 0) per_caller_.erase(it);
  }
  by_pair_.erase(std::make_pair(gone->sides[0].key, gone->sides[1].key));
  vnis_.Free(vni);
  return gone;
}

std::optional<EndpointInfo> Server::ExistingLocked(
    const std::pair<disco::DiscoKey, disco::DiscoKey>& pair, int64_t now_ns) {
  auto it = by_pair_.find(pair);
  if (it == by_pair_.end()) return std::nullopt;
  const uint32_t vni = it->second;
  std::optional<EndpointInfo> existing =
      table_.WithShared(vni, [&](const Endpoint* ep) {
        std::optional<EndpointInfo> keep;
        // Dead already (the sweep has not come by yet), or bound in the
        // seed dialect (replaced): a new endpoint. Otherwise the existing
        // one, unchanged (its age is not reset).
        if (ep != nullptr && !table_.Expired(*ep, now_ns) &&
            (!ep->BothBound() || dialect_ == disco::Dialect::kCurrent)) {
          keep = InfoLocked(*ep);
        }
        return keep;
      });
  if (!existing) RemoveEndpointLocked(vni, std::nullopt);
  return existing;
}

absl::Status Server::CheckCapsLocked(absl::string_view caller,
                                     int64_t now_ns) {
  if (max_endpoints_ != 0 && vnis_.in_use() >= max_endpoints_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("endpoint limit reached (", max_endpoints_, ")"));
  }
  if (max_per_caller_ != 0 && !caller.empty()) {
    auto it = per_caller_.find(caller);
    if (it != per_caller_.end() && it->second >= max_per_caller_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "endpoint limit per caller reached (", max_per_caller_, ")"));
    }
  }
  if (allocation_rate_ > 0 &&
      !allocation_bucket_.Take(allocation_rate_, allocation_burst_, now_ns)) {
    return absl::UnavailableError("allocation rate limit reached");
  }
  return absl::OkStatus();
}

absl::StatusOr<EndpointInfo> Server::Allocate(const disco::DiscoKey& a,
                                              const disco::DiscoKey& b,
                                              int64_t now_ns,
                                              absl::string_view caller) {
  absl::StatusOr<EndpointInfo> ep = AllocateUnlogged(a, b, now_ns, caller);
  const std::string who =
      caller.empty() ? std::string() : absl::StrCat(" by ", caller);
  if (ep.ok()) {
    allocation_log_.Write(
        log::Level::kInfo,
        absl::StrCat("allocation: VNI ", ep->vni, " (lamport ",
                     ep->lamport_id, ") for ", a.ShortString(), " and ",
                     b.ShortString(), who),
        now_ns);
  } else if (absl::IsResourceExhausted(ep.status()) ||
             absl::IsUnavailable(ep.status())) {
    // Capacity and rate refusals are what an operator must hear about.
    allocation_log_.Write(log::Level::kWarning,
                          absl::StrCat("allocation refused", who, ": ",
                                       ep.status().message()),
                          now_ns);
  } else {
    allocation_log_.Write(log::Level::kDebug,
                          absl::StrCat("allocation refused", who, ": ",
                                       ep.status().message()),
                          now_ns);
  }
  return ep;
}

absl::StatusOr<EndpointInfo> Server::AllocateUnlogged(
    const disco::DiscoKey& a, const disco::DiscoKey& b, int64_t now_ns,
    absl::string_view caller) {
  std::lock_guard<AllocationMutex> l(alloc_mu_);
  if (closed_) return absl::FailedPreconditionError("server closed");
  if (a == server_key() || b == server_key()) {
    return absl::InvalidArgumentError(
        "client disco key equals the server's disco key");
  }
  if (a == b) {
    return absl::InvalidArgumentError("the two client disco keys are equal");
  }
  if (a.IsLowOrder() || b.IsLowOrder()) {
    return absl::InvalidArgumentError(
        "a client disco key is a low-order point (no handshake can succeed)");
  }
  if (addresses_.empty()) {
    return absl::UnavailableError("no address to advertise yet");
  }
  const auto pair = a < b ? std::make_pair(a, b) : std::make_pair(b, a);
  if (std::optional<EndpointInfo> existing = ExistingLocked(pair, now_ns)) {
    return *existing;
  }
  if (absl::Status caps = CheckCapsLocked(caller, now_ns); !caps.ok()) {
    return caps;
  }
  std::optional<uint32_t> vni = vnis_.Allocate();
  if (!vni) return absl::ResourceExhaustedError("VNI pool exhausted");

  auto ep = std::make_unique<Endpoint>();
  ep->vni = *vni;
  if (lamport_ + 1 > lamport_reserved_) {
    lamport_reserved_ =
        reserve_lamport_ ? reserve_lamport_(lamport_ + 1) : UINT64_MAX;
  }
  ep->lamport_id = ++lamport_;
  ep->allocated_at_ns = now_ns;
  ep->owner = std::string(caller);
  ep->sides[0].key = pair.first;
  ep->sides[1].key = pair.second;
  if (dialect_ == disco::Dialect::kSeed) {
    for (Side& s : ep->sides) {
      randombytes_buf(s.seed_challenge.data(), s.seed_challenge.size());
    }
  }
  if (!caller.empty()) ++per_caller_[std::string(caller)];
  EndpointInfo info = InfoLocked(*ep);
  table_.Insert(std::move(ep));
  by_pair_.emplace(pair, *vni);
  return info;
}

}  // namespace peerrelay::relay
