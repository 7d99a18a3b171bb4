// The UDP socket options and control messages that the relay, its test
// clients, the load generator and the reference relays all use: large
// socket buffers, UDP_SEGMENT (GSO) on a send, UDP_GRO on a receive.
#ifndef PEERRELAY_COMMON_UDP_OPTIONS_H_
#define PEERRELAY_COMMON_UDP_OPTIONS_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace peerrelay {

// Asks for `bytes` of receive and send buffer: SO_RCVBUFFORCE /
// SO_SNDBUFFORCE (they need CAP_NET_ADMIN in the initial namespace), else
// the ordinary options, which the kernel caps at net.core.[rw]mem_max.
// What was granted is for the caller to read (getsockopt).
void SetSocketBuffers(int fd, int bytes);

// Room for one UDP_SEGMENT control message.
inline constexpr size_t kUdpSegmentSpace = CMSG_SPACE(sizeof(uint16_t));

// Makes `m` a GSO send cut every `seg` bytes: its control buffer becomes
// `ctrl` (kUdpSegmentSpace bytes, cmsghdr-aligned) holding UDP_SEGMENT.
void SetUdpSegment(msghdr* m, void* ctrl, uint16_t seg);

// The segment size of a GRO-coalesced receive (UDP_GRO control message),
// 0 when `m` carries none.
size_t UdpGroSize(const msghdr& m);

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_UDP_OPTIONS_H_
