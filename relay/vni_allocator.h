// VniAllocator: hands out 24-bit VNIs (1 .. 0xFFFFFF; 0 is never used).
//
// The seed design pre-filled a 16-million-entry pool (~64 MiB at start-up).
// This one keeps one bit per VNI (2 MiB, zero pages until touched) and a
// second-level bitmap with one bit per full 64-VNI word (32 KiB), so finding
// a free VNI is a scan of at most 4096 summary words even when nearly the
// whole space is in use.
//
// Next-fit: allocation continues after the last VNI handed out, so a freed
// VNI is not reused until the cursor has gone round the whole space; late
// datagrams for a removed endpoint do not land on a new one.
//
// Not thread-safe: the relay calls it under its allocation mutex.
#ifndef PEERRELAY_RELAY_VNI_ALLOCATOR_H_
#define PEERRELAY_RELAY_VNI_ALLOCATOR_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "geneve/geneve.h"

namespace peerrelay::relay {

class VniAllocator {
 public:
  // The largest VNI the 24-bit field holds (geneve.h).
  static constexpr uint32_t kMaxVni = geneve::kMaxVni;

  // `limit` caps the highest VNI handed out (tests use a small space).
  explicit VniAllocator(uint32_t limit = kMaxVni);

  // A free VNI, now marked used; std::nullopt when every VNI is in use.
  std::optional<uint32_t> Allocate();
  // Returns `vni` to the pool. Freeing a VNI that is not in use is a no-op.
  void Free(uint32_t vni);
  bool InUse(uint32_t vni) const;
  uint32_t in_use() const { return in_use_; }
  uint32_t capacity() const { return limit_; }

 private:
  std::optional<uint32_t> FindFreeFrom(uint32_t word);

  uint32_t limit_;
  uint32_t in_use_ = 0;
  uint32_t cursor_ = 1;             // next VNI to try
  std::vector<uint64_t> used_;      // bit v set: VNI v in use
  std::vector<uint64_t> full_;      // bit w set: used_[w] has no free VNI
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_VNI_ALLOCATOR_H_
