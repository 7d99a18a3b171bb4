#include "engine/handshake_limiter.h"

#include <gtest/gtest.h>

// The bucket algorithm and the bounded, evicting table are tested in
// common/token_bucket_test.cc; these check how the limiter composes them.

namespace peerrelay::engine {
namespace {

constexpr int64_t kSec = 1'000'000'000;

SocketAddress Addr(const char* s) { return SocketAddress::Parse(s).value(); }

TEST(HandshakeLimiterTest, PerSourceBurstThenRate) {
  HandshakeLimiter l(/*per_source_rate=*/10, /*per_source_burst=*/5, 0, 0);
  const SocketAddress a = Addr("192.0.2.1:1000");
  int64_t now = kSec;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.Allow(a, now)) << i;
  EXPECT_FALSE(l.Allow(a, now));
  // Another port of the same host is another source (NAT-friendly).
  EXPECT_TRUE(l.Allow(Addr("192.0.2.1:1001"), now));
  now += kSec / 10;  // one token
  EXPECT_TRUE(l.Allow(a, now));
  EXPECT_FALSE(l.Allow(a, now));
}

TEST(HandshakeLimiterTest, TotalLimitCoversAllSources) {
  HandshakeLimiter l(0, 0, /*total_rate=*/100, /*total_burst=*/10);
  int allowed = 0;
  for (int i = 0; i < 50; ++i) {
    allowed += l.Allow(SocketAddress::FromIpv4({10, 0, 0, uint8_t(i)}, 1), kSec);
  }
  EXPECT_EQ(allowed, 10);
  // After 100 ms: 10 more.
  allowed = 0;
  for (int i = 0; i < 50; ++i) {
    allowed += l.Allow(SocketAddress::FromIpv4({10, 0, 1, uint8_t(i)}, 1),
                       kSec + kSec / 10);
  }
  EXPECT_EQ(allowed, 10);
}

TEST(HandshakeLimiterTest, SourceOverItsLimitDoesNotSpendTheTotal) {
  HandshakeLimiter l(/*per_source_rate=*/1, /*per_source_burst=*/1,
                     /*total_rate=*/1, /*total_burst=*/2);
  const SocketAddress a = Addr("192.0.2.1:1000");
  EXPECT_TRUE(l.Allow(a, kSec));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(l.Allow(a, kSec));
  EXPECT_TRUE(l.Allow(Addr("192.0.2.2:1000"), kSec));
}

}  // namespace
}  // namespace peerrelay::engine
