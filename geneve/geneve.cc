#include "geneve/geneve.h"

#include <cassert>

namespace peerrelay::geneve {

void Encode(const Header& h, uint8_t* out) {
  assert(h.vni <= kMaxVni);
  out[0] = 0;
  out[1] = h.control ? 0x80 : 0;
  out[2] = static_cast<uint8_t>(h.protocol >> 8);
  out[3] = static_cast<uint8_t>(h.protocol);
  out[4] = static_cast<uint8_t>(h.vni >> 16);
  out[5] = static_cast<uint8_t>(h.vni >> 8);
  out[6] = static_cast<uint8_t>(h.vni);
  out[7] = 0;
}

}  // namespace peerrelay::geneve
