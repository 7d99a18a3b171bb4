// The relay's lock order, checked in debug builds: the allocation mutex
// (Server's allocation state: VNI pool, pair index, Lamport clock) is taken
// before a shard lock of the endpoint table, never while one is held, and
// at most one shard lock is held at a time. Taking them the other way round
// could deadlock against an allocation that holds the mutex and waits for a
// shard.
//
// Each shard lock is taken through a ShardLockScope and the allocation
// mutex is an AllocationMutex; a thread-local count of shard locks held lets
// both check the order. With NDEBUG (opt builds) the checks compile away.
#ifndef PEERRELAY_RELAY_LOCK_ORDER_H_
#define PEERRELAY_RELAY_LOCK_ORDER_H_

#include <cassert>
#include <mutex>

namespace peerrelay::relay {

#ifndef NDEBUG
inline thread_local int shard_locks_held = 0;
#endif

// Marks one shard lock held by this thread for its lifetime.
class ShardLockScope {
 public:
  ShardLockScope() {
#ifndef NDEBUG
    assert(shard_locks_held == 0 && "lock order: two shard locks at once");
    ++shard_locks_held;
#endif
  }
  ~ShardLockScope() {
#ifndef NDEBUG
    --shard_locks_held;
#endif
  }
  ShardLockScope(const ShardLockScope&) = delete;
  ShardLockScope& operator=(const ShardLockScope&) = delete;
};

// std::mutex that refuses (in debug builds) to be taken under a shard lock.
class AllocationMutex {
 public:
  void lock() {
#ifndef NDEBUG
    assert(shard_locks_held == 0 &&
           "lock order: allocation mutex taken while holding a shard lock");
#endif
    mu_.lock();
  }
  void unlock() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_LOCK_ORDER_H_
