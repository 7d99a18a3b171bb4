#include "common/socket_address.h"

#include "absl/strings/str_cat.h"

#include <gtest/gtest.h>

namespace peerrelay {
namespace {

TEST(SocketAddressTest, Ipv4RoundTripsThroughSockaddrAndText) {
  SocketAddress a = SocketAddress::FromIpv4({127, 0, 0, 1}, 7777);
  EXPECT_TRUE(a.is_ipv4());
  EXPECT_EQ(a.ToString(), "127.0.0.1:7777");
  sockaddr_storage ss;
  socklen_t len = a.ToSockaddr(&ss);
  EXPECT_EQ(len, sizeof(sockaddr_in));
  EXPECT_EQ(SocketAddress::FromSockaddr(&ss, len), a);
  EXPECT_EQ(SocketAddress::Parse("127.0.0.1:7777").value(), a);
}

TEST(SocketAddressTest, Ipv4IsStoredMapped) {
  SocketAddress a = SocketAddress::FromIpv4({1, 2, 3, 4}, 567);
  const std::array<uint8_t, 16> want = {0, 0, 0, 0, 0,    0,    0, 0,
                                        0, 0, 0xff, 0xff, 1, 2, 3, 4};
  EXPECT_EQ(a.bytes(), want);
  // A mapped address received on an IPv6 socket is the same address.
  EXPECT_EQ(SocketAddress::FromIpv6(want, 567), a);
  sockaddr_storage ss;
  EXPECT_EQ(a.ToSockaddr(&ss, /*force_ipv6=*/true), sizeof(sockaddr_in6));
  EXPECT_EQ(SocketAddress::FromSockaddr(&ss, sizeof(sockaddr_in6)), a);
}

TEST(SocketAddressTest, Ipv6ParsesAndPrints) {
  auto a = SocketAddress::Parse("[2001::3456]:789");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->is_ipv4());
  EXPECT_EQ(a->ToString(), "[2001::3456]:789");
  EXPECT_EQ(a->port(), 789);
  EXPECT_EQ(a->bytes()[0], 0x20);
  EXPECT_EQ(a->bytes()[1], 0x01);
  EXPECT_EQ(a->bytes()[14], 0x34);
  EXPECT_EQ(a->bytes()[15], 0x56);
}

TEST(SocketAddressTest, BadTextIsRejected) {
  for (const char* bad : {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536",
                          "1.2.3:80", "[::1]", "[::1]80", "::1:80",
                          "host:80", "[zz::1]:80", "1.2.3.4:-1"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(SocketAddress::Parse(bad).ok());
  }
}

TEST(SocketAddressTest, UnspecifiedIsRecognised) {
  EXPECT_TRUE(SocketAddress::Parse("0.0.0.0:1").value().is_unspecified());
  EXPECT_TRUE(SocketAddress::Parse("[::]:1").value().is_unspecified());
  EXPECT_FALSE(SocketAddress::Parse("[::1]:1").value().is_unspecified());
}

TEST(SocketAddressTest, FromSockaddrRejectsShortAndOtherFamilies) {
  sockaddr_storage ss = {};
  ss.ss_family = AF_INET;
  EXPECT_FALSE(SocketAddress::FromSockaddr(&ss, sizeof(sockaddr_in) - 1));
  ss.ss_family = AF_UNIX;
  EXPECT_FALSE(SocketAddress::FromSockaddr(&ss, sizeof(ss)));
}

}  // namespace
TEST(SocketAddressTest, ParseWithDefaultPortTakesBareHosts) {
  EXPECT_EQ(SocketAddress::ParseWithDefaultPort("1.2.3.4:5", 9)->ToString(), "1.2.3.4:5");
  EXPECT_EQ(SocketAddress::ParseWithDefaultPort("1.2.3.4", 9)->ToString(), "1.2.3.4:9");
  EXPECT_EQ(SocketAddress::ParseWithDefaultPort("2001:db8::1", 9)->ToString(),
            "[2001:db8::1]:9");
  EXPECT_EQ(SocketAddress::ParseWithDefaultPort("[2001:db8::1]", 0)->ToString(),
            "[2001:db8::1]:0");
  EXPECT_EQ(SocketAddress::ParseWithDefaultPort("[::1]:7", 9)->ToString(), "[::1]:7");
  for (const char* bad : {"[2001:db8::1", "300.1.1.1", "host.example", "[::1]:99999", ""}) {
    auto a = SocketAddress::ParseWithDefaultPort(bad, 9);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().message(), absl::StrCat("bad address '", bad, "'"));
  }
}

}  // namespace peerrelay
