#include "engine/port_guard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "common/udp_socket.h"

namespace peerrelay::engine {
namespace {

const SocketAddress kLoopback = SocketAddress::Parse("127.0.0.1:0").value();

uint16_t FreePort() {
  UdpSocket probe = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
  return probe.local().port();
}

// A process that holds the guard name of `port` as a plain abstract socket,
// as any local user could: python3 (another program), or a fork of this
// test renamed "relayd" (the same executable: a real relayd of this user).
pid_t SquatGuard(uint16_t port, bool as_relayd) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  const std::string name = "peerrelay-relayd-udp-" + std::to_string(port);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(ready[1], 1);
    if (!as_relayd) {
      const std::string code =
          "import socket, sys, time\n"
          "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
          "s.bind('\\0" + name + "')\ns.listen(8)\n"
          "sys.stdout.write('1'); sys.stdout.flush(); time.sleep(60)\n";
      execlp("python3", "python3", "-c", code.c_str(), nullptr);
      _exit(1);
    }
    prctl(PR_SET_NAME, "relayd");
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
                    listen(fd, 8) == 0;
    (void)!write(1, ok ? "1" : "0", 1);
    pause();
    _exit(0);
  }
  char c = 0;
  close(ready[1]);
  (void)!read(ready[0], &c, 1);
  close(ready[0]);
  return c == '1' ? pid : -1;
}

void Reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(PortGuardTest, ASquatterOfTheGuardNameIsNamedAndIgnored) {
  const uint16_t port = FreePort();
  const pid_t squatter = SquatGuard(port, /*as_relayd=*/false);
  ASSERT_GT(squatter, 0);
  auto g = PortGuard::Claim(port, kLoopback);
  Reap(squatter);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_NE(g->note().find("pid " + std::to_string(squatter) + " (python3"),
            std::string::npos)
      << g->note();
  EXPECT_NE(g->note().find("not a relayd"), std::string::npos);
}

TEST(PortGuardTest, ARealRelaydOfThisUserIsRefused) {
  const uint16_t port = FreePort();
  const pid_t other = SquatGuard(port, /*as_relayd=*/true);
  ASSERT_GT(other, 0);
  auto g = PortGuard::Claim(port, kLoopback);
  Reap(other);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("another relayd: pid " + std::to_string(other) +
                                      " (relayd)"),
            std::string::npos)
      << g.status();
}

TEST(PortGuardTest, OnlyCollidingAddressesBlock) {
  UdpSocket other = UdpSocket::Open(SocketAddress::Parse("127.0.0.2:0").value()).value();
  const uint16_t port = other.local().port();
  // A socket on 127.0.0.2:P does not block 127.0.0.1:P ...
  { auto g = PortGuard::Claim(port, kLoopback); EXPECT_TRUE(g.ok()) << g.status(); }
  // ... but blocks the wildcards (relayd's default listens on ::).
  for (const char* wild : {"0.0.0.0:0", "[::]:0"}) {
    auto g = PortGuard::Claim(port, SocketAddress::Parse(wild).value());
    ASSERT_FALSE(g.ok()) << wild;
    EXPECT_NE(g.status().message().find("already in use by pid"), std::string::npos)
        << g.status();
  }
  // And a wildcard socket blocks every specific address.
  UdpSocket any = UdpSocket::Open(SocketAddress::Parse("0.0.0.0:0").value()).value();
  EXPECT_FALSE(PortGuard::Claim(any.local().port(), kLoopback).ok());
}

TEST(PortGuardTest, OnlyOneClaimPerPort) {
  // A free port: bind one and let it go.
  uint16_t port;
  {
    UdpSocket probe = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
    port = probe.local().port();
  }
  auto first = PortGuard::Claim(port, kLoopback);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = PortGuard::Claim(port, kLoopback);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(std::to_string(port)),
            std::string::npos);
  EXPECT_NE(second.status().message().find("another relayd"), std::string::npos)
      << second.status();
}

TEST(PortGuardTest, APortHeldByAnySocketIsNamed) {
  UdpSocket holder = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
  auto claim = PortGuard::Claim(holder.local().port(), kLoopback);
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
  { auto g = PortGuard::Claim(port, kLoopback); ASSERT_TRUE(g.ok()); }
  EXPECT_TRUE(PortGuard::Claim(port, kLoopback).ok());
}

}  // namespace
}  // namespace peerrelay::engine
