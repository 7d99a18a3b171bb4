#include "disco/envelope.h"

#include <cstring>

namespace peerrelay::disco {

bool PeekEnvelope(const uint8_t* data, size_t len, EnvelopeView* out) {
  if (len < kEnvelopeMinSize) return false;
  if (std::memcmp(data, kMagic, kMagicSize) != 0) return false;
  out->sender_key = data + kMagicSize;
  out->sealed = data + kMagicSize + kKeySize;
  out->sealed_len = len - kMagicSize - kKeySize;
  return true;
}

size_t SealEnvelope(const DiscoKey& sender, const SharedKey& key,
                    const uint8_t* plaintext, size_t len, uint8_t* out) {
  std::memcpy(out, kMagic, kMagicSize);
  std::memcpy(out + kMagicSize, sender.bytes.data(), kKeySize);
  return kMagicSize + kKeySize +
         Seal(key, plaintext, len, out + kMagicSize + kKeySize);
}

bool OpenEnvelope(const SharedKey& key, const EnvelopeView& env, uint8_t* out,
                  size_t* plaintext_len) {
  if (env.sealed_len < kBoxOverhead) return false;
  if (!Open(key, env.sealed, env.sealed_len, out)) return false;
  *plaintext_len = env.sealed_len - kBoxOverhead;
  return true;
}

}  // namespace peerrelay::disco
