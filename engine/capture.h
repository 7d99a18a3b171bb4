// Capture: relayd's opt-in recording of its own traffic (--capture_file).
// Every datagram a worker receives (before it is judged, so drops are in it
// too) and every datagram the relay sends (forwards, handshake replies) is
// written to a PcapWriter as a UDP packet between the peer and the relay's
// address: the local address the datagram arrived on (IP_PKTINFO), else the
// bound one. Sends are recorded with the address their trigger arrived on
// (the kernel picks the real source by route; on a one-address host that
// is the same). Off (a null pointer checked once per buffer) by default.
#ifndef PEERRELAY_ENGINE_CAPTURE_H_
#define PEERRELAY_ENGINE_CAPTURE_H_

#include <array>
#include <cstring>

#include "common/clock.h"
#include "common/pcap_file.h"
#include "common/socket_address.h"
#include "engine/datagram.h"

namespace peerrelay::engine {

struct Capture {
  PcapWriter* writer = nullptr;
  // The relay's bound address and port (the port is every socket's).
  SocketAddress bound;

  SocketAddress Local(const LocalAddress& l) const {
    if (!l.valid) return bound;
    if (!l.ipv6) {
      std::array<uint8_t, 4> a;
      std::memcpy(a.data(), l.addr, 4);
      return SocketAddress::FromIpv4(a, bound.port());
    }
    std::array<uint8_t, 16> a;
    std::memcpy(a.data(), l.addr, 16);
    return SocketAddress::FromIpv6(a, bound.port());
  }
  // `len` bytes from `from`, cut every `seg` bytes (0: one datagram).
  void Received(const uint8_t* p, size_t len, size_t seg,
                const SocketAddress& from, const LocalAddress& local) const {
    Write(p, len, seg, from, Local(local));
  }
  // `len` bytes to `dest`, cut every `seg` bytes (0: one datagram).
  void Sent(const uint8_t* p, size_t len, size_t seg,
            const SocketAddress& dest, const LocalAddress& local) const {
    Write(p, len, seg, Local(local), dest);
  }

 private:
  void Write(const uint8_t* p, size_t len, size_t seg, const SocketAddress& src,
             const SocketAddress& dst) const {
    writer->WriteSegments(RealtimeNowNs(), src, dst, p, len, seg);
  }
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_CAPTURE_H_
