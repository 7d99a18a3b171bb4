// The TURN client side of loadgen's coturn mode (RFC 8656 over UDP, no
// authentication): Allocate, CreatePermission and ChannelBind requests, and
// ChannelData framing, so the same traffic shape can be driven through a
// TURN relay (coturn) for comparison.
#ifndef PEERRELAY_CLIENT_TURN_H_
#define PEERRELAY_CLIENT_TURN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/socket_address.h"
#include "common/udp_socket.h"

namespace peerrelay::client::turn {

inline constexpr size_t kChannelDataHeader = 4;
inline constexpr uint16_t kFirstChannel = 0x4000;

// Message types.
inline constexpr uint16_t kAllocate = 0x0003;
inline constexpr uint16_t kCreatePermission = 0x0008;
inline constexpr uint16_t kChannelBind = 0x0009;

// A request: header (type, length, magic cookie, transaction id) and the
// attributes a no-auth Allocate / CreatePermission / ChannelBind needs.
std::vector<uint8_t> Request(uint16_t type, const uint8_t txid[12],
                             const SocketAddress* peer, uint16_t channel);

// XOR-encodes `a` as an XOR-*-ADDRESS value (RFC 8489 14.2).
std::vector<uint8_t> XorAddress(const SocketAddress& a, const uint8_t txid[12]);

struct Response {
  uint16_t type = 0;  // request type | 0x0100 success, | 0x0110 error
  int error = 0;      // ERROR-CODE (class * 100 + number), 0 if none
  SocketAddress relayed;  // XOR-RELAYED-ADDRESS of an Allocate answer
  bool has_relayed = false;
};
// Parses a response to the request with `txid`; false when it is not one.
bool ParseResponse(const uint8_t* p, size_t len, const uint8_t txid[12],
                   Response* out);

// The requests themselves, each retried up to 3 times (1 s apart) as a
// STUN client over UDP does.
absl::StatusOr<SocketAddress> Allocate(UdpSocket& s, const SocketAddress& server);
absl::Status CreatePermission(UdpSocket& s, const SocketAddress& server,
                              const SocketAddress& peer);
absl::Status ChannelBind(UdpSocket& s, const SocketAddress& server,
                         uint16_t channel, const SocketAddress& peer);

// The 4-byte ChannelData header for `len` bytes of data.
inline void ChannelDataHeader(uint8_t* out, uint16_t channel, size_t len) {
  out[0] = uint8_t(channel >> 8);
  out[1] = uint8_t(channel);
  out[2] = uint8_t(len >> 8);
  out[3] = uint8_t(len);
}

}  // namespace peerrelay::client::turn

#endif  // PEERRELAY_CLIENT_TURN_H_
