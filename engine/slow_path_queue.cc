#include "engine/slow_path_queue.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace peerrelay::engine {

SlowPathQueue::SlowPathQueue(size_t control_capacity, size_t data_capacity)
    : control_capacity_(control_capacity),
      data_capacity_(data_capacity),
      slots_(std::max<size_t>(1, control_capacity + data_capacity)),
      items_(new QueueItem[slots_]),
      // Value-initialised: every page is touched now, so the queue's memory
      // (slots x 2 KiB, 10 MiB by default) is resident from the start and
      // RSS stays flat. Left lazy, RSS crept up for as long as the ring took
      // to wrap once (minutes to hours at handshake rates), which a soak
      // cannot tell from a leak.
      bytes_(new uint8_t[slots_ * kMaxBytes]()) {}

uint64_t SlowPathQueue::TryPush(QueueItem::Kind kind, PacketWriter* writer,
                                const SocketAddress& from,
                                const LocalAddress& local,
                                const uint8_t* bytes, size_t len) {
  const bool control = kind == QueueItem::kControl;
  if (len > (control ? kMaxControlBytes : kMaxBytes)) return 0;
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_ || count_ == slots_) return 0;
    if (control ? controls_ >= control_capacity_ : datas_ >= data_capacity_) {
      return 0;
    }
    const size_t slot = (head_ + count_) % slots_;
    QueueItem& it = items_[slot];
    uint8_t* dst = &bytes_[slot * kMaxBytes];
    std::memcpy(dst, bytes, len);
    seq = next_seq_++;
    it = {.kind = kind,
          .writer = writer,
          .from = from,
          .local = local,
          .len = static_cast<uint16_t>(len),
          .seq = seq,
          .bytes = dst};
    ++count_;
    ++(control ? controls_ : datas_);
  }
  cv_.notify_one();
  return seq;
}

const QueueItem* SlowPathQueue::Front(int timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, std::chrono::milliseconds(timeout_ms),
                    [this] { return closed_ || count_ > 0; })) {
    return nullptr;
  }
  if (count_ == 0) return nullptr;
  return &items_[head_];
}

void SlowPathQueue::Release() {
  std::lock_guard<std::mutex> l(mu_);
  if (count_ == 0) return;
  const QueueItem& it = items_[head_];
  --(it.kind == QueueItem::kControl ? controls_ : datas_);
  completed_.store(it.seq, std::memory_order_release);
  head_ = (head_ + 1) % slots_;
  --count_;
}

void SlowPathQueue::Close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

size_t SlowPathQueue::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return count_;
}

}  // namespace peerrelay::engine
