// SlowPathQueue: the hand-off from the workers (many producers) to the
// slow-path thread (one consumer). It carries control datagrams to their
// crypto, and data datagrams that must wait behind their source's control
// datagram (worker_path.h, "Per-client order"), in one FIFO.
#ifndef PEERRELAY_ENGINE_SLOW_PATH_QUEUE_H_
#define PEERRELAY_ENGINE_SLOW_PATH_QUEUE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "common/socket_address.h"
#include "engine/datagram.h"
#include "engine/packet_writer.h"

namespace peerrelay::engine {

// One datagram waiting for the slow path: a control datagram, or a data
// datagram waiting behind its source's control datagram (see WorkerPath).
struct QueueItem {
  enum Kind : uint8_t { kControl, kData };
  Kind kind = kControl;
  // The writer of the worker it came in on: replies (and waited data)
  // leave through it, from that worker's socket.
  PacketWriter* writer = nullptr;
  SocketAddress from;
  LocalAddress local;
  uint16_t len = 0;
  uint64_t seq = 0;                // push order, from 1
  const uint8_t* bytes = nullptr;  // the queue's own copy
};

// Bounded FIFO between the workers and the slow-path thread: a fixed ring
// of slots, each with room for its datagram, allocated once (nothing is
// allocated per item). Workers never wait on it: TryPush fails when it is
// full. One consumer: it reads the oldest item in place (Front) and frees
// its slot when done (Release), which also publishes the item's sequence
// number as completed.
class SlowPathQueue {
 public:
  // Largest control datagram worth queueing: a current-dialect handshake is
  // 160 bytes and an allocate request 156; anything longer is not one.
  static constexpr size_t kMaxControlBytes = 512;
  // Largest data datagram that may wait behind a control datagram: a
  // 1500-byte path's largest UDP payload (1472) fits; WireGuard frames of
  // Tailscale's default 1280-byte MTU are ~1330 bytes with Geneve.
  static constexpr size_t kMaxBytes = 2048;

  // `control_capacity` control datagrams and `data_capacity` waiting data
  // datagrams at most, each limit on its own so waiting data can never
  // crowd out handshakes.
  SlowPathQueue(size_t control_capacity, size_t data_capacity);
  // Copies the datagram in. Returns its sequence number, or 0 when that
  // kind's share is full, `len` exceeds its kind's limit, or the queue is
  // closed.
  uint64_t TryPush(QueueItem::Kind kind, PacketWriter* writer,
                   const SocketAddress& from, const LocalAddress& local,
                   const uint8_t* bytes, size_t len);
  // Waits up to `timeout_ms` for the oldest item and returns it; it stays
  // valid (and its slot taken) until Release(). nullptr on timeout or after
  // Close. Consumer thread only.
  const QueueItem* Front(int timeout_ms);
  // Frees the item Front() returned and publishes its seq as completed.
  void Release();
  // Highest seq released; every item pushed before it was released too
  // (FIFO). Acquire: what the consumer did before releasing it (applying a
  // handshake) is visible to the caller.
  uint64_t completed() const {
    return completed_.load(std::memory_order_acquire);
  }
  void Close();
  size_t size() const;
  size_t capacity() const { return slots_; }

 private:
  const size_t control_capacity_;
  const size_t data_capacity_;
  const size_t slots_;
  std::unique_ptr<QueueItem[]> items_;
  std::unique_ptr<uint8_t[]> bytes_;  // slots_ x kMaxBytes, touched at start
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t head_ = 0;  // this and the fields below: guarded by mu_
  size_t count_ = 0;
  size_t controls_ = 0;
  size_t datas_ = 0;
  uint64_t next_seq_ = 1;
  bool closed_ = false;
  std::atomic<uint64_t> completed_{0};
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_SLOW_PATH_QUEUE_H_
