#include "disco/box.h"

#include <sodium.h>

namespace peerrelay::disco {

size_t SealWithNonce(const SharedKey& key, const uint8_t* nonce,
                     const uint8_t* plaintext, size_t len, uint8_t* out) {
  static_assert(kNonceSize == crypto_box_NONCEBYTES);
  static_assert(kTagSize == crypto_box_MACBYTES);
  for (size_t i = 0; i < kNonceSize; ++i) out[i] = nonce[i];
  crypto_box_easy_afternm(out + kNonceSize, plaintext, len, nonce,
                          key.bytes.data());
  return len + kBoxOverhead;
}

size_t Seal(const SharedKey& key, const uint8_t* plaintext, size_t len,
            uint8_t* out) {
  uint8_t nonce[kNonceSize];
  randombytes_buf(nonce, sizeof(nonce));
  return SealWithNonce(key, nonce, plaintext, len, out);
}

bool Open(const SharedKey& key, const uint8_t* sealed, size_t len,
          uint8_t* out) {
  if (len < kBoxOverhead) return false;
  return crypto_box_open_easy_afternm(out, sealed + kNonceSize,
                                      len - kNonceSize, sealed,
                                      key.bytes.data()) == 0;
}

}  // namespace peerrelay::disco
