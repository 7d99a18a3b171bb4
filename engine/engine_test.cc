// End-to-end: the real engine (both kinds) on 127.0.0.1 and ::1, with test
// clients doing real handshakes over real sockets.
#include <gtest/gtest.h>

#include <dirent.h>

#include <chrono>
#include <string>
#include <thread>

#include "engine/relay.h"
#include "engine/uring_worker.h"
#include "client/disco_client.h"
#include "tests/relay_harness.h"
#include "common/udp_socket.h"

namespace peerrelay::engine {
namespace {

using client::Bytes;
using relay::DropReason;
using client::DiscoClient;
using testing::Client;
using testing::RelayHarness;
using ::peerrelay::UdpSocket;

constexpr int kTimeoutMs = RelayHarness::kTimeoutMs;

struct Param {
  std::string engine;
  bool ipv6;
  disco::Dialect dialect;
  // io_uring only: 0 the defaults (send SQEs, skipped send completions),
  // 1 sendmmsg and no registered fds, 2 counted send completions with at
  // most one send SQE per batch (larger batches fall back to sendmmsg:
  // both paths in turn).
  int uring_variant = 0;
};

UringOptions UringFor(int variant) {
  UringOptions o;
  if (variant == 1) {
    o.send_sqes = false;
    o.register_fds = false;
  } else if (variant == 2) {
    o.skip_send_cqes = false;
    o.max_sqe_sends = 1;
  }
  return o;
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  static const char* const kVariant[] = {"", "_sendmmsg", "_countcqe"};
  return std::string(info.param.engine) +
         (info.param.ipv6 ? "_ipv6_" : "_ipv4_") +
         std::string(disco::DialectName(info.param.dialect)) +
         kVariant[info.param.uring_variant];
}

class EngineTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (GetParam().engine == "io_uring") {
      absl::Status s = ProbeIoUring();
      if (!s.ok()) GTEST_SKIP() << "io_uring unavailable: " << s;
    }
    loopback_ = SocketAddress::Parse(GetParam().ipv6 ? "[::1]:0"
                                                     : "127.0.0.1:0")
                    .value();
    auto h = RelayHarness::Start(loopback_, {.dialect = GetParam().dialect},
                                 {.workers = 2,
                                  .engine = GetParam().engine,
                                  .uring = UringFor(GetParam().uring_variant)});
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = std::move(*h);
    server_ = &h_->server();
    relay_ = &h_->relay();
    relay_addr_ = h_->relay_addr();
    ASSERT_EQ(relay_->engine(), GetParam().engine);
  }

  Client NewClient() { return h_->NewClient(); }
  void AllocatePair(Client& a, Client& b) { h_->AllocatePair(a, b); }
  bool Handshake(Client& c, uint32_t generation = 1) {
    return h_->Handshake(c, generation);
  }
  void BindPair(Client& a, Client& b) { ASSERT_TRUE(h_->BindPair(a, b)); }
  bool WaitDropped(DropReason r, uint64_t want) {
    return h_->WaitDropped(r, want);
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

  SocketAddress loopback_;
  SocketAddress relay_addr_;
  std::unique_ptr<RelayHarness> h_;
  relay::Server* server_ = nullptr;
  Relay* relay_ = nullptr;
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
  relay::CountersSnapshot c = relay_->DataPlaneCounters();
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
        Param{"mmsg", false, disco::Dialect::kCurrent},
        Param{"mmsg", true, disco::Dialect::kCurrent},
        Param{"io_uring", false, disco::Dialect::kCurrent},
        Param{"io_uring", true, disco::Dialect::kCurrent},
        Param{"mmsg", false, disco::Dialect::kSeed},
        Param{"io_uring", true, disco::Dialect::kSeed},
        Param{"io_uring", false, disco::Dialect::kCurrent, 1},
        Param{"io_uring", true, disco::Dialect::kCurrent, 2}),
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
        Param{"mmsg", false, disco::Dialect::kCurrent},
        Param{"io_uring", false, disco::Dialect::kCurrent}),
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
  // Warm-up: runtimes (e.g. ThreadSanitizer's) start helper threads of
  // their own at the first thread creation; measure after that.
  {
    auto server = relay::Server::Create({}, 0).value();
    auto r = Relay::Start(server.get(),
                          {.bind = SocketAddress::Parse("127.0.0.1:0").value(),
                           .workers = 1, .engine = "mmsg"});
    ASSERT_TRUE(r.ok());
  }
  for (std::string kind : {"mmsg", "io_uring"}) {
    if (kind == "io_uring" && !ProbeIoUring().ok()) continue;
    SCOPED_TRACE(std::string(kind));
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
