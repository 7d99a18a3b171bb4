// The io_uring engine: multishot recvmsg over a provided buffer ring (see
// uring_worker.cc for the batch, send and ENOBUFS policies).
#ifndef PEERRELAY_ENGINE_URING_WORKER_H_
#define PEERRELAY_ENGINE_URING_WORKER_H_

#include <sys/socket.h>

#include <memory>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "engine/gso_batcher.h"
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
// How the io_uring worker uses the ring (each measured alone in
// docs/performance.md, "io_uring against mmsg").
struct UringOptions {
  // The batch's sends as SENDMSG SQEs that leave in the same
  // io_uring_enter that waits for the next receives (one system call per
  // batch instead of two); false: one sendmmsg per batch.
  bool send_sqes = true;
  // Batches with more messages than this go out with sendmmsg (many
  // destinations: one SQE each costs more than sendmmsg's loop).
  size_t max_sqe_sends = 16;
  // Successful sends post no completion (IOSQE_CQE_SKIP_SUCCESS): they
  // complete inside the enter that submits them (MSG_DONTWAIT), so the
  // batch's buffers go back once that enter returns; failures still post.
  bool skip_send_cqes = true;
  // Register the ring's fd (no fd lookup per io_uring_enter) and the
  // socket as a fixed file (none per SQE).
  bool register_fds = true;
  // NIC deployments: NAPI busy polling for this long per wait (kernel 6.9+
  // IORING_REGISTER_NAPI); 0: off. Refused by older kernels (logged).
  uint32_t napi_busy_poll_us = 0;
};

// `writer` is the path's writer: with send_sqes its batches are handed to
// the ring when it takes a BatchSender (packet_writer.h), else it sends
// them itself. It must outlive the worker.
absl::StatusOr<std::unique_ptr<Worker>> MakeUringWorker(
    const SocketInfo& sock, WorkerPath* path, PacketWriter* writer,
    relay::Counters* counters, const Clock* clock,
    size_t buffers = kRxBuffers, UringOptions options = {});

// One io_uring receive completion: `buf` (the provided buffer) holding
// `res` bytes laid out for the multishot recvmsg template `tmpl` (only read;
// liburing's helpers take it non-const). A buffer
// that does not parse as that layout is counted as received and dropped as
// bad_completion.
void DeliverUringBuffer(WorkerPath* path, relay::Counters* c, uint8_t* buf,
                        int res, msghdr* tmpl, int64_t now_ns);

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_URING_WORKER_H_
