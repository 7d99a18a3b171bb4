// Test vectors (docs/protocol.md, "Test vectors"), shared by the codec tests.
#ifndef PEERRELAY_DISCO_TEST_VECTORS_H_
#define PEERRELAY_DISCO_TEST_VECTORS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "disco/key.h"

namespace peerrelay::disco::testing {

// Hex (spaces ignored) to bytes; aborts the test binary on bad input.
inline std::vector<uint8_t> Unhex(const std::string& text) {
  std::string hex;
  for (char c : text) {
    if (c != ' ' && c != '\n') hex.push_back(c);
  }
  std::vector<uint8_t> out(hex.size() / 2);
  if (hex.size() % 2 != 0 || !HexDecode(hex, out.data(), out.size())) {
    __builtin_trap();
  }
  return out;
}

inline std::array<uint8_t, 32> Unhex32(const std::string& text) {
  std::vector<uint8_t> v = Unhex(text);
  std::array<uint8_t, 32> a{};
  if (v.size() != 32) __builtin_trap();
  std::copy(v.begin(), v.end(), a.begin());
  return a;
}

// K0: byte[1]=1, byte[2]=2, byte[30]=0x1e, byte[31]=0x1f.
inline DiscoKey K0() {
  DiscoKey k;
  k.bytes[1] = 0x01;
  k.bytes[2] = 0x02;
  k.bytes[30] = 0x1e;
  k.bytes[31] = 0x1f;
  return k;
}
inline DiscoKey KA() {
  DiscoKey k = K0();
  k.bytes[3] = 0x03;
  return k;
}
inline DiscoKey KB() {
  DiscoKey k = K0();
  k.bytes[4] = 0x04;
  return k;
}
// CH: 0x00, 0x01, ..., 0x1f.
inline std::array<uint8_t, 32> CH() {
  std::array<uint8_t, 32> c;
  for (int i = 0; i < 32; ++i) c[i] = static_cast<uint8_t>(i);
  return c;
}

inline constexpr char kServerSecretHex[] =
    "f8fe8806a802a5a50cd68e6819c99706277b1bb4c97416c97f389c1134a44350";
inline constexpr char kServerPublicHex[] =
    "618f3fde5eec8f0597cdb6a619f45eaf45f2ee283d56465a8a7077acd5f5f554";
inline constexpr char kClientASecretHex[] =
    "f8efdb7bea2830cd7c0b888d0ccd37b40f8c09e4618ee595de109dec2528607b";
inline constexpr char kClientAPublicHex[] =
    "76264dbd9ebd699ff27ad800b4ccfa658a39c3410dfd14bcc7216d221ec32028";
inline constexpr char kClientBPublicHex[] =
    "b92174c3457df8c67307a8fa7c0894d24d5d0ea4610fede984ed86ecf1fdb05c";
inline constexpr char kSharedAServerHex[] =
    "4fdfa5eb954679b3e3f4828ac603d2c1f701566daa179923e6e627a21d8744fc";

// Current-dialect Bind from A to the server, VNI 1, generation 1, remote key
// B, nonce 0x40..0x57: the whole UDP payload (Geneve header included).
inline constexpr char kSealedCurrentBindHex[] =
    "00807a11000001005453f09f92ac76264dbd9ebd699ff27ad800b4ccfa658a39c3410dfd"
    "14bcc7216d221ec32028404142434445464748494a4b4c4d4e4f50515253545556574"
    "5b32d3155ef74ea2411e50393c9cd134eb4192d9bc42c7f2802a30fc285c3f5bb42eee6"
    "136eda26ad23d7890aff863975d0ff0a9c70794b65a2c2c4a9c1c2e6483414efc6c8d7e"
    "c890a3f1c58ab009ccb6bba31836f058a5a7c";
// Seed-dialect Bind from A, same nonce.
inline constexpr char kSealedSeedBindHex[] =
    "00807a11000001005453f09f92ac76264dbd9ebd699ff27ad800b4ccfa658a39c3410dfd"
    "14bcc7216d221ec32028404142434445464748494a4b4c4d4e4f50515253545556575"
    "672871cccf876973a9cb8b1064819fd4eb4192d9bc52c7f28031a2eb646868843849de1"
    "bb94a62e39f19ad4045be7369839";

}  // namespace peerrelay::disco::testing

#endif  // PEERRELAY_DISCO_TEST_VECTORS_H_
