// Replay against an in-process fake relay (the reference relays' rules: no
// allocation or handshake, VNI i + 1 for session i, clients learned from
// their first datagrams) that injects faults, so that every figure the
// replayer reports is checked against a known truth.
#include "loadtest/pcap/replayer.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <thread>

#include "common/udp_socket.h"
#include "disco/key.h"
#include "geneve/geneve.h"
#include "gtest/gtest.h"

namespace peerrelay::pcap {
namespace {

SocketAddress Addr(const char* t) { return SocketAddress::Parse(t).value(); }

Bytes Wg(uint32_t vni, uint64_t counter, uint8_t fill) {
  Bytes b(8 + 16 + 30, fill);
  geneve::Encode({.protocol = geneve::kProtocolWireGuard, .vni = vni}, b.data());
  b[8] = 4;
  b[9] = b[10] = b[11] = 0;
  for (int i = 0; i < 8; ++i) b[16 + i] = uint8_t(counter >> (8 * i));
  return b;
}

// What the fake relay does to the k-th data datagram it forwards (counted
// from 0 over all sessions; setup datagrams are passed through).
struct Faults {
  int drop = -1;
  int duplicate = -1;
  int corrupt = -1;
  int hold = -1;          // held back and sent after the next one (reorder)
  int misdeliver = -1;    // sent to the other session's receiver
};

class FakeRelay {
 public:
  explicit FakeRelay(Faults f) : faults_(f) {
    sock_.emplace(*UdpSocket::Open(Addr("127.0.0.1:0")));
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeRelay() {
    stop_ = true;
    thread_.join();
  }
  SocketAddress address() const { return sock_->local(); }

 private:
  void Send(const Bytes& b, const SocketAddress& to) { sock_->SendTo(b, to); }
  void Run() {
    std::optional<std::pair<Bytes, SocketAddress>> held;
    uint8_t buf[2048];
    while (!stop_) {
      pollfd p{sock_->fd(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      sockaddr_storage ss;
      socklen_t sl = sizeof(ss);
      const ssize_t n = recvfrom(sock_->fd(), buf, sizeof(buf), 0,
                                 reinterpret_cast<sockaddr*>(&ss), &sl);
      if (n < 0) continue;
      Bytes b(buf, buf + n);
      const SocketAddress from = *SocketAddress::FromSockaddr(&ss, sl);
      geneve::Header h;
      if (!geneve::Decode(b.data(), b.size(), &h)) continue;
      auto& peers = clients_[h.vni];
      if (std::find(peers.begin(), peers.end(), from) == peers.end() &&
          peers.size() < 2) {
        peers.push_back(from);
      }
      if (peers.size() < 2) continue;
      const SocketAddress to = peers[0] == from ? peers[1] : peers[0];
      // Setup traffic (disco probes) passes untouched.
      if (h.protocol != geneve::kProtocolWireGuard) {
        Send(b, to);
        continue;
      }
      const int k = data_++;
      if (k == faults_.drop) continue;
      if (k == faults_.corrupt) b.back() ^= 0x55;
      if (k == faults_.misdeliver) {
        for (const auto& [vni, other] : clients_) {
          if (vni != h.vni && other.size() == 2) {
            Send(b, other[1]);
            break;
          }
        }
        continue;
      }
      if (k == faults_.hold) {
        held.emplace(b, to);
        continue;
      }
      Send(b, to);
      if (k == faults_.duplicate) Send(b, to);
      if (held) {
        Send(held->first, held->second);
        held.reset();
      }
    }
  }

  Faults faults_;
  std::optional<UdpSocket> sock_;
  std::map<uint32_t, std::vector<SocketAddress>> clients_;
  int data_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Two sessions, A sends 20 datagrams in each (distinct bytes).
Capture TwoSessions() {
  Capture c;
  c.path = "synthetic";
  c.relay = Addr("127.0.0.1:7777");
  for (uint32_t s = 0; s < 2; ++s) {
    Session ss;
    ss.vni = 100 + s;
    for (uint64_t i = 0; i < 20; ++i) {
      ss.items.push_back({int64_t(i) * 1'000'000, 0, Wg(100 + s, i, uint8_t(s))});
    }
    c.sessions.push_back(ss);
  }
  return c;
}

ReplayResult ReplayThrough(Faults f, Capture c = TwoSessions()) {
  FakeRelay relay(f);
  ReplayOptions o;
  o.setup.relay = relay.address();
  o.setup.reference = true;
  o.setup.server_key = disco::KeyPair::Generate().public_key();  // unused
  o.speed = 0;
  o.drain_s = 0.3;
  auto r = Replay(c, o, nullptr);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ReplayResult{};
}

TEST(Replay, CleanRunDeliversEverything) {
  ReplayResult r = ReplayThrough({});
  ASSERT_EQ(r.sessions.size(), 2u);
  EXPECT_EQ(r.sessions[0].vni, 1u);  // the reference rule: session i, VNI i + 1
  EXPECT_EQ(r.sessions[1].vni, 2u);
  EXPECT_EQ(r.total.sent, 40u);
  EXPECT_EQ(r.total.received, 40u);
  EXPECT_EQ(r.total.lost + r.total.duplicates + r.total.reordered +
                r.total.corrupted + r.total.misdelivered,
            0u);
  EXPECT_GT(r.total.p50_ns, 0);
  EXPECT_TRUE(r.ok());
}

TEST(Replay, EveryFaultIsCountedWhereItHappened) {
  // Datagrams are forwarded in send order: session 0's 20, then session 1's.
  ReplayResult r = ReplayThrough({.drop = 3, .duplicate = 5, .corrupt = 7, .hold = 9,
                        .misdeliver = 25});
  ASSERT_EQ(r.sessions.size(), 2u);
  const FlowStats& s0 = r.sessions[0].stats;
  const FlowStats& s1 = r.sessions[1].stats;
  EXPECT_EQ(s0.sent, 20u);
  EXPECT_EQ(s0.received, 18u);  // not the dropped one nor the corrupted one
  EXPECT_EQ(s0.lost, 2u);       // both never arrived intact
  EXPECT_EQ(s0.duplicates, 1u);
  EXPECT_EQ(s0.corrupted, 1u);
  EXPECT_EQ(s0.reordered, 1u);  // 9 arrived after 10
  EXPECT_EQ(s0.misdelivered, 0u);
  EXPECT_EQ(s1.sent, 20u);
  EXPECT_EQ(s1.received, 19u);
  EXPECT_EQ(s1.lost, 1u);
  EXPECT_EQ(s1.misdelivered, 1u);  // session 1's datagram, at session 0's B
  EXPECT_FALSE(r.ok());
}

TEST(Replay, LoopsForTheDurationAtTheCapturedPace) {
  Capture c = TwoSessions();
  FakeRelay relay({});
  ReplayOptions o;
  o.setup.relay = relay.address();
  o.setup.reference = true;
  o.setup.server_key = disco::KeyPair::Generate().public_key();  // unused
  o.speed = 1;            // 19 ms per pass
  o.duration_s = 0.25;
  o.drain_s = 2;  // returns as soon as everything arrived
  auto r = Replay(c, o, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->loops, 5u);
  EXPECT_LE(r->loops, 14u);
  EXPECT_EQ(r->total.received, r->total.sent);
  EXPECT_EQ(r->total.duplicates, 0u);  // repeated bytes are not duplicates
  EXPECT_GE(r->seconds, 0.24);
  EXPECT_TRUE(r->ok());
}

}  // namespace
}  // namespace peerrelay::pcap
