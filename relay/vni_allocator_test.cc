#include "relay/vni_allocator.h"

#include <gtest/gtest.h>

#include <set>

namespace peerrelay::relay {
namespace {

TEST(VniAllocatorTest, HandsOutEveryVniOnceAndNeverZero) {
  VniAllocator a(1000);
  std::set<uint32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    auto v = a.Allocate();
    ASSERT_TRUE(v.has_value()) << i;
    EXPECT_GE(*v, 1u);
    EXPECT_LE(*v, 1000u);
    EXPECT_TRUE(seen.insert(*v).second);
  }
  EXPECT_FALSE(a.Allocate().has_value());
  EXPECT_EQ(a.in_use(), 1000u);
}

TEST(VniAllocatorTest, FreedVniIsReusedOnlyAfterTheCursorComesRound) {
  VniAllocator a(200);
  for (int i = 0; i < 10; ++i) a.Allocate();
  a.Free(3);
  EXPECT_FALSE(a.InUse(3));
  // Next-fit: 11 comes before the freed 3.
  EXPECT_EQ(a.Allocate(), 11u);
  for (uint32_t v = 12; v <= 200; ++v) ASSERT_EQ(a.Allocate(), v);
  EXPECT_EQ(a.Allocate(), 3u);  // wrapped round
  EXPECT_FALSE(a.Allocate().has_value());
}

TEST(VniAllocatorTest, FreeingUnknownOrZeroIsANoOp) {
  VniAllocator a(10);
  a.Free(0);
  a.Free(5);
  a.Free(11);
  a.Free(0xFFFFFFFF);
  EXPECT_EQ(a.in_use(), 0u);
  EXPECT_EQ(a.Allocate(), 1u);
}

TEST(VniAllocatorTest, FullSpaceHasNoPoolAndFindsTheLastFreeVni) {
  VniAllocator a;  // 1 .. 0xFFFFFF
  EXPECT_EQ(a.capacity(), 0xFFFFFFu);
  for (uint32_t i = 1; i <= 0xFFFFFF; ++i) {
    auto v = a.Allocate();
    ASSERT_EQ(v, i);
  }
  EXPECT_FALSE(a.Allocate().has_value());
  // One free VNI far behind the cursor is still found.
  a.Free(0x123456);
  EXPECT_EQ(a.Allocate(), 0x123456u);
  a.Free(0xFFFFFF);
  EXPECT_EQ(a.Allocate(), 0xFFFFFFu);
  a.Free(1);
  EXPECT_EQ(a.Allocate(), 1u);
}

TEST(VniAllocatorTest, LimitIsClampedTo24Bits) {
  VniAllocator a(0xFFFFFFFF);
  EXPECT_EQ(a.capacity(), 0xFFFFFFu);
}

}  // namespace
}  // namespace peerrelay::relay
