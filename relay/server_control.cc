// Server's slow path: control datagrams (the bind handshake and the UDP
// allocation request). Crypto runs outside every lock; state changes are
// applied under one shard's exclusive lock by the rules of handshake.h.
#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "relay/handshake.h"
#include "relay/server.h"

namespace peerrelay::relay {

// A handshake message opened and checked, ready to apply.
struct Server::OpenedControl {
  uint32_t vni = 0;
  int side = -1;
  uint64_t lamport = 0;
  disco::SharedKey shared;
  disco::HandshakeMessage msg;
  bool mac_ok = false;  // current dialect, Answers: MAC over `from` verifies
  uint64_t nonce = 0;   // the box's first 8 nonce bytes (replay check)
};

size_t Server::SealReply(uint32_t vni, const uint8_t* pt, size_t pt_len,
                         const disco::SharedKey& key, uint8_t* out) const {
  geneve::Encode(
      {.control = true, .protocol = geneve::kProtocolDisco, .vni = vni}, out);
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
    return HandleAllocateRequest(env, len, from, now_ns, c, reply);
  }
  // 1. Open and verify, outside every lock.
  OpenedControl m;
  if (DropReason r = OpenControl(h, env, from, now_ns, c, &m);
      r != DropReason::kCount) {
    return drop(r);
  }
  // 2. Apply under the shard's exclusive lock, per dialect.
  HandshakeOutcome out = table_.Mutate(m.vni, [&](Endpoint* ep) {
    if (ep == nullptr || ep->lamport_id != m.lamport) {
      return HandshakeOutcome{.reason = DropReason::kEndpointGone};
    }
    Side& s = ep->sides[m.side];
    return dialect_ == disco::Dialect::kCurrent
               ? ApplyCurrentLocked(s, m.msg, m.mac_ok, m.nonce, from, now_ns)
               : ApplySeedLocked(*ep, s, m.msg, from, now_ns);
  });
  if (out.kind == HandshakeOutcome::kDrop) return drop(out.reason);
  if (out.kind == HandshakeOutcome::kBound) {
    c->handshakes_completed.Add();
    if (log::Enabled(log::Level::kDebug)) {
      handshake_log_.Write(
          log::Level::kDebug,
          absl::StrCat("handshake: VNI ", m.vni, " side ", m.side == 0 ? "a" : "b",
                       " bound to ", from.ToString()),
          now_ns);
    }
    return false;  // a correct Answer gets no reply
  }
  // 3. The Challenge, sealed outside the lock.
  if (dialect_ == disco::Dialect::kCurrent) {
    out.reply.challenge = mac_.Compute(m.msg.vni, m.msg.generation,
                                       m.msg.remote_key, from);
  }
  uint8_t pt[disco::kMaxHandshakeSize];
  const size_t pt_len = disco::MarshalHandshake(dialect_, out.reply, pt);
  reply->destination = from;
  reply->len = SealReply(m.vni, pt, pt_len, m.shared, reply->bytes.data());
  c->challenges_sent.Add();
  return true;
}

DropReason Server::OpenControl(const geneve::Header& h,
                               const disco::EnvelopeView& env,
                               const SocketAddress& from, int64_t now_ns,
                               Counters* c, OpenedControl* out) {
  const disco::DiscoKey sender = disco::DiscoKey::FromBytes(env.sender_key);
  const bool current = dialect_ == disco::Dialect::kCurrent;
  if (current) mac_.MaybeRotate(now_ns);
  out->vni = h.vni;
  std::memcpy(&out->nonce, env.sealed, sizeof(out->nonce));
  disco::DiscoKey other_key;
  std::optional<disco::SharedKey> shared;
  DropReason r = table_.WithShared(h.vni, [&](const Endpoint* ep) {
    if (ep == nullptr) return DropReason::kUnknownVni;
    out->side = ep->SideOf(sender);
    if (out->side < 0) return DropReason::kUnknownSender;
    out->lamport = ep->lamport_id;
    other_key = ep->sides[1 - out->side].key;
    shared = ep->sides[out->side].shared;
    return DropReason::kCount;
  });
  if (r != DropReason::kCount) return r;
  if (!shared) shared = SharedKeyFor(h.vni, out->side, out->lamport, sender, c);
  if (!shared) return DropReason::kBadSenderKey;
  out->shared = *shared;
  uint8_t pt[1500];
  if (env.sealed_len > sizeof(pt) + disco::kBoxOverhead) {
    return DropReason::kBadMessage;  // no handshake is that long
  }
  size_t pt_len = 0;
  if (!disco::OpenEnvelope(*shared, env, pt, &pt_len)) {
    return DropReason::kBoxOpenFailed;
  }
  if (disco::ParseHandshake(dialect_, pt, pt_len, &out->msg) !=
      disco::ParseError::kOk) {
    uint8_t type = 0;
    const bool known =
        !disco::PeekType(pt, pt_len, &type) ||
        type == static_cast<uint8_t>(disco::MessageType::kBind) ||
        type == static_cast<uint8_t>(disco::MessageType::kChallenge) ||
        type == static_cast<uint8_t>(disco::MessageType::kAnswer);
    return known ? DropReason::kBadMessage : DropReason::kUnexpectedMessage;
  }
  if (out->msg.type == disco::MessageType::kChallenge) {
    return DropReason::kUnexpectedMessage;  // only the server sends it
  }
  if (!current) return DropReason::kCount;
  if (r = CheckCurrent(out->msg, h.vni, other_key); r != DropReason::kCount) {
    return r;
  }
  if (out->msg.type == disco::MessageType::kAnswer) {
    out->mac_ok = mac_.Verify(out->msg.challenge, out->msg.vni,
                              out->msg.generation, out->msg.remote_key, from);
  }
  return DropReason::kCount;
}

std::optional<disco::SharedKey> Server::SharedKeyFor(
    uint32_t vni, int side, uint64_t lamport, const disco::DiscoKey& sender,
    Counters* c) {
  std::optional<disco::SharedKey> shared =
      disco::SharedKey::Compute(sender, key_pair_);
  c->key_computations.Add();
  if (!shared) return std::nullopt;
  // Cached now, whatever the message turns out to be: it depends only on
  // the two keys, and a forged box naming this client must not make every
  // datagram pay the Curve25519 computation again.
  table_.WithExclusive(vni, [&](Endpoint* ep) {
    if (ep != nullptr && ep->lamport_id == lamport &&
        !ep->sides[side].shared) {
      ep->sides[side].shared = shared;
    }
  });
  return shared;
}

bool Server::FirstAllocateNonce(const disco::DiscoKey& sender,
                                const uint8_t* nonce) {
  // The first 8 of the 24 random nonce bytes: a chance collision is 2^-64.
  uint64_t id;
  std::memcpy(&id, nonce, sizeof(id));
  std::lock_guard<std::mutex> l(nonce_mu_);
  NonceRing& ring = allocate_nonces_[sender];
  for (uint64_t seen : ring.seen) {
    if (seen == id) return false;
  }
  ring.seen[ring.next] = id;
  ring.next = (ring.next + 1) % kAllocateNoncesKept;
  return true;
}

bool Server::HandleAllocateRequest(const disco::EnvelopeView& env,
                                   size_t request_len,
                                   const SocketAddress& from, int64_t now_ns,
                                   Counters* c, ControlReply* reply) {
  auto drop = [c](DropReason r) {
    c->Drop(r);
    return false;
  };
  const disco::DiscoKey sender = disco::DiscoKey::FromBytes(env.sender_key);
  std::optional<disco::SharedKey> shared;
  {
    // Strangers cost a hash lookup; allowlisted keys' shared keys were
    // computed at load.
    std::shared_lock<std::shared_mutex> l(allow_mu_);
    auto it = allowlist_.find(sender);
    if (it == allowlist_.end()) return drop(DropReason::kAllocateNotAllowed);
    shared = it->second;
  }
  uint8_t pt[kMaxAllocateRequest];
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
  // As Tailscale's server: only one of the pair may ask.
  if (req.client_a != sender && req.client_b != sender) {
    return drop(DropReason::kAllocateNotClient);
  }
  // No reply larger than its request: the source address is unverified,
  // and a bigger reply would make the relay a reflection amplifier.
  const size_t n_addr = std::min(addresses().size(), kMaxResponseAddresses);
  const size_t reply_len = geneve::kHeaderSize + disco::kEnvelopeOverhead +
                           disco::kAllocateResponseFixedSize +
                           n_addr * disco::kAddressEntrySize;
  if (request_len < reply_len) return drop(DropReason::kAllocateUnpadded);
  // A captured request replayed (from anywhere) gets nothing and changes
  // nothing.
  if (!FirstAllocateNonce(sender, env.sealed)) {
    return drop(DropReason::kReplayed);
  }
  absl::StatusOr<EndpointInfo> ep =
      Allocate(req.client_a, req.client_b, now_ns, sender.ToText());
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
  reply->len = SealReply(kAllocateVni, body.data(), body.size(), *shared,
                         reply->bytes.data());
  reply->destination = from;
  c->allocations_udp.Add();
  return true;
}

}  // namespace peerrelay::relay
