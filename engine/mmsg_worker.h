// The recvmmsg/sendmmsg engine: the fallback where io_uring is unavailable,
// and the reference the io_uring engine is measured against.
#ifndef PEERRELAY_ENGINE_MMSG_WORKER_H_
#define PEERRELAY_ENGINE_MMSG_WORKER_H_

#include <memory>

#include "common/clock.h"
#include "engine/socket.h"
#include "engine/worker.h"
#include "engine/worker_path.h"

namespace peerrelay::engine {

// `buffers`: receive buffers of kRxBufferBytes (a power of two).
std::unique_ptr<Worker> MakeMmsgWorker(const SocketInfo& sock,
                                       WorkerPath* path,
                                       relay::Counters* counters,
                                       const Clock* clock,
                                       size_t buffers = kRxBuffers);

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_MMSG_WORKER_H_
