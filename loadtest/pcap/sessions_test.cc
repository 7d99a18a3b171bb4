#include "loadtest/pcap/sessions.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "disco/envelope.h"
#include "disco/message.h"
#include "geneve/geneve.h"
#include "gtest/gtest.h"
#include "client/disco_client.h"
#include "loadtest/pcap/dump.h"

namespace peerrelay::pcap {
namespace {

using client::DiscoClient;

SocketAddress Addr(const char* t) { return SocketAddress::Parse(t).value(); }

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name + "." +
         std::to_string(getpid());
}

// A control datagram from the relay (`server`) to the client `to`.
Bytes ServerSeal(const disco::KeyPair& server, const disco::DiscoKey& to,
                 const disco::HandshakeMessage& m) {
  uint8_t plain[disco::kMaxHandshakeSize];
  const size_t n = disco::MarshalHandshake(disco::Dialect::kCurrent, m, plain);
  Bytes out(geneve::kHeaderSize + n + disco::kEnvelopeOverhead + disco::kNonceSize);
  geneve::Encode({.control = true, .protocol = geneve::kProtocolDisco, .vni = m.vni},
                 out.data());
  const size_t len = disco::SealEnvelope(
      server.public_key(), *disco::SharedKey::Compute(to, server), plain, n,
      out.data() + geneve::kHeaderSize);
  out.resize(geneve::kHeaderSize + len);
  return out;
}

Bytes Wg(uint32_t vni, uint64_t counter, uint8_t fill) {
  Bytes b(8 + 16 + 20, fill);
  geneve::Encode({.protocol = geneve::kProtocolWireGuard, .vni = vni}, b.data());
  b[8] = 4;
  b[9] = b[10] = b[11] = 0;
  for (int i = 0; i < 4; ++i) b[12 + i] = uint8_t(7 >> (8 * i));
  for (int i = 0; i < 8; ++i) b[16 + i] = uint8_t(counter >> (8 * i));
  return b;
}

// One session as the relay saw it: A and B bind, then data both ways, each
// datagram visible on both legs.
struct World {
  disco::KeyPair server = disco::KeyPair::Generate();
  disco::KeyPair a = disco::KeyPair::Generate();
  disco::KeyPair b = disco::KeyPair::Generate();
  SocketAddress relay = Addr("127.0.0.1:7777");
  SocketAddress addr_a = Addr("127.0.0.1:40001");
  SocketAddress addr_b = Addr("127.0.0.1:40002");
  uint32_t vni = 7;
  std::vector<Datagram> out;
  int64_t t = 1'700'000'000'000'000'000;

  void Add(const SocketAddress& s, const SocketAddress& d, Bytes p) {
    out.push_back({t, s, d, std::move(p)});
    t += 1000;
  }
  void Handshake(bool relay_view) {
    DiscoClient ca(disco::Dialect::kCurrent, server.public_key(), addr_a, a);
    DiscoClient cb(disco::Dialect::kCurrent, server.public_key(), addr_b, b);
    ca.SetEndpoint(vni, b.public_key());
    cb.SetEndpoint(vni, a.public_key());
    for (auto [c, addr, peer] : {std::tuple{&ca, addr_a, b.public_key()},
                                 std::tuple{&cb, addr_b, a.public_key()}}) {
      if (!relay_view && c == &cb) continue;  // A's capture: B's leg unseen
      Add(addr, relay, c->Bind(1));
      disco::HandshakeMessage ch{.type = disco::MessageType::kChallenge,
                                 .vni = vni, .generation = 1, .remote_key = peer};
      ch.challenge[0] = 9;
      Add(relay, addr, ServerSeal(server, c->key(), ch));
      Add(addr, relay, c->Answer(ch));
    }
  }
  void Write(const std::string& path) {
    auto w = PcapWriter::Open(path);
    ASSERT_TRUE(w.ok());
    for (const Datagram& d : out) {
      (*w)->Write(d.ts_ns, d.src, d.dst, d.payload.data(), d.payload.size());
    }
  }
};

TEST(Sessions, RelayViewUsesTheClientLegsOnly) {
  World w;
  w.Handshake(/*relay_view=*/true);
  for (uint64_t i = 0; i < 5; ++i) {
    w.Add(w.addr_a, w.relay, Wg(w.vni, i, 0xA0));   // A sends
    w.Add(w.relay, w.addr_b, Wg(w.vni, i, 0xA0));   // relayed to B
    w.Add(w.addr_b, w.relay, Wg(w.vni, i, 0xB0));
    w.Add(w.relay, w.addr_a, Wg(w.vni, i, 0xB0));
  }
  const std::string path = TempPath("relay_view");
  w.Write(path);
  auto c = LoadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(FindSessions(&*c, {}).ok());
  ASSERT_TRUE(c->relay);
  EXPECT_EQ(*c->relay, w.relay);
  ASSERT_EQ(c->sessions.size(), 1u);
  const Session& s = c->sessions[0];
  EXPECT_EQ(s.vni, 7u);
  EXPECT_EQ(s.client[0], w.addr_a);
  EXPECT_EQ(s.client[1], w.addr_b);
  EXPECT_EQ(s.key[0], w.a.public_key().ToText());
  EXPECT_EQ(s.key[1], w.b.public_key().ToText());
  EXPECT_EQ(s.control, 6u);
  EXPECT_EQ(s.data, 20u);
  EXPECT_FALSE(s.from_relay_leg[0]);
  EXPECT_FALSE(s.from_relay_leg[1]);
  ASSERT_EQ(s.items.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    const int side = int(i % 2);
    EXPECT_EQ(s.items[i].side, side);
    EXPECT_EQ(s.items[i].bytes, Wg(7, i / 2, side == 0 ? 0xA0 : 0xB0));
  }
  EXPECT_TRUE(c->hostile.empty());
  std::remove(path.c_str());
}

TEST(Sessions, ClientViewTakesThePeersSendsFromTheRelayLeg) {
  World w;
  w.Handshake(/*relay_view=*/false);
  for (uint64_t i = 0; i < 3; ++i) {
    w.Add(w.addr_a, w.relay, Wg(w.vni, i, 0xA0));
    w.Add(w.relay, w.addr_a, Wg(w.vni, i, 0xB0));  // B's, via the relay
  }
  const std::string path = TempPath("client_view");
  w.Write(path);
  auto c = LoadCapture(path);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(FindSessions(&*c, {}).ok());
  // Only two addresses, in one VNI: the Bind's destination is the relay.
  EXPECT_EQ(*c->relay, w.relay);
  ASSERT_EQ(c->sessions.size(), 1u);
  const Session& s = c->sessions[0];
  EXPECT_FALSE(s.has_client[1]);
  EXPECT_TRUE(s.from_relay_leg[1]);
  ASSERT_EQ(s.items.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(s.items[i].side, int(i % 2));
    EXPECT_EQ(s.items[i].bytes, Wg(7, i / 2, i % 2 == 0 ? 0xA0 : 0xB0));
  }
  std::remove(path.c_str());
}

TEST(Sessions, InvalidAndUnansweredDatagramsAreHostile) {
  World w;
  w.Handshake(true);
  w.Add(w.addr_a, w.relay, Wg(w.vni, 0, 1));
  w.Add(w.relay, w.addr_b, Wg(w.vni, 0, 1));
  const SocketAddress stranger = Addr("127.0.0.1:50000");
  w.Add(stranger, w.relay, Bytes{1, 2, 3});                 // too short
  Bytes v1 = Wg(w.vni, 1, 2);
  v1[0] = 0x40;                                             // version 1
  w.Add(stranger, w.relay, v1);
  Bytes proto = Wg(w.vni, 1, 2);
  proto[2] = 0x08;
  proto[3] = 0x00;                                          // IPv4 inside
  w.Add(w.addr_a, w.relay, proto);
  w.Add(stranger, w.relay, Wg(w.vni, 2, 3));                // never answered
  w.Add(Addr("10.0.0.1:1"), Addr("10.0.0.2:2"), Wg(9, 0, 0));  // elsewhere
  Bytes alloc = Wg(0, 0, 0);
  alloc[1] = 0x80;
  alloc[2] = 0x7a;
  alloc[3] = 0x11;
  w.Add(w.addr_a, w.relay, alloc);                          // VNI 0 control
  const std::string path = TempPath("hostile");
  w.Write(path);
  auto c = LoadCapture(path);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(FindSessions(&*c, {}).ok());
  ASSERT_EQ(c->sessions.size(), 1u);
  EXPECT_EQ(c->sessions[0].items.size(), 1u);
  ASSERT_EQ(c->hostile.size(), 4u);
  EXPECT_EQ(c->hostile[0].payload, (Bytes{1, 2, 3}));
  EXPECT_EQ(c->hostile[1].payload, v1);
  EXPECT_EQ(c->hostile[2].payload, proto);
  EXPECT_EQ(c->hostile[3].src, stranger);
  EXPECT_EQ(c->not_relay, 1u);
  std::remove(path.c_str());
}

TEST(Sessions, TheRelayIsInEveryVniAndCanBeGiven) {
  // Two sessions; client X takes part in both (one socket for all its
  // relay endpoints, as a real client), so X and the relay tie on VNIs:
  // the first Bind's destination decides.
  World w1, w2;
  w2.server = w1.server;
  w2.vni = 8;
  w2.addr_a = w1.addr_a;
  w2.addr_b = Addr("127.0.0.1:40003");
  w2.t = w1.t + 1'000'000;
  w1.Handshake(true);
  w2.Handshake(true);
  std::vector<Datagram> all = w1.out;
  all.insert(all.end(), w2.out.begin(), w2.out.end());
  const std::string path = TempPath("two");
  {
    auto pw = PcapWriter::Open(path);
    ASSERT_TRUE(pw.ok());
    for (const Datagram& d : all) {
      (*pw)->Write(d.ts_ns, d.src, d.dst, d.payload.data(), d.payload.size());
    }
  }
  auto c = LoadCapture(path);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(FindSessions(&*c, {}).ok());
  EXPECT_EQ(*c->relay, w1.relay);
  ASSERT_EQ(c->sessions.size(), 2u);
  EXPECT_EQ(c->sessions[0].vni, 7u);
  EXPECT_EQ(c->sessions[1].vni, 8u);
  // Told otherwise, it believes it (and finds X's datagrams hostile).
  Capture c2 = *LoadCapture(path);
  ASSERT_TRUE(FindSessions(&c2, {.relay = w1.addr_a}).ok());
  EXPECT_EQ(*c2.relay, w1.addr_a);
  std::remove(path.c_str());
}

TEST(Sessions, NoGeneveIsAnError) {
  const std::string path = TempPath("nogeneve");
  {
    auto w = PcapWriter::Open(path);
    ASSERT_TRUE(w.ok());
    const Bytes dns = {0x12, 0x34, 1, 0, 0, 1};
    (*w)->Write(1, Addr("127.0.0.1:5353"), Addr("127.0.0.1:53"), dns.data(), 6);
  }
  auto c = LoadCapture(path);
  ASSERT_TRUE(c.ok());
  absl::Status s = FindSessions(&*c, {});
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  std::remove(path.c_str());
}

TEST(Dump, OpensHandshakesWithTheRelayKey) {
  World w;
  w.Handshake(true);
  Dumper with_key({w.server});
  Dumper without;
  std::vector<std::string> lines, sealed;
  for (const Datagram& d : w.out) {
    lines.push_back(with_key.Line(d.ts_ns, d.src, d.dst, d.payload.data(),
                                  d.payload.size()));
    sealed.push_back(without.Line(d.ts_ns, d.src, d.dst, d.payload.data(),
                                  d.payload.size()));
  }
  ASSERT_EQ(lines.size(), 6u);
  const std::string rb = w.b.public_key().ShortString();
  EXPECT_NE(lines[0].find("127.0.0.1:40001 > 127.0.0.1:7777 len 160 geneve v0 O "
                          "disco vni 7: disco sender " +
                          w.a.public_key().ShortString()),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("[Bind vni 7 gen 1 remote " + rb + " 74 B]"),
            std::string::npos)
      << lines[0];
  // The relay's Challenge, sealed to A: opened with the relay's secret and
  // A's key seen in its Bind.
  EXPECT_NE(lines[1].find("[Challenge vni 7 gen 1 remote " + rb),
            std::string::npos)
      << lines[1];
  EXPECT_NE(lines[2].find("[Answer vni 7 gen 1"), std::string::npos);
  EXPECT_EQ(sealed[0].find("[Bind"), std::string::npos);
  // A wrong key opens nothing.
  Dumper wrong({disco::KeyPair::Generate()});
  EXPECT_NE(wrong.Line(0, w.addr_a, w.relay, w.out[0].payload.data(),
                       w.out[0].payload.size())
                .find("[sealed]"),
            std::string::npos);
}

TEST(Dump, WireGuardAndFields) {
  const Bytes wg = Wg(0x123456, 0x0102030405, 0);
  Dumper d;
  const std::string line =
      d.Line(1'700'000'000'000'000'000, Addr("[::1]:1"), Addr("[::1]:2"),
             wg.data(), wg.size());
  EXPECT_EQ(line,
            "22:13:20.000000 [::1]:1 > [::1]:2 len 44 geneve v0 wireguard vni "
            "1193046: wg transport (4) receiver 7 counter 4328719365 data 20");
  EXPECT_EQ(Dumper::Fields(wg.data(), wg.size()),
            "1193046\t0\t0x7a12\t\t\t\t4\t4328719365");
  EXPECT_EQ(Dumper::Fields(wg.data(), 7), "");
  EXPECT_NE(d.Line(0, Addr("[::1]:1"), Addr("[::1]:2"), wg.data(), 3)
                .find("not geneve"),
            std::string::npos);
}

}  // namespace
}  // namespace peerrelay::pcap

namespace peerrelay::pcap {
namespace {

// A disco datagram (Geneve control + envelope) from `from` to `to`.
std::vector<uint8_t> Sealed(const disco::KeyPair& from, const disco::DiscoKey& to,
                            std::vector<uint8_t> plain) {
  std::vector<uint8_t> d(geneve::kHeaderSize + disco::kEnvelopeOverhead +
                         plain.size());
  geneve::Header h;
  h.control = true;
  h.protocol = geneve::kProtocolDisco;
  h.vni = 7;
  geneve::Encode(h, d.data());
  auto shared = disco::SharedKey::Compute(to, from);
  disco::SealEnvelope(from.public_key(), *shared, plain.data(), plain.size(),
                      d.data() + geneve::kHeaderSize);
  return d;
}

// Hardening 3, attack 8: N datagrams from N sender keys, then N from the
// relay's key. Each (own key, peer) costs one Curve25519, ever, and every
// reply opens (tried first with the key that last sent from where it goes).
TEST(Dump, HostileKeysCostLinearNotQuadratic) {
  const disco::KeyPair relay = disco::KeyPair::Generate();
  Dumper d({relay});
  constexpr int kN = 800;
  std::vector<disco::KeyPair> clients;
  const SocketAddress relay_addr = SocketAddress::Parse("127.0.0.1:7777").value();
  auto client_addr = [](int i) {
    return SocketAddress::FromIpv4({127, 0, 0, 1}, uint16_t(10000 + i));
  };
  for (int i = 0; i < kN; ++i) {
    clients.push_back(disco::KeyPair::Generate());
    auto dg = Sealed(clients.back(), relay.public_key(), {4, 0, 1, 2, 3});
    std::string line = d.Line(0, client_addr(i), relay_addr, dg.data(), dg.size());
    ASSERT_NE(line.find("[Bind"), std::string::npos) << line;
  }
  for (int i = 0; i < kN; ++i) {
    auto dg = Sealed(relay, clients[i].public_key(), {5, 0, 9, 9, 9});
    std::string line = d.Line(0, relay_addr, client_addr(i), dg.data(), dg.size());
    ASSERT_NE(line.find("[Challenge"), std::string::npos) << line;
  }
  // One per client key (the reply reuses it). Before: ~N*N/2.
  EXPECT_LE(d.shared_computations(), size_t(kN) + 1);
  // A reply to an address that never sent tries at most the recent peers.
  auto stray = Sealed(relay, disco::KeyPair::Generate().public_key(), {5, 0});
  const size_t before = d.shared_computations();
  std::string line = d.Line(0, relay_addr, client_addr(kN + 1), stray.data(), stray.size());
  EXPECT_NE(line.find("[sealed]"), std::string::npos) << line;
  EXPECT_LE(d.shared_computations() - before, 256u);
}

}  // namespace
}  // namespace peerrelay::pcap
