// Hostile traffic against the real relay over loopback: everything is
// dropped silently, counted by reason, and the relay never sends more bytes
// to a source that is not bound than it received from it. Floods, buffer
// exhaustion and unreachable clients do not disturb the bound pairs.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "engine/uring_worker.h"
#include "client/disco_client.h"
#include "tests/relay_harness.h"

namespace peerrelay::testing {
namespace {

using client::Bytes;
using relay::DropReason;

constexpr int kTimeoutMs = RelayHarness::kTimeoutMs;

class AdversarialTest : public ::testing::TestWithParam<disco::Dialect> {
 protected:
  void SetUp() override { Start({}, {}); }
  void Start(relay::ServerConfig config, engine::RelayOptions options) {
    config.dialect = GetParam();
    if (options.workers == 0) options.workers = 2;
    h_ = RelayHarness::Start(SocketAddress::Parse("127.0.0.1:0").value(),
                             config, options)
             .value();
  }
  // Drains what `s` receives for `ms`; returns the bytes.
  size_t Drain(Client& c, int ms) {
    size_t bytes = 0;
    while (auto got = c.sock.Recv(ms)) bytes += got->first.size();
    return bytes;
  }
  bool Current() const { return GetParam() == disco::Dialect::kCurrent; }

  std::unique_ptr<RelayHarness> h_;
};

INSTANTIATE_TEST_SUITE_P(Dialects, AdversarialTest,
                         ::testing::Values(disco::Dialect::kSeed,
                                           disco::Dialect::kCurrent),
                         [](const auto& i) {
                           return std::string(disco::DialectName(i.param));
                         });

// A flood on a thread of its own: pick(i) sent from evil[i % n] at ~10k/s
// (ten a millisecond), until Stop(), `max` datagrams or `seconds`. Paced so
// that a relay slowed by a sanitizer still reads every datagram (a kernel
// drop of a real Bind would fail a handshake for a reason the tests are not
// about).
class PacedFlood {
 public:
  PacedFlood(RelayHarness* h, std::vector<Client>* evil,
             std::function<const Bytes&(uint64_t)> pick, uint64_t max,
             int seconds)
      : thread_([this, h, evil, pick, max, seconds] {
          const auto end =
              std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
          for (uint64_t i = 0; !done_.load() && i < max &&
                               std::chrono::steady_clock::now() < end;
               ++i) {
            (*evil)[i % evil->size()].sock.SendTo(pick(i), h->relay_addr());
            sent_.fetch_add(1);
            if (i % 10 == 9) {
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
          }
        }) {}
  ~PacedFlood() { Stop(); }
  // Waits (at most 5 s: a loaded machine may start the thread late) until
  // `n` datagrams are out.
  void WaitFlowing(uint64_t n) {
    const auto by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (sent_.load() < n && std::chrono::steady_clock::now() < by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  uint64_t Stop() {
    done_.store(true);
    if (thread_.joinable()) thread_.join();
    return sent_.load();
  }

 private:
  std::atomic<bool> done_{false};
  std::atomic<uint64_t> sent_{0};
  std::thread thread_;
};

TEST_P(AdversarialTest, HostileDatagramsAreDroppedSilentlyAndCounted) {
  Client a = h_->NewClient(), b = h_->NewClient(), evil = h_->NewClient();
  ASSERT_TRUE(h_->BindPair(a, b));
  const SocketAddress relay = h_->relay_addr();
  const uint32_t vni = a.disco->vni();

  struct Case {
    const char* name;
    Bytes datagram;
    DropReason reason;
  };
  std::vector<Case> cases;
  cases.push_back({"zero length", {}, DropReason::kShortDatagram});
  cases.push_back({"7 bytes", Bytes(7, 0xff), DropReason::kShortDatagram});
  Bytes unknown = a.disco->Data({1, 2, 3});
  unknown[4] = 0x7f;
  cases.push_back({"unknown VNI", unknown, DropReason::kUnknownVni});
  cases.push_back({"oversized, unknown VNI",
                   [&] { Bytes d = unknown; d.resize(60000, 0xaa); return d; }(),
                   DropReason::kUnknownVni});
  cases.push_back({"data from a stranger", a.disco->Data({9}),
                   DropReason::kUnknownSource});
  Bytes wg_control = a.disco->Data({1});
  wg_control[1] = 0x80;  // control bit on WireGuard
  cases.push_back({"non-disco control", wg_control,
                   DropReason::kBadControlProtocol});
  Bytes not_disco = a.disco->Bind(1);
  not_disco[9] ^= 0xff;  // magic
  cases.push_back({"control without disco magic", not_disco,
                   DropReason::kNotDisco});
  client::DiscoClient stranger(GetParam(), h_->server().server_key(),
                             evil.sock.local());
  stranger.SetEndpoint(vni, b.disco->key());
  cases.push_back({"bind from an unknown key", stranger.Bind(1),
                   DropReason::kUnknownSender});
  Bytes forged = stranger.Bind(1);
  std::copy(a.disco->key().bytes.begin(), a.disco->key().bytes.end(),
            forged.begin() + 14);
  cases.push_back({"bind naming A's key, forged box", forged,
                   DropReason::kBoxOpenFailed});
  cases.push_back({"allocate request, key not allowed",
                   stranger.AllocateRequest(a.disco->key(), 1),
                   DropReason::kAllocateNotAllowed});
  cases.push_back({"oversized control", [&] {
                     Bytes d = a.disco->Bind(1);
                     d.resize(2000, 0);
                     return d;
                   }(),
                   DropReason::kOversizedControl});

  size_t sent_bytes = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t before = h_->relay().Counters().Dropped(c.reason);
    ASSERT_TRUE(evil.sock.SendTo(c.datagram, relay));
    sent_bytes += c.datagram.size();
    EXPECT_TRUE(h_->WaitDropped(c.reason, before + 1));
  }
  // Nothing came back to the attacker, nothing reached the pair.
  EXPECT_EQ(Drain(evil, 200), 0u);
  EXPECT_EQ(Drain(a, 10), 0u);
  EXPECT_EQ(Drain(b, 10), 0u);
  relay::CountersSnapshot s = h_->relay().DataPlaneCounters();
  EXPECT_EQ(s.relayed, 0u);
  EXPECT_EQ(s.received, s.relayed + s.to_slow_path + s.DroppedTotal());
  // The slow path accounts for everything it was handed.
  relay::CountersSnapshot slow = h_->relay().SlowPathCounters();
  EXPECT_EQ(s.to_slow_path, slow.challenges_sent + slow.handshakes_completed +
                                slow.allocations_udp + slow.DroppedTotal());
  EXPECT_GT(sent_bytes, 0u);
}

TEST_P(AdversarialTest, ReplayedHandshakeMessagesAreDropped) {
  Client a = h_->NewClient(), b = h_->NewClient(), evil = h_->NewClient();
  h_->AllocatePair(a, b);
  const SocketAddress relay = h_->relay_addr();
  // A's handshake, with the Answer captured.
  ASSERT_TRUE(a.sock.SendTo(a.disco->Bind(1), relay));
  auto got = a.sock.Recv(kTimeoutMs);
  ASSERT_TRUE(got);
  auto ch = a.disco->OpenChallenge(got->first);
  ASSERT_TRUE(ch);
  const Bytes answer = a.disco->Answer(*ch);
  const Bytes challenge_datagram = got->first;

  // The captured Answer replayed from another address.
  {
    const DropReason r = Current() ? DropReason::kBadMac
                                   : DropReason::kWrongAddress;
    const uint64_t before = h_->relay().Counters().Dropped(r);
    ASSERT_TRUE(evil.sock.SendTo(answer, relay));
    EXPECT_TRUE(h_->WaitDropped(r, before + 1));
  }
  // The server's own Challenge sent back to it.
  {
    const uint64_t before =
        h_->relay().Counters().Dropped(DropReason::kUnknownSender);
    ASSERT_TRUE(evil.sock.SendTo(challenge_datagram, relay));
    // Sealed by the server's key: the sender is neither client.
    EXPECT_TRUE(h_->WaitDropped(DropReason::kUnknownSender, before + 1));
  }
  EXPECT_EQ(h_->server().bound_count(), 0u);
  // The genuine Answer still binds A; replaying it afterwards is refused
  // (its nonce was seen; seed: the side is already bound).
  const uint64_t done = h_->relay().Counters().handshakes_completed;
  ASSERT_TRUE(a.sock.SendTo(answer, relay));
  ASSERT_TRUE(RelayHarness::WaitFor(
      [&] { return h_->relay().Counters().handshakes_completed > done; }));
  const DropReason replay = Current() ? DropReason::kReplayed
                                      : DropReason::kAlreadyBound;
  const uint64_t before = h_->relay().Counters().Dropped(replay);
  ASSERT_TRUE(a.sock.SendTo(answer, relay));
  EXPECT_TRUE(h_->WaitDropped(replay, before + 1));
  EXPECT_EQ(Drain(evil, 100), 0u);
}

TEST_P(AdversarialTest, RelayNeverAmplifiesTowardsAnUnboundSource) {
  // A client that holds a valid key for an endpoint but is not bound gets a
  // Challenge per Bind: never more bytes than it sent.
  Client a = h_->NewClient(), b = h_->NewClient();
  h_->AllocatePair(a, b);
  size_t sent = 0, received = 0;
  for (uint32_t gen = 1; gen <= 10; ++gen) {
    Bytes bind = a.disco->Bind(gen);
    ASSERT_TRUE(a.sock.SendTo(bind, h_->relay_addr()));
    sent += bind.size();
    if (auto got = a.sock.Recv(kTimeoutMs)) received += got->first.size();
  }
  EXPECT_GT(received, 0u);
  EXPECT_LE(received, sent);
}

TEST_P(AdversarialTest, HandshakeFloodIsRateLimitedAndBoundPairsKeepRelaying) {
  h_.reset();
  Start({}, {.workers = 1,
             .handshake_rate_per_source = 10,
             .handshake_burst_per_source = 5});
  Client a = h_->NewClient(), b = h_->NewClient(), evil = h_->NewClient();
  ASSERT_TRUE(h_->BindPair(a, b));
  // The attacker knows A's key (public) and the VNI: forged Binds.
  client::DiscoClient stranger(GetParam(), h_->server().server_key(),
                             evil.sock.local());
  stranger.SetEndpoint(a.disco->vni(), b.disco->key());
  Bytes forged = stranger.Bind(1);
  std::copy(a.disco->key().bytes.begin(), a.disco->key().bytes.end(),
            forged.begin() + 14);
  constexpr int kFlood = 2000;
  std::thread flood([&] {
    for (int i = 0; i < kFlood; ++i) evil.sock.SendTo(forged, h_->relay_addr());
  });
  // Meanwhile the pair relays.
  int delivered = 0;
  for (int i = 0; i < 200; ++i) {
    Bytes d = a.disco->Data({uint8_t(i)});
    ASSERT_TRUE(a.sock.SendTo(d, h_->relay_addr()));
    if (auto got = b.sock.Recv(kTimeoutMs); got && got->first == d) ++delivered;
  }
  flood.join();
  EXPECT_EQ(delivered, 200);
  ASSERT_TRUE(RelayHarness::WaitFor([&] {
    relay::CountersSnapshot s = h_->relay().Counters();
    return s.Dropped(DropReason::kRateLimited) +
               s.Dropped(DropReason::kBoxOpenFailed) +
               s.Dropped(DropReason::kSlowPathQueueFull) >=
           uint64_t(kFlood) - uint64_t(s.kernel_drops);
  }));
  relay::CountersSnapshot s = h_->relay().Counters();
  // Most of the flood never reached the crypto.
  EXPECT_GT(s.Dropped(DropReason::kRateLimited), uint64_t(kFlood) / 2);
  EXPECT_LT(s.Dropped(DropReason::kBoxOpenFailed), uint64_t(kFlood) / 2);
  // A legitimate client from another address still completes a handshake.
  Client c = h_->NewClient(), d = h_->NewClient();
  EXPECT_TRUE(h_->BindPair(c, d));
  EXPECT_EQ(Drain(evil, 50), 0u);
}

TEST_P(AdversarialTest, JunkControlDatagramsDoNotSpendTheHandshakeBudget) {
  h_.reset();
  // A total budget well above what the 30 real handshakes need (60 control
  // datagrams: within the burst alone) and far below the junk's rate, so
  // junk charged to it would show.
  Start({}, {.workers = 1,
             .handshake_rate_total = 1000,
             .handshake_burst_total = 100});
  Client a = h_->NewClient(), b = h_->NewClient();
  h_->AllocatePair(a, b);
  // Junk from 64 source ports: 16-byte control datagrams, envelopes for
  // VNIs that do not exist, and envelopes for a real VNI from a key that
  // is not one of its clients.
  std::vector<Client> evil;
  for (int i = 0; i < 64; ++i) evil.push_back(h_->NewClient());
  client::DiscoClient stranger(GetParam(), h_->server().server_key(),
                              evil[0].sock.local());
  stranger.SetEndpoint(a.disco->vni(), b.disco->key());
  const Bytes wrong_key = stranger.Bind(1);
  stranger.SetEndpoint(0x777777, b.disco->key());
  const Bytes wrong_vni = stranger.Bind(1);
  Bytes short_junk(16, 0x5a);
  short_junk[0] = 0;
  short_junk[1] = 0x80;
  short_junk[2] = 0x7a;
  short_junk[3] = 0x11;
  // Ten times the budget; the junk flows first, then 30 handshakes from
  // real clients while it goes on: all complete.
  PacedFlood flood(h_.get(), &evil, [&](uint64_t i) -> const Bytes& {
    return i % 3 == 0 ? short_junk : i % 3 == 1 ? wrong_vni : wrong_key;
  }, 200'000, 10);
  flood.WaitFlowing(1000);
  int completed = 0;
  std::vector<Client> pairs;
  for (int i = 0; i < 15; ++i) {
    Client c = h_->NewClient(), d = h_->NewClient();
    completed += h_->BindPair(c, d) ? 2 : 0;
    pairs.push_back(std::move(c));
    pairs.push_back(std::move(d));
  }
  const uint64_t junk_sent = flood.Stop();
  EXPECT_EQ(completed, 30);
  relay::CountersSnapshot s = h_->relay().Counters();
  EXPECT_GE(junk_sent, 1000u);
  // The junk was dropped before the budget: none of it is rate limited.
  EXPECT_EQ(s.Dropped(DropReason::kRateLimited), 0u);
  EXPECT_GT(s.Dropped(DropReason::kNotDisco), 0u);
  EXPECT_GT(s.Dropped(DropReason::kUnknownVni), 0u);
  EXPECT_GT(s.Dropped(DropReason::kUnknownSender), 0u);
  EXPECT_EQ(s.Dropped(DropReason::kBoxOpenFailed), 0u);
}

// Hardening 3, attack 4: the VNI and a client's key are in the clear in
// every disco datagram, so forgeries naming a live side pass the precheck.
// From 256 ports (the per-source limit never bites) at ~10 times the total
// budget, they spend only that side's share: 20 new pairs, each side one
// Bind and one Answer as real clients send, all bind; the victim pair keeps
// relaying.
TEST_P(AdversarialTest, ForgeriesNamingALiveSideSpendOnlyItsShare) {
  h_.reset();
  Start({}, {.workers = 1,
             .handshake_rate_total = 1000,
             .handshake_burst_total = 100});
  Client a = h_->NewClient(), b = h_->NewClient();
  ASSERT_TRUE(h_->BindPair(a, b));
  // a's real Bind with its box corrupted: VNI and key right, so it passes
  // the precheck and is charged; the slow path cannot open it.
  Bytes forged = a.disco->Bind(7);
  forged.back() ^= 0x55;
  std::vector<Client> evil;
  for (int i = 0; i < 256; ++i) evil.push_back(h_->NewClient());
  PacedFlood flood(h_.get(), &evil,
                   [&](uint64_t) -> const Bytes& { return forged; }, 300'000, 15);
  flood.WaitFlowing(2000);
  int completed = 0;
  std::vector<Client> pairs;
  for (int i = 0; i < 20; ++i) {
    Client c = h_->NewClient(), d = h_->NewClient();
    h_->AllocatePair(c, d);
    completed += h_->Handshake(c) ? 1 : 0;
    completed += h_->Handshake(d) ? 1 : 0;
    pairs.push_back(std::move(c));
    pairs.push_back(std::move(d));
  }
  // The victim pair still relays while the flood goes on.
  ASSERT_TRUE(a.sock.SendTo(a.disco->Data({'v'}), h_->relay_addr()));
  auto got = b.sock.Recv(kTimeoutMs);
  const uint64_t sent = flood.Stop();
  EXPECT_EQ(completed, 40);
  EXPECT_TRUE(got.has_value()) << "the named pair stopped relaying";
  relay::CountersSnapshot s = h_->relay().Counters();
  EXPECT_GE(sent, 2000u);
  // The forgeries were charged to the victim side's share and stopped there.
  EXPECT_GT(s.Dropped(DropReason::kRateLimited), sent / 2);
}

TEST_P(AdversarialTest, AllocationFloodToExhaustionRecoversAfterExpiry) {
  h_.reset();
  // The per-source handshake limit would shed the flood before it reaches
  // allocation; here the VNI space is what runs out.
  Start({.bind_lifetime_ns = 1'000'000'000, .vni_limit = 20},
        {.handshake_rate_per_source = 0, .expire_interval_ns = 50'000'000});
  Client flooder = h_->NewClient();
  h_->server().SetAllocateAllowlist({flooder.disco->key()});
  int allocated = 0;
  for (int i = 0; i < 30; ++i) {
    disco::DiscoKey peer = disco::KeyPair::Generate().public_key();
    ASSERT_TRUE(flooder.sock.SendTo(flooder.disco->AllocateRequest(peer, i),
                                    h_->relay_addr()));
    if (i < 20) {
      auto got = flooder.sock.Recv(kTimeoutMs);
      ASSERT_TRUE(got) << i;
      ASSERT_TRUE(flooder.disco->OpenAllocateResponse(got->first)) << i;
      ++allocated;
    }
  }
  EXPECT_EQ(allocated, 20);
  EXPECT_TRUE(h_->WaitDropped(DropReason::kAllocateFailed, 10));
  EXPECT_EQ(Drain(flooder, 100), 0u);  // refusals are silent
  EXPECT_EQ(h_->server().endpoint_count(), 20u);
  // Unbound endpoints expire after 1 s; the space is free again.
  ASSERT_TRUE(RelayHarness::WaitFor(
      [&] { return h_->server().endpoint_count() == 0; }));
  Client a = h_->NewClient(), b = h_->NewClient();
  EXPECT_TRUE(h_->BindPair(a, b));
}

TEST_P(AdversarialTest, BufferExhaustionLosesNothingAccepted) {
  for (std::string kind :
       {"io_uring", "mmsg"}) {
    if (kind == "io_uring" && !engine::ProbeIoUring().ok()) {
      continue;
    }
    SCOPED_TRACE(std::string(kind));
    h_.reset();
    // Two receive buffers: any burst runs the ring dry.
    Start({}, {.workers = 1, .engine = kind, .rx_buffers = 2});
    Client a = h_->NewClient(), b = h_->NewClient();
    ASSERT_TRUE(h_->BindPair(a, b));
    constexpr int kBursts = 40, kPerBurst = 20;
    // B reads while A sends, and A sends one burst at a time: the relay's
    // two buffers run dry inside every burst, while B's own socket queue
    // (on loopback a GSO send's segments keep the large skb's truesize)
    // stays far from full.
    std::vector<Bytes> received;
    std::atomic<size_t> received_count{0};
    std::thread reader([&] {
      while (received.size() < size_t(kBursts * kPerBurst)) {
        auto got = b.sock.Recv(kTimeoutMs);
        if (!got) return;
        received.push_back(std::move(got->first));
        received_count.store(received.size());
      }
    });
    // Joined on every path, failed assertions included (the reader stops
    // by itself within its receive deadline).
    absl::Cleanup join_reader = [&] {
      if (reader.joinable()) reader.join();
    };
    std::vector<Bytes> sent;
    for (int i = 0; i < kBursts; ++i) {
      std::vector<Bytes> burst;
      for (int k = 0; k < kPerBurst; ++k) {
        Bytes p(200, uint8_t(k));
        p[0] = uint8_t(i);
        burst.push_back(a.disco->Data(p));
      }
      // Alternate GSO bursts and single datagrams.
      if (i % 2 == 0) {
        ASSERT_TRUE(a.sock.SendGso(burst, h_->relay_addr()));
      } else {
        for (const Bytes& d : burst) ASSERT_TRUE(a.sock.SendTo(d, h_->relay_addr()));
      }
      sent.insert(sent.end(), burst.begin(), burst.end());
      // Next burst once B has this one (B's queue never holds more).
      ASSERT_TRUE(RelayHarness::WaitFor(
          [&] { return received_count.load() >= sent.size(); }))
          << "B has " << received_count.load() << " of " << sent.size()
          << ", relay relayed " << h_->relay().Counters().relayed;
    }
    std::move(join_reader).Invoke();
    ASSERT_EQ(received.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      ASSERT_EQ(received[i], sent[i]) << "datagram " << i;
    }
    relay::CountersSnapshot s = h_->relay().Counters();
    EXPECT_EQ(s.relayed, sent.size());
    EXPECT_EQ(s.kernel_drops, 0u);
    EXPECT_EQ(s.send_failed, 0u);
    if (kind == "io_uring") {
      // Two buffers and 20-datagram bursts: the ring did run dry.
      EXPECT_GT(s.rx_buffer_exhausted, 0u);
    }
    std::printf("[ info ] %s: %zu datagrams, rx buffer exhausted %lu times\n",
                std::string(kind).c_str(), sent.size(),
                s.rx_buffer_exhausted);
  }
}

TEST_P(AdversarialTest, UnreachableClientDoesNotDisturbOthers) {
  Client a = h_->NewClient(), b = h_->NewClient();
  Client c = h_->NewClient(), d = h_->NewClient();
  ASSERT_TRUE(h_->BindPair(a, b));
  ASSERT_TRUE(h_->BindPair(c, d));
  // B goes away: every datagram relayed to it draws an ICMP port
  // unreachable back to the relay.
  b.sock = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(a.sock.SendTo(a.disco->Data({uint8_t(i)}), h_->relay_addr()));
  }
  for (int i = 0; i < 100; ++i) {
    Bytes x = c.disco->Data({uint8_t(i), 1});
    Bytes y = d.disco->Data({uint8_t(i), 2});
    ASSERT_TRUE(c.sock.SendTo(x, h_->relay_addr()));
    ASSERT_TRUE(d.sock.SendTo(y, h_->relay_addr()));
    auto at_d = d.sock.Recv(kTimeoutMs);
    auto at_c = c.sock.Recv(kTimeoutMs);
    ASSERT_TRUE(at_d && at_c) << i;
    EXPECT_EQ(at_d->first, x);
    EXPECT_EQ(at_c->first, y);
  }
  EXPECT_TRUE(RelayHarness::WaitFor(
      [&] { return h_->relay().Counters().relayed >= 500; }));
}

}  // namespace
}  // namespace peerrelay::testing
