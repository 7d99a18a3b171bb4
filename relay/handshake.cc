#include "relay/handshake.h"

#include <sodium.h>

namespace peerrelay::relay {
namespace {

HandshakeOutcome Drop(DropReason r) {
  return {.kind = HandshakeOutcome::kDrop, .reason = r};
}

HandshakeOutcome Bind(Side& side, const SocketAddress& from, int64_t now_ns) {
  side.bound = true;
  side.addr = from;
  side.stats.last_seen_ns.store(now_ns, std::memory_order_relaxed);
  return {.kind = HandshakeOutcome::kBound};
}

}  // namespace

DropReason CheckCurrent(const disco::HandshakeMessage& msg,
                        uint32_t geneve_vni,
                        const disco::DiscoKey& other_key) {
  if (msg.vni != geneve_vni) return DropReason::kWrongVni;
  if (msg.remote_key != other_key) return DropReason::kWrongRemoteKey;
  if (msg.generation == 0) return DropReason::kZeroGeneration;
  return DropReason::kCount;
}

HandshakeOutcome ApplyCurrentLocked(Side& side,
                                    const disco::HandshakeMessage& msg,
                                    bool mac_ok, uint64_t answer_nonce,
                                    const SocketAddress& from,
                                    int64_t now_ns) {
  if (msg.type == disco::MessageType::kBind) {
    HandshakeOutcome out{.kind = HandshakeOutcome::kChallenge, .reply = msg};
    out.reply.type = disco::MessageType::kChallenge;
    return out;
  }
  if (!mac_ok) return Drop(DropReason::kBadMac);
  for (uint64_t seen : side.answer_nonces) {
    if (seen == answer_nonce) return Drop(DropReason::kReplayed);
  }
  side.answer_nonces[side.next_answer] = answer_nonce;
  side.next_answer = uint8_t((side.next_answer + 1) % Side::kAnswersRemembered);
  return Bind(side, from, now_ns);
}

HandshakeOutcome ApplySeedLocked(const Endpoint& ep, Side& side,
                                 const disco::HandshakeMessage& msg,
                                 const SocketAddress& from, int64_t now_ns) {
  if (ep.BothBound() || side.bound) return Drop(DropReason::kAlreadyBound);
  if (msg.type == disco::MessageType::kBind) {
    if (!side.bind_seen) {
      side.bind_seen = true;
      side.bind_addr = from;
    } else if (side.bind_addr != from) {
      return Drop(DropReason::kWrongAddress);
    }
    HandshakeOutcome out{.kind = HandshakeOutcome::kChallenge};
    out.reply.type = disco::MessageType::kChallenge;
    out.reply.challenge = side.seed_challenge;
    return out;
  }
  if (!side.bind_seen || side.bind_addr != from) {
    return Drop(DropReason::kWrongAddress);
  }
  if (sodium_memcmp(msg.challenge.data(), side.seed_challenge.data(),
                    msg.challenge.size()) != 0) {
    return Drop(DropReason::kBadAnswer);
  }
  return Bind(side, from, now_ns);
}

}  // namespace peerrelay::relay
