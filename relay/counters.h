// Per-core datagram accounting.
//
// Every datagram a worker receives ends in exactly one of: relayed, handed
// to the slow path, or dropped with a DropReason. The slow path accounts for
// what it was handed the same way (replied, bound, or dropped).
//
// Each worker owns one Counters block and is its only writer. Counters are
// std::atomic only so that a scrape from another thread is well defined:
// writers do a relaxed load + store (a plain add, no locked instruction),
// readers a relaxed load. Blocks are cache-line aligned so workers never
// share a line.
#ifndef PEERRELAY_RELAY_COUNTERS_H_
#define PEERRELAY_RELAY_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace peerrelay::relay {

enum class DropReason : uint8_t {
  // Fast path.
  kShortDatagram,        // fewer than 8 bytes: no Geneve header
  kBadControlProtocol,   // control bit set, protocol not Disco
  kUnknownVni,           // no endpoint has this VNI
  kNotBound,             // data for an endpoint not bound on both sides
  kUnknownSource,        // data from neither bound address
  // Slow path (control datagrams).
  kNotDisco,             // no disco magic / too short for an envelope
  kUnknownSender,        // sender key is neither client of the endpoint
  kBadSenderKey,         // sender key has no usable shared key (low order)
  kBoxOpenFailed,        // NaCl box did not open (forged or corrupted)
  kBadMessage,           // plaintext does not parse
  kUnexpectedMessage,    // a type the server does not take here
  kWrongVni,             // message VNI differs from the Geneve VNI
  kWrongRemoteKey,       // remote key is not the other client's
  kZeroGeneration,       // current dialect: generation 0
  kStaleGeneration,      // Answer generation is not the in-progress one
  kBadMac,               // current dialect: challenge MAC does not verify
  kBadAnswer,            // seed dialect: answer differs from the challenge
  kWrongAddress,         // seed dialect: Bind/Answer from another address
  kAlreadyBound,         // seed dialect: side (or endpoint) already bound
  kEndpointGone,         // endpoint removed while the message was in flight
  // Engine.
  kSlowPathQueueFull,    // slow path busy; control datagram shed
  kRateLimited,          // handshake rate limit for the source
  kTruncated,            // larger than the receive buffer (MSG_TRUNC)
  kOversizedControl,     // control datagram too large to be a handshake
  kAllocateNotAllowed,   // UDP allocate request from a key not allowlisted
  kAllocateFailed,       // UDP allocate request the server could not serve
  kCount,
};
inline constexpr size_t kNumDropReasons =
    static_cast<size_t>(DropReason::kCount);

// Prometheus label value, e.g. "unknown_vni".
absl::string_view DropReasonName(DropReason r);

// A single-writer counter; see the banner.
class Counter {
 public:
  void Add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n,
             std::memory_order_relaxed);
  }
  uint64_t Get() const { return v_.load(std::memory_order_relaxed); }
  // For values the kernel keeps as a running total (SO_RXQ_OVFL).
  void Set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct alignas(64) Counters {
  Counter received;
  Counter received_bytes;
  Counter relayed;
  Counter relayed_bytes;
  Counter to_slow_path;
  // Datagrams accepted for relay (or replies) that the kernel refused to
  // send; counted apart from the received-side identity.
  Counter send_failed;
  // Datagrams the kernel dropped on this socket before we saw them
  // (SO_RXQ_OVFL running total).
  Counter kernel_drops;
  // Times the receive side ran out of buffers (io_uring ENOBUFS) and had to
  // re-arm; datagrams wait in the socket buffer meanwhile.
  Counter rx_buffer_exhausted;
  // Sends coalesced with UDP GSO, and datagrams they carried.
  Counter gso_sends;
  Counter gso_segments;
  // Slow-path outcomes.
  Counter challenges_sent;
  Counter handshakes_completed;
  Counter allocations_udp;
  std::array<Counter, kNumDropReasons> dropped;

  void Drop(DropReason r) { dropped[static_cast<size_t>(r)].Add(); }
  uint64_t Dropped(DropReason r) const {
    return dropped[static_cast<size_t>(r)].Get();
  }
  uint64_t DroppedTotal() const {
    uint64_t n = 0;
    for (const Counter& c : dropped) n += c.Get();
    return n;
  }
};

// A plain copy of one or more Counters blocks, summed.
struct CountersSnapshot {
  uint64_t received = 0;
  uint64_t received_bytes = 0;
  uint64_t relayed = 0;
  uint64_t relayed_bytes = 0;
  uint64_t to_slow_path = 0;
  uint64_t send_failed = 0;
  uint64_t kernel_drops = 0;
  uint64_t rx_buffer_exhausted = 0;
  uint64_t gso_sends = 0;
  uint64_t gso_segments = 0;
  uint64_t challenges_sent = 0;
  uint64_t handshakes_completed = 0;
  uint64_t allocations_udp = 0;
  std::array<uint64_t, kNumDropReasons> dropped{};

  void Add(const Counters& c);
  uint64_t Dropped(DropReason r) const {
    return dropped[static_cast<size_t>(r)];
  }
  uint64_t DroppedTotal() const;
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_COUNTERS_H_
