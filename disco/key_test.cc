#include "disco/key.h"

#include <gtest/gtest.h>

#include "absl/container/flat_hash_set.h"
#include "disco/test_vectors.h"

namespace peerrelay::disco {
namespace {

using testing::Unhex32;

TEST(DiscoKeyTest, TextFormRoundTrips) {
  DiscoKey k = testing::KA();
  EXPECT_EQ(k.ToText(),
            "discokey:00010203000000000000000000000000000000000000000000000000"
            "00001e1f");
  auto back = DiscoKey::ParseText(k.ToText());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, k);
  EXPECT_EQ(k.ShortString(), "d:0001020300000000");
}

TEST(DiscoKeyTest, BadTextIsRejected) {
  const std::string hex64(64, 'a');
  for (const std::string& bad :
       {std::string(""), hex64, "nodekey:" + hex64, "discokey:" + hex64 + "a",
        "discokey:" + hex64.substr(1), "discokey:" + std::string(64, 'A'),
        "discokey:" + std::string(63, 'a') + "g", "DISCOKEY:" + hex64}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(DiscoKey::ParseText(bad).ok());
  }
}

TEST(DiscoKeyTest, PublicKeyIsDerivedFromSecret) {
  KeyPair server = KeyPair::FromSecret(Unhex32(testing::kServerSecretHex));
  EXPECT_EQ(server.public_key().bytes, Unhex32(testing::kServerPublicHex));
  KeyPair a = KeyPair::FromSecret(Unhex32(testing::kClientASecretHex));
  EXPECT_EQ(a.public_key().bytes, Unhex32(testing::kClientAPublicHex));
}

TEST(DiscoKeyTest, SharedKeyMatchesVectorAndIsSymmetric) {
  KeyPair server = KeyPair::FromSecret(Unhex32(testing::kServerSecretHex));
  KeyPair a = KeyPair::FromSecret(Unhex32(testing::kClientASecretHex));
  auto a_view = SharedKey::Compute(server.public_key(), a);
  auto server_view = SharedKey::Compute(a.public_key(), server);
  ASSERT_TRUE(a_view && server_view);
  EXPECT_EQ(a_view->bytes, Unhex32(testing::kSharedAServerHex));
  EXPECT_EQ(server_view->bytes, a_view->bytes);
}

TEST(DiscoKeyTest, LowOrderPeerKeyHasNoSharedKey) {
  KeyPair own = KeyPair::Generate();
  DiscoKey zero;  // the all-zero point has order 1
  EXPECT_FALSE(SharedKey::Compute(zero, own).has_value());
}

TEST(DiscoKeyTest, GeneratedKeysDiffer) {
  absl::flat_hash_set<DiscoKey> seen;
  for (int i = 0; i < 64; ++i) {
    KeyPair kp = KeyPair::Generate();
    EXPECT_FALSE(kp.public_key().IsZero());
    EXPECT_TRUE(seen.insert(kp.public_key()).second);
    EXPECT_EQ(KeyPair::FromSecret(kp.secret()).public_key(), kp.public_key());
  }
}

TEST(DiscoKeyTest, KeysOrderBytewise) {
  EXPECT_LT(testing::K0(), testing::KB());
  EXPECT_LT(testing::KB(), testing::KA());  // byte 3 decides before byte 4
}

TEST(DiscoKeyTest, LowOrderKeysAreTheOnesLibsodiumRefuses) {
  // Every key IsLowOrder names (with and without the ignored top bit) has
  // no shared key; random keys and a few near misses do.
  KeyPair own = KeyPair::Generate();
  int low = 0;
  for (int first = 0; first < 256; ++first) {
    for (uint8_t last : {0x00, 0x7f, 0x80, 0xff, 0xb8, 0x57, 0x11, 0xd7}) {
      DiscoKey k;
      k.bytes.fill(0xff);
      if (first < 2) k.bytes.fill(0);
      k.bytes[0] = uint8_t(first);
      k.bytes[kKeySize - 1] = last;
      const bool refused = !SharedKey::Compute(k, own).has_value();
      EXPECT_EQ(k.IsLowOrder(), refused) << HexEncode(k.bytes.data(), kKeySize);
      low += k.IsLowOrder();
    }
  }
  EXPECT_GE(low, 8);  // 0, 1 and p-1, p, p+1, with and without the top bit
  for (const char* hex :
       {"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"}) {
    DiscoKey k;
    ASSERT_TRUE(HexDecode(hex, k.bytes.data(), kKeySize));
    EXPECT_TRUE(k.IsLowOrder());
    EXPECT_FALSE(SharedKey::Compute(k, own).has_value());
    k.bytes[kKeySize - 1] |= 0x80;
    EXPECT_TRUE(k.IsLowOrder());
    EXPECT_FALSE(SharedKey::Compute(k, own).has_value());
  }
  for (int i = 0; i < 32; ++i) {
    EXPECT_FALSE(KeyPair::Generate().public_key().IsLowOrder());
  }
}

}  // namespace
}  // namespace peerrelay::disco
