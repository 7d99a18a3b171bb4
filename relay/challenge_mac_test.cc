#include "relay/challenge_mac.h"

#include <gtest/gtest.h>

namespace peerrelay::relay {
namespace {

constexpr int64_t kMinute = 60'000'000'000;

disco::DiscoKey Key(uint8_t b) {
  disco::DiscoKey k;
  k.bytes.fill(b);
  return k;
}

TEST(ChallengeMacTest, VerifiesWhatItComputedAndNothingElse) {
  ChallengeMac mac(0);
  const SocketAddress from = SocketAddress::Parse("192.0.2.1:4000").value();
  disco::Challenge c = mac.Compute(7, 9, Key(1), from);
  EXPECT_TRUE(mac.Verify(c, 7, 9, Key(1), from));
  EXPECT_FALSE(mac.Verify(c, 8, 9, Key(1), from));
  EXPECT_FALSE(mac.Verify(c, 7, 10, Key(1), from));
  EXPECT_FALSE(mac.Verify(c, 7, 9, Key(2), from));
  EXPECT_FALSE(mac.Verify(c, 7, 9, Key(1),
                          SocketAddress::Parse("192.0.2.1:4001").value()));
  EXPECT_FALSE(mac.Verify(c, 7, 9, Key(1),
                          SocketAddress::Parse("192.0.2.2:4000").value()));
  c[31] ^= 1;
  EXPECT_FALSE(mac.Verify(c, 7, 9, Key(1), from));
}

TEST(ChallengeMacTest, OneRotationIsAcceptedTwoAreNot) {
  ChallengeMac mac(0);
  const SocketAddress from = SocketAddress::Parse("[2001:db8::1]:1").value();
  disco::Challenge c = mac.Compute(1, 1, Key(3), from);
  mac.MaybeRotate(2 * kMinute - 1);  // too early: no rotation
  EXPECT_EQ(mac.Compute(1, 1, Key(3), from), c);
  mac.MaybeRotate(2 * kMinute);
  EXPECT_NE(mac.Compute(1, 1, Key(3), from), c);
  EXPECT_TRUE(mac.Verify(c, 1, 1, Key(3), from));
  mac.MaybeRotate(4 * kMinute);
  EXPECT_FALSE(mac.Verify(c, 1, 1, Key(3), from));
}

TEST(ChallengeMacTest, SecretsDifferPerServer) {
  ChallengeMac a(0), b(0);
  const SocketAddress from = SocketAddress::Parse("10.0.0.1:1").value();
  EXPECT_NE(a.Compute(1, 1, Key(1), from), b.Compute(1, 1, Key(1), from));
}

}  // namespace
}  // namespace peerrelay::relay
