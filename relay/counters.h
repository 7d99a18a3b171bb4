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
  kStaleGeneration,      // no longer produced (Answers bind by MAC and
                         // nonce); the label stays for dashboards
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
  kControlWaitFull,      // data that had to wait behind its source's queued
                         // control datagram, but the wait was full
  kBadSourceAddress,     // the kernel gave a source address we cannot read
  kBadCompletion,        // io_uring: a receive buffer not in the layout asked
  kAllocateNotClient,    // UDP allocate request for a pair without its sender
  kAllocateUnpadded,     // UDP allocate request smaller than its reply
  kReplayed,             // an allocate request or Answer seen before
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

// Every per-core counter once: X(field, metric name, help). Counters,
// CountersSnapshot and the metrics exporter are all generated from it.
#define PEERRELAY_COUNTER_FIELDS(X)                                          \
  X(received, "received_datagrams_total",                                  \
    "Datagrams received on the relay port.")                               \
  X(received_bytes, "received_bytes_total",                                \
    "UDP payload bytes received on the relay port.")                       \
  X(relayed, "relayed_datagrams_total",                                    \
    "Datagrams accepted for relay to the other side of their endpoint.")   \
  X(relayed_bytes, "relayed_bytes_total",                                  \
    "UDP payload bytes accepted for relay.")                               \
  X(to_slow_path, "slow_path_datagrams_total",                             \
    "Datagrams handed to the slow path: control datagrams (disco crypto) " \
    "and data waiting behind its source's control datagram.")              \
  X(waited_for_control, "control_wait_datagrams_total",                    \
    "Data datagrams that arrived while an earlier control datagram from "  \
    "the same source was still queued, and were queued behind it.")        \
  X(send_failed, "send_failures_total",                                    \
    "Datagrams the kernel refused to send (relayed or replies).")          \
  X(kernel_drops, "kernel_socket_drops_total",                             \
    "Datagrams the kernel dropped before the relay read them "             \
    "(SO_RXQ_OVFL).")                                                      \
  X(rx_buffer_exhausted, "rx_buffer_exhausted_total",                      \
    "Times every receive buffer was in use (io_uring ENOBUFS): normal "  \
    "under load and not a loss (the datagrams wait in the socket buffer; " \
    "losses are kernel_socket_drops_total). 64 buffers by design, so "     \
    "payloads stay in cache.")                                             \
  X(gso_sends, "gso_sends_total",                                          \
    "Sends that carried several datagrams with UDP GSO.")                  \
  X(gso_segments, "gso_segments_total",                                    \
    "Datagrams carried by GSO sends.")                                     \
  X(challenges_sent, "challenges_sent_total",                              \
    "BindUDPRelayEndpointChallenge messages sent.")                        \
  X(handshakes_completed, "handshakes_completed_total",                    \
    "Bind handshakes completed (one per client side).")                    \
  X(allocations_udp, "udp_allocations_total",                              \
    "Endpoints allocated over UDP (disco AllocateUDPRelayEndpointRequest).") \
  X(key_computations, "shared_key_computations_total",                     \
    "Curve25519 shared-key computations (once per client side, cached).")

// 0: udp4 -> udp4, 1: udp4 -> udp6, 2: udp6 -> udp4, 3: udp6 -> udp6.
constexpr size_t FamilyIndex(bool in_ipv6, bool out_ipv6) {
  return (in_ipv6 ? 2 : 0) + (out_ipv6 ? 1 : 0);
}

struct alignas(64) Counters {
#define PEERRELAY_DECLARE_COUNTER(field, metric, help) Counter field;
  PEERRELAY_COUNTER_FIELDS(PEERRELAY_DECLARE_COUNTER)
#undef PEERRELAY_DECLARE_COUNTER
  std::array<Counter, kNumDropReasons> dropped;
  // What `relayed` / `relayed_bytes` count, split by the address family it
  // came in on and went out on (Tailscale's transport_in / transport_out),
  // indexed by FamilyIndex(). Their sums equal relayed / relayed_bytes.
  std::array<Counter, 4> forwarded_packets, forwarded_bytes;

  // Counts relayed datagrams: the totals and the family split.
  void Relayed(bool in_ipv6, bool out_ipv6, uint64_t packets,
               uint64_t bytes) {
    relayed.Add(packets);
    relayed_bytes.Add(bytes);
    forwarded_packets[FamilyIndex(in_ipv6, out_ipv6)].Add(packets);
    forwarded_bytes[FamilyIndex(in_ipv6, out_ipv6)].Add(bytes);
  }
  void Drop(DropReason r, uint64_t n = 1) {
    dropped[static_cast<size_t>(r)].Add(n);
  }
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
#define PEERRELAY_DECLARE_VALUE(field, metric, help) uint64_t field = 0;
  PEERRELAY_COUNTER_FIELDS(PEERRELAY_DECLARE_VALUE)
#undef PEERRELAY_DECLARE_VALUE
  std::array<uint64_t, kNumDropReasons> dropped{};
  std::array<uint64_t, 4> forwarded_packets{}, forwarded_bytes{};

  void Add(const Counters& c);
  void Add(const CountersSnapshot& c);
  uint64_t Dropped(DropReason r) const {
    return dropped[static_cast<size_t>(r)];
  }
  uint64_t DroppedTotal() const;
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_COUNTERS_H_
