#include "engine/handshake_limiter.h"

namespace peerrelay::engine {

HandshakeLimiter::HandshakeLimiter(double per_source_rate,
                                   double per_source_burst, double total_rate,
                                   double total_burst)
    : per_source_on_(per_source_rate > 0),
      total_rate_(total_rate),
      total_burst_(total_burst),
      total_(total_burst, 0),
      sources_(per_source_rate, per_source_burst, kMaxSources) {}

bool HandshakeLimiter::Allow(const SocketAddress& from, int64_t now_ns) {
  if (per_source_on_ && !sources_.Allow(from, now_ns)) return false;
  if (total_rate_ > 0 && !total_.Take(total_rate_, total_burst_, now_ns)) {
    return false;
  }
  return true;
}

}  // namespace peerrelay::engine
