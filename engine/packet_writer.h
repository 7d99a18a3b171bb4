// PacketWriter: where the receive path's sends go. The receive path
// (worker_path.h) decides what leaves for where; a writer decides how:
// GsoBatcher coalesces into UDP GSO sends on a socket, a test's fake
// records them, a future AF_XDP engine would fill its TX ring.
//
// Buffer ownership, per call (as in quiche's QuicPacketWriter):
//   Add / AddRun  the writer keeps a pointer, not a copy. The bytes remain
//                 the caller's (the engine's receive buffer) and must stay
//                 valid and unchanged until the next Flush() returns.
//   Flush         sends everything queued. When it returns the writer holds
//                 no pointer into any buffer (the kernel has its own copy),
//                 whatever the outcome: the engine recycles its receive
//                 buffers only then. Refused sends are counted
//                 (send_failed), not kept for later.
//   SendNow       one datagram, sent (or refused) before it returns; the
//                 bytes are the caller's again afterwards. The slow-path
//                 thread calls it while the worker thread batches, so it
//                 must not touch the batch.
// Add, AddRun and Flush belong to the worker thread that owns the writer.
#ifndef PEERRELAY_ENGINE_PACKET_WRITER_H_
#define PEERRELAY_ENGINE_PACKET_WRITER_H_

#include <cstddef>
#include <cstdint>

#include "common/socket_address.h"
#include "engine/datagram.h"
#include "relay/counters.h"

namespace peerrelay::engine {

class PacketWriter {
 public:
  virtual ~PacketWriter() = default;

  // Queues `len` bytes at `p` for `dest` (see the banner for ownership).
  virtual void Add(const uint8_t* p, size_t len, const SocketAddress& dest,
                   relay::Counters* c) = 0;
  // Queues a GRO run for one destination: `total` bytes at `p`, cut every
  // `seg` bytes (the last piece may be shorter).
  virtual void AddRun(const uint8_t* p, size_t seg, size_t total,
                      const SocketAddress& dest, relay::Counters* c) = 0;
  // Sends everything queued; failures are counted in `c`.
  virtual void Flush(relay::Counters* c) = 0;
  // Sends one datagram now, from `local` when it is valid (a reply leaves
  // from the address its request came to). False when it was refused.
  virtual bool SendNow(const uint8_t* p, size_t len, const SocketAddress& dest,
                       const LocalAddress& local) = 0;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_PACKET_WRITER_H_
