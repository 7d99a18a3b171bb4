#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tools/loadgen/stats.h"
#include "tools/loadgen/wire.h"

namespace peerrelay::loadgen {
namespace {

TEST(WireTest, DatagramIsAWireGuardTransportMessageInGeneve) {
  std::vector<uint8_t> d(64);
  WriteDatagram(d.data(), d.size(),
                {.vni = 0x123456, .pair = 7, .direction = 1, .seq = 0x0102030405,
                 .sent_ns = 99});
  // Geneve: version 0, no options, O bit clear, protocol 0x7a12, VNI.
  EXPECT_EQ(std::vector<uint8_t>(d.begin(), d.begin() + 8),
            (std::vector<uint8_t>{0x00, 0x00, 0x7a, 0x12, 0x12, 0x34, 0x56, 0x00}));
  // WireGuard transport data: type 4, reserved, receiver index, counter (LE).
  EXPECT_EQ(std::vector<uint8_t>(d.begin() + 8, d.begin() + 24),
            (std::vector<uint8_t>{4, 0, 0, 0, 7, 0, 0, 0, 5, 4, 3, 2, 1, 0, 0, 0}));
  DatagramInfo back;
  ASSERT_TRUE(ParseDatagram(d.data(), d.size(), &back));
  EXPECT_EQ(back.vni, 0x123456u);
  EXPECT_EQ(back.pair, 7u);
  EXPECT_EQ(back.direction, 1);
  EXPECT_EQ(back.seq, 0x0102030405u);
  EXPECT_EQ(back.sent_ns, 99);
  EXPECT_TRUE(FillIntact(d.data(), d.size(), back));
  d[50] ^= 1;
  EXPECT_FALSE(FillIntact(d.data(), d.size(), back));
  d[50] ^= 1;
  back.seq += 1;  // the same bytes under another identity
  EXPECT_FALSE(FillIntact(d.data(), d.size(), back));
}

TEST(WireTest, RejectsWhatIsNotOurs) {
  std::vector<uint8_t> d(64);
  WriteDatagram(d.data(), d.size(), {.vni = 1});
  DatagramInfo out;
  EXPECT_FALSE(ParseDatagram(d.data(), kHeaderSize - 1, &out));
  std::vector<uint8_t> control = d;
  control[1] = 0x80;  // O bit: a control datagram
  EXPECT_FALSE(ParseDatagram(control.data(), control.size(), &out));
  std::vector<uint8_t> handshake = d;
  handshake[8] = 1;  // WireGuard handshake initiation
  EXPECT_FALSE(ParseDatagram(handshake.data(), handshake.size(), &out));
}

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
