#include "relay/server.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace peerrelay::relay {

// Hot per-side state the fast path writes, on its own cache line so the
// two sides (often relayed by different cores) never share one.
struct alignas(64) SideStats {
  std::atomic<int64_t> last_seen_ns{0};
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
};

struct Server::Side {
  disco::DiscoKey key;
  // Guarded by the shard lock. The shared key is computed on the first
  // control message from this side (not at allocation: allocation floods
  // then cost no Curve25519 work).
  std::optional<disco::SharedKey> shared;
  bool bound = false;
  SocketAddress addr;  // valid when bound
  // current dialect: generation of the handshake in progress, 0 for none.
  uint32_t in_progress_generation = 0;
  // seed dialect: the address the first Bind came from, and the challenge.
  bool bind_seen = false;
  SocketAddress bind_addr;
  disco::Challenge seed_challenge{};
  SideStats stats;
};

struct Server::Endpoint {
  uint32_t vni = 0;
  uint64_t lamport_id = 0;
  int64_t allocated_at_ns = 0;
  std::array<Side, 2> sides;

  bool BothBound() const { return sides[0].bound && sides[1].bound; }
  int SideOf(const disco::DiscoKey& k) const {
    if (sides[0].key == k) return 0;
    if (sides[1].key == k) return 1;
    return -1;
  }
};

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
      mac_(now_ns),
      vnis_(config.vni_limit),
      addresses_(std::move(config.addresses)) {}

Server::~Server() = default;

void Server::Close() {
  std::lock_guard<std::mutex> l(alloc_mu_);
  closed_ = true;
}

void Server::SetAddresses(std::vector<SocketAddress> addresses) {
  std::lock_guard<std::mutex> l(alloc_mu_);
  addresses_ = std::move(addresses);
}

void Server::SetAllocateAllowlist(absl::flat_hash_set<disco::DiscoKey> keys) {
  std::lock_guard<std::mutex> l(alloc_mu_);
  allocate_allowlist_ = std::move(keys);
}

std::vector<SocketAddress> Server::addresses() const {
  std::lock_guard<std::mutex> l(alloc_mu_);
  return addresses_;
}

size_t Server::endpoint_count() const {
  return endpoint_count_.load(std::memory_order_relaxed);
}

size_t Server::bound_count() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::shared_lock<std::shared_mutex> l(shard.mu);
    for (const auto& [vni, ep] : shard.endpoints) n += ep->BothBound();
  }
  return n;
}

bool Server::ExpiredLocked(const Endpoint& ep, int64_t now_ns) const {
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

bool Server::RemoveEndpointLocked(uint32_t vni,
                                  std::optional<int64_t> if_expired_at) {
  Shard& shard = ShardFor(vni);
  std::unique_ptr<Endpoint> gone;
  {
    std::unique_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(vni);
    if (it == shard.endpoints.end()) return false;
    if (if_expired_at && !ExpiredLocked(*it->second, *if_expired_at)) {
      return false;
    }
    gone = std::move(it->second);
    shard.endpoints.erase(it);
  }
  by_pair_.erase(std::make_pair(gone->sides[0].key, gone->sides[1].key));
  vnis_.Free(vni);
  endpoint_count_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

absl::StatusOr<EndpointInfo> Server::Allocate(const disco::DiscoKey& a,
                                              const disco::DiscoKey& b,
                                              int64_t now_ns) {
  std::lock_guard<std::mutex> l(alloc_mu_);
  if (closed_) return absl::FailedPreconditionError("server closed");
  if (a == server_key() || b == server_key()) {
    return absl::InvalidArgumentError(
        "client disco key equals the server's disco key");
  }
  if (a == b) {
    return absl::InvalidArgumentError("the two client disco keys are equal");
  }
  if (addresses_.empty()) {
    return absl::UnavailableError("no address to advertise yet");
  }
  const auto pair = a < b ? std::make_pair(a, b) : std::make_pair(b, a);

  if (auto it = by_pair_.find(pair); it != by_pair_.end()) {
    const uint32_t vni = it->second;
    Shard& shard = ShardFor(vni);
    bool remove = false;
    {
      std::shared_lock<std::shared_mutex> sl(shard.mu);
      const Endpoint& ep = *shard.endpoints.at(vni);
      if (ExpiredLocked(ep, now_ns)) {
        remove = true;  // dead already; the sweep has not come by yet
      } else if (!ep.BothBound() || dialect_ == disco::Dialect::kCurrent) {
        // Unbound: returned unchanged, age not reset. Bound (current):
        // returned as it is.
        return InfoLocked(ep);
      } else {
        remove = true;  // seed: a bound endpoint is replaced
      }
    }
    if (remove) RemoveEndpointLocked(vni, std::nullopt);
  }

  if (max_endpoints_ != 0 && vnis_.in_use() >= max_endpoints_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("endpoint limit reached (", max_endpoints_, ")"));
  }
  std::optional<uint32_t> vni = vnis_.Allocate();
  if (!vni) return absl::ResourceExhaustedError("VNI pool exhausted");

  auto ep = std::make_unique<Endpoint>();
  ep->vni = *vni;
  ep->lamport_id = ++lamport_;
  ep->allocated_at_ns = now_ns;
  ep->sides[0].key = pair.first;
  ep->sides[1].key = pair.second;
  if (dialect_ == disco::Dialect::kSeed) {
    for (Side& s : ep->sides) {
      randombytes_buf(s.seed_challenge.data(), s.seed_challenge.size());
    }
  }
  EndpointInfo info = InfoLocked(*ep);
  {
    Shard& shard = ShardFor(*vni);
    std::unique_lock<std::shared_mutex> sl(shard.mu);
    shard.endpoints.emplace(*vni, std::move(ep));
  }
  by_pair_.emplace(pair, *vni);
  endpoint_count_.fetch_add(1, std::memory_order_relaxed);
  return info;
}

Verdict Server::Process(const uint8_t* pkt, size_t len,
                        const SocketAddress& from, int64_t now_ns,
                        Counters* c) {
  return ProcessRun(pkt, len, 1, len, from, now_ns, c);
}

Verdict Server::ProcessRun(const uint8_t* pkt, size_t len, uint32_t count,
                           size_t total_bytes, const SocketAddress& from,
                           int64_t now_ns, Counters* c) {
  c->received.Add(count);
  c->received_bytes.Add(total_bytes);
  Verdict v = Classify(pkt, len, count, total_bytes, from, now_ns);
  if (v.kind == Verdict::kForward) {
    c->relayed.Add(count);
    c->relayed_bytes.Add(total_bytes);
  } else if (v.kind == Verdict::kDrop) {
    c->Drop(v.reason, count);
  }
  return v;
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
  const Shard& shard = ShardFor(h.vni);
  std::shared_lock<std::shared_mutex> l(shard.mu);
  auto it = shard.endpoints.find(h.vni);
  if (it == shard.endpoints.end()) {
    v.reason = DropReason::kUnknownVni;
    return v;
  }
  Endpoint& ep = *it->second;
  if (!ep.BothBound()) {
    v.reason = DropReason::kNotBound;
    return v;
  }
  const int from_side = from == ep.sides[0].addr   ? 0
                        : from == ep.sides[1].addr ? 1
                                                   : -1;
  if (from_side < 0) {
    v.reason = DropReason::kUnknownSource;
    return v;
  }
  SideStats& st = ep.sides[from_side].stats;
  // The clock is read once per batch: store only when it moved, so a burst
  // writes the line once.
  if (st.last_seen_ns.load(std::memory_order_relaxed) != now_ns) {
    st.last_seen_ns.store(now_ns, std::memory_order_relaxed);
  }
  st.packets.fetch_add(count, std::memory_order_relaxed);
  st.bytes.fetch_add(total_bytes, std::memory_order_relaxed);
  v.kind = Verdict::kForward;
  v.destination = ep.sides[1 - from_side].addr;
  return v;
}

size_t Server::SealReply(uint32_t vni, const disco::HandshakeMessage& msg,
                         const disco::SharedKey& key, uint8_t* out) const {
  geneve::Encode({.control = true,
                        .protocol = geneve::kProtocolDisco,
                        .vni = vni},
                       out);
  uint8_t pt[disco::kMaxHandshakeSize];
  size_t pt_len = disco::MarshalHandshake(dialect_, msg, pt);
  return geneve::kHeaderSize +
         disco::SealEnvelope(key_pair_.public_key(), key, pt, pt_len,
                             out + geneve::kHeaderSize);
}

bool Server::HandleControl(const uint8_t* pkt, size_t len,
                           const SocketAddress& from, int64_t now_ns,
                           Counters* c, ControlReply* reply) {
  auto drop = [c](DropReason r) {
    c->Drop(r);
    return false;
  };
  geneve::Header h;
  if (!geneve::Decode(pkt, len, &h)) return drop(DropReason::kShortDatagram);
  if (!h.control || h.protocol != geneve::kProtocolDisco) {
    return drop(DropReason::kBadControlProtocol);
  }
  disco::EnvelopeView env;
  if (!disco::PeekEnvelope(pkt + geneve::kHeaderSize,
                           len - geneve::kHeaderSize, &env)) {
    return drop(DropReason::kNotDisco);
  }
  if (h.vni == kAllocateVni) {
    return HandleAllocateRequest(env, from, now_ns, c, reply);
  }
  const disco::DiscoKey sender = disco::DiscoKey::FromBytes(env.sender_key);
  if (dialect_ == disco::Dialect::kCurrent) mac_.MaybeRotate(now_ns);

  // 1. Look the endpoint and side up; copy what the crypto needs.
  Shard& shard = ShardFor(h.vni);
  int side = -1;
  uint64_t lamport = 0;
  disco::DiscoKey other_key;
  std::optional<disco::SharedKey> shared;
  {
    std::shared_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(h.vni);
    if (it == shard.endpoints.end()) return drop(DropReason::kUnknownVni);
    const Endpoint& ep = *it->second;
    side = ep.SideOf(sender);
    if (side < 0) return drop(DropReason::kUnknownSender);
    lamport = ep.lamport_id;
    other_key = ep.sides[1 - side].key;
    shared = ep.sides[side].shared;
  }
  // 2. Crypto, outside every lock.
  if (!shared) {
    shared = disco::SharedKey::Compute(sender, key_pair_);
    c->key_computations.Add();
    if (!shared) return drop(DropReason::kBadSenderKey);
    // Cache it now, whatever the message turns out to be: it depends only
    // on the two keys, and a forged box naming this client must not make
    // every datagram pay the Curve25519 computation again.
    std::unique_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(h.vni);
    if (it != shard.endpoints.end() && it->second->lamport_id == lamport &&
        !it->second->sides[side].shared) {
      it->second->sides[side].shared = shared;
    }
  }
  uint8_t pt[1500];
  if (env.sealed_len > sizeof(pt) + disco::kBoxOverhead) {
    return drop(DropReason::kBadMessage);  // no handshake is that long
  }
  size_t pt_len = 0;
  if (!disco::OpenEnvelope(*shared, env, pt, &pt_len)) {
    return drop(DropReason::kBoxOpenFailed);
  }
  disco::HandshakeMessage msg;
  if (disco::ParseHandshake(dialect_, pt, pt_len, &msg) !=
      disco::ParseError::kOk) {
    uint8_t type = 0;
    if (disco::PeekType(pt, pt_len, &type) &&
        type != static_cast<uint8_t>(disco::MessageType::kBind) &&
        type != static_cast<uint8_t>(disco::MessageType::kChallenge) &&
        type != static_cast<uint8_t>(disco::MessageType::kAnswer)) {
      return drop(DropReason::kUnexpectedMessage);
    }
    return drop(DropReason::kBadMessage);
  }
  if (msg.type == disco::MessageType::kChallenge) {
    return drop(DropReason::kUnexpectedMessage);  // only the server sends it
  }
  const bool current = dialect_ == disco::Dialect::kCurrent;
  bool mac_ok = false;
  if (current) {
    if (msg.vni != h.vni) return drop(DropReason::kWrongVni);
    if (msg.remote_key != other_key) return drop(DropReason::kWrongRemoteKey);
    if (msg.generation == 0) return drop(DropReason::kZeroGeneration);
    if (msg.type == disco::MessageType::kAnswer) {
      mac_ok = mac_.Verify(msg.challenge, msg.vni, msg.generation,
                           msg.remote_key, from);
    }
  }

  // 3. Apply the state change under the shard's exclusive lock.
  disco::HandshakeMessage out_msg;
  {
    std::unique_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(h.vni);
    if (it == shard.endpoints.end() || it->second->lamport_id != lamport) {
      return drop(DropReason::kEndpointGone);
    }
    Endpoint& ep = *it->second;
    Side& s = ep.sides[side];
    if (!s.shared) s.shared = shared;

    if (current) {
      if (msg.type == disco::MessageType::kBind) {
        // Every valid Bind is answered, on a bound side too (re-binding);
        // its generation replaces the one in progress.
        s.in_progress_generation = msg.generation;
        out_msg = msg;
        out_msg.type = disco::MessageType::kChallenge;
      } else {  // Answer
        if (s.in_progress_generation == 0 ||
            msg.generation != s.in_progress_generation) {
          return drop(DropReason::kStaleGeneration);
        }
        if (!mac_ok) return drop(DropReason::kBadMac);
        s.bound = true;
        s.addr = from;
        s.in_progress_generation = 0;
        s.stats.last_seen_ns.store(now_ns, std::memory_order_relaxed);
        c->handshakes_completed.Add();
        return false;  // a correct Answer gets no reply
      }
    } else {  // seed
      if (ep.BothBound() || s.bound) return drop(DropReason::kAlreadyBound);
      if (msg.type == disco::MessageType::kBind) {
        if (!s.bind_seen) {
          s.bind_seen = true;
          s.bind_addr = from;
        } else if (s.bind_addr != from) {
          return drop(DropReason::kWrongAddress);
        }
        out_msg.type = disco::MessageType::kChallenge;
        out_msg.challenge = s.seed_challenge;
      } else {  // Answer
        if (!s.bind_seen || s.bind_addr != from) {
          return drop(DropReason::kWrongAddress);
        }
        if (sodium_memcmp(msg.challenge.data(), s.seed_challenge.data(),
                          msg.challenge.size()) != 0) {
          return drop(DropReason::kBadAnswer);
        }
        s.bound = true;
        s.addr = from;
        s.stats.last_seen_ns.store(now_ns, std::memory_order_relaxed);
        c->handshakes_completed.Add();
        return false;
      }
    }
  }

  // 4. The Challenge, sealed outside the lock.
  if (current) {
    out_msg.challenge =
        mac_.Compute(msg.vni, msg.generation, msg.remote_key, from);
  }
  reply->destination = from;
  reply->len = SealReply(h.vni, out_msg, *shared, reply->bytes.data());
  c->challenges_sent.Add();
  return true;
}

bool Server::HandleAllocateRequest(const disco::EnvelopeView& env,
                                   const SocketAddress& from, int64_t now_ns,
                                   Counters* c, ControlReply* reply) {
  auto drop = [c](DropReason r) {
    c->Drop(r);
    return false;
  };
  const disco::DiscoKey sender = disco::DiscoKey::FromBytes(env.sender_key);
  {
    // Checked before any crypto: strangers cost a hash lookup only.
    std::lock_guard<std::mutex> l(alloc_mu_);
    if (!allocate_allowlist_.contains(sender)) {
      return drop(DropReason::kAllocateNotAllowed);
    }
  }
  std::optional<disco::SharedKey> shared =
      disco::SharedKey::Compute(sender, key_pair_);
  c->key_computations.Add();
  if (!shared) return drop(DropReason::kBadSenderKey);
  uint8_t pt[256];
  if (env.sealed_len > sizeof(pt) + disco::kBoxOverhead) {
    return drop(DropReason::kBadMessage);
  }
  size_t pt_len = 0;
  if (!disco::OpenEnvelope(*shared, env, pt, &pt_len)) {
    return drop(DropReason::kBoxOpenFailed);
  }
  disco::AllocateRequest req;
  if (disco::ParseAllocateRequest(pt, pt_len, &req) !=
      disco::ParseError::kOk) {
    return drop(DropReason::kBadMessage);
  }
  absl::StatusOr<EndpointInfo> ep =
      Allocate(req.client_a, req.client_b, now_ns);
  if (!ep.ok()) return drop(DropReason::kAllocateFailed);
  disco::AllocateResponse resp;
  resp.generation = req.generation;
  resp.server = ep->server_key;
  resp.client_a = ep->client_keys[0];
  resp.client_b = ep->client_keys[1];
  resp.lamport_id = ep->lamport_id;
  resp.vni = ep->vni;
  resp.bind_lifetime_ns = uint64_t(ep->bind_lifetime_ns);
  resp.steady_state_lifetime_ns = uint64_t(ep->steady_state_lifetime_ns);
  resp.addresses = ep->addresses;
  if (resp.addresses.size() > kMaxResponseAddresses) {
    resp.addresses.resize(kMaxResponseAddresses);
  }
  std::vector<uint8_t> body = disco::MarshalAllocateResponse(resp);
  geneve::Encode({.control = true,
                        .protocol = geneve::kProtocolDisco,
                        .vni = kAllocateVni},
                       reply->bytes.data());
  reply->len = geneve::kHeaderSize +
               disco::SealEnvelope(key_pair_.public_key(), *shared,
                                   body.data(), body.size(),
                                   reply->bytes.data() + geneve::kHeaderSize);
  reply->destination = from;
  c->allocations_udp.Add();
  return true;
}

size_t Server::Expire(int64_t now_ns) {
  size_t removed = 0;
  std::vector<uint32_t> expired;
  for (Shard& shard : shards_) {
    expired.clear();
    {
      std::shared_lock<std::shared_mutex> l(shard.mu);
      for (const auto& [vni, ep] : shard.endpoints) {
        if (ExpiredLocked(*ep, now_ns)) expired.push_back(vni);
      }
    }
    if (expired.empty()) continue;
    // Traffic or a handshake may have refreshed an endpoint since the
    // look above: the removal re-checks under the exclusive lock.
    std::lock_guard<std::mutex> al(alloc_mu_);
    for (uint32_t vni : expired) {
      if (RemoveEndpointLocked(vni, now_ns)) ++removed;
    }
  }
  return removed;
}

std::vector<SessionInfo> Server::Sessions(size_t limit, size_t* total) const {
  // Pass 1: the VNIs only, then the lowest `limit` of them.
  std::vector<uint32_t> vnis;
  vnis.reserve(endpoint_count());
  for (const Shard& shard : shards_) {
    std::shared_lock<std::shared_mutex> l(shard.mu);
    for (const auto& [vni, ep] : shard.endpoints) vnis.push_back(vni);
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
    const Shard& shard = ShardFor(vni);
    std::shared_lock<std::shared_mutex> l(shard.mu);
    auto it = shard.endpoints.find(vni);
    if (it == shard.endpoints.end()) continue;
    const Endpoint& ep = *it->second;
    SessionInfo s;
    s.vni = vni;
    s.lamport_id = ep.lamport_id;
    s.allocated_at_ns = ep.allocated_at_ns;
    for (int i = 0; i < 2; ++i) {
      const Side& side = ep.sides[i];
      s.client_keys[i] = side.key;
      if (side.bound) s.bound[i] = side.addr;
      s.last_seen_ns[i] = side.stats.last_seen_ns.load(std::memory_order_relaxed);
      s.packets[i] = side.stats.packets.load(std::memory_order_relaxed);
      s.bytes[i] = side.stats.bytes.load(std::memory_order_relaxed);
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool Server::BindForTesting(uint32_t vni, const SocketAddress& a,
                            const SocketAddress& b, int64_t now_ns) {
  Shard& shard = ShardFor(vni);
  std::unique_lock<std::shared_mutex> l(shard.mu);
  auto it = shard.endpoints.find(vni);
  if (it == shard.endpoints.end()) return false;
  const SocketAddress* addrs[2] = {&a, &b};
  for (int i = 0; i < 2; ++i) {
    Side& s = it->second->sides[i];
    s.bound = true;
    s.addr = *addrs[i];
    s.stats.last_seen_ns.store(now_ns, std::memory_order_relaxed);
  }
  return true;
}

}  // namespace peerrelay::relay
