#include "control/rate_limiter.h"

#include <gtest/gtest.h>

namespace peerrelay::control {
namespace {

constexpr int64_t kSec = 1'000'000'000;

TEST(RateLimiterTest, BurstThenSteadyRatePerCaller) {
  RateLimiter l(/*per_second=*/2, /*burst=*/3);
  int64_t now = 100 * kSec;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.Allow("a", now)) << i;
  EXPECT_FALSE(l.Allow("a", now));
  EXPECT_EQ(l.RetryAfterSeconds("a", now), 1);
  EXPECT_TRUE(l.Allow("b", now));  // callers are independent
  now += kSec / 2;                  // half a second: one token
  EXPECT_TRUE(l.Allow("a", now));
  EXPECT_FALSE(l.Allow("a", now));
  now += 10 * kSec;  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.Allow("a", now)) << i;
  EXPECT_FALSE(l.Allow("a", now));
}

TEST(RateLimiterTest, RetryAfterCoversTheWait) {
  RateLimiter l(/*per_second=*/0.1, /*burst=*/1);
  EXPECT_TRUE(l.Allow("a", 0));
  EXPECT_FALSE(l.Allow("a", 0));
  EXPECT_EQ(l.RetryAfterSeconds("a", 0), 10);
  EXPECT_FALSE(l.Allow("a", 9 * kSec));
  EXPECT_TRUE(l.Allow("a", 10 * kSec));
}

TEST(RateLimiterTest, TableStaysBounded) {
  RateLimiter l(1, 1);
  for (size_t i = 0; i < RateLimiter::kMaxCallers; ++i) {
    ASSERT_TRUE(l.Allow(std::to_string(i), 0));
  }
  // Every bucket is empty: a new caller cannot get in yet...
  EXPECT_FALSE(l.Allow("new", 0));
  // ...but once idle buckets refill they are evicted and it can.
  EXPECT_TRUE(l.Allow("new", 2 * kSec));
}

}  // namespace
}  // namespace peerrelay::control
