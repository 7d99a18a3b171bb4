// Pairs of clients like real ones: each pair gets an endpoint from the relay
// (HTTP allocation with the bearer token, or the disco allocation over UDP
// with an allowlisted key) and both clients bind with a real disco handshake
// (one Bind, one Answer per round), then a probe through the relay proves
// the pair relays. Sockets may be shared between pairs (a real client uses
// one socket for all its relay endpoints); every pair has its own keys.
#ifndef PEERRELAY_LOADTEST_LOADGEN_SETUP_H_
#define PEERRELAY_LOADTEST_LOADGEN_SETUP_H_

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pcap_file.h"
#include "common/socket_address.h"
#include "common/udp_socket.h"
#include "disco/key.h"
#include "disco/message.h"

namespace peerrelay::loadgen {

struct SetupOptions {
  SocketAddress relay;
  // Where the client sockets bind (port 0: one each); unset: the loopback
  // address of the relay's family.
  std::optional<SocketAddress> local;
  disco::DiscoKey server_key;
  disco::Dialect dialect = disco::Dialect::kCurrent;
  int pairs = 1;
  // Client sockets in all (0: two per pair, at most 2000).
  int sockets = 0;
  // HTTP allocation: "ip:port" of relayd's admin API and its token.
  std::string admin;
  std::string token;
  // UDP allocation: every pair's A client uses this allowlisted key.
  std::optional<disco::KeyPair> udp_key;
  // Pairs set up per second (0: as fast as the relay answers).
  double rate = 500;
  // Pairs set up at once (threads), when every client has its own socket.
  int threads = 1;
  // Handshake rounds per client before the pair is reported as failed.
  int rounds = 3;
  // A reference relay (bench/reference_relay): no allocation and no
  // handshake; pair i uses VNI i + 1 and the relay learns both clients
  // from their first datagrams.
  bool reference = false;
  // A TURN server (coturn, no authentication): each client allocates, the
  // two create permissions and bind channel 0x4000 to each other's relayed
  // address, and data goes as ChannelData. A socket per client.
  bool turn = false;
  // Every socket records what it sends and receives here (null: nothing).
  PcapWriter* capture = nullptr;
  // After a pair is bound: this many more handshake rounds on each side,
  // each with a new generation, the pair probed after each (current
  // dialect: re-binding a bound side is allowed; churn for soak tests).
  int rebinds = 0;
};

struct Pair {
  uint32_t vni = 0;
  int sock[2] = {0, 0};  // indexes into Setup::sockets: A, B
  disco::DiscoKey key[2];  // the clients' disco keys
  uint16_t channel = 0;    // TURN mode: the ChannelData channel (else 0)
  int index = 0;           // its place in setup order (0 .. pairs - 1)
};

struct Setup {
  std::vector<UdpSocket> sockets;
  std::vector<Pair> pairs;            // the pairs that relay
  std::vector<std::string> failures;  // one line per pair that did not
  double seconds = 0;
};

// How pairs get their endpoints, as a command line gives it.
struct AllocationFlags {
  std::string admin;            // relayd's admin API, ip:port
  std::string token_file;       // HTTP allocation: the bearer token
  std::string server_key;       // discokey:...; HTTP: fetched when empty
  std::string client_key_file;  // set: UDP allocation with this key
};

// GET http://ADMIN/PATH with the bearer token (none when empty): the body
// of a 200, else Unavailable naming what went wrong.
absl::StatusOr<std::string> AdminGet(const std::string& admin,
                                     const std::string& token,
                                     const std::string& path);

// Fills `so`'s allocation fields (admin, token, server_key, udp_key):
// InvalidArgument for a bad or missing flag, Unavailable when the admin
// API does not give the server key.
absl::Status ConfigureAllocation(const AllocationFlags& f, SetupOptions* so);

// Opens the sockets and sets up every pair, one progress line per second
// on `progress` (null: quiet). An error only when nothing can work (no
// socket, relay unreachable for the first pair); failed pairs are listed.
absl::StatusOr<Setup> SetUp(const SetupOptions& o, std::FILE* progress);

}  // namespace peerrelay::loadgen

#endif  // PEERRELAY_LOADTEST_LOADGEN_SETUP_H_
