#include "engine/handshake_limiter.h"

#include <gtest/gtest.h>

// The bucket algorithm and the bounded, evicting table are tested in
// common/token_bucket_test.cc; these check how the limiter composes them.

namespace peerrelay::engine {
namespace {

const relay::ControlSide kSide{1, disco::KeyPair::Generate().public_key()};

constexpr int64_t kSec = 1'000'000'000;

SocketAddress Addr(const char* s) { return SocketAddress::Parse(s).value(); }

TEST(HandshakeLimiterTest, PerSourceBurstThenRate) {
  HandshakeLimiter l(/*per_source_rate=*/10, /*per_source_burst=*/5, 0, 0);
  const SocketAddress a = Addr("192.0.2.1:1000");
  int64_t now = kSec;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.Allow(a, kSide, now)) << i;
  EXPECT_FALSE(l.Allow(a, kSide, now));
  // Another port of the same host is another source (NAT-friendly).
  EXPECT_TRUE(l.Allow(Addr("192.0.2.1:1001"), kSide, now));
  now += kSec / 10;  // one token
  EXPECT_TRUE(l.Allow(a, kSide, now));
  EXPECT_FALSE(l.Allow(a, kSide, now));
}

TEST(HandshakeLimiterTest, TotalLimitCoversAllSources) {
  HandshakeLimiter l(0, 0, /*total_rate=*/100, /*total_burst=*/10);
  int allowed = 0;
  for (int i = 0; i < 50; ++i) {
    allowed += l.Allow(SocketAddress::FromIpv4({10, 0, 0, uint8_t(i)}, 1), kSide, kSec);
  }
  EXPECT_EQ(allowed, 10);
  // After 100 ms: 10 more.
  allowed = 0;
  for (int i = 0; i < 50; ++i) {
    allowed += l.Allow(SocketAddress::FromIpv4({10, 0, 1, uint8_t(i)}, 1), kSide,
                       kSec + kSec / 10);
  }
  EXPECT_EQ(allowed, 10);
}

TEST(HandshakeLimiterTest, SourceOverItsLimitDoesNotSpendTheTotal) {
  HandshakeLimiter l(/*per_source_rate=*/1, /*per_source_burst=*/1,
                     /*total_rate=*/1, /*total_burst=*/2);
  const SocketAddress a = Addr("192.0.2.1:1000");
  EXPECT_TRUE(l.Allow(a, kSide, kSec));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(l.Allow(a, kSide, kSec));
  EXPECT_TRUE(l.Allow(Addr("192.0.2.2:1000"), kSide, kSec));
}

// Hardening 3, attack 4: forgeries naming one live side, from a new port
// each, spend that side's share and never the total other sides need.
TEST(HandshakeLimiterTest, ForgeriesNamingOneSideSpendOnlyItsShare) {
  HandshakeLimiter l(/*per_source_rate=*/50, /*per_source_burst=*/20,
                     /*total_rate=*/1000, /*total_burst=*/100,
                     /*per_side_rate=*/20, /*per_side_burst=*/40);
  const relay::ControlSide victim{7, disco::KeyPair::Generate().public_key()};
  int forged = 0;
  for (int i = 0; i < 5000; ++i) {
    forged += l.Allow(SocketAddress::FromIpv4({10, 1, uint8_t(i >> 8), uint8_t(i)}, 9),
                      victim, kSec);
  }
  EXPECT_EQ(forged, 40);  // the side's burst, not the total's 100
  // Other sides still have the total's burst, less what the victim took.
  int others = 0;
  for (int i = 0; i < 60; ++i) {
    const relay::ControlSide side{uint32_t(100 + i), disco::KeyPair::Generate().public_key()};
    others += l.Allow(SocketAddress::FromIpv4({10, 2, 0, uint8_t(i)}, 9), side, kSec);
  }
  EXPECT_EQ(others, 60);
}

}  // namespace
}  // namespace peerrelay::engine
