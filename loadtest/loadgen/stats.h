// What the load generator's receiver keeps per flow (a pair and a
// direction): which sequence numbers arrived, in bounded memory; and one
// latency histogram for the whole run.
#ifndef PEERRELAY_LOADTEST_LOADGEN_STATS_H_
#define PEERRELAY_LOADTEST_LOADGEN_STATS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace peerrelay::loadgen {

// Sequence numbers of one flow, sent from 0 upwards. Arrivals within the
// last kWindow numbers of the highest seen are told apart exactly (new,
// duplicate, late = reordered); older ones count as late, whether or not
// they were duplicates (the window is wide enough that this is rare).
class SeqTracker {
 public:
  static constexpr uint64_t kWindow = 4096;

  enum class Kind { kInOrder, kReordered, kDuplicate };
  Kind Add(uint64_t seq);

  // Distinct sequence numbers received.
  uint64_t unique() const { return unique_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reordered() const { return reordered_; }

 private:
  bool Seen(uint64_t seq) const {
    return (bits_[(seq / 64) % kWords] >> (seq % 64)) & 1;
  }
  void Mark(uint64_t seq) { bits_[(seq / 64) % kWords] |= 1ull << (seq % 64); }
  void Clear(uint64_t seq) {
    bits_[(seq / 64) % kWords] &= ~(1ull << (seq % 64));
  }
  static constexpr size_t kWords = kWindow / 64;
  std::array<uint64_t, kWords> bits_{};
  uint64_t next_ = 0;  // one past the highest sequence number seen
  uint64_t unique_ = 0, duplicates_ = 0, reordered_ = 0;
};

// Log-linear latency histogram: 32 sub-buckets per power of two of
// nanoseconds (about 3% resolution), 0 to ~2^40 ns.
class LatencyHistogram {
 public:
  void Add(int64_t ns);
  void Merge(const LatencyHistogram& o);
  uint64_t count() const { return count_; }
  int64_t max() const { return max_; }
  // The value at quantile q (0..1), the upper edge of its bucket; 0 when
  // empty.
  int64_t Quantile(double q) const;

 private:
  static constexpr int kSub = 32;
  static constexpr int kBuckets = 41 * kSub;
  static int Bucket(int64_t ns);
  static int64_t UpperEdge(int b);
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  int64_t max_ = 0;
};

}  // namespace peerrelay::loadgen

#endif  // PEERRELAY_LOADTEST_LOADGEN_STATS_H_
