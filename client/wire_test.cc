#include <cstdint>
#include <vector>

#include "client/wire.h"
#include "gtest/gtest.h"

namespace peerrelay::client::wire {
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

}  // namespace
}  // namespace peerrelay::client::wire
