// The handshake rules of both dialects (handshake.h) as tables: a side's
// state, one message, the outcome and the state afterwards. No crypto, no
// server: what the rules decide, row by row.
#include "relay/handshake.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace peerrelay::relay {
namespace {

using disco::MessageType;

SocketAddress Addr(const char* s) { return SocketAddress::Parse(s).value(); }
disco::DiscoKey Key(uint8_t b) {
  disco::DiscoKey k;
  k.bytes.fill(b);
  return k;
}

const SocketAddress kA = Addr("198.51.100.1:1000");
const SocketAddress kA2 = Addr("198.51.100.1:1001");
const SocketAddress kB = Addr("[2001:db8::2]:2000");

TEST(CheckCurrent, Table) {
  const disco::DiscoKey other = Key(2);
  struct Row {
    const char* name;
    uint32_t msg_vni;
    disco::DiscoKey remote;
    uint32_t generation;
    DropReason want;
  } rows[] = {
      {"names this endpoint and the other client", 7, other, 1, DropReason::kCount},
      {"any nonzero generation", 7, other, 0xFFFFFFFF, DropReason::kCount},
      {"another VNI than the Geneve header's", 8, other, 1, DropReason::kWrongVni},
      {"its own key as the remote", 7, Key(1), 1, DropReason::kWrongRemoteKey},
      {"a stranger's key", 7, Key(9), 1, DropReason::kWrongRemoteKey},
      {"generation zero", 7, other, 0, DropReason::kZeroGeneration},
      {"VNI checked before the key", 8, Key(9), 0, DropReason::kWrongVni},
      {"key checked before the generation", 7, Key(9), 0, DropReason::kWrongRemoteKey},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    disco::HandshakeMessage m{.type = MessageType::kBind,
                              .vni = r.msg_vni,
                              .generation = r.generation,
                              .remote_key = r.remote};
    EXPECT_EQ(CheckCurrent(m, 7, other), r.want);
  }
}

// Current dialect: the state a row starts from.
struct CurrentStart {
  bool bound = false;
  SocketAddress addr;
  std::vector<uint64_t> nonces;  // Answers that bound it before
};

TEST(ApplyCurrentLocked, Table) {
  struct Row {
    const char* name;
    CurrentStart start;
    MessageType type;
    bool mac_ok;
    uint64_t nonce;
    SocketAddress from;
    HandshakeOutcome::Kind want;
    DropReason reason;
    bool bound_after;
    SocketAddress addr_after;  // when bound_after
  };
  const Row rows[] = {
      {"Bind on a new side: a Challenge, no state", {}, MessageType::kBind,
       false, 0, kA, HandshakeOutcome::kChallenge, DropReason::kCount, false, {}},
      {"Bind on a bound side: answered (re-binding), still bound where it was",
       {true, kA, {5}}, MessageType::kBind, false, 0, kB,
       HandshakeOutcome::kChallenge, DropReason::kCount, true, kA},
      {"Answer with a bad MAC", {}, MessageType::kAnswer, false, 1, kA,
       HandshakeOutcome::kDrop, DropReason::kBadMac, false, {}},
      {"Answer with a good MAC binds the side to its source", {},
       MessageType::kAnswer, true, 1, kA, HandshakeOutcome::kBound,
       DropReason::kCount, true, kA},
      {"a replayed Answer (seen nonce) changes nothing", {true, kA, {1, 2}},
       MessageType::kAnswer, true, 2, kA2, HandshakeOutcome::kDrop,
       DropReason::kReplayed, true, kA},
      {"a new Answer from a new address moves the side", {true, kA, {1}},
       MessageType::kAnswer, true, 3, kB, HandshakeOutcome::kBound,
       DropReason::kCount, true, kB},
      {"a bad MAC on a bound side leaves it bound", {true, kA, {1}},
       MessageType::kAnswer, false, 9, kB, HandshakeOutcome::kDrop,
       DropReason::kBadMac, true, kA},
      {"nonce 1 forgotten after 8 newer Answers", {true, kA, {1, 2, 3, 4, 5, 6, 7, 8, 9}},
       MessageType::kAnswer, true, 1, kA2, HandshakeOutcome::kBound,
       DropReason::kCount, true, kA2},
      {"the 8 newest are remembered", {true, kA, {1, 2, 3, 4, 5, 6, 7, 8, 9}},
       MessageType::kAnswer, true, 2, kA2, HandshakeOutcome::kDrop,
       DropReason::kReplayed, true, kA},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    Side side;
    side.key = Key(1);
    // The start state, built the way it arises: bound by Answers.
    for (uint64_t n : r.start.nonces) {
      ASSERT_EQ(ApplyCurrentLocked(side, {.type = MessageType::kAnswer}, true,
                                   n, r.start.addr, 10)
                    .kind,
                HandshakeOutcome::kBound);
    }
    ASSERT_EQ(side.bound, r.start.bound);
    const disco::HandshakeMessage msg{.type = r.type,
                                      .vni = 7,
                                      .generation = 3,
                                      .remote_key = Key(2)};
    const HandshakeOutcome out =
        ApplyCurrentLocked(side, msg, r.mac_ok, r.nonce, r.from, 20);
    EXPECT_EQ(out.kind, r.want);
    if (r.want == HandshakeOutcome::kDrop) {
      EXPECT_EQ(out.reason, r.reason);
    }
    if (r.want == HandshakeOutcome::kChallenge) {
      // The Bind's fields come back in the Challenge (the MAC is filled in
      // outside the lock).
      EXPECT_EQ(out.reply.type, MessageType::kChallenge);
      EXPECT_EQ(out.reply.vni, 7u);
      EXPECT_EQ(out.reply.generation, 3u);
      EXPECT_EQ(out.reply.remote_key, Key(2));
    }
    EXPECT_EQ(side.bound, r.bound_after);
    if (r.bound_after) {
      EXPECT_EQ(side.addr, r.addr_after);
    }
    if (r.want == HandshakeOutcome::kBound) {
      EXPECT_EQ(side.stats.last_seen_ns.load(), 20);
    }
  }
}

TEST(ApplySeedLocked, Table) {
  disco::Challenge ch;
  ch.fill(0x5a);
  disco::Challenge wrong = ch;
  wrong[31] ^= 1;
  // What happened to the side before the row's message.
  enum Before { kFresh, kBindFromA, kBoundAtA, kOtherSideBoundToo };
  struct Row {
    const char* name;
    Before before;
    MessageType type;
    SocketAddress from;
    disco::Challenge echoed;
    HandshakeOutcome::Kind want;
    DropReason reason;
    bool bound_after;
  };
  const Row rows[] = {
      {"first Bind fixes the address, gets the challenge", kFresh,
       MessageType::kBind, kA, {}, HandshakeOutcome::kChallenge,
       DropReason::kCount, false},
      {"Bind again from it: the same challenge", kBindFromA, MessageType::kBind,
       kA, {}, HandshakeOutcome::kChallenge, DropReason::kCount, false},
      {"Bind from another address", kBindFromA, MessageType::kBind, kA2, {},
       HandshakeOutcome::kDrop, DropReason::kWrongAddress, false},
      {"Answer before any Bind", kFresh, MessageType::kAnswer, kA, ch,
       HandshakeOutcome::kDrop, DropReason::kWrongAddress, false},
      {"Answer from another address", kBindFromA, MessageType::kAnswer, kB, ch,
       HandshakeOutcome::kDrop, DropReason::kWrongAddress, false},
      {"Answer echoing another challenge", kBindFromA, MessageType::kAnswer, kA,
       wrong, HandshakeOutcome::kDrop, DropReason::kBadAnswer, false},
      {"Answer echoing the challenge binds", kBindFromA, MessageType::kAnswer,
       kA, ch, HandshakeOutcome::kBound, DropReason::kCount, true},
      {"a bound side takes nothing more", kBoundAtA, MessageType::kBind, kA, {},
       HandshakeOutcome::kDrop, DropReason::kAlreadyBound, true},
      {"nor an Answer", kBoundAtA, MessageType::kAnswer, kA, ch,
       HandshakeOutcome::kDrop, DropReason::kAlreadyBound, true},
      {"a bound endpoint takes nothing", kOtherSideBoundToo, MessageType::kAnswer,
       kA, ch, HandshakeOutcome::kDrop, DropReason::kAlreadyBound, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    Endpoint ep;
    ep.vni = 7;
    Side& side = ep.sides[0];
    side.seed_challenge = ch;
    if (r.before != kFresh) {
      ASSERT_EQ(ApplySeedLocked(ep, side, {.type = MessageType::kBind}, kA, 1).kind,
                HandshakeOutcome::kChallenge);
    }
    if (r.before == kBoundAtA || r.before == kOtherSideBoundToo) {
      disco::HandshakeMessage ans{.type = MessageType::kAnswer};
      ans.challenge = ch;
      ASSERT_EQ(ApplySeedLocked(ep, side, ans, kA, 1).kind,
                HandshakeOutcome::kBound);
    }
    if (r.before == kOtherSideBoundToo) {
      ep.sides[1].bound = true;
      ep.sides[1].addr = kB;
    }
    disco::HandshakeMessage msg{.type = r.type};
    msg.challenge = r.echoed;
    const HandshakeOutcome out = ApplySeedLocked(ep, side, msg, r.from, 2);
    EXPECT_EQ(out.kind, r.want);
    if (r.want == HandshakeOutcome::kDrop) {
      EXPECT_EQ(out.reason, r.reason);
    }
    if (r.want == HandshakeOutcome::kChallenge) {
      EXPECT_EQ(out.reply.type, MessageType::kChallenge);
      EXPECT_EQ(out.reply.challenge, ch);
    }
    EXPECT_EQ(side.bound, r.bound_after);
    if (r.bound_after) {
      EXPECT_EQ(side.addr, kA);
    }
    // The first Bind's address stays fixed whatever came after.
    if (r.before != kFresh || r.type == MessageType::kBind) {
      if (side.bind_seen) {
        EXPECT_EQ(side.bind_addr, kA);
      }
    }
  }
}

}  // namespace
}  // namespace peerrelay::relay
