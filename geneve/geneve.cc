#include "geneve/geneve.h"

#include "absl/strings/str_cat.h"

namespace peerrelay::geneve {

absl::Status Encode(const Header& h, uint8_t* out) {
  if (h.vni > kMaxVni) {
    return absl::InvalidArgumentError(
        absl::StrCat("VNI ", h.vni, " does not fit in 24 bits"));
  }
  out[0] = 0;
  out[1] = h.control ? 0x80 : 0;
  out[2] = static_cast<uint8_t>(h.protocol >> 8);
  out[3] = static_cast<uint8_t>(h.protocol);
  out[4] = static_cast<uint8_t>(h.vni >> 16);
  out[5] = static_cast<uint8_t>(h.vni >> 8);
  out[6] = static_cast<uint8_t>(h.vni);
  out[7] = 0;
  return absl::OkStatus();
}

}  // namespace peerrelay::geneve
