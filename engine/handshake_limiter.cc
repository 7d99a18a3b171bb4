#include "engine/handshake_limiter.h"

#include <algorithm>

namespace peerrelay::engine {

HandshakeLimiter::HandshakeLimiter(double per_source_rate,
                                   double per_source_burst, double total_rate,
                                   double total_burst, double per_side_rate,
                                   double per_side_burst)
    : per_source_on_(per_source_rate > 0),
      total_rate_(total_rate),
      total_burst_(total_burst),
      total_(total_burst, 0),
      sources_(per_source_rate, per_source_burst, kMaxSources),
      per_side_on_(per_side_rate > 0),
      sides_(per_side_rate, std::max(1.0, per_side_burst), kMaxSides) {}

bool HandshakeLimiter::Allow(const SocketAddress& from,
                             const relay::ControlSide& side, int64_t now_ns) {
  if (per_source_on_ && !sources_.Allow(from, now_ns)) return false;
  // Allocation requests (VNI 0) name an allowlisted allocator, which may
  // allocate many endpoints a second: they keep the per-source and total
  // limits only.
  if (per_side_on_ && side.vni != relay::kAllocateVni &&
      !sides_.Allow(side, now_ns)) {
    return false;
  }
  if (total_rate_ > 0 && !total_.Take(total_rate_, total_burst_, now_ns)) {
    return false;
  }
  return true;
}

}  // namespace peerrelay::engine
