#include "disco/message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "disco/test_vectors.h"

namespace peerrelay::disco {
namespace {

using testing::CH;
using testing::K0;
using testing::KA;
using testing::KB;
using testing::Unhex;

std::string Hex(const std::vector<uint8_t>& v) {
  return HexEncode(v.data(), v.size());
}

// Test vectors: common current body, VNI 1, generation 2, remote K0, CH.
constexpr char kCurrentBodyHex[] =
    "00000001 00000002"
    "0001020000000000000000000000000000000000000000000000000000001e1f"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr char kChallengeHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

struct HandshakeVector {
  const char* name;
  Dialect dialect;
  HandshakeMessage message;
  std::string hex;
  size_t min_len;  // shortest input that parses
};

std::vector<HandshakeVector> HandshakeVectors() {
  HandshakeMessage current{.vni = 1, .generation = 2, .remote_key = K0(),
                           .challenge = CH()};
  auto with_type = [](HandshakeMessage m, MessageType t) {
    m.type = t;
    return m;
  };
  HandshakeMessage seed_ch{.challenge = CH()};
  return {
      {"current bind", Dialect::kCurrent,
       with_type(current, MessageType::kBind),
       std::string("0400") + kCurrentBodyHex, 74},
      {"current challenge", Dialect::kCurrent,
       with_type(current, MessageType::kChallenge),
       std::string("0500") + kCurrentBodyHex, 74},
      {"current answer", Dialect::kCurrent,
       with_type(current, MessageType::kAnswer),
       std::string("0600") + kCurrentBodyHex, 74},
      {"seed bind", Dialect::kSeed, HandshakeMessage{},
       "0400" + std::string(64, '0'), 2},
      {"seed challenge", Dialect::kSeed,
       with_type(seed_ch, MessageType::kChallenge),
       std::string("0500") + kChallengeHex, 34},
      {"seed answer", Dialect::kSeed, with_type(seed_ch, MessageType::kAnswer),
       std::string("0600") + kChallengeHex, 34},
  };
}

TEST(HandshakeMessageTest, MarshalsVectorsByteForByte) {
  for (const HandshakeVector& v : HandshakeVectors()) {
    SCOPED_TRACE(v.name);
    uint8_t out[kMaxHandshakeSize];
    size_t n = MarshalHandshake(v.dialect, v.message, out);
    EXPECT_EQ(Hex(std::vector<uint8_t>(out, out + n)), Hex(Unhex(v.hex)));
  }
}

TEST(HandshakeMessageTest, ParsesVectors) {
  for (const HandshakeVector& v : HandshakeVectors()) {
    SCOPED_TRACE(v.name);
    std::vector<uint8_t> in = Unhex(v.hex);
    HandshakeMessage m;
    ASSERT_EQ(ParseHandshake(v.dialect, in.data(), in.size(), &m),
              ParseError::kOk);
    EXPECT_EQ(m, v.message);
  }
}

TEST(HandshakeMessageTest, TruncatedInputIsRejectedAtEveryLength) {
  for (const HandshakeVector& v : HandshakeVectors()) {
    SCOPED_TRACE(v.name);
    std::vector<uint8_t> full = Unhex(v.hex);
    for (size_t len = 0; len <= full.size(); ++len) {
      SCOPED_TRACE(len);
      std::vector<uint8_t> cut(full.begin(), full.begin() + len);
      HandshakeMessage m;
      ParseError want = len < 2            ? ParseError::kNoHeader
                        : len < v.min_len ? ParseError::kBodyTooShort
                                          : ParseError::kOk;
      EXPECT_EQ(ParseHandshake(v.dialect, cut.data(), cut.size(), &m), want);
    }
  }
}

TEST(HandshakeMessageTest, TrailingBytesAndVersionAreIgnored) {
  for (const HandshakeVector& v : HandshakeVectors()) {
    SCOPED_TRACE(v.name);
    std::vector<uint8_t> in = Unhex(v.hex);
    in[1] = 7;  // version: Tailscale's handshake parsers ignore it
    in.insert(in.end(), 100, 0xAB);
    HandshakeMessage m;
    ASSERT_EQ(ParseHandshake(v.dialect, in.data(), in.size(), &m),
              ParseError::kOk);
    EXPECT_EQ(m, v.message);
  }
}

TEST(HandshakeMessageTest, OtherTypesAreRejected) {
  for (Dialect d : {Dialect::kSeed, Dialect::kCurrent}) {
    for (int type = 0; type < 256; ++type) {
      if (type >= 4 && type <= 6) continue;
      std::vector<uint8_t> in(80, 0);
      in[0] = static_cast<uint8_t>(type);
      HandshakeMessage m;
      EXPECT_EQ(ParseHandshake(d, in.data(), in.size(), &m),
                ParseError::kWrongType)
          << type;
    }
  }
}

TEST(HandshakeMessageTest, RoundTripsRandomFields) {
  for (uint32_t i = 1; i < 50; ++i) {
    HandshakeMessage m{.type = MessageType::kAnswer,
                       .vni = i * 0x3311u & 0xffffff,
                       .generation = i * 0x9e3779b9u};
    for (size_t j = 0; j < 32; ++j) {
      m.remote_key.bytes[j] = static_cast<uint8_t>(i * 31 + j);
      m.challenge[j] = static_cast<uint8_t>(i * 17 + j * 3);
    }
    uint8_t out[kMaxHandshakeSize];
    size_t n = MarshalHandshake(Dialect::kCurrent, m, out);
    HandshakeMessage back;
    ASSERT_EQ(ParseHandshake(Dialect::kCurrent, out, n, &back),
              ParseError::kOk);
    EXPECT_EQ(back, m);
    n = MarshalHandshake(Dialect::kSeed, m, out);
    ASSERT_EQ(ParseHandshake(Dialect::kSeed, out, n, &back), ParseError::kOk);
    EXPECT_EQ(back.challenge, m.challenge);
    EXPECT_EQ(back.vni, 0u);
  }
}

constexpr char kAllocateRequestHex[] =
    "0800"
    "0001020300000000000000000000000000000000000000000000000000001e1f"
    "0001020004000000000000000000000000000000000000000000000000001e1f"
    "00000001";

TEST(AllocateRequestTest, MatchesVectorBothWays) {
  AllocateRequest req{.client_a = KA(), .client_b = KB(), .generation = 1};
  std::vector<uint8_t> out(kAllocateRequestSize);
  ASSERT_EQ(MarshalAllocateRequest(req, out.data()), kAllocateRequestSize);
  EXPECT_EQ(Hex(out), Hex(Unhex(kAllocateRequestHex)));
  AllocateRequest back;
  ASSERT_EQ(ParseAllocateRequest(out.data(), out.size(), &back),
            ParseError::kOk);
  EXPECT_EQ(back, req);
}

TEST(AllocateRequestTest, TruncatedWrongTypeAndVersionAreRejected) {
  std::vector<uint8_t> full = Unhex(kAllocateRequestHex);
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + len);
    AllocateRequest m;
    EXPECT_EQ(ParseAllocateRequest(cut.data(), cut.size(), &m),
              len < 2 ? ParseError::kNoHeader : ParseError::kBodyTooShort)
        << len;
  }
  AllocateRequest m;
  std::vector<uint8_t> longer = full;
  longer.push_back(0xff);
  EXPECT_EQ(ParseAllocateRequest(longer.data(), longer.size(), &m),
            ParseError::kOk);
  std::vector<uint8_t> bad = full;
  bad[0] = 0x09;
  EXPECT_EQ(ParseAllocateRequest(bad.data(), bad.size(), &m),
            ParseError::kWrongType);
  bad = full;
  bad[1] = 1;
  EXPECT_EQ(ParseAllocateRequest(bad.data(), bad.size(), &m),
            ParseError::kBadVersion);
}

constexpr char kAllocateResponseHex[] =
    "0900 00000001"
    "0001020000000000000000000000000000000000000000000000000000001e1f"
    "0001020300000000000000000000000000000000000000000000000000001e1f"
    "0001020004000000000000000000000000000000000000000000000000001e1f"
    "000000000000007b 000001c8 000000003b9aca00 0000000df8475800"
    "00000000000000000000ffff01020304 0237"
    "20010000000000000000000000003456 0315";

AllocateResponse VectorResponse() {
  return AllocateResponse{
      .generation = 1,
      .server = K0(),
      .client_a = KA(),
      .client_b = KB(),
      .lamport_id = 123,
      .vni = 456,
      .bind_lifetime_ns = 1'000'000'000,
      .steady_state_lifetime_ns = 60'000'000'000,
      .addresses = {SocketAddress::Parse("1.2.3.4:567").value(),
                    SocketAddress::Parse("[2001::3456]:789").value()}};
}

TEST(AllocateResponseTest, MatchesVectorBothWays) {
  std::vector<uint8_t> out = MarshalAllocateResponse(VectorResponse());
  EXPECT_EQ(Hex(out), Hex(Unhex(kAllocateResponseHex)));
  AllocateResponse back;
  ASSERT_EQ(ParseAllocateResponse(out.data(), out.size(), &back),
            ParseError::kOk);
  EXPECT_EQ(back, VectorResponse());
  EXPECT_EQ(back.addresses[0].ToString(), "1.2.3.4:567");
  EXPECT_EQ(back.addresses[1].ToString(), "[2001::3456]:789");
}

TEST(AllocateResponseTest, TruncatedAndPartialAddressesAreRejected) {
  std::vector<uint8_t> full = Unhex(kAllocateResponseHex);
  for (size_t len = 0; len < full.size(); ++len) {
    SCOPED_TRACE(len);
    std::vector<uint8_t> cut(full.begin(), full.begin() + len);
    AllocateResponse m;
    ParseError want;
    if (len < 2) {
      want = ParseError::kNoHeader;
    } else if (len < kAllocateResponseFixedSize) {
      want = ParseError::kBodyTooShort;
    } else if (len == kAllocateResponseFixedSize + kAddressEntrySize) {
      want = ParseError::kOk;  // one whole address
    } else {
      want = ParseError::kBadAddressList;
    }
    EXPECT_EQ(ParseAllocateResponse(cut.data(), cut.size(), &m), want);
  }
}

}  // namespace
}  // namespace peerrelay::disco
