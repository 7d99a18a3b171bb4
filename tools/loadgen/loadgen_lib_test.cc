#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "common/socket_address.h"
#include "tools/loadgen/stats.h"
#include "tools/loadgen/turn.h"
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

// RFC 5769 section 2.2 and 2.3: the XOR-MAPPED-ADDRESS values of its
// sample responses (XOR-PEER / XOR-RELAYED-ADDRESS use the same encoding).
TEST(TurnTest, XorAddressMatchesRfc5769) {
  const uint8_t txid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
  EXPECT_EQ(turn::XorAddress(SocketAddress::Parse("192.0.2.1:32853").value(), txid),
            (std::vector<uint8_t>{0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43}));
  EXPECT_EQ(turn::XorAddress(
                SocketAddress::Parse("[2001:db8:1234:5678:11:2233:4455:6677]:32853").value(),
                txid),
            (std::vector<uint8_t>{0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
                                  0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
                                  0xbe, 0xd2, 0xb9, 0xd9}));
}

TEST(TurnTest, RequestsAreWellFormedStun) {
  const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::vector<uint8_t> alloc = turn::Request(turn::kAllocate, txid, nullptr, 0);
  // Header: Allocate, 16 bytes of attributes, magic cookie, transaction id.
  EXPECT_EQ(std::vector<uint8_t>(alloc.begin(), alloc.begin() + 8),
            (std::vector<uint8_t>{0x00, 0x03, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42}));
  EXPECT_EQ(std::vector<uint8_t>(alloc.begin() + 8, alloc.begin() + 20),
            std::vector<uint8_t>(txid, txid + 12));
  // REQUESTED-TRANSPORT UDP (17), then LIFETIME 600 s.
  EXPECT_EQ(std::vector<uint8_t>(alloc.begin() + 20, alloc.end()),
            (std::vector<uint8_t>{0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0,
                                  0x00, 0x0d, 0x00, 0x04, 0, 0, 0x02, 0x58}));
  const SocketAddress peer = SocketAddress::Parse("127.0.0.1:50000").value();
  const std::vector<uint8_t> bind =
      turn::Request(turn::kChannelBind, txid, &peer, turn::kFirstChannel);
  EXPECT_EQ(bind[1], 0x09);
  EXPECT_EQ(bind.size(), 20u + 8 + 12);  // CHANNEL-NUMBER, XOR-PEER-ADDRESS
  EXPECT_EQ(std::vector<uint8_t>(bind.begin() + 20, bind.begin() + 28),
            (std::vector<uint8_t>{0x00, 0x0c, 0x00, 0x04, 0x40, 0x00, 0, 0}));
}

TEST(TurnTest, ParsesAnAllocateAnswerAndErrors) {
  const uint8_t txid[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  const SocketAddress relayed = SocketAddress::Parse("127.0.0.1:49999").value();
  std::vector<uint8_t> attr = {0x00, 0x16, 0x00, 0x08};
  const std::vector<uint8_t> x = turn::XorAddress(relayed, txid);
  attr.insert(attr.end(), x.begin(), x.end());
  std::vector<uint8_t> m = {0x01, 0x03, 0x00, uint8_t(attr.size()), 0x21, 0x12, 0xa4, 0x42};
  m.insert(m.end(), txid, txid + 12);
  m.insert(m.end(), attr.begin(), attr.end());
  turn::Response r;
  ASSERT_TRUE(turn::ParseResponse(m.data(), m.size(), txid, &r));
  EXPECT_EQ(r.type, 0x0103);
  ASSERT_TRUE(r.has_relayed);
  EXPECT_EQ(r.relayed, relayed);
  const uint8_t other[12] = {};
  EXPECT_FALSE(turn::ParseResponse(m.data(), m.size(), other, &r));
  // An error answer: 0x0113 with ERROR-CODE 437.
  std::vector<uint8_t> e = {0x01, 0x13, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42};
  e.insert(e.end(), txid, txid + 12);
  for (uint8_t b : {0x00, 0x09, 0x00, 0x04, 0x00, 0x00, 0x04, 37}) e.push_back(b);
  turn::Response er;
  ASSERT_TRUE(turn::ParseResponse(e.data(), e.size(), txid, &er));
  EXPECT_EQ(er.type, 0x0113);
  EXPECT_EQ(er.error, 437);
}

TEST(TurnTest, ChannelDataHeader) {
  uint8_t h[4];
  turn::ChannelDataHeader(h, 0x4001, 1396);
  EXPECT_EQ(std::vector<uint8_t>(h, h + 4),
            (std::vector<uint8_t>{0x40, 0x01, 0x05, 0x74}));
}

}  // namespace
}  // namespace peerrelay::loadgen
