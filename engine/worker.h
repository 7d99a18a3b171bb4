// Receive loops. Each worker owns one socket and runs on one thread; both
// kinds hand every received buffer to a WorkerPath and flush it once per
// batch, reading the clock once per batch.
//
//   mmsg:     recvmmsg(64 x 64 KiB buffers) -> path -> sendmmsg
//   io_uring: multishot recvmsg over a provided buffer ring
//             (64 x 64 KiB) -> path -> sendmmsg, buffers back to the ring
//             after the send (see uring_worker.cc for why sendmmsg).
#ifndef PEERRELAY_ENGINE_WORKER_H_
#define PEERRELAY_ENGINE_WORKER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/packet_path.h"
#include "engine/socket.h"

namespace peerrelay::engine {

// 64 KiB: one GRO-coalesced burst (up to 64 KiB of segments) fits.
inline constexpr size_t kRxBufferBytes = 65536;
// 64 buffers: PERFORMANCE.md measured a small pool fastest (a large FIFO
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

// `buffers`: receive buffers of kRxBufferBytes (a power of two).
std::unique_ptr<Worker> MakeMmsgWorker(const SocketInfo& sock,
                                       WorkerPath* path,
                                       relay::Counters* counters,
                                       size_t buffers = kRxBuffers);

// Whether this process may use io_uring with provided buffer rings; the
// error names the kernel's reason.
absl::Status ProbeIoUring();

// Must be called on the thread that will Run it (the ring is
// SINGLE_ISSUER). Fails (with the kernel's reason) when io_uring or provided buffer rings
// are unavailable: seccomp, kernel.io_uring_disabled, an old kernel.
absl::StatusOr<std::unique_ptr<Worker>> MakeUringWorker(
    const SocketInfo& sock, WorkerPath* path, relay::Counters* counters,
    size_t buffers = kRxBuffers);

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_WORKER_H_
