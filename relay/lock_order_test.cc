// The lock order (allocation mutex, then one shard lock) is checked in
// debug builds; these tests break it on purpose.
#include "relay/lock_order.h"

#include <gtest/gtest.h>

#include <memory>

#include "relay/endpoint_table.h"

namespace peerrelay::relay {
namespace {


TEST(LockOrderTest, AllocationMutexThenShardIsAllowed) {
  EndpointTable table(1, 1);
  AllocationMutex mu;
  std::lock_guard<AllocationMutex> l(mu);
  auto ep = std::make_unique<Endpoint>();
  ep->vni = 7;
  table.Insert(std::move(ep));
  EXPECT_TRUE(table.WithShared(7, [](const Endpoint* e) { return e != nullptr; }));
}

TEST(LockOrderTest, ShardLocksOneAfterAnotherAreAllowed) {
  EndpointTable table(1, 1);
  table.WithShared(1, [](const Endpoint*) {});
  table.WithExclusive(2, [](Endpoint*) {});
  AllocationMutex mu;
  std::lock_guard<AllocationMutex> l(mu);  // no shard lock held any more
}

#ifndef NDEBUG
TEST(LockOrderDeathTest, AllocationMutexUnderAShardLockStops) {
  EXPECT_DEATH(
      {
        EndpointTable table(1, 1);
        AllocationMutex mu;
        table.WithShared(3, [&](const Endpoint*) {
          std::lock_guard<AllocationMutex> l(mu);
        });
      },
      "lock order: allocation mutex");
}

TEST(LockOrderDeathTest, TwoShardLocksAtOnceStop) {
  EXPECT_DEATH(
      {
        EndpointTable table(1, 1);
        table.WithExclusive(1, [&](Endpoint*) {
          table.WithShared(2, [](const Endpoint*) {});
        });
      },
      "two shard locks");
}
#endif

}  // namespace
}  // namespace peerrelay::relay
