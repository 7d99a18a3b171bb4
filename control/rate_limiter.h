// RateLimiter: a token bucket per caller (an IP address, as text), for the
// allocation API. Time is passed in, so tests drive it with a fake clock.
// Thread-safe. The table is bounded: when it reaches kMaxCallers, buckets
// that are full again (idle callers) are dropped first.
#ifndef PEERRELAY_CONTROL_RATE_LIMITER_H_
#define PEERRELAY_CONTROL_RATE_LIMITER_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace peerrelay::control {

class RateLimiter {
 public:
  // 100k callers is far more than one relay serves and a few MiB at most.
  static constexpr size_t kMaxCallers = 100'000;

  // `per_second` tokens are added per second up to `burst`.
  RateLimiter(double per_second, double burst)
      : per_second_(per_second), burst_(burst) {}

  // Takes a token for `caller`; false when its bucket is empty.
  bool Allow(const std::string& caller, int64_t now_ns);
  // Seconds until `caller` has a token again (for Retry-After), >= 1.
  int RetryAfterSeconds(const std::string& caller, int64_t now_ns) const;

 private:
  struct Bucket {
    double tokens;
    int64_t updated_ns;
  };
  double Refill(const Bucket& b, int64_t now_ns) const;

  const double per_second_;
  const double burst_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_;
};

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_RATE_LIMITER_H_
