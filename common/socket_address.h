// SocketAddress: an IPv4 or IPv6 address and UDP port, stored the way the
// relay wants to compare and hash it.
//
// Every address is held as 16 bytes (IPv4 as IPv4-mapped IPv6, ::ffff:a.b.c.d,
// the same form the disco AllocateResponse puts on the wire) plus a port in
// host order. That makes one type serve both families on the hot path: the
// relay compares a datagram's source with a bound side's address with a
// 18-byte compare and no branching on the family.
//
//   SocketAddress a = SocketAddress::FromIpv4({127, 0, 0, 1}, 7777);
//   sockaddr_storage ss; socklen_t len = a.ToSockaddr(&ss);
//   SocketAddress b = SocketAddress::FromSockaddr(&ss, len).value();
//   assert(a == b && a.ToString() == "127.0.0.1:7777");
#ifndef PEERRELAY_COMMON_SOCKET_ADDRESS_H_
#define PEERRELAY_COMMON_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace peerrelay {

class SocketAddress {
 public:
  SocketAddress() = default;

  static SocketAddress FromIpv4(std::array<uint8_t, 4> ip, uint16_t port);
  static SocketAddress FromIpv6(const std::array<uint8_t, 16>& ip,
                                uint16_t port);
  // Accepts AF_INET and AF_INET6; anything else (or a short length) is
  // std::nullopt. Reads only `len` bytes of `sa`.
  static std::optional<SocketAddress> FromSockaddr(const sockaddr* sa,
                                                   socklen_t len);
  static std::optional<SocketAddress> FromSockaddr(const sockaddr_storage* ss,
                                                   socklen_t len) {
    return FromSockaddr(reinterpret_cast<const sockaddr*>(ss), len);
  }
  // "1.2.3.4:567", "[2001::1]:789". IPv4-mapped text ("[::ffff:1.2.3.4]:5")
  // is taken as IPv4.
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text);
  // Parse(), or a bare "ip" / "ip6" / "[ip6]" that takes `port`.
  static absl::StatusOr<SocketAddress> ParseWithDefaultPort(
      absl::string_view text, uint16_t port);

  bool is_ipv4() const;
  bool is_unspecified() const;
  uint16_t port() const { return port_; }
  void set_port(uint16_t port) { port_ = port; }
  const std::array<uint8_t, 16>& bytes() const { return ip_; }

  // Writes an AF_INET sockaddr for IPv4 (or an AF_INET6 one when
  // `force_ipv6`, as an IPv6 socket needs for a mapped address) and returns
  // its length.
  socklen_t ToSockaddr(sockaddr_storage* out, bool force_ipv6 = false) const;
  std::string ToString() const;
  std::string IpString() const;

  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
  friend auto operator<=>(const SocketAddress&,
                          const SocketAddress&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const SocketAddress& a) {
    return H::combine(H::combine_contiguous(std::move(h), a.ip_.data(), 16),
                      a.port_);
  }

 private:
  std::array<uint8_t, 16> ip_{};
  uint16_t port_ = 0;
};

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_SOCKET_ADDRESS_H_
