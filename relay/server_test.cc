// Server rules of docs/protocol.md, driven with real sealed disco
// messages from DiscoClient and a fake clock.
#include "relay/server.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "client/disco_client.h"
#include "relay/disco_client_testing.h"
#include "relay/server_testing.h"

namespace peerrelay::relay {
namespace {

using client::Bytes;
using client::DiscoClient;

using disco::Dialect;
using disco::DiscoKey;
using disco::MessageType;


SocketAddress Addr(const std::string& s) {
  return SocketAddress::Parse(s).value();
}

class ServerTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override { MakeServer(ServerConfig{}); }

  void MakeServer(ServerConfig config) {
    config.dialect = GetParam();
    if (config.addresses.empty()) {
      config.addresses = {Addr("203.0.113.7:7777"),
                          Addr("[2001:db8::1]:7777")};
    }
    server_ = Server::Create(std::move(config), now_).value();
    a_ = std::make_unique<DiscoClient>(GetParam(), server_->server_key(),
                                      Addr("198.51.100.1:1001"));
    b_ = std::make_unique<DiscoClient>(GetParam(), server_->server_key(),
                                      Addr("[2001:db8::b]:2002"));
  }

  EndpointInfo AllocateAB() {
    EndpointInfo ep = server_->Allocate(a_->key(), b_->key(), now_).value();
    a_->SetEndpoint(ep.vni, b_->key());
    b_->SetEndpoint(ep.vni, a_->key());
    return ep;
  }

  EndpointInfo BindBoth() {
    EndpointInfo ep = AllocateAB();
    EXPECT_TRUE(relay::DriveHandshake(*a_, *server_, now_, &c_));
    EXPECT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_));
    return ep;
  }

  Verdict Send(const DiscoClient& from, const Bytes& d) {
    return SendFrom(from.address(), d);
  }
  Verdict SendFrom(const SocketAddress& from, const Bytes& d) {
    return ProcessCounted(*server_, d.data(), d.size(), from, now_, &c_);
  }

  // Sends a control datagram through the slow path from `from`. Returns the
  // reply when there is one.
  std::optional<Bytes> Control(const SocketAddress& from, const Bytes& d) {
    ControlReply r;
    if (!server_->HandleControl(d.data(), d.size(), from, now_, &c_, &r)) {
      return std::nullopt;
    }
    EXPECT_EQ(r.destination, from);
    return Bytes(r.bytes.begin(), r.bytes.begin() + r.len);
  }

  // Expects exactly one drop, for `reason`, from running `fn`.
  template <typename Fn>
  void ExpectDrop(DropReason reason, Fn fn) {
    const uint64_t before = c_.Dropped(reason);
    const uint64_t total = c_.DroppedTotal();
    fn();
    EXPECT_EQ(c_.Dropped(reason), before + 1) << DropReasonName(reason);
    EXPECT_EQ(c_.DroppedTotal(), total + 1) << DropReasonName(reason);
  }

  bool IsCurrent() const { return GetParam() == Dialect::kCurrent; }

  int64_t now_ = 1000 * kSecond;
  Counters c_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<DiscoClient> a_, b_;
};

INSTANTIATE_TEST_SUITE_P(Dialects, ServerTest,
                         ::testing::Values(Dialect::kSeed, Dialect::kCurrent),
                         [](const auto& info) {
                           return std::string(disco::DialectName(info.param));
                         });

// ---- Allocation ----

TEST_P(ServerTest, AllocationReturnsSortedPairAndServerFacts) {
  EndpointInfo ep = AllocateAB();
  EXPECT_EQ(ep.server_key, server_->server_key());
  EXPECT_LT(ep.client_keys[0], ep.client_keys[1]);
  EXPECT_TRUE((ep.client_keys[0] == a_->key() && ep.client_keys[1] == b_->key()) ||
              (ep.client_keys[0] == b_->key() && ep.client_keys[1] == a_->key()));
  EXPECT_NE(ep.vni, 0u);
  EXPECT_EQ(ep.lamport_id, 1u);
  EXPECT_EQ(ep.bind_lifetime_ns, 30 * kSecond);
  EXPECT_EQ(ep.steady_state_lifetime_ns, 300 * kSecond);
  ASSERT_EQ(ep.addresses.size(), 2u);
  EXPECT_EQ(ep.addresses[0].ToString(), "203.0.113.7:7777");
}

TEST_P(ServerTest, LamportIdsIncreaseWithEveryNewAllocation) {
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    DiscoClient x(GetParam(), server_->server_key(), Addr("192.0.2.1:1"));
    EndpointInfo ep = server_->Allocate(a_->key(), x.key(), now_).value();
    EXPECT_GT(ep.lamport_id, last);
    last = ep.lamport_id;
  }
}

TEST_P(ServerTest, UnboundEndpointIsReturnedUnchangedWithoutResettingAge) {
  EndpointInfo first = AllocateAB();
  now_ += 20 * kSecond;
  EndpointInfo again = server_->Allocate(b_->key(), a_->key(), now_).value();
  EXPECT_EQ(again.vni, first.vni);
  EXPECT_EQ(again.lamport_id, first.lamport_id);
  // The age counts from the first allocation: 30 s after it, it is gone.
  now_ += 10 * kSecond + 1;
  EXPECT_EQ(server_->Expire(now_), 1u);
}

TEST_P(ServerTest, BoundEndpointIsReplacedBySeedAndReturnedByCurrent) {
  EndpointInfo first = BindBoth();
  EndpointInfo again = server_->Allocate(a_->key(), b_->key(), now_).value();
  if (IsCurrent()) {
    EXPECT_EQ(again.vni, first.vni);
    EXPECT_EQ(again.lamport_id, first.lamport_id);
    EXPECT_EQ(Send(*a_, a_->Data({1})).kind, Verdict::kForward);
  } else {
    EXPECT_NE(again.vni, first.vni);
    EXPECT_GT(again.lamport_id, first.lamport_id);
    EXPECT_EQ(server_->endpoint_count(), 1u);
    ExpectDrop(DropReason::kUnknownVni, [&] { Send(*a_, a_->Data({1})); });
  }
}

TEST_P(ServerTest, AllocationErrors) {
  EXPECT_EQ(server_->Allocate(server_->server_key(), a_->key(), now_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_->Allocate(a_->key(), server_->server_key(), now_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_->Allocate(a_->key(), a_->key(), now_).status().code(),
            absl::StatusCode::kInvalidArgument);
  server_->Close();
  auto closed = server_->Allocate(a_->key(), b_->key(), now_);
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(closed.status().message(), "server closed");
}

TEST_P(ServerTest, NoAddressToAdvertiseIsUnavailable) {
  server_->SetAddresses({});
  EXPECT_EQ(server_->Allocate(a_->key(), b_->key(), now_).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_P(ServerTest, ExhaustedVniSpaceIsAnErrorAndRecoversAfterExpiry) {
  MakeServer(ServerConfig{.vni_limit = 3});
  std::vector<std::unique_ptr<DiscoClient>> peers;
  for (int i = 0; i < 3; ++i) {
    peers.push_back(std::make_unique<DiscoClient>(
        GetParam(), server_->server_key(), Addr("192.0.2.1:1")));
    ASSERT_TRUE(server_->Allocate(a_->key(), peers.back()->key(), now_).ok());
  }
  auto full = server_->Allocate(a_->key(), b_->key(), now_);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.status().message(), "VNI pool exhausted");
  now_ += 30 * kSecond + 1;
  EXPECT_EQ(server_->Expire(now_), 3u);
  EndpointInfo ep = server_->Allocate(a_->key(), b_->key(), now_).value();
  EXPECT_GE(ep.vni, 1u);
  EXPECT_LE(ep.vni, 3u);
}

TEST_P(ServerTest, EndpointCapIsEnforced) {
  MakeServer(ServerConfig{.max_endpoints = 1});
  ASSERT_TRUE(server_->Allocate(a_->key(), b_->key(), now_).ok());
  DiscoClient x(GetParam(), server_->server_key(), Addr("192.0.2.1:1"));
  EXPECT_EQ(server_->Allocate(a_->key(), x.key(), now_).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// ---- Handshake and relay ----

TEST_P(ServerTest, BoundPairRelaysBothWaysUnchanged) {
  BindBoth();
  EXPECT_EQ(c_.handshakes_completed.Get(), 2u);
  Verdict v = Send(*a_, a_->Data({1, 2, 3}));
  ASSERT_EQ(v.kind, Verdict::kForward);
  EXPECT_EQ(v.destination, b_->address());
  v = Send(*b_, b_->Data({4}));
  ASSERT_EQ(v.kind, Verdict::kForward);
  EXPECT_EQ(v.destination, a_->address());
  // Clients' own disco pings travel as 0x7A11 with the control bit clear.
  v = Send(*a_, a_->Data({9}, geneve::kProtocolDisco));
  EXPECT_EQ(v.kind, Verdict::kForward);
  EXPECT_EQ(c_.relayed.Get(), 3u);
  EXPECT_EQ(c_.relayed_bytes.Get(), 11u + 9u + 9u);

  std::vector<SessionInfo> s = server_->Sessions();
  ASSERT_EQ(s.size(), 1u);
  int ia = s[0].client_keys[0] == a_->key() ? 0 : 1;
  EXPECT_EQ(s[0].bound[ia], a_->address());
  EXPECT_EQ(s[0].bound[1 - ia], b_->address());
  EXPECT_EQ(s[0].packets[ia], 2u);
  EXPECT_EQ(s[0].bytes[ia], 20u);
  EXPECT_EQ(s[0].packets[1 - ia], 1u);
}

TEST_P(ServerTest, ChallengeIsSealedToTheClientWithTheEndpointVni) {
  EndpointInfo ep = AllocateAB();
  auto reply = Control(a_->address(), a_->Bind(5));
  ASSERT_TRUE(reply.has_value());
  // Geneve: version 0, control, Disco, the endpoint's VNI, reserved 0.
  geneve::Header h;
  ASSERT_TRUE(geneve::Decode(reply->data(), reply->size(), &h));
  EXPECT_EQ((*reply)[0], 0);
  EXPECT_EQ((*reply)[1], 0x80);
  EXPECT_EQ((*reply)[7], 0);
  EXPECT_EQ(h.vni, ep.vni);
  EXPECT_EQ(h.protocol, geneve::kProtocolDisco);
  auto ch = a_->OpenChallenge(*reply);
  ASSERT_TRUE(ch.has_value());
  if (IsCurrent()) {
    EXPECT_EQ(reply->size(), 160u);
    EXPECT_EQ(ch->vni, ep.vni);
    EXPECT_EQ(ch->generation, 5u);
    EXPECT_EQ(ch->remote_key, b_->key());
  } else {
    EXPECT_EQ(reply->size(), 120u);
  }
  // B cannot open A's challenge.
  EXPECT_FALSE(b_->OpenChallenge(*reply).has_value());
}

TEST_P(ServerTest, RetransmittedBindGetsTheChallengeAgain) {
  AllocateAB();
  auto first = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  auto second = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->challenge, second->challenge);
  // Either one answers.
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*first)).has_value());
  EXPECT_EQ(c_.handshakes_completed.Get(), 1u);
}

TEST_P(ServerTest, CorrectAnswerGetsNoReply) {
  AllocateAB();
  auto ch = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*ch)).has_value());
  EXPECT_EQ(c_.DroppedTotal(), 0u);
  EXPECT_EQ(c_.handshakes_completed.Get(), 1u);
}

TEST_P(ServerTest, WrongAnswerIsDropped) {
  AllocateAB();
  auto ch = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  ch->challenge[0] ^= 1;
  ExpectDrop(IsCurrent() ? DropReason::kBadMac : DropReason::kBadAnswer,
             [&] { Control(a_->address(), a_->Answer(*ch)); });
  EXPECT_EQ(c_.handshakes_completed.Get(), 0u);
}

TEST_P(ServerTest, DataBeforeBothSidesAreBoundIsDropped) {
  AllocateAB();
  ExpectDrop(DropReason::kNotBound, [&] { Send(*a_, a_->Data({1})); });
  ASSERT_TRUE(relay::DriveHandshake(*a_, *server_, now_, &c_));
  ExpectDrop(DropReason::kNotBound, [&] { Send(*a_, a_->Data({1})); });
  ASSERT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_));
  EXPECT_EQ(Send(*a_, a_->Data({1})).kind, Verdict::kForward);
}

TEST_P(ServerTest, DataFromAThirdAddressIsDropped) {
  BindBoth();
  ExpectDrop(DropReason::kUnknownSource,
             [&] { SendFrom(Addr("198.51.100.1:1002"), a_->Data({1})); });
  ExpectDrop(DropReason::kUnknownSource,
             [&] { SendFrom(Addr("198.51.100.9:1001"), a_->Data({1})); });
}

TEST_P(ServerTest, FastPathDropsAreCountedByReason) {
  BindBoth();
  ExpectDrop(DropReason::kShortDatagram, [&] { SendFrom(a_->address(), {}); });
  ExpectDrop(DropReason::kShortDatagram,
             [&] { SendFrom(a_->address(), Bytes(7, 0)); });
  Bytes bad_ctl = a_->Bind(1);
  bad_ctl[3] = 0x12;  // control bit with WireGuard protocol
  ExpectDrop(DropReason::kBadControlProtocol,
             [&] { Send(*a_, bad_ctl); });
  Bytes unknown = a_->Data({1});
  unknown[6] ^= 0x55;
  ExpectDrop(DropReason::kUnknownVni, [&] { Send(*a_, unknown); });
  // A control datagram is a slow-path verdict, not counted by Process.
  const uint64_t dropped = c_.DroppedTotal();
  EXPECT_EQ(Send(*a_, a_->Bind(1)).kind, Verdict::kSlowPath);
  EXPECT_EQ(c_.DroppedTotal(), dropped);
}

TEST_P(ServerTest, SlowPathDropsAreCountedByReason) {
  AllocateAB();
  ExpectDrop(DropReason::kNotDisco, [&] {
    Bytes d = a_->Bind(1);
    d[8] ^= 1;  // magic
    Control(a_->address(), d);
  });
  ExpectDrop(DropReason::kNotDisco, [&] {
    Bytes d = a_->Bind(1);
    d.resize(geneve::kHeaderSize + disco::kEnvelopeMinSize - 1);
    Control(a_->address(), d);
  });
  ExpectDrop(DropReason::kUnknownVni, [&] {
    Bytes d = a_->Bind(1);
    d[6] ^= 0x55;
    Control(a_->address(), d);
  });
  ExpectDrop(DropReason::kUnknownSender, [&] {
    DiscoClient stranger(GetParam(), server_->server_key(), a_->address());
    stranger.SetEndpoint(a_->vni(), b_->key());
    Control(a_->address(), stranger.Bind(1));
  });
  for (size_t i : {46u, 70u, 100u}) {  // nonce, tag, ciphertext
    ExpectDrop(DropReason::kBoxOpenFailed, [&] {
      Bytes d = a_->Bind(1);
      d[i] ^= 0x80;
      Control(a_->address(), d);
    });
  }
  ExpectDrop(DropReason::kUnexpectedMessage, [&] {
    // A Challenge sent back to the server.
    Control(a_->address(), a_->Seal({.type = MessageType::kChallenge,
                                     .vni = a_->vni(), .generation = 1,
                                     .remote_key = b_->key()},
                                    a_->vni()));
  });
  EXPECT_EQ(c_.challenges_sent.Get(), 0u);
}

TEST_P(ServerTest, ForgedBoxesDoNotCostAKeyComputationEach) {
  AllocateAB();
  DiscoClient stranger(GetParam(), server_->server_key(), a_->address());
  stranger.SetEndpoint(a_->vni(), b_->key());
  Bytes forged = stranger.Bind(1);
  std::copy(a_->key().bytes.begin(), a_->key().bytes.end(),
            forged.begin() + 14);
  for (int i = 0; i < 200; ++i) Control(a_->address(), forged);
  EXPECT_EQ(c_.Dropped(DropReason::kBoxOpenFailed), 200u);
  // A's shared key was computed once, not once per forgery.
  EXPECT_EQ(c_.key_computations.Get(), 1u);
  // The real client still completes its handshake with the cached key.
  EXPECT_TRUE(relay::DriveHandshake(*a_, *server_, now_, &c_));
}

TEST_P(ServerTest, ForgedSenderKeyWithoutItsSecretIsDropped) {
  AllocateAB();
  // A stranger writes A's key in the envelope but can only seal with its
  // own secret: the box does not open under A's shared key.
  DiscoClient stranger(GetParam(), server_->server_key(), a_->address());
  stranger.SetEndpoint(a_->vni(), b_->key());
  Bytes d = stranger.Bind(1);
  std::copy(a_->key().bytes.begin(), a_->key().bytes.end(), d.begin() + 14);
  ExpectDrop(DropReason::kBoxOpenFailed, [&] { Control(a_->address(), d); });
}

TEST_P(ServerTest, UdpAllocationOnlyForAllowlistedKeys) {
  Bytes req = a_->AllocateRequest(b_->key(), 42);
  ExpectDrop(DropReason::kAllocateNotAllowed,
             [&] { Control(a_->address(), req); });
  EXPECT_EQ(server_->endpoint_count(), 0u);
  server_->SetAllocateAllowlist({a_->key()});
  auto reply = Control(a_->address(), req);
  ASSERT_TRUE(reply.has_value());
  geneve::Header h;
  ASSERT_TRUE(geneve::Decode(reply->data(), reply->size(), &h));
  EXPECT_EQ(h.vni, kAllocateVni);
  auto resp = a_->OpenAllocateResponse(*reply);
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->generation, 42u);
  EXPECT_EQ(resp->server, server_->server_key());
  EXPECT_EQ(resp->lamport_id, 1u);
  EXPECT_EQ(resp->bind_lifetime_ns, uint64_t(30 * kSecond));
  ASSERT_EQ(resp->addresses.size(), 2u);
  EXPECT_EQ(resp->addresses[1].ToString(), "[2001:db8::1]:7777");
  EXPECT_EQ(c_.allocations_udp.Get(), 1u);
  // Never a reply larger than its request (the source is unverified).
  EXPECT_LE(reply->size(), req.size());
  // The same pair again, a fresh request: the same endpoint.
  auto again = a_->OpenAllocateResponse(
      *Control(a_->address(), a_->AllocateRequest(b_->key(), 43)));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->vni, resp->vni);
  // B is not on the list.
  ExpectDrop(DropReason::kAllocateNotAllowed, [&] {
    Control(b_->address(), b_->AllocateRequest(a_->key(), 1));
  });
}

TEST_P(ServerTest, UdpAllocationReplaysAndReflectionsGetNothing) {
  server_->SetAllocateAllowlist({a_->key()});
  const uint64_t keys_before = c_.key_computations.Get();
  const Bytes req = a_->AllocateRequest(b_->key(), 1);
  ASSERT_TRUE(Control(a_->address(), req).has_value());
  ASSERT_EQ(server_->endpoint_count(), 1u);
  const uint64_t lamport = server_->Sessions().at(0).lamport_id;
  // Replayed, from anywhere: no reply and nothing changes (in the seed
  // dialect a new allocation would have replaced a bound endpoint).
  for (const char* from : {"198.51.100.9:1", "203.0.113.5:53"}) {
    ExpectDrop(DropReason::kReplayed, [&] { Control(Addr(from), req); });
  }
  ExpectDrop(DropReason::kReplayed, [&] { Control(a_->address(), req); });
  EXPECT_EQ(server_->Sessions().at(0).lamport_id, lamport);
  // Unpadded: a reply would be larger than the request.
  ExpectDrop(DropReason::kAllocateUnpadded, [&] {
    Control(a_->address(), a_->AllocateRequest(b_->key(), 2, 0));
  });
  // The requester must be one of the pair.
  DiscoClient c(GetParam(), server_->server_key(), Addr("192.0.2.50:5"));
  Bytes pt(kAllocateRequestPaddedSize, 0);
  disco::MarshalAllocateRequest(
      {.client_a = b_->key(), .client_b = c.key(), .generation = 3},
      pt.data());
  ExpectDrop(DropReason::kAllocateNotClient,
             [&] { Control(a_->address(), a_->SealRaw(pt, kAllocateVni)); });
  EXPECT_EQ(server_->endpoint_count(), 1u);
  // The allowlisted key's shared key was computed at load, not per request.
  EXPECT_EQ(c_.key_computations.Get(), keys_before);
}

TEST_P(ServerTest, PerCallerCapCountsLiveEndpoints) {
  ServerConfig config;
  config.max_endpoints_per_caller = 3;
  config.bind_lifetime_ns = kSecond;
  MakeServer(config);
  auto key = [] { return disco::KeyPair::Generate().public_key(); };
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(server_->Allocate(key(), key(), now_, "10.0.0.1").ok());
  }
  auto over = server_->Allocate(key(), key(), now_, "10.0.0.1");
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  // Another caller has its own allowance.
  EXPECT_TRUE(server_->Allocate(key(), key(), now_, "10.0.0.2").ok());
  // Once the caller's endpoints expire, it may allocate again.
  EXPECT_EQ(server_->Expire(now_ + 2 * kSecond), 4u);
  EXPECT_TRUE(server_->Allocate(key(), key(), now_ + 2 * kSecond, "10.0.0.1").ok());
}

TEST_P(ServerTest, AllocationRateIsCappedOverAllCallers) {
  ServerConfig config;
  config.allocation_rate = 10;
  config.allocation_burst = 5;
  MakeServer(config);
  auto key = [] { return disco::KeyPair::Generate().public_key(); };
  int ok = 0;
  for (int i = 0; i < 20; ++i) {
    // 20 different callers: a per-caller limit would not stop them.
    ok += server_->Allocate(key(), key(), now_, absl::StrCat("c", i)).ok();
  }
  EXPECT_EQ(ok, 5);
  auto over = server_->Allocate(key(), key(), now_, "late");
  EXPECT_EQ(over.status().code(), absl::StatusCode::kUnavailable);
  // An existing pair is returned without spending the budget.
  const disco::DiscoKey x = key(), y = key();
  EXPECT_FALSE(server_->Allocate(x, y, now_).ok());
  EXPECT_TRUE(server_->Allocate(x, y, now_ + kSecond / 10).ok());
  EXPECT_TRUE(server_->Allocate(x, y, now_ + kSecond / 10).ok());
}

TEST_P(ServerTest, LowOrderClientKeysAreRefused) {
  disco::DiscoKey zero;
  auto r = server_->Allocate(a_->key(), zero, now_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

// ---- Seed-only rules ----

class SeedServerTest : public ServerTest {};
INSTANTIATE_TEST_SUITE_P(Seed, SeedServerTest,
                         ::testing::Values(Dialect::kSeed));

TEST_P(SeedServerTest, BindAndAnswerFromASecondAddressAreIgnored) {
  AllocateAB();
  auto ch = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  const SocketAddress other = Addr("198.51.100.1:9999");
  ExpectDrop(DropReason::kWrongAddress, [&] { Control(other, a_->Bind(1)); });
  ExpectDrop(DropReason::kWrongAddress,
             [&] { Control(other, a_->Answer(*ch)); });
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*ch)).has_value());
  EXPECT_EQ(c_.handshakes_completed.Get(), 1u);
}

TEST_P(SeedServerTest, BoundSideAndBoundEndpointIgnoreHandshakes) {
  AllocateAB();
  ASSERT_TRUE(relay::DriveHandshake(*a_, *server_, now_, &c_));
  ExpectDrop(DropReason::kAlreadyBound,
             [&] { Control(a_->address(), a_->Bind(1)); });
  ASSERT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_));
  ExpectDrop(DropReason::kAlreadyBound,
             [&] { Control(b_->address(), b_->Bind(1)); });
}

TEST_P(SeedServerTest, ShortAndEmptyBindBodiesAreAccepted) {
  AllocateAB();
  // The seed server reads nothing from a Bind body: type + version suffice.
  for (size_t body : {0u, 1u, 31u}) {
    SCOPED_TRACE(body);
    Bytes pt = {0x04, 0x00};
    pt.resize(2 + body, 0);
    auto reply = Control(a_->address(), a_->SealRaw(pt, a_->vni()));
    ASSERT_TRUE(reply.has_value());
    EXPECT_TRUE(a_->OpenChallenge(*reply).has_value());
  }
  // Only a plaintext without even the type and version is refused.
  ExpectDrop(DropReason::kBadMessage,
             [&] { Control(a_->address(), a_->SealRaw({0x04}, a_->vni())); });
}

TEST_P(ServerTest, TruncatedHandshakeBodiesAreDropped) {
  AllocateAB();
  const size_t need = IsCurrent() ? 74 : 34;
  for (uint8_t type : {0x04, 0x06}) {
    if (!IsCurrent() && type == 0x04) continue;  // seed Bind: any length
    Bytes pt(need - 1, 0);
    pt[0] = type;
    ExpectDrop(DropReason::kBadMessage,
               [&] { Control(a_->address(), a_->SealRaw(pt, a_->vni())); });
  }
  // Unknown types and allocation messages are not handshake messages.
  for (uint8_t type : {0x00, 0x01, 0x07, 0x08, 0x09, 0xff}) {
    Bytes pt(74, 0);
    pt[0] = type;
    ExpectDrop(DropReason::kUnexpectedMessage,
               [&] { Control(a_->address(), a_->SealRaw(pt, a_->vni())); });
  }
}

// ---- Current-only rules ----

class CurrentServerTest : public ServerTest {};
INSTANTIATE_TEST_SUITE_P(Current, CurrentServerTest,
                         ::testing::Values(Dialect::kCurrent));

TEST_P(CurrentServerTest, HandshakeFieldChecks) {
  AllocateAB();
  ExpectDrop(DropReason::kWrongVni, [&] {
    Control(a_->address(),
            a_->Seal({.type = MessageType::kBind, .vni = a_->vni() + 1,
                      .generation = 1, .remote_key = b_->key()},
                     a_->vni()));
  });
  ExpectDrop(DropReason::kWrongRemoteKey, [&] {
    Control(a_->address(),
            a_->Seal({.type = MessageType::kBind, .vni = a_->vni(),
                      .generation = 1, .remote_key = a_->key()},
                     a_->vni()));
  });
  ExpectDrop(DropReason::kZeroGeneration,
             [&] { Control(a_->address(), a_->Bind(0)); });
}

TEST_P(CurrentServerTest, AnyLiveChallengeBindsButAnAnswerBindsOnlyOnce) {
  AllocateAB();
  auto ch1 = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  auto ch2 = a_->OpenChallenge(*Control(a_->address(), a_->Bind(2)));
  ASSERT_TRUE(ch1 && ch2);
  // A later Bind does not void the earlier Challenge: Binds change nothing.
  const Bytes answer1 = a_->Answer(*ch1);
  EXPECT_FALSE(Control(a_->address(), answer1).has_value());
  EXPECT_EQ(c_.handshakes_completed.Get(), 1u);
  // The same Answer again (the same box, the same nonce) is a replay.
  ExpectDrop(DropReason::kReplayed,
             [&] { Control(a_->address(), answer1); });
  // A fresh Answer (a new box) re-binds: a restarted client counts its
  // generations from 1 again and must still get through.
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*ch1)).has_value());
  EXPECT_EQ(c_.handshakes_completed.Get(), 2u);
}

TEST_P(CurrentServerTest, ReplayedBindsCannotBlockARebind) {
  AllocateAB();
  const Bytes captured = a_->Bind(7);
  const SocketAddress attacker = Addr("203.0.113.66:666");
  for (int i = 0; i < 500; ++i) Control(attacker, captured);
  // The real client's handshake, between replays, still binds.
  auto ch = a_->OpenChallenge(*Control(a_->address(), a_->Bind(8)));
  ASSERT_TRUE(ch.has_value());
  for (int i = 0; i < 50; ++i) Control(attacker, captured);
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*ch)).has_value());
  EXPECT_EQ(c_.handshakes_completed.Get(), 1u);
}

TEST_P(CurrentServerTest, CapturedHandshakeReplayedFromTheOldAddressIsRefused) {
  AllocateAB();
  ASSERT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_));
  // A binds at its first address; an attacker records both messages.
  const SocketAddress old_addr = a_->address();
  const Bytes bind1 = a_->Bind(1);
  auto ch1 = a_->OpenChallenge(*Control(old_addr, bind1));
  ASSERT_TRUE(ch1.has_value());
  const Bytes answer1 = a_->Answer(*ch1);
  EXPECT_FALSE(Control(old_addr, answer1).has_value());
  // A moves and re-binds from its new address.
  const SocketAddress new_addr = Addr("198.51.100.77:4242");
  auto ch2 = a_->OpenChallenge(*Control(new_addr, a_->Bind(2)));
  ASSERT_TRUE(ch2.has_value());
  EXPECT_FALSE(Control(new_addr, a_->Answer(*ch2)).has_value());
  // The attacker, now holding A's old address, replays the pair: the Bind
  // is answered (to the old address, no larger than the Bind), the Answer
  // is refused, and B's traffic keeps going to A's new address.
  EXPECT_TRUE(Control(old_addr, bind1).has_value());
  ExpectDrop(DropReason::kReplayed, [&] { Control(old_addr, answer1); });
  SessionInfo s = server_->Sessions().at(0);
  EXPECT_EQ(s.bound[s.client_keys[0] == a_->key() ? 0 : 1], new_addr);
}

TEST_P(CurrentServerTest, BindsFromOtherAddressesAreAnsweredButAnswerMustComeFromWhereTheChallengeWent) {
  AllocateAB();
  const SocketAddress other = Addr("198.51.100.1:9999");
  auto ch = a_->OpenChallenge(*Control(other, a_->Bind(1)));
  ASSERT_TRUE(ch.has_value());
  // The MAC covers the Bind's source: answering from A's usual address fails.
  ExpectDrop(DropReason::kBadMac,
             [&] { Control(a_->address(), a_->Answer(*ch)); });
  EXPECT_FALSE(Control(other, a_->Answer(*ch)).has_value());
  SessionInfo s = server_->Sessions().at(0);
  EXPECT_EQ(s.bound[s.client_keys[0] == a_->key() ? 0 : 1], other);
}

TEST_P(CurrentServerTest, AnswerAfterOneMacRotationIsAcceptedAfterTwoIsNot) {
  AllocateAB();
  auto ch = a_->OpenChallenge(*Control(a_->address(), a_->Bind(1)));
  now_ += ChallengeMac::kRotationInterval;
  // The rotation happens lazily on the next control packet.
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*ch)).has_value());
  EXPECT_EQ(c_.handshakes_completed.Get(), 1u);

  auto ch_b = b_->OpenChallenge(*Control(b_->address(), b_->Bind(7)));
  now_ += ChallengeMac::kRotationInterval;
  Control(a_->address(), a_->Bind(9));  // rotates once more
  now_ += ChallengeMac::kRotationInterval;
  ExpectDrop(DropReason::kBadMac,
             [&] { Control(b_->address(), b_->Answer(*ch_b)); });
}

TEST_P(CurrentServerTest, RebindToANewAddressMovesTheRelay) {
  BindBoth();
  const SocketAddress old_addr = a_->address();
  // A's new Bind from a new port is answered; until A answers, the old
  // address keeps relaying.
  a_->set_address(Addr("198.51.100.1:3003"));
  auto ch = a_->OpenChallenge(*Control(a_->address(), a_->Bind(2)));
  ASSERT_TRUE(ch.has_value());
  EXPECT_EQ(SendFrom(old_addr, a_->Data({1})).kind, Verdict::kForward);
  EXPECT_EQ(Send(*b_, b_->Data({2})).destination, old_addr);
  EXPECT_FALSE(Control(a_->address(), a_->Answer(*ch)).has_value());
  ExpectDrop(DropReason::kUnknownSource,
             [&] { SendFrom(old_addr, a_->Data({1})); });
  Verdict v = Send(*b_, b_->Data({2}));
  ASSERT_EQ(v.kind, Verdict::kForward);
  EXPECT_EQ(v.destination, a_->address());
  EXPECT_EQ(Send(*a_, a_->Data({3})).destination, b_->address());
}

// ---- Expiry ----

TEST_P(ServerTest, UnboundEndpointExpiresJustAfterTheBindLifetime) {
  AllocateAB();
  const int64_t t0 = now_;
  ASSERT_TRUE(relay::DriveHandshake(*a_, *server_, now_, &c_));  // one side is not enough
  EXPECT_EQ(server_->Expire(t0 + 30 * kSecond), 0u);
  EXPECT_EQ(server_->endpoint_count(), 1u);
  EXPECT_EQ(server_->Expire(t0 + 30 * kSecond + 1), 1u);
  EXPECT_EQ(server_->endpoint_count(), 0u);
  ExpectDrop(DropReason::kUnknownVni, [&] { Send(*a_, a_->Data({1})); });
}

TEST_P(ServerTest, BoundEndpointExpiresWhenEitherSideIsSilentTooLong) {
  BindBoth();
  const int64_t bound_at = now_;
  // A keeps talking; B is silent from the moment it bound.
  now_ = bound_at + 200 * kSecond;
  ASSERT_EQ(Send(*a_, a_->Data({1})).kind, Verdict::kForward);
  EXPECT_EQ(server_->Expire(bound_at + 300 * kSecond), 0u);
  EXPECT_EQ(server_->Expire(bound_at + 300 * kSecond + 1), 1u);
}

TEST_P(ServerTest, RelayedTrafficRefreshesLastSeen) {
  BindBoth();
  for (int i = 1; i <= 4; ++i) {
    now_ += 200 * kSecond;
    ASSERT_EQ(Send(*a_, a_->Data({1})).kind, Verdict::kForward) << i;
    ASSERT_EQ(Send(*b_, b_->Data({1})).kind, Verdict::kForward) << i;
    EXPECT_EQ(server_->Expire(now_), 0u);
  }
  EXPECT_EQ(server_->Expire(now_ + 300 * kSecond + 1), 1u);
}

TEST_P(ServerTest, ExpiredVniIsFreedForReuse) {
  MakeServer(ServerConfig{.vni_limit = 1});
  EndpointInfo first = AllocateAB();
  DiscoClient x(GetParam(), server_->server_key(), Addr("192.0.2.1:1"));
  EXPECT_FALSE(server_->Allocate(a_->key(), x.key(), now_).ok());
  now_ += 31 * kSecond;
  EXPECT_EQ(server_->Expire(now_), 1u);
  EndpointInfo second = server_->Allocate(a_->key(), x.key(), now_).value();
  EXPECT_EQ(second.vni, first.vni);
  EXPECT_GT(second.lamport_id, first.lamport_id);
}

TEST_P(ServerTest, StaleUnboundEndpointIsNotReturnedByAllocate) {
  EndpointInfo first = AllocateAB();
  now_ += 30 * kSecond + 1;  // expired, but no sweep yet
  EndpointInfo second = server_->Allocate(a_->key(), b_->key(), now_).value();
  EXPECT_GT(second.lamport_id, first.lamport_id);
  EXPECT_EQ(server_->endpoint_count(), 1u);
}

TEST_P(ServerTest, ProcessRunEqualsProcessCalledForEachDatagram) {
  BindBoth();
  const SocketAddress stranger = Addr("198.51.100.77:7");
  Bytes unknown_vni = a_->Data({1});
  unknown_vni[6] ^= 0x33;
  Bytes bad_control = a_->Data({1});
  bad_control[1] = 0x80;
  struct Case {
    const char* name;
    Bytes datagram;
    SocketAddress from;
  };
  const Case cases[] = {
      {"relayed", a_->Data(Bytes(100, 1)), a_->address()},
      {"relayed other way", b_->Data(Bytes(30, 2)), b_->address()},
      {"unknown source", a_->Data(Bytes(50, 3)), stranger},
      {"unknown vni", unknown_vni, a_->address()},
      {"bad control protocol", bad_control, a_->address()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // Two servers in the same state: one gets 7 Process calls, the other
    // one ProcessRun of 7.
    Counters each, run;
    std::vector<SessionInfo> before = server_->Sessions();
    Verdict v1;
    for (int i = 0; i < 7; ++i) {
      v1 = ProcessCounted(*server_, c.datagram.data(), c.datagram.size(), c.from,
                            now_, &each);
    }
    std::vector<SessionInfo> after_each = server_->Sessions();
    Verdict v2 = ProcessRunCounted(*server_, c.datagram.data(), c.datagram.size(), 7,
                                     7 * c.datagram.size(), c.from, now_,
                                     &run);
    std::vector<SessionInfo> after_run = server_->Sessions();
    EXPECT_EQ(v1.kind, v2.kind);
    EXPECT_EQ(v1.reason, v2.reason);
    EXPECT_EQ(v1.destination, v2.destination);
    CountersSnapshot s1, s2;
    s1.Add(each);
    s2.Add(run);
    EXPECT_EQ(s1.received, s2.received);
    EXPECT_EQ(s1.received_bytes, s2.received_bytes);
    EXPECT_EQ(s1.relayed, s2.relayed);
    EXPECT_EQ(s1.relayed_bytes, s2.relayed_bytes);
    EXPECT_EQ(s1.dropped, s2.dropped);
    // The per-endpoint counters moved by the same amounts both times.
    for (int side = 0; side < 2; ++side) {
      EXPECT_EQ(after_each[0].packets[side] - before[0].packets[side],
                after_run[0].packets[side] - after_each[0].packets[side]);
      EXPECT_EQ(after_each[0].bytes[side] - before[0].bytes[side],
                after_run[0].bytes[side] - after_each[0].bytes[side]);
    }
  }
}

TEST_P(ServerTest, SessionsCanBeLimitedToTheLowestVnis) {
  std::vector<std::unique_ptr<DiscoClient>> peers;
  for (int i = 0; i < 6; ++i) {
    peers.push_back(std::make_unique<DiscoClient>(
        GetParam(), server_->server_key(), Addr("192.0.2.1:1")));
    ASSERT_TRUE(server_->Allocate(a_->key(), peers.back()->key(), now_).ok());
  }
  size_t total = 0;
  std::vector<SessionInfo> s = server_->Sessions(4, &total);
  EXPECT_EQ(total, 6u);
  ASSERT_EQ(s.size(), 4u);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i].vni, i + 1);
  EXPECT_EQ(server_->Sessions().size(), 6u);
  EXPECT_TRUE(server_->Sessions(0, &total).empty());
  EXPECT_EQ(total, 6u);
}

TEST_P(ServerTest, EveryDatagramIsAccounted) {
  BindBoth();
  uint64_t slow = 0;
  std::vector<Bytes> inputs = {a_->Data({1}), Bytes(3, 0), a_->Bind(1),
                               b_->Data({2, 3}), a_->Data({}),
                               Bytes{0, 0x80, 0x7a, 0x12, 0, 0, 1, 0}};
  for (int round = 0; round < 10; ++round) {
    for (const Bytes& d : inputs) {
      if (Send(*a_, d).kind == Verdict::kSlowPath) ++slow;
    }
  }
  EXPECT_EQ(c_.received.Get(), 60u);
  EXPECT_EQ(c_.received.Get(), c_.relayed.Get() + slow + c_.DroppedTotal());
}

}  // namespace
}  // namespace peerrelay::relay

namespace peerrelay::relay {
namespace {

// Records what the table tells its pair observer, in order.
class RecordingObserver : public PairObserver {
 public:
  void PairBound(const Endpoint& ep) override {
    events.push_back(absl::StrCat("bound ", ep.vni, " ", ep.sides[0].addr.ToString(),
                                  " ", ep.sides[1].addr.ToString()));
  }
  void PairRemoved(const Endpoint& ep) override {
    events.push_back(absl::StrCat("removed ", ep.vni));
  }
  std::vector<std::string> events;
};

TEST_P(ServerTest, PairObserverFollowsBindRebindAndRemovalInOrder) {
  RecordingObserver obs;
  server_->SetPairObserver(&obs);
  const EndpointInfo ep = AllocateAB();
  // One side bound: nothing to mirror yet.
  ASSERT_TRUE(relay::DriveHandshake(*a_, *server_, now_, &c_));
  EXPECT_TRUE(obs.events.empty());
  ASSERT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_));
  // Sides are sorted by key: name them as the table does.
  const bool a_first = a_->key() < b_->key();
  auto pair = [&](const SocketAddress& a, const SocketAddress& b) {
    return absl::StrCat("bound ", ep.vni, " ",
                        (a_first ? a : b).ToString(), " ",
                        (a_first ? b : a).ToString());
  };
  ASSERT_EQ(obs.events.size(), 1u);
  EXPECT_EQ(obs.events[0], pair(a_->address(), b_->address()));
  if (IsCurrent()) {
    // A re-bind from a new address changes the pair; one from the same
    // address changes nothing and says nothing.
    ASSERT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_, 2));
    EXPECT_EQ(obs.events.size(), 1u);
    b_->set_address(Addr("[2001:db8::b]:3003"));
    ASSERT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &c_, 3));
    ASSERT_EQ(obs.events.size(), 2u);
    EXPECT_EQ(obs.events[1], pair(a_->address(), b_->address()));
    // An observer set now hears of the bound pair at once.
    RecordingObserver mid;
    server_->SetPairObserver(&mid);
    ASSERT_EQ(mid.events.size(), 1u);
    EXPECT_EQ(mid.events[0], obs.events[1]);
    server_->SetPairObserver(&obs);
    obs.events.pop_back();  // the replay to obs itself
    // Expiry removes it.
    EXPECT_EQ(server_->Expire(now_ + kDefaultSteadyStateLifetime + kSecond),
              1u);
    ASSERT_EQ(obs.events.size(), 3u);
    EXPECT_EQ(obs.events[2], absl::StrCat("removed ", ep.vni));
  } else {
    // The seed dialect replaces a bound endpoint on re-allocation: the old
    // pair is removed before anything else can bind the new one.
    const EndpointInfo again =
        server_->Allocate(a_->key(), b_->key(), now_).value();
    ASSERT_EQ(obs.events.size(), 2u);
    EXPECT_EQ(obs.events[1], absl::StrCat("removed ", ep.vni));
    EXPECT_NE(again.vni, ep.vni);
  }
  // A new observer hears of every pair bound now, and an unbound endpoint
  // is not one.
  RecordingObserver late;
  server_->SetPairObserver(&late);
  EXPECT_TRUE(late.events.empty());
  server_->SetPairObserver(nullptr);
}

}  // namespace
}  // namespace peerrelay::relay
