// Box and envelope tests: our sealing agrees with libsodium's one-shot API
// given the raw keys, reproduces the sealed vectors byte for byte, and
// rejects any change to a sealed message.
#include <gtest/gtest.h>
#include <sodium.h>

#include <vector>

#include "disco/box.h"
#include "disco/envelope.h"
#include "disco/message.h"
#include "disco/test_vectors.h"
#include "geneve/geneve.h"

namespace peerrelay::disco {
namespace {

using testing::Unhex;
using testing::Unhex32;

class BoxTest : public ::testing::Test {
 protected:
  KeyPair server_ = KeyPair::FromSecret(Unhex32(testing::kServerSecretHex));
  KeyPair client_a_ = KeyPair::FromSecret(Unhex32(testing::kClientASecretHex));
  SharedKey a_to_server_ =
      SharedKey::Compute(server_.public_key(), client_a_).value();
  SharedKey server_to_a_ =
      SharedKey::Compute(client_a_.public_key(), server_).value();

  std::vector<uint8_t> Plaintext(size_t n) {
    std::vector<uint8_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 7 + 3);
    return p;
  }
};

TEST_F(BoxTest, SealedByUsOpensWithOneShotLibsodium) {
  for (size_t n : {0u, 1u, 34u, 74u, 200u}) {
    SCOPED_TRACE(n);
    std::vector<uint8_t> pt = Plaintext(n);
    std::vector<uint8_t> sealed(n + kBoxOverhead);
    ASSERT_EQ(Seal(server_to_a_, pt.data(), n, sealed.data()), sealed.size());
    std::vector<uint8_t> out(n);
    ASSERT_EQ(crypto_box_open_easy(out.data(), sealed.data() + kNonceSize,
                                   n + kTagSize, sealed.data(),
                                   server_.public_key().bytes.data(),
                                   client_a_.secret().data()),
              0);
    EXPECT_EQ(out, pt);
  }
}

TEST_F(BoxTest, SealedByOneShotLibsodiumOpensWithUs) {
  for (size_t n : {0u, 34u, 74u, 1000u}) {
    SCOPED_TRACE(n);
    std::vector<uint8_t> pt = Plaintext(n);
    std::vector<uint8_t> sealed(n + kBoxOverhead);
    randombytes_buf(sealed.data(), kNonceSize);
    ASSERT_EQ(crypto_box_easy(sealed.data() + kNonceSize, pt.data(), n,
                              sealed.data(),
                              server_.public_key().bytes.data(),
                              client_a_.secret().data()),
              0);
    std::vector<uint8_t> out(n);
    ASSERT_TRUE(Open(server_to_a_, sealed.data(), sealed.size(), out.data()));
    EXPECT_EQ(out, pt);
  }
}

TEST_F(BoxTest, NoncesAreFreshPerSeal) {
  std::vector<uint8_t> pt = Plaintext(34);
  std::vector<uint8_t> s1(34 + kBoxOverhead), s2(34 + kBoxOverhead);
  Seal(a_to_server_, pt.data(), pt.size(), s1.data());
  Seal(a_to_server_, pt.data(), pt.size(), s2.data());
  EXPECT_NE(std::vector<uint8_t>(s1.begin(), s1.begin() + kNonceSize),
            std::vector<uint8_t>(s2.begin(), s2.begin() + kNonceSize));
}

TEST_F(BoxTest, FlippedBitAnywhereIsRejected) {
  std::vector<uint8_t> pt = Plaintext(74);
  std::vector<uint8_t> sealed(74 + kBoxOverhead);
  Seal(a_to_server_, pt.data(), pt.size(), sealed.data());
  std::vector<uint8_t> out(74);
  ASSERT_TRUE(Open(server_to_a_, sealed.data(), sealed.size(), out.data()));
  for (size_t byte = 0; byte < sealed.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = sealed;
      bad[byte] ^= static_cast<uint8_t>(1 << bit);
      ASSERT_FALSE(Open(server_to_a_, bad.data(), bad.size(), out.data()))
          << "byte " << byte << " bit " << bit;
    }
  }
}

TEST_F(BoxTest, TruncatedBoxIsRejectedAtEveryLength) {
  std::vector<uint8_t> pt = Plaintext(34);
  std::vector<uint8_t> sealed(34 + kBoxOverhead);
  Seal(a_to_server_, pt.data(), pt.size(), sealed.data());
  std::vector<uint8_t> out(sealed.size());
  for (size_t len = 0; len < sealed.size(); ++len) {
    std::vector<uint8_t> cut(sealed.begin(), sealed.begin() + len);
    EXPECT_FALSE(Open(server_to_a_, cut.data(), cut.size(), out.data()))
        << len;
  }
}

TEST_F(BoxTest, WrongKeyIsRejected) {
  std::vector<uint8_t> pt = Plaintext(34);
  std::vector<uint8_t> sealed(34 + kBoxOverhead);
  Seal(a_to_server_, pt.data(), pt.size(), sealed.data());
  KeyPair other = KeyPair::Generate();
  SharedKey wrong = SharedKey::Compute(client_a_.public_key(), other).value();
  std::vector<uint8_t> out(34);
  EXPECT_FALSE(Open(wrong, sealed.data(), sealed.size(), out.data()));
}

// The whole sealed packets of the test vectors, rebuilt from their parts.
TEST_F(BoxTest, SealedBindVectorsAreReproducedByteForByte) {
  std::vector<uint8_t> nonce(kNonceSize);
  for (size_t i = 0; i < kNonceSize; ++i) nonce[i] = uint8_t(0x40 + i);
  const DiscoKey client_b = DiscoKey::FromBytes(
      Unhex32(testing::kClientBPublicHex).data());
  struct Case {
    const char* name;
    Dialect dialect;
    const char* want_hex;
  };
  for (const Case& c : {Case{"current", Dialect::kCurrent,
                             testing::kSealedCurrentBindHex},
                        Case{"seed", Dialect::kSeed,
                             testing::kSealedSeedBindHex}}) {
    SCOPED_TRACE(c.name);
    HandshakeMessage bind{.type = MessageType::kBind, .vni = 1,
                          .generation = 1, .remote_key = client_b};
    uint8_t pt[kMaxHandshakeSize];
    size_t pt_len = MarshalHandshake(c.dialect, bind, pt);
    std::vector<uint8_t> pkt(geneve::kHeaderSize + kEnvelopeOverhead + pt_len);
    geneve::Encode(
        {.control = true, .protocol = geneve::kProtocolDisco, .vni = 1},
        pkt.data());
    uint8_t* env = pkt.data() + geneve::kHeaderSize;
    std::copy(std::begin(kMagic), std::end(kMagic), env);
    std::copy(client_a_.public_key().bytes.begin(),
              client_a_.public_key().bytes.end(), env + kMagicSize);
    SealWithNonce(a_to_server_, nonce.data(), pt, pt_len,
                  env + kMagicSize + kKeySize);
    EXPECT_EQ(pkt, Unhex(c.want_hex));
  }
}

TEST_F(BoxTest, SealedVectorOpensAndParsesOnTheServerSide) {
  std::vector<uint8_t> pkt = Unhex(testing::kSealedCurrentBindHex);
  ASSERT_EQ(pkt.size(), 160u);
  EnvelopeView env;
  ASSERT_TRUE(PeekEnvelope(pkt.data() + geneve::kHeaderSize,
                           pkt.size() - geneve::kHeaderSize, &env));
  EXPECT_EQ(DiscoKey::FromBytes(env.sender_key), client_a_.public_key());
  SharedKey k = SharedKey::Compute(DiscoKey::FromBytes(env.sender_key),
                                   server_).value();
  uint8_t pt[256];
  size_t pt_len = 0;
  ASSERT_TRUE(OpenEnvelope(k, env, pt, &pt_len));
  ASSERT_EQ(pt_len, kMaxHandshakeSize);
  HandshakeMessage m;
  ASSERT_EQ(ParseHandshake(Dialect::kCurrent, pt, pt_len, &m),
            ParseError::kOk);
  EXPECT_EQ(m.type, MessageType::kBind);
  EXPECT_EQ(m.vni, 1u);
  EXPECT_EQ(m.generation, 1u);
  EXPECT_EQ(m.remote_key.bytes, Unhex32(testing::kClientBPublicHex));
}

TEST_F(BoxTest, EnvelopeRoundTripsAndPeekNeedsMagicAndLength) {
  std::vector<uint8_t> pt = Plaintext(74);
  std::vector<uint8_t> buf(pt.size() + kEnvelopeOverhead);
  ASSERT_EQ(SealEnvelope(client_a_.public_key(), a_to_server_, pt.data(),
                         pt.size(), buf.data()),
            buf.size());
  EnvelopeView env;
  ASSERT_TRUE(PeekEnvelope(buf.data(), buf.size(), &env));
  EXPECT_EQ(env.sealed_len, pt.size() + kBoxOverhead);
  std::vector<uint8_t> out(pt.size());
  size_t out_len = 0;
  ASSERT_TRUE(OpenEnvelope(server_to_a_, env, out.data(), &out_len));
  EXPECT_EQ(out_len, pt.size());
  EXPECT_EQ(out, pt);

  for (size_t len = 0; len < kEnvelopeMinSize; ++len) {
    std::vector<uint8_t> cut(buf.begin(), buf.begin() + len);
    EXPECT_FALSE(PeekEnvelope(cut.data(), cut.size(), &env)) << len;
  }
  // Exactly the minimum is disco-shaped, but its empty box never opens.
  std::vector<uint8_t> min(buf.begin(), buf.begin() + kEnvelopeMinSize);
  ASSERT_TRUE(PeekEnvelope(min.data(), min.size(), &env));
  EXPECT_FALSE(OpenEnvelope(server_to_a_, env, out.data(), &out_len));
  for (size_t i = 0; i < kMagicSize; ++i) {
    std::vector<uint8_t> bad = buf;
    bad[i] ^= 0x01;
    EXPECT_FALSE(PeekEnvelope(bad.data(), bad.size(), &env)) << i;
  }
}

}  // namespace
}  // namespace peerrelay::disco
