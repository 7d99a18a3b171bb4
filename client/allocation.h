// Getting a relay endpoint and binding to it, as a client does, over real
// sockets: allocation through relayd's admin API (HTTP, bearer token) or
// over UDP (the disco allocation request from an allowlisted key), the
// server's disco key from the admin API, and one handshake round (one Bind,
// the Challenge, one Answer: what Tailscale's client sends, no retries).
#ifndef PEERRELAY_CLIENT_ALLOCATION_H_
#define PEERRELAY_CLIENT_ALLOCATION_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/disco_client.h"
#include "client/http_client.h"
#include "common/socket_address.h"
#include "common/udp_socket.h"
#include "disco/key.h"

namespace peerrelay::client {

// How long a client waits for the relay's answer to one datagram.
inline constexpr int kReplyTimeoutMs = 1000;

// POST /v0/relay/endpoint {"DiscoKeys":[a, b]}: the VNI, or Unavailable
// naming what went wrong.
absl::StatusOr<uint32_t> AllocateHttp(HttpClient& http,
                                      const std::string& token,
                                      const disco::DiscoKey& a,
                                      const disco::DiscoKey& b);

// The disco allocation request from `a` (its key must be on relayd's
// allowlist) for {a, b}, sent from `s`: the VNI of the answer.
absl::StatusOr<uint32_t> AllocateUdp(UdpSocket& s, const DiscoClient& a,
                                     const disco::DiscoKey& b,
                                     const SocketAddress& relay,
                                     uint32_t generation);

// GET `path` with the bearer token (none when empty): the body of a 200,
// else Unavailable naming what went wrong.
absl::StatusOr<std::string> AdminGet(const std::string& admin,
                                     const std::string& token,
                                     const std::string& path);

// The relay's disco key, from the admin API's session list.
absl::StatusOr<disco::DiscoKey> FetchServerKey(const std::string& admin,
                                               const std::string& token);

// The next datagram on `s` that `accept` takes, within `timeout_ms`.
bool RecvMatching(UdpSocket& s, int timeout_ms,
                  const std::function<bool(const Bytes&)>& accept);

// One handshake round for `c` from `s`: one Bind, the Challenge, one
// Answer. True when the Answer was sent (the relay does not acknowledge
// it: a probe through the relay tells whether the side is bound).
bool HandshakeRound(UdpSocket& s, DiscoClient& c, const SocketAddress& relay,
                    uint32_t generation);

}  // namespace peerrelay::client

#endif  // PEERRELAY_CLIENT_ALLOCATION_H_
