// FakeClock: a Clock for tests, moved by hand.
#ifndef PEERRELAY_COMMON_FAKE_CLOCK_H_
#define PEERRELAY_COMMON_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace peerrelay {

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ns = 1'000'000'000) : now_(start_ns) {}
  int64_t NowNs() const override {
    return now_.load(std::memory_order_relaxed);
  }
  void Advance(int64_t ns) { now_.fetch_add(ns, std::memory_order_relaxed); }
  void Set(int64_t ns) { now_.store(ns, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_FAKE_CLOCK_H_
