// Disco keys: Curve25519 key pairs that identify clients and the relay in
// the disco protocol, their text form, and the precomputed NaCl shared key
// one side uses for every box to and from one peer.
//
//   KeyPair server = KeyPair::Generate();
//   std::string text = server.public_key().ToText();   // "discokey:6a1f..."
//   DiscoKey back = DiscoKey::ParseText(text).value();
//   std::optional<SharedKey> k = SharedKey::Compute(client_public, server);
#ifndef PEERRELAY_DISCO_KEY_H_
#define PEERRELAY_DISCO_KEY_H_

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace peerrelay::disco {

inline constexpr size_t kKeySize = 32;
inline constexpr absl::string_view kKeyTextPrefix = "discokey:";

// A disco public key. Plain value type: ordered, hashable, copyable.
struct DiscoKey {
  std::array<uint8_t, kKeySize> bytes{};

  static DiscoKey FromBytes(const uint8_t* p);
  // Parses "discokey:" + 64 lowercase hex digits; anything else (upper case
  // hex included, as Tailscale's text form is lowercase) is InvalidArgument.
  static absl::StatusOr<DiscoKey> ParseText(absl::string_view text);

  std::string ToText() const;
  // "d:" + the first 16 hex digits, as Tailscale prints keys in debug views.
  std::string ShortString() const;
  bool IsZero() const;
  // One of the Curve25519 points of small order (or its encoding with the
  // top bit set): no shared key can be derived with it (libsodium refuses),
  // so it can never complete a handshake. Cheap: a compare with 7 values.
  bool IsLowOrder() const;

  friend bool operator==(const DiscoKey&, const DiscoKey&) = default;
  friend auto operator<=>(const DiscoKey&, const DiscoKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const DiscoKey& k) {
    return H::combine_contiguous(std::move(h), k.bytes.data(), kKeySize);
  }
};

// A key pair. The secret is wiped when the pair is destroyed.
class KeyPair {
 public:
  static KeyPair Generate();
  // Rebuilds the pair from a stored secret (the public key is derived).
  static KeyPair FromSecret(const std::array<uint8_t, kKeySize>& secret);

  KeyPair(const KeyPair&) = default;
  KeyPair& operator=(const KeyPair&) = default;
  ~KeyPair();

  const DiscoKey& public_key() const { return public_; }
  const std::array<uint8_t, kKeySize>& secret() const { return secret_; }

 private:
  KeyPair() = default;
  DiscoKey public_;
  std::array<uint8_t, kKeySize> secret_{};
};

// The NaCl precomputed key (crypto_box_beforenm) for one (own secret, peer
// public) pair; the same value on both sides.
struct SharedKey {
  std::array<uint8_t, kKeySize> bytes{};

  // std::nullopt when the peer key is a low-order point (the shared secret
  // would be all zero); such a key must never be used.
  static std::optional<SharedKey> Compute(const DiscoKey& peer,
                                          const KeyPair& own);
};

// Lowercase hex of `len` bytes; a helper for key text and test output.
std::string HexEncode(const uint8_t* p, size_t len);
// Parses lowercase or uppercase hex into exactly `out_len` bytes.
bool HexDecode(absl::string_view hex, uint8_t* out, size_t out_len);

}  // namespace peerrelay::disco

#endif  // PEERRELAY_DISCO_KEY_H_
