// The disco envelope that follows the Geneve header of a control datagram:
//
//   offset  len   field
//   0       6     magic 54 53 f0 9f 92 ac ("TS" + U+1F4AC)
//   6       32    sender's disco public key
//   38      24    nonce
//   62      n+16  NaCl box of the n-byte plaintext message
//
// PeekEnvelope is the cheap "is this disco and who sent it" check: a length
// and magic compare, no crypto, no copy. The relay uses the sender key it
// returns to pick the shared key before paying for Open.
#ifndef PEERRELAY_DISCO_ENVELOPE_H_
#define PEERRELAY_DISCO_ENVELOPE_H_

#include <cstddef>
#include <cstdint>

#include "disco/box.h"
#include "disco/key.h"

namespace peerrelay::disco {

inline constexpr uint8_t kMagic[6] = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};
inline constexpr size_t kMagicSize = sizeof(kMagic);
// magic + sender key + nonce: the shortest buffer that can be disco.
inline constexpr size_t kEnvelopeMinSize = kMagicSize + kKeySize + kNonceSize;
// Bytes an envelope adds to its plaintext.
inline constexpr size_t kEnvelopeOverhead = kMagicSize + kKeySize + kBoxOverhead;

// Points into the caller's buffer; valid while that buffer is.
struct EnvelopeView {
  const uint8_t* sender_key = nullptr;  // kKeySize bytes
  const uint8_t* sealed = nullptr;      // nonce | tag | ciphertext
  size_t sealed_len = 0;                // >= kNonceSize
};

// True when `data` is at least kEnvelopeMinSize bytes and starts with the
// magic; fills `out` then. Reads at most `len` bytes.
bool PeekEnvelope(const uint8_t* data, size_t len, EnvelopeView* out);

// Writes magic | sender | sealed(plaintext) to `out` (len +
// kEnvelopeOverhead bytes) and returns that count.
size_t SealEnvelope(const DiscoKey& sender, const SharedKey& key,
                    const uint8_t* plaintext, size_t len, uint8_t* out);

// Opens the box of `env` into `out` (env.sealed_len - kBoxOverhead bytes)
// and sets *plaintext_len. False when the box does not open.
bool OpenEnvelope(const SharedKey& key, const EnvelopeView& env, uint8_t* out,
                  size_t* plaintext_len);

}  // namespace peerrelay::disco

#endif  // PEERRELAY_DISCO_ENVELOPE_H_
