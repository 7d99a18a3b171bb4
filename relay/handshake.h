// The bind handshake's rules, per dialect, in one place
// (docs/protocol.md, "Handshake"). Pure: the message has already been
// opened and parsed (Server does the crypto outside every lock); these
// functions decide and change one side's state under the shard's exclusive
// lock, and say what to answer.
#ifndef PEERRELAY_RELAY_HANDSHAKE_H_
#define PEERRELAY_RELAY_HANDSHAKE_H_

#include <cstdint>

#include "common/socket_address.h"
#include "disco/key.h"
#include "disco/message.h"
#include "relay/counters.h"
#include "relay/endpoint_table.h"

namespace peerrelay::relay {

struct HandshakeOutcome {
  enum Kind : uint8_t { kChallenge, kBound, kDrop };
  Kind kind = kDrop;
  DropReason reason = DropReason::kCount;  // kDrop
  // kChallenge: the message to seal. In the current dialect its challenge
  // field is still to be filled with the MAC (computed outside the lock).
  disco::HandshakeMessage reply;
};

// Current dialect, before any lock: the message must name this endpoint's
// VNI and the other client's key, with a nonzero generation. kCount when it
// does.
DropReason CheckCurrent(const disco::HandshakeMessage& msg,
                        uint32_t geneve_vni,
                        const disco::DiscoKey& other_key);

// Current dialect. Every valid Bind is answered (on a bound side too:
// re-binding); a Bind changes no state, so replayed Binds cannot stand in
// the way of a real handshake. An Answer binds the side to `from` when its
// MAC (`mac_ok`: over VNI, generation, remote key and `from`, under the
// current or previous secret) verifies and its nonce (`answer_nonce`, the
// first 8 bytes) is not one of an Answer that bound this side before (a
// replay: kReplayed).
HandshakeOutcome ApplyCurrentLocked(Side& side,
                                    const disco::HandshakeMessage& msg,
                                    bool mac_ok, uint64_t answer_nonce,
                                    const SocketAddress& from,
                                    int64_t now_ns);

// Seed dialect. Nothing happens on a bound side or a bound endpoint. The
// first Bind fixes the side's address; Binds from it get the side's fixed
// random challenge; an Answer from it echoing that challenge binds it.
// Anything from another address is dropped.
HandshakeOutcome ApplySeedLocked(const Endpoint& ep, Side& side,
                                 const disco::HandshakeMessage& msg,
                                 const SocketAddress& from, int64_t now_ns);

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_HANDSHAKE_H_
