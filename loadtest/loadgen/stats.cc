#include "loadtest/loadgen/stats.h"

#include <algorithm>
#include <bit>

namespace peerrelay::loadgen {

SeqTracker::Kind SeqTracker::Add(uint64_t seq) {
  if (seq >= next_) {
    // Clear the window slots the new numbers take over (they held numbers
    // kWindow older).
    const uint64_t from = std::max(next_, seq >= kWindow ? seq - kWindow + 1 : 0);
    if (seq + 1 - from >= kWindow) {
      bits_.fill(0);
    } else {
      for (uint64_t s = from; s <= seq; ++s) Clear(s);
    }
    Mark(seq);
    next_ = seq + 1;
    ++unique_;
    return Kind::kInOrder;
  }
  if (next_ - seq > kWindow) {  // too old to tell
    ++reordered_;
    ++unique_;
    return Kind::kReordered;
  }
  if (Seen(seq)) {
    ++duplicates_;
    return Kind::kDuplicate;
  }
  Mark(seq);
  ++reordered_;
  ++unique_;
  return Kind::kReordered;
}

int LatencyHistogram::Bucket(int64_t ns) {
  if (ns < kSub) return int(std::max<int64_t>(ns, 0));
  const int top = 63 - std::countl_zero(uint64_t(ns));  // >= 5
  const int shift = top - 5;                             // kSub = 2^5
  const int b = (shift + 1) * kSub + int((uint64_t(ns) >> shift) - kSub);
  return std::min(b, kBuckets - 1);
}

int64_t LatencyHistogram::UpperEdge(int b) {
  if (b < kSub) return b;
  const int shift = b / kSub - 1;
  const int64_t sub = b % kSub + kSub;
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::Add(int64_t ns) {
  ++counts_[size_t(Bucket(ns))];
  ++count_;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::Merge(const LatencyHistogram& o) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  max_ = std::max(max_, o.max_);
}

int64_t LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  const uint64_t rank = std::max<uint64_t>(1, uint64_t(q * double(count_) + 0.5));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[size_t(b)];
    if (seen >= rank) return std::min(UpperEdge(b), max_);
  }
  return max_;
}

}  // namespace peerrelay::loadgen
