#include "common/token_bucket.h"

#include <gtest/gtest.h>

#include <string>

namespace peerrelay {
namespace {

constexpr int64_t kSec = 1'000'000'000;

TEST(TokenBucketTest, BurstThenSteadyRate) {
  TokenBucket b(/*burst=*/3, 100 * kSec);
  int64_t now = 100 * kSec;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.Take(2, 3, now)) << i;
  EXPECT_FALSE(b.Take(2, 3, now));
  now += kSec / 2;  // half a second at 2/s: one token
  EXPECT_TRUE(b.Take(2, 3, now));
  EXPECT_FALSE(b.Take(2, 3, now));
  now += 10 * kSec;  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.Take(2, 3, now)) << i;
  EXPECT_FALSE(b.Take(2, 3, now));
}

TEST(TokenBucketTest, TimeRunningBackwardsAddsNothing) {
  TokenBucket b(1, 10 * kSec);
  EXPECT_TRUE(b.Take(1, 1, 10 * kSec));
  EXPECT_FALSE(b.Take(1, 1, 5 * kSec));
  EXPECT_FALSE(b.Take(1, 1, 10 * kSec + kSec / 2));
  EXPECT_TRUE(b.Take(1, 1, 11 * kSec));
}

TEST(TokenBucketTest, SecondsUntilTokenCoversTheWait) {
  TokenBucket b(1, 0);
  EXPECT_TRUE(b.Take(0.1, 1, 0));
  EXPECT_EQ(b.SecondsUntilToken(0.1, 1, 0), 10);
  EXPECT_EQ(b.SecondsUntilToken(0.1, 1, 5 * kSec), 5);
  EXPECT_FALSE(b.Take(0.1, 1, 9 * kSec));
  EXPECT_TRUE(b.Take(0.1, 1, 10 * kSec));
  EXPECT_EQ(b.SecondsUntilToken(0, 1, 10 * kSec), 1);  // never: still >= 1
}

TEST(KeyedTokenBucketsTest, KeysAreIndependent) {
  KeyedTokenBuckets<std::string> t(/*rate=*/1, /*burst=*/2, /*max_keys=*/10);
  EXPECT_TRUE(t.Allow("a", 0));
  EXPECT_TRUE(t.Allow("a", 0));
  EXPECT_FALSE(t.Allow("a", 0));
  EXPECT_EQ(t.RetryAfterSeconds("a", 0), 1);
  EXPECT_TRUE(t.Allow("b", 0));
  EXPECT_EQ(t.RetryAfterSeconds("unknown", 0), 1);
  EXPECT_EQ(t.size(), 2u);
}

TEST(KeyedTokenBucketsTest, TableStaysBoundedAndEvictsIdleKeys) {
  KeyedTokenBuckets<int> t(/*rate=*/1, /*burst=*/1, /*max_keys=*/1000);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(t.Allow(i, 0));
  // Every bucket is empty: a new key cannot get in yet...
  EXPECT_FALSE(t.Allow(5000, 0));
  EXPECT_EQ(t.size(), 1000u);
  // ...but once idle buckets refill they are evicted and it can.
  EXPECT_TRUE(t.Allow(5000, 2 * kSec));
  EXPECT_EQ(t.size(), 1u);
}

TEST(KeyedTokenBucketsTest, OnlyRefilledKeysAreEvicted) {
  KeyedTokenBuckets<int> t(/*rate=*/1, /*burst=*/1, /*max_keys=*/2);
  ASSERT_TRUE(t.Allow(1, 0));
  ASSERT_TRUE(t.Allow(2, kSec / 2));
  // At 1 s key 1 has refilled, key 2 not yet: only key 1 goes.
  EXPECT_TRUE(t.Allow(3, kSec));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_FALSE(t.Allow(2, kSec));  // key 2 kept its (empty) bucket
}

}  // namespace
}  // namespace peerrelay
