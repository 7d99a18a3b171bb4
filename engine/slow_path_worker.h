// SlowPathWorker: the slow-path thread. It takes the SlowPathQueue's items
// in order: control datagrams get their disco crypto and state change
// (Server::HandleControl) and their reply, and data that waited behind its
// source's control datagram is judged again and relayed or dropped. Replies
// leave through the writer of the worker the request came in on, from the
// local address it came to.
#ifndef PEERRELAY_ENGINE_SLOW_PATH_WORKER_H_
#define PEERRELAY_ENGINE_SLOW_PATH_WORKER_H_

#include <atomic>
#include <thread>

#include "common/clock.h"
#include "engine/capture.h"
#include "engine/slow_path_queue.h"
#include "relay/counters.h"
#include "relay/server.h"

namespace peerrelay::engine {

class SlowPathWorker {
 public:
  // Counts outcomes in `counters` (written by this thread only). Without
  // `start_thread`, nothing runs until HandleOne() is called (tests).
  // What it sends is recorded to `capture` when set.
  SlowPathWorker(relay::Server* server, SlowPathQueue* queue,
                 relay::Counters* counters, const Clock* clock,
                 bool start_thread = true, const Capture* capture = nullptr);
  ~SlowPathWorker();
  // Closes the queue and joins the thread. Idempotent.
  void Stop();
  // Handles the oldest item, waiting up to `timeout_ms` for one; false when
  // there was none.
  bool HandleOne(int timeout_ms);

 private:
  void Run();
  void HandleControl(const QueueItem& item);
  // A data datagram that waited behind its source's control datagram:
  // judged now that everything queued before it has been applied.
  void HandleWaitingData(const QueueItem& item);

  relay::Server* server_;
  SlowPathQueue* queue_;
  relay::Counters* counters_;
  const Clock* clock_;
  const Capture* capture_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_SLOW_PATH_WORKER_H_
