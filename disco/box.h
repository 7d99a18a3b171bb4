// NaCl box with the nonce in front: how every disco message is sealed.
//
// Layout of a sealed message: nonce (24 random bytes) | Poly1305 tag (16) |
// XSalsa20 ciphertext (n). That is what libsodium's
// crypto_box_easy_afternm writes after the nonce, with the key computed once
// per peer by crypto_box_beforenm (SharedKey).
//
// Both calls write into caller-owned buffers and never allocate: the slow
// path seals and opens on its own stack.
//
//   uint8_t sealed[kBoxOverhead + 74];
//   size_t n = Seal(key, plaintext, 74, sealed);
//   uint8_t back[74];
//   bool ok = Open(key, sealed, n, back);
#ifndef PEERRELAY_DISCO_BOX_H_
#define PEERRELAY_DISCO_BOX_H_

#include <cstddef>
#include <cstdint>

#include "disco/key.h"

namespace peerrelay::disco {

inline constexpr size_t kNonceSize = 24;
inline constexpr size_t kTagSize = 16;
// Bytes a sealed message has beyond its plaintext.
inline constexpr size_t kBoxOverhead = kNonceSize + kTagSize;

// Seals `len` bytes of `plaintext` under `key` with a fresh random nonce.
// Writes len + kBoxOverhead bytes to `out` and returns that count. `out` must
// not overlap `plaintext`.
size_t Seal(const SharedKey& key, const uint8_t* plaintext, size_t len,
            uint8_t* out);

// As Seal, with the caller's nonce (tests and vectors only: a repeated nonce
// under one key breaks the box).
size_t SealWithNonce(const SharedKey& key, const uint8_t* nonce,
                     const uint8_t* plaintext, size_t len, uint8_t* out);

// Opens `len` bytes of nonce|tag|ciphertext. On success writes
// len - kBoxOverhead plaintext bytes to `out` and returns true. False when
// `len` < kBoxOverhead or the tag does not verify; `out` is then
// unspecified.
bool Open(const SharedKey& key, const uint8_t* sealed, size_t len,
          uint8_t* out);

}  // namespace peerrelay::disco

#endif  // PEERRELAY_DISCO_BOX_H_
