#include "common/clock.h"

#include <time.h>

namespace peerrelay {
namespace {

class MonotonicClock : public Clock {
 public:
  int64_t NowNs() const override { return MonotonicNowNs(); }
};

}  // namespace

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t RealtimeNowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

const Clock* Clock::Monotonic() {
  static const MonotonicClock* const kClock = new MonotonicClock();
  return kClock;
}

}  // namespace peerrelay
