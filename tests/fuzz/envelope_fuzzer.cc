// Disco envelope: the cheap check never reads past the input, a forged box
// never opens, and anything we seal opens back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "disco/envelope.h"

namespace {

struct Keys {
  peerrelay::disco::KeyPair a = peerrelay::disco::KeyPair::FromSecret({0x10});
  peerrelay::disco::KeyPair b = peerrelay::disco::KeyPair::FromSecret({0x20});
  peerrelay::disco::SharedKey k =
      peerrelay::disco::SharedKey::Compute(b.public_key(), a).value();
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace peerrelay::disco;
  static Keys keys;
  EnvelopeView env;
  if (PeekEnvelope(data, size, &env)) {
    if (size < kEnvelopeMinSize || std::memcmp(data, kMagic, kMagicSize) != 0) {
      __builtin_trap();
    }
    std::vector<uint8_t> pt(env.sealed_len);
    size_t n = 0;
    // A random box opening under our key would be a forgery.
    if (OpenEnvelope(keys.k, env, pt.data(), &n)) __builtin_trap();
  } else if (size >= kEnvelopeMinSize &&
             std::memcmp(data, kMagic, kMagicSize) == 0) {
    __builtin_trap();
  }
  // Round trip of the input as a plaintext.
  std::vector<uint8_t> sealed(size + kEnvelopeOverhead);
  SealEnvelope(keys.a.public_key(), keys.k, data, size, sealed.data());
  if (!PeekEnvelope(sealed.data(), sealed.size(), &env)) __builtin_trap();
  std::vector<uint8_t> back(size + 1);
  size_t n = 0;
  if (!OpenEnvelope(keys.k, env, back.data(), &n) || n != size ||
      std::memcmp(back.data(), data, size) != 0) {
    __builtin_trap();
  }
  return 0;
}
