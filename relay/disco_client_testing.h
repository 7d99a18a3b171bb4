// Test helper: drives a DiscoClient's whole handshake through the relay core
// in process (no sockets). Test-only: the client floor knows nothing of the
// relay.
#ifndef PEERRELAY_RELAY_DISCO_CLIENT_TESTING_H_
#define PEERRELAY_RELAY_DISCO_CLIENT_TESTING_H_

#include <cstdint>

#include "client/disco_client.h"
#include "relay/counters.h"
#include "relay/server.h"

namespace peerrelay::relay {

// Bind -> Challenge -> Answer through `server` from client.address(). True
// when the side is bound (the Answer was accepted: no drop counted).
bool DriveHandshake(client::DiscoClient& client, Server& server, int64_t now_ns,
                    Counters* c, uint32_t generation = 1);

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_DISCO_CLIENT_TESTING_H_
