// Token buckets: the one rate-limiting algorithm of the project, used by
// the workers' handshake limiter (engine/handshake_limiter.h, keyed by
// source address) and by the admin API's allocation limit
// (control/rate_limiter.h, keyed by caller IP).
//
// A bucket holds up to `burst` tokens and gains `rate` tokens a second;
// each admitted event takes one. Time is passed in (int64 nanoseconds on a
// monotonic clock), so tests drive it with a fake clock.
//
//   KeyedTokenBuckets<std::string> per_caller(/*rate=*/5, /*burst=*/20,
//                                             /*max_keys=*/100'000);
//   if (!per_caller.Allow(ip, now)) reply_429(per_caller.RetryAfterSeconds(ip, now));
//
// Neither class locks: the handshake limiter is owned by one worker thread,
// and the rate limiter wraps its table in a mutex.
#ifndef PEERRELAY_COMMON_TOKEN_BUCKET_H_
#define PEERRELAY_COMMON_TOKEN_BUCKET_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace peerrelay {

class TokenBucket {
 public:
  TokenBucket() = default;
  // Starts full (a new caller gets its whole burst).
  TokenBucket(double burst, int64_t now_ns)
      : tokens_(burst), updated_ns_(now_ns) {}

  // Tokens the bucket would hold at `now_ns` (time never runs backwards
  // here: an earlier `now_ns` adds nothing).
  double Peek(double rate, double burst, int64_t now_ns) const {
    const double elapsed =
        double(std::max<int64_t>(0, now_ns - updated_ns_)) / 1e9;
    return std::min(burst, tokens_ + elapsed * rate);
  }
  // Takes one token; false (nothing taken) when there is less than one.
  bool Take(double rate, double burst, int64_t now_ns) {
    tokens_ = Peek(rate, burst, now_ns);
    updated_ns_ = std::max(updated_ns_, now_ns);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }
  // Whole seconds until a token is there again, at least 1 (Retry-After).
  int SecondsUntilToken(double rate, double burst, int64_t now_ns) const {
    const double missing = 1 - Peek(rate, burst, now_ns);
    if (missing <= 0 || rate <= 0) return 1;
    return std::max(1, int(std::ceil(missing / rate)));
  }

 private:
  double tokens_ = 0;
  int64_t updated_ns_ = 0;
};

// One bucket per key, in a table of at most `max_keys` keys. When the table
// is full, buckets that have refilled to the burst (idle keys, which lose
// nothing by being forgotten) are evicted in one sweep; if none has, a new
// key is refused until some do, so a flood of new keys cannot grow memory.
template <typename Key>
class KeyedTokenBuckets {
 public:
  KeyedTokenBuckets(double rate, double burst, size_t max_keys)
      : rate_(rate), burst_(burst), max_keys_(max_keys) {}

  bool Allow(const Key& key, int64_t now_ns) {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
      if (buckets_.size() >= max_keys_) {
        absl::erase_if(buckets_, [&](const auto& kv) {
          return kv.second.Peek(rate_, burst_, now_ns) >= burst_;
        });
        if (buckets_.size() >= max_keys_) return false;
      }
      it = buckets_.emplace(key, TokenBucket(burst_, now_ns)).first;
    }
    return it->second.Take(rate_, burst_, now_ns);
  }
  // Seconds until `key` may pass again (>= 1); 1 for an unknown key.
  int RetryAfterSeconds(const Key& key, int64_t now_ns) const {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) return 1;
    return it->second.SecondsUntilToken(rate_, burst_, now_ns);
  }
  size_t size() const { return buckets_.size(); }

 private:
  const double rate_;
  const double burst_;
  const size_t max_keys_;
  absl::flat_hash_map<Key, TokenBucket> buckets_;
};

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_TOKEN_BUCKET_H_
