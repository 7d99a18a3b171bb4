// Relay sockets: one UDP socket per worker on the relay port, with the
// options a production relay needs (see docs/performance.md):
//   SO_REUSEPORT       one socket per worker; the kernel spreads flows
//   SO_RCVBUFFORCE / SO_SNDBUFFORCE  ~7 MiB like Tailscale (falls back to
//                      SO_RCVBUF / SO_SNDBUF, capped by net.core.*_max,
//                      when the process lacks CAP_NET_ADMIN)
//   SO_RXQ_OVFL        the kernel reports its drops on every receive
//   UDP_GRO            bursts from GSO senders arrive as one buffer
//   IP_PKTINFO / IPV6_RECVPKTINFO  the local address a datagram came to,
//                      so replies leave from it on multi-homed hosts
// A socket bound to an IPv6 address (e.g. [::]) is dual-stack.
#ifndef PEERRELAY_ENGINE_SOCKET_H_
#define PEERRELAY_ENGINE_SOCKET_H_

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/socket_address.h"
#include "engine/datagram.h"

namespace peerrelay::engine {

// 7 MiB: what Tailscale asks for its UDP sockets.
inline constexpr int kSocketBufferBytes = 7 << 20;

struct SocketInfo {
  int fd = -1;
  bool ipv6 = false;   // AF_INET6 (dual-stack) socket
  int rcvbuf = 0;      // what the kernel granted
  int sndbuf = 0;
  bool gro = false;    // UDP_GRO accepted
  uint16_t port = 0;   // the bound port (useful when asked for port 0)
};

// Opens and binds one relay socket. `reuseport` for every socket of a
// multi-worker relay. The returned fd is owned by the caller.
absl::StatusOr<SocketInfo> OpenRelaySocket(const SocketAddress& bind,
                                           bool reuseport);

// Reads the cmsgs of a received msghdr.
void ParseRxControl(msghdr* msg, RxMeta* out);

// Space for the control messages a relay socket receives (GRO, pktinfo,
// RXQ_OVFL), with room to spare.
inline constexpr size_t kRxControlSpace = 128;

// Appends an IP(V6)_PKTINFO cmsg so a send leaves from `local`; returns the
// bytes used in `buf` (0 when `local` is not valid).
size_t WritePktinfo(const LocalAddress& local, bool socket_ipv6, uint8_t* buf,
                    size_t buf_len);

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_SOCKET_H_
