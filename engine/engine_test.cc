// End-to-end: the real engine (both kinds) on 127.0.0.1 and ::1, with test
// clients doing real handshakes over real sockets.
#include <gtest/gtest.h>

#include <dirent.h>

#include <chrono>
#include <string>
#include <thread>

#include "engine/relay.h"
#include "engine/worker.h"
#include "relay/test_client.h"
#include "tests/udp_socket.h"

namespace peerrelay::engine {
namespace {

using relay::Bytes;
using relay::DropReason;
using relay::TestClient;
using testing::UdpSocket;

constexpr int kTimeoutMs = 2000;

struct Param {
  EngineKind engine;
  bool ipv6;
  disco::Dialect dialect;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return std::string(EngineName(info.param.engine)) +
         (info.param.ipv6 ? "_ipv6_" : "_ipv4_") +
         std::string(disco::DialectName(info.param.dialect));
}

// A client: its socket and its disco identity.
struct Client {
  UdpSocket sock;
  std::unique_ptr<TestClient> disco;
};

class EngineTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (GetParam().engine == EngineKind::kIoUring) {
      absl::Status s = ProbeIoUring();
      if (!s.ok()) GTEST_SKIP() << "io_uring unavailable: " << s;
    }
    loopback_ = SocketAddress::Parse(GetParam().ipv6 ? "[::1]:0"
                                                     : "127.0.0.1:0")
                    .value();
    server_ = relay::Server::Create(
                  {.addresses = {loopback_}, .dialect = GetParam().dialect},
                  MonotonicNowNs())
                  .value();
    auto r = Relay::Start(server_.get(), {.bind = loopback_,
                                          .workers = 2,
                                          .engine = GetParam().engine});
    ASSERT_TRUE(r.ok()) << r.status();
    relay_ = std::move(*r);
    relay_addr_ = loopback_;
    relay_addr_.set_port(relay_->port());
    server_->SetAddresses({relay_addr_});
    ASSERT_EQ(relay_->engine(), GetParam().engine);
  }

  Client NewClient() {
    Client c{UdpSocket::Open(loopback_).value(), nullptr};
    c.disco = std::make_unique<TestClient>(
        GetParam().dialect, server_->server_key(), c.sock.local());
    return c;
  }

  void AllocatePair(Client& a, Client& b) {
    relay::EndpointInfo ep =
        server_->Allocate(a.disco->key(), b.disco->key(), MonotonicNowNs())
            .value();
    a.disco->SetEndpoint(ep.vni, b.disco->key());
    b.disco->SetEndpoint(ep.vni, a.disco->key());
  }

  // Bind -> Challenge -> Answer over the wire. Waits until the server shows
  // the side bound (a correct Answer gets no reply).
  bool Handshake(Client& c, uint32_t generation = 1) {
    if (!c.sock.SendTo(c.disco->Bind(generation), relay_addr_)) return false;
    auto got = c.sock.Recv(kTimeoutMs);
    if (!got || got->second != relay_addr_) return false;
    auto ch = c.disco->OpenChallenge(got->first);
    if (!ch) return false;
    const uint64_t done = relay_->Counters().handshakes_completed;
    if (!c.sock.SendTo(c.disco->Answer(*ch), relay_addr_)) return false;
    for (int i = 0; i < 200; ++i) {
      if (relay_->Counters().handshakes_completed > done) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void BindPair(Client& a, Client& b) {
    AllocatePair(a, b);
    ASSERT_TRUE(Handshake(a));
    ASSERT_TRUE(Handshake(b));
  }

  // Sends `payload` from `from` to the relay and expects `to` to receive the
  // whole datagram unchanged, from the relay's address.
  void ExpectRelayed(Client& from, Client& to, const Bytes& payload) {
    Bytes d = from.disco->Data(payload);
    ASSERT_TRUE(from.sock.SendTo(d, relay_addr_));
    auto got = to.sock.Recv(kTimeoutMs);
    ASSERT_TRUE(got.has_value()) << "nothing relayed";
    EXPECT_EQ(got->first, d);
    EXPECT_EQ(got->second, relay_addr_);
  }

  // Waits until a drop counter reaches `want`.
  bool WaitDropped(DropReason r, uint64_t want) {
    for (int i = 0; i < 200; ++i) {
      if (relay_->Counters().Dropped(r) >= want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  SocketAddress loopback_;
  SocketAddress relay_addr_;
  std::unique_ptr<relay::Server> server_;
  std::unique_ptr<Relay> relay_;
};

TEST_P(EngineTest, PairRelaysBothWaysByteForByte) {
  Client a = NewClient(), b = NewClient();
  BindPair(a, b);
  ExpectRelayed(a, b, {1, 2, 3, 4});
  ExpectRelayed(b, a, Bytes(1400, 0x5a));
  // Disco pings between the clients (0x7A11, control clear) pass too.
  Bytes ping = a.disco->Data({7, 7}, geneve::kProtocolDisco);
  ASSERT_TRUE(a.sock.SendTo(ping, relay_addr_));
  auto got = b.sock.Recv(kTimeoutMs);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->first, ping);
  relay::CountersSnapshot c = relay_->Counters();
  EXPECT_EQ(c.relayed, 3u);
  EXPECT_EQ(c.received, c.relayed + c.to_slow_path + c.DroppedTotal());
}

TEST_P(EngineTest, UnboundAndWrongSourceDataIsDroppedAndCounted) {
  Client a = NewClient(), b = NewClient(), stranger = NewClient();
  AllocatePair(a, b);
  ASSERT_TRUE(a.sock.SendTo(a.disco->Data({1}), relay_addr_));
  ASSERT_TRUE(WaitDropped(DropReason::kNotBound, 1));
  ASSERT_TRUE(Handshake(a));
  ASSERT_TRUE(Handshake(b));
  // The stranger uses A's VNI from its own address.
  ASSERT_TRUE(stranger.sock.SendTo(a.disco->Data({1}), relay_addr_));
  ASSERT_TRUE(WaitDropped(DropReason::kUnknownSource, 1));
  Bytes unknown = a.disco->Data({1});
  unknown[6] ^= 0x40;
  ASSERT_TRUE(a.sock.SendTo(unknown, relay_addr_));
  ASSERT_TRUE(WaitDropped(DropReason::kUnknownVni, 1));
  ASSERT_TRUE(a.sock.SendTo(Bytes(5, 0), relay_addr_));
  ASSERT_TRUE(WaitDropped(DropReason::kShortDatagram, 1));
  // None of it reached B; nothing came back to the senders.
  EXPECT_FALSE(b.sock.Recv(200).has_value());
  EXPECT_FALSE(stranger.sock.Recv(50).has_value());
  EXPECT_FALSE(a.sock.Recv(50).has_value());
  EXPECT_EQ(relay_->Counters().relayed, 0u);
}

TEST_P(EngineTest, GsoBurstArrivesAsTheSameDatagrams) {
  Client a = NewClient(), b = NewClient();
  BindPair(a, b);
  std::vector<Bytes> burst;
  for (int i = 0; i < 20; ++i) {
    Bytes p(1000, uint8_t(i));
    if (i == 19) p.resize(300);  // a shorter tail
    burst.push_back(a.disco->Data(p));
  }
  ASSERT_TRUE(a.sock.SendGso(burst, relay_addr_));
  for (size_t i = 0; i < burst.size(); ++i) {
    auto got = b.sock.Recv(kTimeoutMs);
    ASSERT_TRUE(got.has_value()) << "datagram " << i;
    EXPECT_EQ(got->first, burst[i]) << "datagram " << i;
  }
  EXPECT_EQ(relay_->Counters().relayed, 20u);
}

TEST_P(EngineTest, ManyPairsAcrossWorkers) {
  constexpr int kPairs = 12, kEach = 10;
  std::vector<Client> as, bs;
  for (int i = 0; i < kPairs; ++i) {
    as.push_back(NewClient());
    bs.push_back(NewClient());
    BindPair(as.back(), bs.back());
  }
  for (int i = 0; i < kPairs; ++i) {
    for (int k = 0; k < kEach; ++k) {
      ASSERT_TRUE(as[i].sock.SendTo(as[i].disco->Data({uint8_t(i), uint8_t(k)}),
                                    relay_addr_));
      ASSERT_TRUE(bs[i].sock.SendTo(bs[i].disco->Data({uint8_t(k), uint8_t(i)}),
                                    relay_addr_));
    }
  }
  for (int i = 0; i < kPairs; ++i) {
    for (int k = 0; k < kEach; ++k) {
      auto at_b = bs[i].sock.Recv(kTimeoutMs);
      ASSERT_TRUE(at_b.has_value());
      EXPECT_EQ(at_b->first, as[i].disco->Data({uint8_t(i), uint8_t(k)}));
      auto at_a = as[i].sock.Recv(kTimeoutMs);
      ASSERT_TRUE(at_a.has_value());
      EXPECT_EQ(at_a->first, bs[i].disco->Data({uint8_t(k), uint8_t(i)}));
    }
  }
  EXPECT_EQ(relay_->Counters().relayed, uint64_t(2 * kPairs * kEach));
}

TEST_P(EngineTest, UdpAllocationOverTheRelayPort) {
  Client a = NewClient(), b = NewClient();
  ASSERT_TRUE(a.sock.SendTo(a.disco->AllocateRequest(b.disco->key(), 3),
                            relay_addr_));
  ASSERT_TRUE(WaitDropped(DropReason::kAllocateNotAllowed, 1));
  EXPECT_FALSE(a.sock.Recv(100).has_value());
  server_->SetAllocateAllowlist({a.disco->key()});
  ASSERT_TRUE(a.sock.SendTo(a.disco->AllocateRequest(b.disco->key(), 3),
                            relay_addr_));
  auto got = a.sock.Recv(kTimeoutMs);
  ASSERT_TRUE(got.has_value());
  auto resp = a.disco->OpenAllocateResponse(got->first);
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->generation, 3u);
  ASSERT_EQ(resp->addresses.size(), 1u);
  EXPECT_EQ(resp->addresses[0], relay_addr_);
  a.disco->SetEndpoint(resp->vni, b.disco->key());
  b.disco->SetEndpoint(resp->vni, a.disco->key());
  ASSERT_TRUE(Handshake(a));
  ASSERT_TRUE(Handshake(b));
  ExpectRelayed(a, b, {42});
}

INSTANTIATE_TEST_SUITE_P(
    All, EngineTest,
    ::testing::Values(
        Param{EngineKind::kMmsg, false, disco::Dialect::kCurrent},
        Param{EngineKind::kMmsg, true, disco::Dialect::kCurrent},
        Param{EngineKind::kIoUring, false, disco::Dialect::kCurrent},
        Param{EngineKind::kIoUring, true, disco::Dialect::kCurrent},
        Param{EngineKind::kMmsg, false, disco::Dialect::kSeed},
        Param{EngineKind::kIoUring, true, disco::Dialect::kSeed}),
    ParamName);

// Re-binding is current-dialect only.
class RebindTest : public EngineTest {};
TEST_P(RebindTest, RebindToANewPortMovesTheRelay) {
  Client a = NewClient(), b = NewClient();
  BindPair(a, b);
  ExpectRelayed(a, b, {1});
  // A's NAT mapping changes: a new socket, a new handshake from it.
  Client moved{UdpSocket::Open(loopback_).value(), std::move(a.disco)};
  moved.disco->set_address(moved.sock.local());
  ASSERT_TRUE(Handshake(moved, 2));
  ExpectRelayed(b, moved, {2});
  ExpectRelayed(moved, b, {3});
  // The old address is no longer relayed.
  const uint64_t before = relay_->Counters().Dropped(DropReason::kUnknownSource);
  ASSERT_TRUE(a.sock.SendTo(moved.disco->Data({4}), relay_addr_));
  ASSERT_TRUE(WaitDropped(DropReason::kUnknownSource, before + 1));
  EXPECT_FALSE(b.sock.Recv(100).has_value());
}
INSTANTIATE_TEST_SUITE_P(
    Current, RebindTest,
    ::testing::Values(
        Param{EngineKind::kMmsg, false, disco::Dialect::kCurrent},
        Param{EngineKind::kIoUring, false, disco::Dialect::kCurrent}),
    ParamName);

int CountEntries(const char* dir) {
  int n = 0;
  if (DIR* d = opendir(dir)) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

TEST(EngineStartTest, StopLeavesNoThreadOrFdBehind) {
  for (EngineKind kind : {EngineKind::kMmsg, EngineKind::kIoUring}) {
    if (kind == EngineKind::kIoUring && !ProbeIoUring().ok()) continue;
    SCOPED_TRACE(std::string(EngineName(kind)));
    const int fds = CountEntries("/proc/self/fd");
    const int threads = CountEntries("/proc/self/task");
    {
      auto server = relay::Server::Create({}, 0).value();
      auto r = Relay::Start(
          server.get(), {.bind = SocketAddress::Parse("127.0.0.1:0").value(),
                         .workers = 3, .engine = kind});
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_GT(CountEntries("/proc/self/fd"), fds);
      EXPECT_EQ(CountEntries("/proc/self/task"), threads + 3 + 2);
      (*r)->Stop();
      EXPECT_EQ(CountEntries("/proc/self/task"), threads);
      (*r)->Stop();  // idempotent
    }
    EXPECT_EQ(CountEntries("/proc/self/fd"), fds);
  }
}

TEST(EngineStartTest, PortInUseIsAClearError) {
  auto server = relay::Server::Create({}, 0).value();
  auto first = Relay::Start(server.get(),
                            {.bind = SocketAddress::Parse("127.0.0.1:0").value(),
                             .workers = 1});
  ASSERT_TRUE(first.ok());
  // A plain (non-reuseport) socket on the same port blocks a relay start.
  UdpSocket other = UdpSocket::Open(
      SocketAddress::Parse("127.0.0.1:0").value()).value();
  SocketAddress taken = other.local();
  auto second = Relay::Start(server.get(), {.bind = taken, .workers = 1});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another program"),
            std::string::npos)
      << second.status();
}

}  // namespace
}  // namespace peerrelay::engine
