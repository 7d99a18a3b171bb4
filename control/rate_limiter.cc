#include "control/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace peerrelay::control {

double RateLimiter::Refill(const Bucket& b, int64_t now_ns) const {
  const double elapsed = double(std::max<int64_t>(0, now_ns - b.updated_ns)) / 1e9;
  return std::min(burst_, b.tokens + elapsed * per_second_);
}

bool RateLimiter::Allow(const std::string& caller, int64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = buckets_.find(caller);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxCallers) {
      absl::erase_if(buckets_, [&](const auto& kv) {
        return Refill(kv.second, now_ns) >= burst_;
      });
      if (buckets_.size() >= kMaxCallers) return false;  // a flood of callers
    }
    it = buckets_.emplace(caller, Bucket{burst_, now_ns}).first;
  }
  Bucket& b = it->second;
  b.tokens = Refill(b, now_ns);
  b.updated_ns = now_ns;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

int RateLimiter::RetryAfterSeconds(const std::string& caller,
                                   int64_t now_ns) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = buckets_.find(caller);
  if (it == buckets_.end() || per_second_ <= 0) return 1;
  const double missing = 1 - Refill(it->second, now_ns);
  if (missing <= 0) return 1;
  return std::max(1, int(std::ceil(missing / per_second_)));
}

}  // namespace peerrelay::control
