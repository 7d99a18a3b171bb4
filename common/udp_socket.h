// UdpSocket: a blocking UDP socket for test clients, the demo and the load
// generator. Every receive has a deadline.
#ifndef PEERRELAY_COMMON_UDP_SOCKET_H_
#define PEERRELAY_COMMON_UDP_SOCKET_H_

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pcap_file.h"
#include "common/socket_address.h"

namespace peerrelay {

using Bytes = std::vector<uint8_t>;

class UdpSocket {
 public:
  // Binds to `bind` (port 0: any free port).
  static absl::StatusOr<UdpSocket> Open(const SocketAddress& bind);
  UdpSocket(UdpSocket&& o) noexcept
      : fd_(o.fd_), local_(o.local_), capture_(o.capture_), sent_(o.sent_) {
    o.fd_ = -1;
  }
  UdpSocket& operator=(UdpSocket&& o) noexcept;
  ~UdpSocket();

  const SocketAddress& local() const { return local_; }
  // Every datagram this socket sends or receives from now on is also
  // written to `w` (null: none); `w` must outlive the socket's use.
  void set_capture(PcapWriter* w) { capture_ = w; }
  // Datagrams this socket has sent (a GSO send counts its segments).
  uint64_t sent_datagrams() const { return sent_; }
  int fd() const { return fd_; }
  bool SendTo(const Bytes& d, const SocketAddress& to);
  // One send of equal-size datagrams (last may be shorter) with UDP GSO.
  bool SendGso(const std::vector<Bytes>& ds, const SocketAddress& to);
  // Waits up to `timeout_ms` for one datagram.
  std::optional<std::pair<Bytes, SocketAddress>> Recv(int timeout_ms);

 private:
  UdpSocket(int fd, SocketAddress local) : fd_(fd), local_(local) {}
  int fd_ = -1;
  SocketAddress local_;
  PcapWriter* capture_ = nullptr;
  uint64_t sent_ = 0;
};

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_UDP_SOCKET_H_
