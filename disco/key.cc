#include "disco/key.h"

#include <sodium.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace peerrelay::disco {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// sodium_init() is idempotent and thread-safe; call it before any use of
// randomness.
void EnsureSodium() {
  static const bool ok = [] { return sodium_init() >= 0; }();
  (void)ok;
}

}  // namespace

std::string HexEncode(const uint8_t* p, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return out;
}

bool HexDecode(absl::string_view hex, uint8_t* out, size_t out_len) {
  if (hex.size() != out_len * 2) return false;
  for (size_t i = 0; i < out_len; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

DiscoKey DiscoKey::FromBytes(const uint8_t* p) {
  DiscoKey k;
  std::memcpy(k.bytes.data(), p, kKeySize);
  return k;
}

absl::StatusOr<DiscoKey> DiscoKey::ParseText(absl::string_view text) {
  if (!absl::StartsWith(text, kKeyTextPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("disco key \"", text, "\" does not start with ",
                     kKeyTextPrefix));
  }
  absl::string_view hex = text.substr(kKeyTextPrefix.size());
  for (char c : hex) {
    if (c >= 'A' && c <= 'F') {
      return absl::InvalidArgumentError(absl::StrCat(
          "disco key \"", text, "\" must use lowercase hex digits"));
    }
  }
  DiscoKey k;
  if (!HexDecode(hex, k.bytes.data(), kKeySize)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "disco key \"", text, "\" needs 64 hex digits after the prefix"));
  }
  return k;
}

std::string DiscoKey::ToText() const {
  return absl::StrCat(kKeyTextPrefix, HexEncode(bytes.data(), kKeySize));
}

std::string DiscoKey::ShortString() const {
  return absl::StrCat("d:", HexEncode(bytes.data(), 8));
}

bool DiscoKey::IsLowOrder() const {
  // The encodings of the points of order 1, 2, 4 and 8 and their
  // non-canonical twins (0, 1, the two order-8 points, p-1, p, p+1).
  static constexpr uint8_t kSmallOrder[7][kKeySize] = {
      {0},
      {1},
      {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
       0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
       0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
      {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
       0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
       0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
      {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
      {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
      {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
  };
  std::array<uint8_t, kKeySize> k = bytes;
  k[kKeySize - 1] &= 0x7f;  // the top bit is ignored by X25519
  for (const auto& bad : kSmallOrder) {
    if (std::memcmp(k.data(), bad, kKeySize) == 0) return true;
  }
  return false;
}

bool DiscoKey::IsZero() const {
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

KeyPair KeyPair::Generate() {
  EnsureSodium();
  KeyPair kp;
  crypto_box_keypair(kp.public_.bytes.data(), kp.secret_.data());
  return kp;
}

KeyPair KeyPair::FromSecret(const std::array<uint8_t, kKeySize>& secret) {
  EnsureSodium();
  KeyPair kp;
  kp.secret_ = secret;
  crypto_scalarmult_base(kp.public_.bytes.data(), kp.secret_.data());
  return kp;
}

KeyPair::~KeyPair() { sodium_memzero(secret_.data(), secret_.size()); }

std::optional<SharedKey> SharedKey::Compute(const DiscoKey& peer,
                                            const KeyPair& own) {
  EnsureSodium();
  SharedKey k;
  if (crypto_box_beforenm(k.bytes.data(), peer.bytes.data(),
                          own.secret().data()) != 0) {
    return std::nullopt;
  }
  return k;
}

}  // namespace peerrelay::disco
