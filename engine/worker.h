// Receive loops. Each worker owns one socket and runs on one thread; both
// kinds hand every received buffer to a WorkerPath and flush it once per
// batch, reading the clock once per batch.
//
//   mmsg:     recvmmsg(64 x 64 KiB buffers) -> path -> the writer's
//             sendmmsg; buffers reused as soon as Flush returns
//   io_uring: multishot recvmsg over a provided buffer ring
//             (64 x 64 KiB) -> path -> the writer hands the batch to the
//             worker as SENDMSG SQEs (or sends it with sendmmsg); buffers go
//             back to the ring once the writer's InFlight() is 0
//             (packet_writer.h, uring_worker.cc)
// Which engine runs is a row of engines.h.
#ifndef PEERRELAY_ENGINE_WORKER_H_
#define PEERRELAY_ENGINE_WORKER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "engine/socket.h"
#include "engine/worker_path.h"

namespace peerrelay::engine {

// 64 KiB: one GRO-coalesced burst (up to 64 KiB of segments) fits.
inline constexpr size_t kRxBufferBytes = 65536;
// 64 buffers: docs/performance.md: measured a small pool fastest (a large FIFO
// pool cycles through megabytes and every payload copy misses the cache).
inline constexpr size_t kRxBuffers = 64;
// Upper bound of datagrams one batch can forward: 64 buffers of up to 64
// GRO segments each would be 4096; flushing early beyond this is harmless.
inline constexpr size_t kMaxBatchDatagrams = 1024;

class Worker {
 public:
  virtual ~Worker() = default;
  // Runs until `stop` is set (checked at least every 100 ms).
  virtual void Run(const std::atomic<bool>* stop) = 0;
};

// What both receive loops do with one received datagram (or GRO buffer):
// count it and drop it when its source address cannot be read
// (bad_source_address) or it was cut short (truncated), else read its
// control messages from `h` and hand it to the path. `name` / `namelen` are
// the source address as the kernel wrote it.
void DeliverReceived(WorkerPath* path, relay::Counters* c,
                     const sockaddr* name, socklen_t namelen, msghdr* h,
                     const uint8_t* data, size_t len, size_t full_len,
                     bool truncated, int64_t now_ns);

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_WORKER_H_
