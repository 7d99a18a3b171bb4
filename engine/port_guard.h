// PortGuard: one relayd per UDP port. The relay's sockets use SO_REUSEPORT
// so that its own workers share the port; a second process of the same user
// could join that group too, and the kernel would then hash flows between
// the two processes, silently breaking live sessions. Before relayd opens
// its sockets, Claim():
//   1. takes an abstract Unix socket named after the port
//      ("@peerrelay-relayd-udp-<port>"), which only one process can hold:
//      two relayds starting at once cannot both pass;
//   2. checks /proc/net/udp and /proc/net/udp6 that no socket of anyone
//      (another relayd of an older build, any program) is bound to the port.
// Either failure names the port and, where /proc shows it, the process.
// The claim lasts as long as the PortGuard.
#ifndef PEERRELAY_ENGINE_PORT_GUARD_H_
#define PEERRELAY_ENGINE_PORT_GUARD_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace peerrelay::engine {

class PortGuard {
 public:
  // FailedPrecondition when the port is taken (the message says by whom).
  // `already_bound`: the caller has bound the port itself (it asked for
  // port 0 and learned the number); only step 1 is done then.
  static absl::StatusOr<PortGuard> Claim(uint16_t port,
                                         bool already_bound = false);

  PortGuard(PortGuard&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  PortGuard& operator=(PortGuard&& o) noexcept;
  PortGuard(const PortGuard&) = delete;
  PortGuard& operator=(const PortGuard&) = delete;
  ~PortGuard();

 private:
  explicit PortGuard(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_PORT_GUARD_H_
