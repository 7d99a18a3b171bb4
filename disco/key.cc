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
