// What a capture holds, in relay terms: the relay's address, the relay
// sessions (an endpoint's VNI, its two clients and their handshake and data
// phases) and the datagrams that are not valid relay traffic. Works on
// captures taken anywhere: at the relay (both legs of every relayed
// datagram visible), at one client (its own leg only), or on a path.
//
//   Capture c = LoadCapture("x.pcap").value();
//   FindSessions(&c, {});
//   for (const Session& s : c.sessions) ... s.items ...
#ifndef PEERRELAY_LOADTEST_PCAP_SESSIONS_H_
#define PEERRELAY_LOADTEST_PCAP_SESSIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pcap_file.h"
#include "common/socket_address.h"

namespace peerrelay::pcap {

using Bytes = std::vector<uint8_t>;

struct Datagram {
  int64_t ts_ns = 0;
  SocketAddress src, dst;
  Bytes payload;
};

// One thing a client sent through the relay, to be replayed: from side
// `side` (0: A, 1: B), at `ts_ns`, these bytes (Geneve header included).
struct Item {
  int64_t ts_ns = 0;
  int side = 0;
  Bytes bytes;
};

struct Session {
  uint32_t vni = 0;
  SocketAddress client[2];       // as captured (side B may be unknown)
  bool has_client[2] = {false, false};
  std::string key[2];            // disco keys seen in their handshakes
  uint64_t control = 0;          // handshake datagrams (either way)
  uint64_t data = 0;             // data datagrams captured (all legs)
  int64_t first_ns = 0, last_ns = 0;
  int64_t first_data_ns = 0;     // 0: no data
  std::vector<Item> items;       // what to replay, in capture order
  // How the items were taken: "client legs" (datagrams to the relay) or
  // "relay legs" for a side whose own sends were not captured.
  bool from_relay_leg[2] = {false, false};
};

struct Capture {
  std::string path;
  std::string link;  // libpcap's name of the link type
  PcapReadStats read;
  std::vector<Datagram> datagrams;  // every whole UDP datagram, in order
  // Filled by FindSessions:
  std::optional<SocketAddress> relay;
  std::vector<Session> sessions;
  // Datagrams to the relay that are not valid relay traffic (too short for
  // Geneve, not version 0, an unknown protocol type, an unknown VNI, or
  // from an address the relay never answered: forged or scanning).
  std::vector<Datagram> hostile;
  uint64_t geneve = 0;        // datagrams that look like Geneve
  uint64_t not_relay = 0;     // datagrams neither to nor from the relay
};

// Reads every UDP datagram of a pcap or pcapng file (at most
// `max_datagrams`; 0: no limit).
absl::StatusOr<Capture> LoadCapture(const std::string& path,
                                    uint64_t max_datagrams = 0);

struct FindOptions {
  // The relay's address in the capture; unset: inferred (the address in
  // every datagram of the most VNIs; among two, the one the first
  // handshake datagram went to).
  std::optional<SocketAddress> relay;
};

// Groups the Geneve datagrams into sessions and sorts out what to replay.
// An error when no relay address can be found.
absl::Status FindSessions(Capture* c, const FindOptions& o);

// True when `p` looks like a datagram of the relay protocol: at least the
// Geneve header, version 0, protocol Disco or WireGuard.
bool LooksLikeRelayTraffic(const uint8_t* p, size_t len);

}  // namespace peerrelay::pcap

#endif  // PEERRELAY_LOADTEST_PCAP_SESSIONS_H_
