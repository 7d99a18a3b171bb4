// Several threads relay data on bound endpoints while others allocate, run
// handshakes and expire endpoints. Run under --config=tsan as well.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "relay/server.h"
#include "client/disco_client.h"
#include "relay/disco_client_testing.h"
#include "relay/server_testing.h"

namespace peerrelay::relay {
namespace {

using client::Bytes;
using client::DiscoClient;

SocketAddress Addr(int host, int port) {
  return SocketAddress::FromIpv4({10, 0, uint8_t(host >> 8), uint8_t(host)},
                                 uint16_t(port));
}

TEST(ServerConcurrencyTest, RelayAllocateHandshakeAndExpireRunTogether) {
  std::atomic<int64_t> now{1000 * kSecond};
  auto server =
      Server::Create({.addresses = {Addr(1, 7777)}}, now.load()).value();

  // Stable pairs, bound with real handshakes, relayed throughout.
  constexpr int kPairs = 16;
  std::vector<std::unique_ptr<DiscoClient>> a, b;
  Counters setup;
  for (int i = 0; i < kPairs; ++i) {
    a.push_back(std::make_unique<DiscoClient>(
        disco::Dialect::kCurrent, server->server_key(), Addr(100 + i, 1000)));
    b.push_back(std::make_unique<DiscoClient>(
        disco::Dialect::kCurrent, server->server_key(), Addr(200 + i, 2000)));
    EndpointInfo ep =
        server->Allocate(a[i]->key(), b[i]->key(), now.load()).value();
    a[i]->SetEndpoint(ep.vni, b[i]->key());
    b[i]->SetEndpoint(ep.vni, a[i]->key());
    ASSERT_TRUE(relay::DriveHandshake(*a[i], *server, now.load(), &setup));
    ASSERT_TRUE(relay::DriveHandshake(*b[i], *server, now.load(), &setup));
  }

  constexpr int kDataThreads = 2;
  constexpr int kRounds = 3000;
  std::atomic<int> wrong{0};
  std::vector<Counters> counters(kDataThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kDataThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        int i = (r + t) % kPairs;
        DiscoClient& from = (r & 1) ? *a[i] : *b[i];
        DiscoClient& to = (r & 1) ? *b[i] : *a[i];
        Bytes d = from.Data({uint8_t(r), uint8_t(t)});
        Verdict v = ProcessCounted(*server, d.data(), d.size(), from.address(),
                                    now.load(), &counters[t]);
        if (v.kind != Verdict::kForward || v.destination != to.address()) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  // Churn: allocate, half-handshake, and let them expire.
  std::atomic<int> churn_allocated{0};
  threads.emplace_back([&] {
    Counters c;
    for (int i = 0; i < 150; ++i) {
      DiscoClient x(disco::Dialect::kCurrent, server->server_key(),
                   Addr(300 + i, 3000));
      DiscoClient y(disco::Dialect::kCurrent, server->server_key(),
                   Addr(600 + i, 3000));
      auto ep = server->Allocate(x.key(), y.key(), now.load());
      if (!ep.ok()) continue;
      churn_allocated.fetch_add(1);
      x.SetEndpoint(ep->vni, y.key());
      relay::DriveHandshake(x, *server, now.load(), &c);
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < 200; ++i) {
      now.fetch_add(kSecond);  // churn endpoints age out after 30 of these
      server->Expire(now.load());
      std::this_thread::yield();
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) {
      std::vector<SessionInfo> s = server->Sessions();
      if (s.size() < kPairs) wrong.fetch_add(1);
    }
  });
  for (auto& th : threads) th.join();

  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(churn_allocated.load(), 150);
  for (const Counters& c : counters) {
    EXPECT_EQ(c.received.Get(), uint64_t(kRounds));
    EXPECT_EQ(c.relayed.Get(), uint64_t(kRounds));
  }
  // Everything but the stable pairs ages out.
  now.fetch_add(31 * kSecond);
  server->Expire(now.load());
  EXPECT_EQ(server->endpoint_count(), size_t(kPairs));
  uint64_t relayed_packets = 0;
  for (const SessionInfo& s : server->Sessions()) {
    relayed_packets += s.packets[0] + s.packets[1];
  }
  EXPECT_EQ(relayed_packets, uint64_t(kDataThreads * kRounds));
}

}  // namespace
}  // namespace peerrelay::relay
