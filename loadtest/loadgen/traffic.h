// The measured part: paced sends from every pair (plain or UDP GSO bursts),
// receives drained by polling (UDP GRO, one header read per segment), and
// what arrived judged per flow: delivered, lost, duplicated, reordered,
// corrupted, misdelivered, latency.
#ifndef PEERRELAY_LOADTEST_LOADGEN_TRAFFIC_H_
#define PEERRELAY_LOADTEST_LOADGEN_TRAFFIC_H_

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "client/turn.h"
#include "client/wire.h"
#include "common/pcap_file.h"
#include "loadtest/loadgen/setup.h"

namespace peerrelay::loadgen {

// loadgen's datagrams and the TURN framing are the client floor's.
namespace turn = client::turn;
using client::wire::DatagramInfo;
using client::wire::FillIntact;
using client::wire::kHeaderSize;
using client::wire::kMinSize;
using client::wire::ParseDatagram;
using client::wire::WriteDatagram;
using client::wire::WriteHeader;

struct TrafficOptions {
  // Where the forgers' sockets bind (the clients' address; port 0); unset:
  // the loopback address of the relay's family.
  std::optional<SocketAddress> local;
  size_t size = 64;        // UDP payload, Geneve header included
  double rate = 0;         // datagrams per second in all; 0: as fast as possible
  double duration_s = 5;
  bool both_ways = false;  // false: A to B only
  bool gso = false;        // bursts as one UDP_SEGMENT send
  int burst = 1;           // datagrams per send (GSO: at most 64)
  bool check_payload = false;  // compare every byte, not only the header
  // How much of what arrives is read: every segment's header (exact loss,
  // order and latency per datagram), or only the first segment's header of
  // each (GRO-coalesced) message, the rest counted with MSG_TRUNC and taken
  // as the consecutive sequence numbers that follow (one latency sample
  // per message): the fast mode that lets one core outrun the relay.
  bool count_only = false;
  // TURN mode: every datagram is a ChannelData frame (4-byte header) around
  // a loadgen datagram of size - 4 bytes.
  bool turn = false;
  double drain_s = 0.5;    // receive this long after the last send
  int cpu = -1;            // the generator's core (pinned), -1: not pinned
  int relay_cpu = -1;      // the relay's core, for its busy share
  uint64_t max_datagrams = 0;  // stop sending after this many (0: no cap)
  // Forged handshakes during the run: Bind-shaped control datagrams for the
  // pairs' VNIs, naming a real client's key, with a box that cannot open
  // (the relay pays a box open for each one its limits let through), this
  // many per second from `forge_sockets` source ports.
  double forge_rate = 0;
  int forge_sockets = 256;
  // Every datagram sent and received is also written here (null: not
  // recorded); what arrives is recorded as coming from `capture_peer`
  // (the relay: the sockets are connected to it). Needs full receives
  // (count_only false).
  PcapWriter* capture = nullptr;
  SocketAddress capture_peer;
};

struct TrafficResult {
  double seconds = 0;  // sending time
  uint64_t sent = 0, sent_bytes = 0, send_errors = 0;
  uint64_t received = 0, received_bytes = 0;
  uint64_t lost = 0, duplicates = 0, reordered = 0, corrupted = 0;
  uint64_t misdelivered = 0, foreign = 0;
  uint64_t forged = 0;
  int64_t p50_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0;
  double generator_busy = -1, relay_busy = -1;  // 0..1, -1: unknown
  std::string bound;  // relay-bound, generator-bound, rate-limited, unknown
  double delivered_pps() const { return seconds > 0 ? received / seconds : 0; }
  double delivered_gbps() const {
    return seconds > 0 ? received_bytes * 8 / seconds / 1e9 : 0;
  }
};

// Runs the traffic over `setup`'s pairs, a progress line per second on
// `progress` (null: quiet).
TrafficResult RunTraffic(Setup& setup, const SocketAddress& relay,
                         const TrafficOptions& o, std::FILE* progress);

// Busy share of each CPU since the last call (from /proc/stat).
class CpuMeter {
 public:
  CpuMeter();
  // Busy fraction of `cpu` since construction or the last Sample; -1 when
  // unknown.
  std::vector<double> Sample();

 private:
  struct Times {
    uint64_t busy = 0, total = 0;
  };
  static std::vector<Times> Read();
  std::vector<Times> last_;
};

}  // namespace peerrelay::loadgen

#endif  // PEERRELAY_LOADTEST_LOADGEN_TRAFFIC_H_
