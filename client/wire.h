// The load generator's datagrams: what a WireGuard client would send
// through the relay (Geneve data header + a WireGuard transport message), with
// the generator's own bookkeeping inside the encrypted-payload area.
//
//   0      8 Geneve header (version 0, O bit clear, protocol WireGuard, VNI)
//   8      1 WireGuard message type 4 (transport data), 3 reserved zero bytes
//  12      4 receiver index: the pair id (little endian, as WireGuard)
//  16      8 counter: the flow's sequence number (little endian)
//  24      8 send time, CLOCK_MONOTONIC ns
//  32      1 direction: 0 = A to B, 1 = B to A
//  33 ..   a fill derived from (pair, direction, sequence), checked on
//          receipt when full checking is on
//
// The smallest datagram is kMinSize bytes.
#ifndef PEERRELAY_CLIENT_WIRE_H_
#define PEERRELAY_CLIENT_WIRE_H_

#include <cstddef>
#include <cstdint>

namespace peerrelay::client::wire {

inline constexpr size_t kMinSize = 40;
inline constexpr size_t kHeaderSize = 33;  // what a receiver must read

struct DatagramInfo {
  uint32_t vni = 0;
  uint32_t pair = 0;
  uint8_t direction = 0;
  uint64_t seq = 0;
  int64_t sent_ns = 0;
};

// Writes a `size`-byte datagram (size >= kMinSize) at `out`: the header and
// a fill that depends on the datagram's identity (FillIntact checks it).
void WriteDatagram(uint8_t* out, size_t size, const DatagramInfo& d);
// Only the first kHeaderSize bytes (the fill stays whatever it was): the
// fast way when payloads are not checked.
void WriteHeader(uint8_t* out, const DatagramInfo& d);

// Reads the header fields; false when `p` is not one of ours (too short,
// not a WireGuard transport message in a Geneve data header).
bool ParseDatagram(const uint8_t* p, size_t len, DatagramInfo* d);

// True when the fill after the header is what WriteDatagram wrote.
bool FillIntact(const uint8_t* p, size_t len, const DatagramInfo& d);

}  // namespace peerrelay::client::wire

#endif  // PEERRELAY_CLIENT_WIRE_H_
