// Clock: where the relay reads the time. Everything below the engine takes
// `now` (int64 nanoseconds on a monotonic clock) as an argument; the engine
// reads it once per batch from a Clock, so tests swap in a FakeClock.
//
//   const Clock* clock = Clock::Monotonic();
//   int64_t now = clock->NowNs();
#ifndef PEERRELAY_COMMON_CLOCK_H_
#define PEERRELAY_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace peerrelay {

// CLOCK_MONOTONIC in nanoseconds.
int64_t MonotonicNowNs();

class Clock {
 public:
  virtual ~Clock() = default;
  // Thread-safe.
  virtual int64_t NowNs() const = 0;
  // The process-wide monotonic clock (never destroyed).
  static const Clock* Monotonic();
};

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

#endif  // PEERRELAY_COMMON_CLOCK_H_
