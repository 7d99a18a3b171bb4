// Geneve decoder: never reads past the input; what decodes re-encodes to
// the same fields.
#include <cstddef>
#include <cstdint>

#include "geneve/geneve.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace peerrelay::geneve;
  Header h;
  if (!Decode(data, size, &h)) {
    if (size >= kHeaderSize) __builtin_trap();
    return 0;
  }
  if (size < kHeaderSize || h.vni > kMaxVni) __builtin_trap();
  uint8_t out[kHeaderSize];
  Encode(h, out);
  Header back;
  if (!Decode(out, sizeof(out), &back)) __builtin_trap();
  back.version = h.version;  // we always write version 0
  if (!(back == h)) __builtin_trap();
  return 0;
}
