#include "engine/slow_path_worker.h"

#include <sched.h>

namespace peerrelay::engine {

SlowPathWorker::SlowPathWorker(relay::Server* server, SlowPathQueue* queue,
                               relay::Counters* counters, const Clock* clock,
                               bool start_thread, const Capture* capture)
    : server_(server),
      queue_(queue),
      counters_(counters),
      clock_(clock),
      capture_(capture) {
  if (start_thread) thread_ = std::thread([this] { Run(); });
}

SlowPathWorker::~SlowPathWorker() { Stop(); }

void SlowPathWorker::Stop() {
  stop_.store(true);
  queue_->Close();
  if (thread_.joinable()) thread_.join();
}

void SlowPathWorker::Run() {
  // SCHED_BATCH: same CPU share as any thread, but a wake-up never preempts
  // the running one. Where the slow path shares a core with a worker (one
  // core, or a flood of handshakes), each queued datagram would otherwise
  // switch the core to this thread and back, and the worker's relaying
  // would pay two context switches per handshake datagram.
  sched_param param{};
  (void)sched_setscheduler(0, SCHED_BATCH, &param);
  while (!stop_.load(std::memory_order_relaxed)) HandleOne(100);
}

bool SlowPathWorker::HandleOne(int timeout_ms) {
  const QueueItem* item = queue_->Front(timeout_ms);
  if (item == nullptr) return false;
  if (item->kind == QueueItem::kControl) {
    HandleControl(*item);
  } else {
    HandleWaitingData(*item);
  }
  queue_->Release();
  return true;
}

void SlowPathWorker::HandleControl(const QueueItem& item) {
  relay::ControlReply reply;
  if (!server_->HandleControl(item.bytes, item.len, item.from,
                              clock_->NowNs(), counters_, &reply)) {
    return;
  }
  if (!item.writer->SendNow(reply.bytes.data(), reply.len, reply.destination,
                            item.local)) {
    counters_->send_failed.Add();
  } else if (capture_ != nullptr) {
    capture_->Sent(reply.bytes.data(), reply.len, 0, reply.destination,
                   item.local);
  }
}

void SlowPathWorker::HandleWaitingData(const QueueItem& item) {
  relay::Verdict v = server_->Classify(item.bytes, item.len, 1, item.len,
                                       item.from, clock_->NowNs());
  if (v.kind != relay::Verdict::kForward) {
    counters_->Drop(v.reason);
    return;
  }
  counters_->Relayed(!item.from.is_ipv4(), !v.destination.is_ipv4(), 1,
                     item.len);
  // Sent unchanged through the worker's writer, the kernel choosing the
  // source address, as the worker would have sent it.
  if (!item.writer->SendNow(item.bytes, item.len, v.destination,
                            LocalAddress{})) {
    counters_->send_failed.Add();
  } else if (capture_ != nullptr) {
    capture_->Sent(item.bytes, item.len, 0, v.destination, item.local);
  }
}

}  // namespace peerrelay::engine
