#include "engine/slow_path_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace peerrelay::engine {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(SlowPathQueueTest, KeepsOrderAndPublishesCompletion) {
  SlowPathQueue q(2, 2);
  const SocketAddress from = SocketAddress::Parse("127.0.0.1:1").value();
  const uint8_t c1[] = {1}, d1[] = {2}, c2[] = {3};
  EXPECT_EQ(q.TryPush(QueueItem::kControl, nullptr, from, {}, c1, 1), 1u);
  EXPECT_EQ(q.TryPush(QueueItem::kData, nullptr, from, {}, d1, 1), 2u);
  EXPECT_EQ(q.TryPush(QueueItem::kControl, nullptr, from, {}, c2, 1), 3u);
  EXPECT_EQ(q.TryPush(QueueItem::kControl, nullptr, from, {}, c2, 1), 0u)
      << "control share is 2";
  Bytes big(SlowPathQueue::kMaxControlBytes + 1);
  EXPECT_EQ(q.TryPush(QueueItem::kControl, nullptr, from, {}, big.data(),
                      big.size()),
            0u);
  for (uint8_t want : {1, 2, 3}) {
    const QueueItem* it = q.Front(100);
    ASSERT_NE(it, nullptr);
    EXPECT_EQ(it->bytes[0], want);
    EXPECT_LT(q.completed(), it->seq);
    q.Release();
    EXPECT_EQ(q.completed(), it->seq);
  }
  EXPECT_EQ(q.Front(10), nullptr);
  // Slots are reused: the ring wraps.
  for (int round = 0; round < 5; ++round) {
    ASSERT_NE(q.TryPush(QueueItem::kData, nullptr, from, {}, d1, 1), 0u);
    ASSERT_NE(q.Front(100), nullptr);
    q.Release();
  }
  q.Close();
  EXPECT_EQ(q.TryPush(QueueItem::kControl, nullptr, from, {}, c1, 1), 0u);
}

}  // namespace
}  // namespace peerrelay::engine
