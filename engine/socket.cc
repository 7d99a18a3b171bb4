#include "engine/socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/udp_options.h"

namespace peerrelay::engine {
namespace {

absl::Status Errno(absl::string_view what) {
  return absl::ErrnoToStatus(errno, what);
}

// What the kernel granted for a buffer option.
int Granted(int fd, int opt) {
  int got = 0;
  socklen_t len = sizeof(got);
  getsockopt(fd, SOL_SOCKET, opt, &got, &len);
  return got;
}

}  // namespace

absl::StatusOr<SocketInfo> OpenRelaySocket(const SocketAddress& bind,
                                           bool reuseport) {
  SocketInfo info;
  info.ipv6 = !bind.is_ipv4();
  int fd = socket(info.ipv6 ? AF_INET6 : AF_INET,
                  SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return Errno("socket");
  auto fail = [fd](absl::Status s) {
    close(fd);
    return s;
  };
  const int one = 1, zero = 0;
  if (info.ipv6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0) {
    return fail(Errno("IPV6_V6ONLY"));
  }
  if (reuseport &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return fail(Errno("SO_REUSEPORT"));
  }
  SetSocketBuffers(fd, kSocketBufferBytes);
  info.rcvbuf = Granted(fd, SO_RCVBUF);
  info.sndbuf = Granted(fd, SO_SNDBUF);
  (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
  info.gro = setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  if (info.ipv6) {
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
  }
  // On a dual-stack socket IPv4 datagrams carry IP_PKTINFO.
  (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));

  sockaddr_storage ss;
  socklen_t len = bind.ToSockaddr(&ss, info.ipv6);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(
        err, absl::StrCat("bind ", bind.ToString(),
                          err == EADDRINUSE
                              ? " (another program holds this UDP port)"
                              : ""));
  }
  len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  info.port = SocketAddress::FromSockaddr(&ss, len)->port();
  info.fd = fd;
  return info;
}

void ParseRxControl(msghdr* msg, RxMeta* out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v = 0;
      std::memcpy(&v, CMSG_DATA(c), sizeof(v));
      out->gro_size = static_cast<uint16_t>(v);
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
      uint32_t v = 0;
      std::memcpy(&v, CMSG_DATA(c), sizeof(v));
      out->kernel_drops = v;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      out->local.valid = true;
      out->local.ipv6 = false;
      std::memcpy(out->local.addr, &pi.ipi_addr, 4);
      out->local.ifindex = pi.ipi_ifindex;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      out->local.valid = true;
      out->local.ipv6 = true;
      std::memcpy(out->local.addr, &pi.ipi6_addr, 16);
      out->local.ifindex = static_cast<int>(pi.ipi6_ifindex);
    }
  }
}

size_t WritePktinfo(const LocalAddress& local, bool socket_ipv6, uint8_t* buf,
                    size_t buf_len) {
  if (!local.valid) return 0;
  std::memset(buf, 0, buf_len);
  cmsghdr* c = reinterpret_cast<cmsghdr*>(buf);
  if (!local.ipv6) {
    if (buf_len < CMSG_SPACE(sizeof(in_pktinfo))) return 0;
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi{};
    std::memcpy(&pi.ipi_spec_dst, local.addr, 4);
    std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    return CMSG_SPACE(sizeof(in_pktinfo));
  }
  if (!socket_ipv6 || buf_len < CMSG_SPACE(sizeof(in6_pktinfo))) return 0;
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo pi{};
  std::memcpy(&pi.ipi6_addr, local.addr, 16);
  std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  return CMSG_SPACE(sizeof(in6_pktinfo));
}

}  // namespace peerrelay::engine
