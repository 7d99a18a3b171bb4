// Test helpers around Server's fast-path verdict: Classify() plus the
// counting a worker does for a datagram that does not wait (received,
// relayed, dropped by reason). Test-only: the production path, with the
// per-client order wait and the slow-path hand-off, is
// engine/worker_path.h, and its accounting is the one relayd runs.
#ifndef PEERRELAY_RELAY_SERVER_TESTING_H_
#define PEERRELAY_RELAY_SERVER_TESTING_H_

#include <cstddef>
#include <cstdint>

#include "common/socket_address.h"
#include "relay/counters.h"
#include "relay/server.h"

namespace peerrelay::relay {

// The verdict for one datagram, counted in `c` (a kSlowPath verdict is not
// counted: the caller hands it on).
Verdict ProcessCounted(Server& server, const uint8_t* pkt, size_t len,
                       const SocketAddress& from, int64_t now_ns, Counters* c);
// The same for a run of `count` datagrams with the same Geneve header,
// `total_bytes` in all (a GRO buffer from one client).
Verdict ProcessRunCounted(Server& server, const uint8_t* pkt, size_t len,
                          uint32_t count, size_t total_bytes,
                          const SocketAddress& from, int64_t now_ns,
                          Counters* c);

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_SERVER_TESTING_H_
