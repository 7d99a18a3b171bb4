#include <cstdint>
#include <vector>

#include "client/turn.h"
#include "common/socket_address.h"
#include "gtest/gtest.h"

namespace peerrelay::client::turn {
namespace {

// RFC 5769 section 2.2 and 2.3: the XOR-MAPPED-ADDRESS values of its
// sample responses (XOR-PEER / XOR-RELAYED-ADDRESS use the same encoding).
TEST(TurnTest, XorAddressMatchesRfc5769) {
  const uint8_t txid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
  EXPECT_EQ(XorAddress(SocketAddress::Parse("192.0.2.1:32853").value(), txid),
            (std::vector<uint8_t>{0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43}));
  EXPECT_EQ(XorAddress(
                SocketAddress::Parse("[2001:db8:1234:5678:11:2233:4455:6677]:32853").value(),
                txid),
            (std::vector<uint8_t>{0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
                                  0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
                                  0xbe, 0xd2, 0xb9, 0xd9}));
}

TEST(TurnTest, RequestsAreWellFormedStun) {
  const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::vector<uint8_t> alloc = Request(kAllocate, txid, nullptr, 0);
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
      Request(kChannelBind, txid, &peer, kFirstChannel);
  EXPECT_EQ(bind[1], 0x09);
  EXPECT_EQ(bind.size(), 20u + 8 + 12);  // CHANNEL-NUMBER, XOR-PEER-ADDRESS
  EXPECT_EQ(std::vector<uint8_t>(bind.begin() + 20, bind.begin() + 28),
            (std::vector<uint8_t>{0x00, 0x0c, 0x00, 0x04, 0x40, 0x00, 0, 0}));
}

TEST(TurnTest, ParsesAnAllocateAnswerAndErrors) {
  const uint8_t txid[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  const SocketAddress relayed = SocketAddress::Parse("127.0.0.1:49999").value();
  std::vector<uint8_t> attr = {0x00, 0x16, 0x00, 0x08};
  const std::vector<uint8_t> x = XorAddress(relayed, txid);
  attr.insert(attr.end(), x.begin(), x.end());
  std::vector<uint8_t> m = {0x01, 0x03, 0x00, uint8_t(attr.size()), 0x21, 0x12, 0xa4, 0x42};
  m.insert(m.end(), txid, txid + 12);
  m.insert(m.end(), attr.begin(), attr.end());
  Response r;
  ASSERT_TRUE(ParseResponse(m.data(), m.size(), txid, &r));
  EXPECT_EQ(r.type, 0x0103);
  ASSERT_TRUE(r.has_relayed);
  EXPECT_EQ(r.relayed, relayed);
  const uint8_t other[12] = {};
  EXPECT_FALSE(ParseResponse(m.data(), m.size(), other, &r));
  // An error answer: 0x0113 with ERROR-CODE 437.
  std::vector<uint8_t> e = {0x01, 0x13, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42};
  e.insert(e.end(), txid, txid + 12);
  for (uint8_t b : {0x00, 0x09, 0x00, 0x04, 0x00, 0x00, 0x04, 37}) e.push_back(b);
  Response er;
  ASSERT_TRUE(ParseResponse(e.data(), e.size(), txid, &er));
  EXPECT_EQ(er.type, 0x0113);
  EXPECT_EQ(er.error, 437);
}

TEST(TurnTest, ChannelDataHeader) {
  uint8_t h[4];
  ChannelDataHeader(h, 0x4001, 1396);
  EXPECT_EQ(std::vector<uint8_t>(h, h + 4),
            (std::vector<uint8_t>{0x40, 0x01, 0x05, 0x74}));
}

}  // namespace
}  // namespace peerrelay::client::turn
