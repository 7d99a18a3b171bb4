// Geneve header codec: the 8 bytes in front of every datagram to and from the
// relay port (RFC 8926 framing as Tailscale uses it; docs/protocol.md).
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |        Virtual Network Identifier (VNI)       |    Reserved   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The O bit is what Tailscale calls "control": set on disco handshake
// packets between a client and the relay, clear on data the relay forwards.
// Decoding, like Tailscale's, does not reject other versions or option
// lengths; encoding always writes version 0 and zero reserved bits, which is
// what clients require of the datagrams they accept.
//
// Decode is header-only and allocation-free: the fast path calls it on a
// receive buffer it does not own.
//
//   uint8_t buf[8];
//   geneve::Header h{.control = true, .protocol = geneve::kProtocolDisco,
//                    .vni = 1};
//   if (geneve::Encode(h, buf).ok()) { /* 00 80 7a 11 00 00 01 00 */ }
//   geneve::Header back;
//   bool ok = geneve::Decode(buf, sizeof(buf), &back);
#ifndef PEERRELAY_GENEVE_GENEVE_H_
#define PEERRELAY_GENEVE_GENEVE_H_

#include <cstddef>
#include <cstdint>


namespace peerrelay::geneve {

inline constexpr size_t kHeaderSize = 8;
inline constexpr uint16_t kProtocolDisco = 0x7A11;
inline constexpr uint16_t kProtocolWireGuard = 0x7A12;
// VNIs are 24 bits; 0 is never allocated.
inline constexpr uint32_t kMaxVni = 0xFFFFFF;

struct Header {
  uint8_t version = 0;  // top 2 bits of byte 0; always encoded as 0
  bool control = false;
  uint16_t protocol = 0;
  uint32_t vni = 0;

  friend bool operator==(const Header&, const Header&) = default;
};

// Decodes the first 8 bytes of `data`. Returns false (and leaves `out`
// untouched) when `len` < 8. Never reads past `len`.
inline bool Decode(const uint8_t* data, size_t len, Header* out) {
  if (len < kHeaderSize) return false;
  out->version = static_cast<uint8_t>(data[0] >> 6);
  out->control = (data[1] & 0x80) != 0;
  out->protocol = static_cast<uint16_t>((data[2] << 8) | data[3]);
  out->vni = (uint32_t{data[4]} << 16) | (uint32_t{data[5]} << 8) | data[6];
  return true;
}

// Writes `h` into the 8 bytes at `out` (which must hold at least 8), as
// version 0 with the reserved bits zero. Cannot fail: `h.vni` must fit in
// 24 bits (every VNI the relay holds does: it came from the VNI allocator
// or from a decoded header). A wider one is a programming error that debug
// builds stop on; release builds write its low 24 bits.
void Encode(const Header& h, uint8_t* out);

}  // namespace peerrelay::geneve

#endif  // PEERRELAY_GENEVE_GENEVE_H_
