// RelayHarness: a real relay (Server + engine Relay) on loopback and test
// clients that talk to it over real sockets, shared by the end-to-end,
// adversarial and admin tests. Every wait is bounded.
#ifndef PEERRELAY_TESTS_RELAY_HARNESS_H_
#define PEERRELAY_TESTS_RELAY_HARNESS_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/relay.h"
#include "client/disco_client.h"
#include "common/udp_socket.h"

namespace peerrelay::testing {

// A client: its socket and its disco identity.
struct Client {
  UdpSocket sock;
  std::unique_ptr<client::DiscoClient> disco;
};

class RelayHarness {
 public:
  static constexpr int kTimeoutMs = 2000;

  // Starts a relay on `loopback` (port 0). The server advertises the
  // relay's address.
  static absl::StatusOr<std::unique_ptr<RelayHarness>> Start(
      const SocketAddress& loopback, relay::ServerConfig config,
      engine::RelayOptions options);

  relay::Server& server() { return *server_; }
  engine::Relay& relay() { return *relay_; }
  const SocketAddress& relay_addr() const { return relay_addr_; }
  disco::Dialect dialect() const { return server_->dialect(); }

  Client NewClient();
  // Allocates through the server API and tells both clients the endpoint.
  void AllocatePair(Client& a, Client& b);
  // Bind -> Challenge -> Answer over the wire; waits until the server
  // counts the handshake (a correct Answer gets no reply).
  bool Handshake(Client& c, uint32_t generation = 1);
  bool BindPair(Client& a, Client& b);
  // Polls `pred` every 5 ms for up to kTimeoutMs.
  static bool WaitFor(const std::function<bool()>& pred);
  bool WaitDropped(relay::DropReason r, uint64_t at_least);

 private:
  SocketAddress loopback_;
  SocketAddress relay_addr_;
  std::unique_ptr<relay::Server> server_;
  std::unique_ptr<engine::Relay> relay_;
};

}  // namespace peerrelay::testing

#endif  // PEERRELAY_TESTS_RELAY_HARNESS_H_
