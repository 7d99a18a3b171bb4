#include "engine/port_guard.h"

#include <gtest/gtest.h>

#include "common/udp_socket.h"

namespace peerrelay::engine {
namespace {

TEST(PortGuardTest, OnlyOneClaimPerPort) {
  // A free port: bind one and let it go.
  uint16_t port;
  {
    UdpSocket probe = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
    port = probe.local().port();
  }
  auto first = PortGuard::Claim(port);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = PortGuard::Claim(port);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(std::to_string(port)),
            std::string::npos);
  EXPECT_NE(second.status().message().find("another relayd"), std::string::npos)
      << second.status();
}

TEST(PortGuardTest, APortHeldByAnySocketIsNamed) {
  UdpSocket holder = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
  auto claim = PortGuard::Claim(holder.local().port());
  ASSERT_FALSE(claim.ok());
  EXPECT_NE(claim.status().message().find("already in use by"),
            std::string::npos)
      << claim.status();
}

TEST(PortGuardTest, ReleasedWhenTheGuardGoes) {
  uint16_t port;
  {
    UdpSocket probe = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
    port = probe.local().port();
  }
  { auto g = PortGuard::Claim(port); ASSERT_TRUE(g.ok()); }
  EXPECT_TRUE(PortGuard::Claim(port).ok());
}

}  // namespace
}  // namespace peerrelay::engine
