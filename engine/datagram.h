// What the kernel told us about one received datagram, beyond its bytes and
// source: plain values shared by the sockets, the receive path and the
// writers (no system calls here).
#ifndef PEERRELAY_ENGINE_DATAGRAM_H_
#define PEERRELAY_ENGINE_DATAGRAM_H_

#include <cstdint>
#include <optional>

namespace peerrelay::engine {

// Where a datagram arrived: the local address from IP(V6)_PKTINFO.
struct LocalAddress {
  bool valid = false;
  bool ipv6 = false;
  uint8_t addr[16] = {};
  int ifindex = 0;
};

// What the control messages of one received datagram said.
struct RxMeta {
  uint16_t gro_size = 0;       // segment size when GRO-coalesced, else 0
  std::optional<uint32_t> kernel_drops;  // SO_RXQ_OVFL running total
  LocalAddress local;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_DATAGRAM_H_
