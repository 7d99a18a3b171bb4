// Clock: where the relay reads the time. Everything below the engine takes
// `now` (int64 nanoseconds on a monotonic clock) as an argument; the engine
// reads it once per batch from a Clock, so tests swap in a FakeClock
// (fake_clock.h).
//
//   const Clock* clock = Clock::Monotonic();
//   int64_t now = clock->NowNs();
#ifndef PEERRELAY_COMMON_CLOCK_H_
#define PEERRELAY_COMMON_CLOCK_H_

#include <cstdint>

namespace peerrelay {

// CLOCK_MONOTONIC in nanoseconds.
int64_t MonotonicNowNs();
// CLOCK_REALTIME in nanoseconds (capture timestamps, not intervals).
int64_t RealtimeNowNs();

class Clock {
 public:
  virtual ~Clock() = default;
  // Thread-safe.
  virtual int64_t NowNs() const = 0;
  // The process-wide monotonic clock (never destroyed).
  static const Clock* Monotonic();
};

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_CLOCK_H_
