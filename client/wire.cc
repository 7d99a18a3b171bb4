#include "client/wire.h"

#include <algorithm>
#include <cstring>

#include "geneve/geneve.h"

namespace peerrelay::client::wire {
namespace {

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A cheap, position-dependent fill (xorshift from the datagram's identity),
// so a byte moved or flipped by the relay shows.
uint64_t Seed(const DatagramInfo& d) {
  return (uint64_t(d.pair) << 33) ^ (uint64_t(d.direction) << 32) ^ d.seq ^
         0x9e3779b97f4a7c15ull;
}
inline uint64_t Next(uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

}  // namespace

void WriteDatagram(uint8_t* out, size_t size, const DatagramInfo& d) {
  WriteHeader(out, d);
  uint64_t x = Seed(d);
  for (size_t i = kHeaderSize; i < size; i += 8) {
    const uint64_t v = Next(x);
    std::memcpy(out + i, &v, std::min<size_t>(8, size - i));
  }
}

void WriteHeader(uint8_t* out, const DatagramInfo& d) {
  geneve::Header h;
  h.control = false;
  h.protocol = geneve::kProtocolWireGuard;
  h.vni = d.vni;
  geneve::Encode(h, out);
  out[8] = 4;
  out[9] = out[10] = out[11] = 0;
  Put32(out + 12, d.pair);
  Put64(out + 16, d.seq);
  Put64(out + 24, uint64_t(d.sent_ns));
  out[32] = d.direction;
}

bool ParseDatagram(const uint8_t* p, size_t len, DatagramInfo* d) {
  if (len < kHeaderSize) return false;
  geneve::Header h;
  if (!geneve::Decode(p, len, &h) || h.control ||
      h.protocol != geneve::kProtocolWireGuard || p[8] != 4) {
    return false;
  }
  d->vni = h.vni;
  d->pair = Get32(p + 12);
  d->seq = Get64(p + 16);
  d->sent_ns = int64_t(Get64(p + 24));
  d->direction = p[32];
  return d->direction <= 1;
}

bool FillIntact(const uint8_t* p, size_t len, const DatagramInfo& d) {
  uint64_t x = Seed(d);
  for (size_t i = kHeaderSize; i < len; i += 8) {
    const uint64_t v = Next(x);
    if (std::memcmp(p + i, &v, std::min<size_t>(8, len - i)) != 0) return false;
  }
  return true;
}

}  // namespace peerrelay::client::wire
