// The bucket algorithm and the bounded table are tested once, in
// common/token_bucket_test.cc; this checks what RateLimiter adds: one table
// shared safely by the admin API's threads.
#include "control/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace peerrelay::control {
namespace {

TEST(RateLimiterTest, ThreadsShareOneBucketPerCaller) {
  RateLimiter l(/*per_second=*/0, /*burst=*/1000);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) allowed += l.Allow("a", 0);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1000);
  EXPECT_TRUE(l.Allow("b", 0));
}

TEST(RateLimiterTest, RetryAfterNamesTheWait) {
  RateLimiter l(/*per_second=*/0.5, /*burst=*/1);
  EXPECT_TRUE(l.Allow("a", 0));
  EXPECT_FALSE(l.Allow("a", 0));
  EXPECT_EQ(l.RetryAfterSeconds("a", 0), 2);
}

}  // namespace
}  // namespace peerrelay::control
