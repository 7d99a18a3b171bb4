#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "loadtest/loadgen/stats.h"

namespace peerrelay::loadgen {
namespace {

TEST(SeqTrackerTest, TellsReorderingDuplicatesAndGapsApart) {
  SeqTracker t;
  for (uint64_t s : {0, 1, 2, 5, 3, 3, 6, 4}) t.Add(s);
  EXPECT_EQ(t.unique(), 7u);  // 0..6
  EXPECT_EQ(t.duplicates(), 1u);
  EXPECT_EQ(t.reordered(), 2u);  // 3 and 4 arrived after 5
  t.Add(100);                    // 7..99 missing so far
  EXPECT_EQ(t.unique(), 8u);
  EXPECT_EQ(t.Add(50), SeqTracker::Kind::kReordered);
  EXPECT_EQ(t.Add(50), SeqTracker::Kind::kDuplicate);
}

TEST(SeqTrackerTest, WindowSlidesWithoutForgettingRecentNumbers) {
  SeqTracker t;
  for (uint64_t s = 0; s < 3 * SeqTracker::kWindow; ++s) t.Add(s);
  EXPECT_EQ(t.unique(), 3 * SeqTracker::kWindow);
  EXPECT_EQ(t.Add(3 * SeqTracker::kWindow - 10), SeqTracker::Kind::kDuplicate);
  // A jump past the whole window, then a number inside the new window.
  t.Add(10 * SeqTracker::kWindow);
  EXPECT_EQ(t.Add(10 * SeqTracker::kWindow - 1), SeqTracker::Kind::kReordered);
  EXPECT_EQ(t.duplicates(), 1u);
}

TEST(LatencyHistogramTest, QuantilesWithinTheBucketResolution) {
  LatencyHistogram h;
  for (int64_t us = 1; us <= 1000; ++us) h.Add(us * 1000);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.max(), 1'000'000);
  EXPECT_NEAR(double(h.Quantile(0.5)), 500e3, 500e3 * 0.04);
  EXPECT_NEAR(double(h.Quantile(0.99)), 990e3, 990e3 * 0.04);
  EXPECT_EQ(h.Quantile(1.0), 1'000'000);
  EXPECT_EQ(LatencyHistogram().Quantile(0.5), 0);
  LatencyHistogram small;
  small.Add(3);
  small.Add(5);
  EXPECT_EQ(small.Quantile(0.5), 3);
}

}  // namespace
}  // namespace peerrelay::loadgen
