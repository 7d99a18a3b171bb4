#include "relay/vni_allocator.h"

namespace peerrelay::relay {

VniAllocator::VniAllocator(uint32_t limit)
    : limit_(limit > kMaxVni ? kMaxVni : limit),
      used_((uint64_t{limit_} + 64) / 64, 0),
      full_((used_.size() + 63) / 64, 0) {
  // VNI 0 and everything above the limit are never handed out: mark them
  // used so the search skips them without special cases.
  used_[0] |= 1;
  for (uint64_t v = uint64_t{limit_} + 1; v < used_.size() * 64; ++v) {
    used_[v / 64] |= uint64_t{1} << (v % 64);
  }
  for (size_t w = 0; w < used_.size(); ++w) {
    if (used_[w] == ~uint64_t{0}) full_[w / 64] |= uint64_t{1} << (w % 64);
  }
}

std::optional<uint32_t> VniAllocator::FindFreeFrom(uint32_t start) {
  const size_t words = used_.size();
  // First the word the cursor is in, from the cursor's bit on.
  size_t w = start / 64;
  uint64_t free_bits = ~used_[w] & (~uint64_t{0} << (start % 64));
  if (free_bits != 0) return uint32_t(w * 64 + __builtin_ctzll(free_bits));
  // Then whole words, 64 at a time through the summary, wrapping once.
  size_t next = w + 1;
  for (size_t scanned = 0; scanned <= full_.size(); ++scanned) {
    if (next >= words) next = 0;
    size_t sw = next / 64;
    uint64_t not_full = ~full_[sw] & (~uint64_t{0} << (next % 64));
    if (not_full != 0) {
      size_t word = sw * 64 + __builtin_ctzll(not_full);
      if (word < words) {
        return uint32_t(word * 64 + __builtin_ctzll(~used_[word]));
      }
    }
    next = (sw + 1) * 64;
  }
  // Only the cursor word's low bits are left.
  free_bits = ~used_[w];
  if (free_bits != 0) return uint32_t(w * 64 + __builtin_ctzll(free_bits));
  return std::nullopt;
}

std::optional<uint32_t> VniAllocator::Allocate() {
  if (in_use_ >= limit_) return std::nullopt;
  std::optional<uint32_t> vni = FindFreeFrom(cursor_);
  if (!vni) return std::nullopt;
  const uint32_t w = *vni / 64;
  used_[w] |= uint64_t{1} << (*vni % 64);
  if (used_[w] == ~uint64_t{0}) full_[w / 64] |= uint64_t{1} << (w % 64);
  ++in_use_;
  cursor_ = *vni + 1 > limit_ ? 1 : *vni + 1;
  return vni;
}

void VniAllocator::Free(uint32_t vni) {
  if (vni == 0 || vni > limit_ || !InUse(vni)) return;
  const uint32_t w = vni / 64;
  used_[w] &= ~(uint64_t{1} << (vni % 64));
  full_[w / 64] &= ~(uint64_t{1} << (w % 64));
  --in_use_;
}

bool VniAllocator::InUse(uint32_t vni) const {
  if (vni == 0 || vni > limit_) return false;
  return (used_[vni / 64] >> (vni % 64)) & 1;
}

}  // namespace peerrelay::relay
