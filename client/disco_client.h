// DiscoClient: the client side of the relay's disco messages, for the demo,
// the load-test tools, tests and benchmarks. It seals real handshake and
// allocation messages to the relay with its own key pair, opens the relay's
// Challenges and allocation answers, and frames data datagrams. It does no
// I/O: callers send the bytes over their sockets (or, in tests, hand them to
// the relay core: relay/disco_client_testing.h).
#ifndef PEERRELAY_CLIENT_DISCO_CLIENT_H_
#define PEERRELAY_CLIENT_DISCO_CLIENT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "common/socket_address.h"
#include "disco/key.h"
#include "disco/message.h"
#include "geneve/geneve.h"

namespace peerrelay::client {

using Bytes = std::vector<uint8_t>;

class DiscoClient {
 public:
  DiscoClient(disco::Dialect dialect, const disco::DiscoKey& server_key,
             SocketAddress address,
             std::optional<disco::KeyPair> key_pair = std::nullopt);

  const disco::DiscoKey& key() const { return key_pair_.public_key(); }
  const SocketAddress& address() const { return address_; }
  void set_address(const SocketAddress& a) { address_ = a; }
  // The endpoint this client binds to and its peer's key.
  void SetEndpoint(uint32_t vni, const disco::DiscoKey& remote) {
    vni_ = vni;
    remote_ = remote;
  }
  uint32_t vni() const { return vni_; }

  // A whole control datagram (Geneve + envelope) carrying `msg`, sealed to
  // the server with this client's key.
  Bytes Seal(const disco::HandshakeMessage& msg,
             uint32_t geneve_vni) const;
  // As Seal, for an arbitrary plaintext (malformed messages in tests).
  Bytes SealRaw(const Bytes& plaintext, uint32_t geneve_vni) const;
  Bytes Bind(uint32_t generation) const;
  // Opens a Challenge datagram from the server; std::nullopt when it does
  // not open or parse or is not a Challenge.
  std::optional<disco::HandshakeMessage> OpenChallenge(const Bytes& d) const;
  // Opens a datagram sealed by the server; the plaintext, or nullopt.
  std::optional<Bytes> OpenFromServer(const Bytes& d) const;
  // The Answer to a challenge message.
  Bytes Answer(const disco::HandshakeMessage& challenge) const;
  // A data datagram: Geneve (control clear, `protocol`) + payload.
  Bytes Data(const Bytes& payload,
             uint16_t protocol = geneve::kProtocolWireGuard) const;

  // An AllocateUDPRelayEndpointRequest for {this client, peer} sealed to
  // the server (Geneve control, Disco, VNI 0).
  // Its plaintext is zero-padded to `padded_size` bytes (the relay answers
  // no request smaller than its reply).
  Bytes AllocateRequest(const disco::DiscoKey& peer, uint32_t generation,
                        size_t padded_size = disco::kAllocateRequestPaddedSize) const;
  std::optional<disco::AllocateResponse> OpenAllocateResponse(
      const Bytes& d) const;

 private:
  disco::Dialect dialect_;
  disco::KeyPair key_pair_;
  disco::DiscoKey server_key_;
  disco::SharedKey shared_;
  SocketAddress address_;
  uint32_t vni_ = 0;
  disco::DiscoKey remote_;
};

}  // namespace peerrelay::client

#endif  // PEERRELAY_CLIENT_DISCO_CLIENT_H_
