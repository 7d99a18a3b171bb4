#include "engine/handshake_limiter.h"

#include <algorithm>

namespace peerrelay::engine {

HandshakeLimiter::HandshakeLimiter(double per_source_rate,
                                   double per_source_burst, double total_rate,
                                   double total_burst)
    : per_source_rate_(per_source_rate),
      per_source_burst_(per_source_burst),
      total_rate_(total_rate),
      total_burst_(total_burst),
      total_{total_burst, 0} {}

bool HandshakeLimiter::Take(Bucket* b, double rate, double burst,
                            int64_t now_ns) {
  const double elapsed =
      double(std::max<int64_t>(0, now_ns - b->updated_ns)) / 1e9;
  b->tokens = std::min(burst, b->tokens + elapsed * rate);
  b->updated_ns = now_ns;
  if (b->tokens < 1) return false;
  b->tokens -= 1;
  return true;
}

bool HandshakeLimiter::Allow(const SocketAddress& from, int64_t now_ns) {
  if (per_source_rate_ > 0) {
    auto it = sources_.find(from);
    if (it == sources_.end()) {
      if (sources_.size() >= kMaxSources) {
        absl::erase_if(sources_, [&](const auto& kv) {
          const double elapsed =
              double(std::max<int64_t>(0, now_ns - kv.second.updated_ns)) / 1e9;
          return kv.second.tokens + elapsed * per_source_rate_ >=
                 per_source_burst_;
        });
        if (sources_.size() >= kMaxSources) return false;
      }
      it = sources_.emplace(from, Bucket{per_source_burst_, now_ns})
               .first;
    }
    if (!Take(&it->second, per_source_rate_, per_source_burst_, now_ns)) {
      return false;
    }
  }
  if (total_rate_ > 0 && !Take(&total_, total_rate_, total_burst_, now_ns)) {
    return false;
  }
  return true;
}

}  // namespace peerrelay::engine
