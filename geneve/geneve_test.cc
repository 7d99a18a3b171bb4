#include "geneve/geneve.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace peerrelay::geneve {
namespace {

using Bytes = std::array<uint8_t, kHeaderSize>;

struct Vector {
  const char* name;
  Header header;
  Bytes bytes;
};

// docs/protocol.md, "Test vectors".
const Vector kVectors[] = {
    {"v3 control disco vni max",
     {.version = 3, .control = true, .protocol = kProtocolDisco,
      .vni = 0xFFFFFF},
     {0xc0, 0x80, 0x7a, 0x11, 0xff, 0xff, 0xff, 0x00}},
    {"v0 control disco vni 1",
     {.version = 0, .control = true, .protocol = kProtocolDisco, .vni = 1},
     {0x00, 0x80, 0x7a, 0x11, 0x00, 0x00, 0x01, 0x00}},
    {"v0 data wireguard vni 456",
     {.version = 0, .control = false, .protocol = kProtocolWireGuard,
      .vni = 456},
     {0x00, 0x00, 0x7a, 0x12, 0x00, 0x01, 0xc8, 0x00}},
};

TEST(GeneveTest, DecodesVectors) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.name);
    Header h;
    ASSERT_TRUE(Decode(v.bytes.data(), v.bytes.size(), &h));
    EXPECT_EQ(h, v.header);
  }
}

TEST(GeneveTest, EncodesVectorsAsVersionZero) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.name);
    Bytes out;
    out.fill(0xEE);
    Encode(v.header, out.data());
    Bytes want = v.bytes;
    want[0] = 0;  // we always send version 0
    EXPECT_EQ(out, want);
  }
}

TEST(GeneveTest, ShortBufferIsAnErrorAndNotRead) {
  const Bytes full = kVectors[1].bytes;
  for (size_t len = 0; len < kHeaderSize; ++len) {
    SCOPED_TRACE(len);
    // Exactly `len` bytes on the heap so ASan sees any over-read.
    std::vector<uint8_t> buf(full.begin(), full.begin() + len);
    Header h{.version = 1, .control = false, .protocol = 9, .vni = 7};
    const Header before = h;
    EXPECT_FALSE(Decode(buf.data(), buf.size(), &h));
    EXPECT_EQ(h, before);
  }
}

TEST(GeneveTest, LongerBufferDecodesOnlyTheHeader) {
  std::vector<uint8_t> buf = {0x00, 0x00, 0x7a, 0x12, 0x00, 0x01, 0xc8, 0x00,
                              0xff, 0xff, 0xff};
  Header h;
  ASSERT_TRUE(Decode(buf.data(), buf.size(), &h));
  EXPECT_EQ(h.vni, 456u);
  EXPECT_FALSE(h.control);
}

TEST(GeneveTest, DecodeIgnoresOptionLengthAndOtherFlagBits) {
  // Like Tailscale's decoder: option length, C bit, reserved bits are not
  // checked on input.
  Bytes b = {0x3f, 0x7f, 0x7a, 0x11, 0x00, 0x00, 0x02, 0xff};
  Header h;
  ASSERT_TRUE(Decode(b.data(), b.size(), &h));
  EXPECT_EQ(h.version, 0);
  EXPECT_FALSE(h.control);
  EXPECT_EQ(h.protocol, kProtocolDisco);
  EXPECT_EQ(h.vni, 2u);
}

TEST(GeneveTest, EncodesTheLargestVni) {
  Bytes out;
  Encode({.control = true, .protocol = kProtocolDisco, .vni = kMaxVni},
         out.data());
  EXPECT_EQ(out, (Bytes{0x00, 0x80, 0x7a, 0x11, 0xff, 0xff, 0xff, 0x00}));
}

#ifndef NDEBUG
TEST(GeneveDeathTest, VniOver24BitsIsAProgrammingError) {
  Bytes out;
  EXPECT_DEATH(Encode({.vni = kMaxVni + 1}, out.data()), "kMaxVni");
}
#endif

TEST(GeneveTest, RoundTripsEveryFieldCombination) {
  for (bool control : {false, true}) {
    for (uint16_t proto : {uint16_t{0}, kProtocolDisco, kProtocolWireGuard,
                           uint16_t{0xffff}}) {
      for (uint32_t vni : {0u, 1u, 0xABCDEFu, kMaxVni}) {
        Header h{.control = control, .protocol = proto, .vni = vni};
        Bytes b;
        Encode(h, b.data());
        EXPECT_EQ(b[0], 0);
        EXPECT_EQ(b[1] & 0x7f, 0);
        EXPECT_EQ(b[7], 0);
        Header back;
        ASSERT_TRUE(Decode(b.data(), b.size(), &back));
        EXPECT_EQ(back, h);
      }
    }
  }
}

}  // namespace
}  // namespace peerrelay::geneve
