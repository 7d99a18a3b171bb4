// WorkerPath: the per-datagram path both engines share, between "a buffer
// arrived" and "the writer has the sends":
//
//   received buffer --split GRO segments--> Server::Classify() per run
//     Forward  -> PacketWriter (no copy: it points into the receive buffer)
//     SlowPath -> copied into SlowPathQueue (bounded; full = counted drop)
//     Drop     -> counted, unless it is data that must wait behind its
//                 source's queued control datagram ("Per-client order"
//                 below): then it is queued too
//   end of batch: Flush() -> the writer sends, or hands the batch to the
//                 engine's sender (GsoBatcher: one sendmmsg, or io_uring
//                 SENDMSG SQEs); see packet_writer.h for when the receive
//                 buffers are free again
//
// Socket-free: the worker (uring_worker.cc, mmsg_worker.cc) owns the socket
// and the buffers, reads the clock once per batch and passes `now` in.
#ifndef PEERRELAY_ENGINE_WORKER_PATH_H_
#define PEERRELAY_ENGINE_WORKER_PATH_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "engine/capture.h"
#include "common/socket_address.h"
#include "engine/datagram.h"
#include "engine/handshake_limiter.h"
#include "engine/packet_writer.h"
#include "engine/slow_path_queue.h"
#include "relay/counters.h"
#include "relay/server.h"

namespace peerrelay::engine {

// One worker's view: turns received buffers into sends and queue entries.
//
// Per-client order. A datagram from a source is never judged before an
// earlier control datagram from that source has been applied: Tailscale's
// client sends its Answer and ~100 us later, from the same socket, a disco
// Ping to its peer through the relay, and never re-sends the Answer; the
// Ping must find its side bound. Control datagrams are applied by the slow
// path, so the worker remembers, per source, the sequence number of the
// last item it queued. A data datagram the table would drop as not_bound or
// unknown_source, from a source with an item still queued, is queued behind
// it (counted as waited_for_control) and judged again by the slow path once
// everything before it has been applied. The check runs only on those drop
// verdicts: a bound pair's data never looks at the table of sources. Waits
// are bounded (kMaxWaitPerControl per control datagram, and the queue's
// data share); beyond that the datagram is dropped as control_wait_full.
// (A source's datagrams always reach the same worker: SO_REUSEPORT hashes
// the 4-tuple. The queue is one FIFO for all workers.)
class WorkerPath {
 public:
  // Data datagrams that may wait behind one control datagram: Tailscale's
  // client sends one Ping per Answer; a few more covers WireGuard frames
  // already in flight.
  static constexpr uint32_t kMaxWaitPerControl = 16;
  // Sources remembered before stale entries are swept: at least twice what
  // the queue holds, so a sweep frees at least half the table.
  static constexpr size_t kMinPendingSources = 8192;

  // Forwards go to `writer`, control datagrams (and waiting data) to
  // `slow`; every outcome is counted in `counters`. All three must outlive
  // the path; one worker thread uses it.
  WorkerPath(relay::Server* server, SlowPathQueue* slow, PacketWriter* writer,
             relay::Counters* counters, HandshakeLimiter limiter);

  // Records every datagram received and forwarded to `c` (null: off).
  void set_capture(const Capture* c) { capture_ = c; }
  // One received buffer (GRO-coalesced when meta.gro_size is set).
  void OnReceive(const uint8_t* data, size_t len, const RxMeta& meta,
                 const SocketAddress& from, int64_t now_ns);
  // End of batch: the writer sends what it queued; afterwards the receive
  // buffers handed to OnReceive are the caller's again.
  void Flush() { writer_->Flush(counters_); }
  // Sources with a queued item remembered (bounded; stale ones pruned).
  size_t pending_sources() const { return pending_.size(); }

 private:
  struct Pending {
    uint64_t seq = 0;      // last item queued from this source
    uint32_t waiting = 0;  // data queued behind its last control datagram
  };
  // Counts `count` datagrams (`total` bytes at `p`, cut every `seg`) from
  // `from` as relayed and hands them to the writer for `dest`.
  void Forward(const uint8_t* p, size_t seg, size_t total, uint32_t count,
               const SocketAddress& from, const SocketAddress& dest,
               const RxMeta& meta);
  void OnDatagram(const uint8_t* data, size_t len, const RxMeta& meta,
                  const SocketAddress& from, int64_t now_ns);
  void OnControl(const uint8_t* data, size_t len, const RxMeta& meta,
                 const SocketAddress& from, int64_t now_ns);
  // A drop verdict (`reason`) for data from a source that may have a
  // queued item: queue it behind, judge it again, or drop it.
  void OnDropped(const uint8_t* data, size_t len, const RxMeta& meta,
                 const SocketAddress& from, int64_t now_ns,
                 relay::DropReason reason);
  static bool MayWait(relay::DropReason r) {
    return r == relay::DropReason::kNotBound ||
           r == relay::DropReason::kUnknownSource;
  }

  relay::Server* server_;
  SlowPathQueue* slow_;
  PacketWriter* writer_;
  relay::Counters* counters_;
  HandshakeLimiter limiter_;
  const Capture* capture_ = nullptr;
  const size_t max_pending_;
  absl::flat_hash_map<SocketAddress, Pending> pending_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_WORKER_PATH_H_
