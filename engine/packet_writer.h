// PacketWriter: where the receive path's sends go. The receive path
// (worker_path.h) decides what leaves for where; a writer decides how:
// GsoBatcher coalesces into UDP GSO sends on a socket, a test's fake
// records them, a future AF_XDP engine would fill its TX ring.
//
// Buffer ownership: the most dangerous thing to get wrong here. Per call
// (as in quiche's QuicPacketWriter):
//   Add / AddRun  the writer keeps a pointer, not a copy. The bytes remain
//                 the caller's (the engine's receive buffer) and must stay
//                 valid and unchanged until the datagram is no longer in
//                 flight (below).
//   Flush         sends everything queued, or hands it to an attached
//                 BatchSender (AttachSender). When Flush returns, every
//                 datagram queued before it is either gone (the kernel has
//                 its own copy, or refused it: counted as send_failed, never
//                 kept for later) or counted by InFlight().
//   InFlight      datagrams of past Flush()es a BatchSender took and has not
//                 completed. While it is nonzero the kernel may still read
//                 the buffers those datagrams point into: an engine
//                 recycles a receive buffer only when nothing queued since
//                 the last Flush points into it AND InFlight() is 0.
//                 A writer with no sender attached sends synchronously and
//                 always says 0 (the recvmmsg engine recycles right after
//                 Flush). The io_uring engine is the one with a sender: its
//                 batches leave as SENDMSG SQEs in the next io_uring_enter,
//                 and it keeps the batch's receive buffers out of the ring
//                 until its own InFlight() (the sends not yet completed)
//                 says 0 (uring_worker.cc).
//   SendNow       one datagram, sent (or refused) before it returns; the
//                 bytes are the caller's again afterwards. The slow-path
//                 thread calls it while the worker thread batches, so it
//                 must not touch the batch or the sender.
// Add, AddRun, Flush, AttachSender and InFlight belong to the worker thread
// that owns the writer.
#ifndef PEERRELAY_ENGINE_PACKET_WRITER_H_
#define PEERRELAY_ENGINE_PACKET_WRITER_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "common/socket_address.h"
#include "engine/datagram.h"
#include "relay/counters.h"

namespace peerrelay::engine {

// Who sends a writer's built batch instead of the writer (the io_uring
// worker: send SQEs that leave in the same io_uring_enter that waits for
// receives). It completes the sends later, on the same thread.
class BatchSender {
 public:
  virtual ~BatchSender() = default;
  // Takes all `n` messages (true) or none (false: the writer sends them
  // itself now). Taken messages, their iovecs, names and control buffers
  // stay untouched until the Flush after next (two alternating sets): the
  // sender must have finished with them by then, or refuse.
  virtual bool Submit(mmsghdr* msgs, size_t n) = 0;
  // Datagrams taken by Submit whose sends have not completed yet.
  virtual size_t InFlight() const = 0;
};

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
  // Sends everything queued, or hands it to the attached sender; failures
  // are counted in `c`.
  virtual void Flush(relay::Counters* c) = 0;
  // Attaches (or, with null, detaches) a sender for built batches. False
  // when this writer cannot hand batches off: it keeps sending them itself
  // before Flush returns.
  virtual bool AttachSender(BatchSender* s) { return false; }
  // See the banner: datagrams still in flight after past Flush()es.
  virtual size_t InFlight() const { return 0; }
  // Sends one datagram now, from `local` when it is valid (a reply leaves
  // from the address its request came to). False when it was refused.
  virtual bool SendNow(const uint8_t* p, size_t len, const SocketAddress& dest,
                       const LocalAddress& local) = 0;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_PACKET_WRITER_H_
