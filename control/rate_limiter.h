// RateLimiter: a token bucket per caller (an IP address, as text), for the
// allocation API: common/token_bucket.h's bounded, evicting table behind a
// mutex (the admin API serves requests on several threads). Time is passed
// in, so tests drive it with a fake clock.
#ifndef PEERRELAY_CONTROL_RATE_LIMITER_H_
#define PEERRELAY_CONTROL_RATE_LIMITER_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "common/token_bucket.h"

namespace peerrelay::control {

class RateLimiter {
 public:
  // 100k callers is far more than one relay serves and a few MiB at most.
  static constexpr size_t kMaxCallers = 100'000;

  // `per_second` tokens are added per second up to `burst`.
  RateLimiter(double per_second, double burst)
      : buckets_(per_second, burst, kMaxCallers) {}

  // Takes a token for `caller`; false when its bucket is empty.
  bool Allow(const std::string& caller, int64_t now_ns) {
    std::lock_guard<std::mutex> l(mu_);
    return buckets_.Allow(caller, now_ns);
  }
  // Seconds until `caller` has a token again (for Retry-After), >= 1.
  int RetryAfterSeconds(const std::string& caller, int64_t now_ns) const {
    std::lock_guard<std::mutex> l(mu_);
    return buckets_.RetryAfterSeconds(caller, now_ns);
  }

 private:
  mutable std::mutex mu_;
  KeyedTokenBuckets<std::string> buckets_;
};

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_RATE_LIMITER_H_
