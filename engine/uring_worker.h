// The io_uring engine: multishot recvmsg over a provided buffer ring (see
// uring_worker.cc for the batch, send and ENOBUFS policies).
#ifndef PEERRELAY_ENGINE_URING_WORKER_H_
#define PEERRELAY_ENGINE_URING_WORKER_H_

#include <sys/socket.h>

#include <memory>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "engine/socket.h"
#include "engine/worker.h"
#include "engine/worker_path.h"

namespace peerrelay::engine {

// Whether this process may use io_uring with provided buffer rings; the
// error names the kernel's reason.
absl::Status ProbeIoUring();

// Must be called on the thread that will Run it (the ring is
// SINGLE_ISSUER). Fails (with the kernel's reason) when io_uring or provided buffer rings
// are unavailable: seccomp, kernel.io_uring_disabled, an old kernel.
absl::StatusOr<std::unique_ptr<Worker>> MakeUringWorker(
    const SocketInfo& sock, WorkerPath* path, relay::Counters* counters,
    const Clock* clock, size_t buffers = kRxBuffers);

// One io_uring receive completion: `buf` (the provided buffer) holding
// `res` bytes laid out for the multishot recvmsg template `tmpl` (only read;
// liburing's helpers take it non-const). A buffer
// that does not parse as that layout is counted as received and dropped as
// bad_completion.
void DeliverUringBuffer(WorkerPath* path, relay::Counters* c, uint8_t* buf,
                        int res, msghdr* tmpl, int64_t now_ns);

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_URING_WORKER_H_
