// PortGuard: one relayd per UDP port. The relay's sockets use SO_REUSEPORT
// so that its own workers share the port; a second process of the same user
// could join that group too, and the kernel would then hash flows between
// the two processes, silently breaking live sessions. Before relayd opens
// its sockets, Claim():
//   1. takes an abstract Unix socket named after the port
//      ("@peerrelay-relayd-udp-<port>"), which only one process can hold:
//      two relayds starting at once cannot both pass. Any local user can
//      take such a name, so a clash is judged by the holder's credentials
//      (SO_PEERCRED): a relayd (this executable, or named relayd) of this
//      user or root is refused; anyone else squatting the name is named in
//      note() and ignored;
//   2. checks /proc/net/udp and /proc/net/udp6 that no socket of anyone
//      (another relayd of an older build, any program) is bound to the port
//      on an address that collides with the listen address (a wildcard on
//      either side, or the same address; 127.0.0.2:P does not collide with
//      127.0.0.1:P).
// Either failure names the port and, where /proc shows it, the process.
// The claim lasts as long as the PortGuard.
#ifndef PEERRELAY_ENGINE_PORT_GUARD_H_
#define PEERRELAY_ENGINE_PORT_GUARD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/socket_address.h"

namespace peerrelay::engine {

class PortGuard {
 public:
  // FailedPrecondition when the port is taken (the message says by whom).
  // `already_bound`: the caller has bound the port itself (it asked for
  // port 0 and learned the number); only step 1 is done then.
  static absl::StatusOr<PortGuard> Claim(uint16_t port,
                                         const SocketAddress& listen,
                                         bool already_bound = false);
  // Non-empty when the guard name was squatted by a non-relayd (log it).
  const std::string& note() const { return note_; }

  PortGuard(PortGuard&& o) noexcept : fd_(o.fd_), note_(std::move(o.note_)) {
    o.fd_ = -1;
  }
  PortGuard& operator=(PortGuard&& o) noexcept;
  PortGuard(const PortGuard&) = delete;
  PortGuard& operator=(const PortGuard&) = delete;
  ~PortGuard();

 private:
  explicit PortGuard(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string note_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_PORT_GUARD_H_
