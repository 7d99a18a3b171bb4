// Replays a capture's relay sessions against a running relayd and judges
// what comes out. Per captured session: a fresh endpoint and fresh real
// handshakes (loadgen's setup: its own keys, either profile), then the
// captured data datagrams byte for byte with the VNI rewritten, from the
// pair's own sockets, at the captured timing (scaled by `speed`, or as fast
// as possible), looped for `duration`. What arrives on the other side is
// matched to what was sent by content: lost, duplicated, reordered,
// corrupted, misdelivered (another session's datagram), latency.
//
// Hostile mode replays the capture's invalid datagrams (or every datagram
// to the relay, with no session set up) as they are, from sockets of their
// own, and checks that relayd answered none and counted each as a drop.
#ifndef PEERRELAY_LOADTEST_PCAP_REPLAYER_H_
#define PEERRELAY_LOADTEST_PCAP_REPLAYER_H_

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "loadtest/loadgen/setup.h"
#include "loadtest/pcap/sessions.h"

namespace peerrelay::pcap {

struct ReplayOptions {
  loadgen::SetupOptions setup;  // relay, keys, profile, allocation
  double speed = 1;             // captured timing / speed; 0: no waiting
  double duration_s = 0;        // loop the capture this long; 0: once
  double drain_s = 1;           // receive this long after the last send
  bool hostile = false;         // also replay the invalid datagrams
  bool hostile_all = false;     // only: every datagram, unbound
  // Drops must equal the hostile datagrams sent (nothing else runs against
  // this relayd); false: at least as many (soak: other traffic too).
  bool exclusive = true;
  // relayd's admin API for its /metrics ("" : no drop check).
  std::string metrics_admin;
  std::string metrics_token;
};

struct FlowStats {
  uint64_t sent = 0, received = 0, lost = 0, duplicates = 0, reordered = 0;
  uint64_t corrupted = 0, misdelivered = 0;
  int64_t p50_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0;
};

struct SessionResult {
  uint32_t captured_vni = 0, vni = 0;  // vni 0: the pair was not set up
  std::string failure;                 // why not
  FlowStats stats;
};

struct ReplayResult {
  std::vector<SessionResult> sessions;
  FlowStats total;
  uint64_t loops = 0;        // passes over the capture (the last may be cut)
  double seconds = 0;        // sending time
  uint64_t datagrams_to_relay = 0;  // everything sent, setup included
  uint64_t send_errors = 0;  // sends the kernel refused (never judged)
  uint64_t hostile_sent = 0, hostile_answered = 0;
  // relayd's dropped_datagrams_total delta over the run (-1: unknown).
  int64_t drops_counted = -1;
  bool hostile_ok = true;    // answered none, every one counted as a drop
  bool ok() const {
    return total.lost == 0 && total.duplicates == 0 && total.corrupted == 0 &&
           total.misdelivered == 0 && send_errors == 0 && hostile_ok;
  }
};

// A progress line per second on `progress` (null: quiet).
absl::StatusOr<ReplayResult> Replay(const Capture& c, const ReplayOptions& o,
                                    std::FILE* progress);

// relayd's peerrelay_dropped_datagrams_total summed over its series, read
// from GET http://ADMIN/metrics.
absl::StatusOr<uint64_t> FetchDropped(const std::string& admin,
                                      const std::string& token);

}  // namespace peerrelay::pcap

#endif  // PEERRELAY_LOADTEST_PCAP_REPLAYER_H_
