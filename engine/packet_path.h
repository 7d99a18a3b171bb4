// The per-datagram path both engines share, between "a buffer arrived" and
// "the kernel has the sends":
//
//   received buffer --split GRO segments--> Server::Classify() per segment
//     Forward  -> GsoBatcher (no copy: iovecs point into the receive buffer)
//     SlowPath -> copied into SlowPathQueue (bounded; full = counted drop)
//     Drop     -> counted, unless it is data that must wait behind its
//                 source's queued control datagram (WorkerPath, "Per-client
//                 order"): then it is queued too
//   end of batch: GsoBatcher::Flush() -> one sendmmsg(): one msghdr per run
//     of same-destination datagrams, UDP_SEGMENT when a run has several.
//
// The receive buffer must stay untouched until Flush() returns: the engine
// recycles it only then.
#ifndef PEERRELAY_ENGINE_PACKET_PATH_H_
#define PEERRELAY_ENGINE_PACKET_PATH_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/socket_address.h"
#include "engine/handshake_limiter.h"
#include "engine/socket.h"
#include "relay/counters.h"
#include "relay/server.h"

namespace peerrelay::engine {

int64_t MonotonicNowNs();

// Coalesces forwarded datagrams into UDP GSO sends.
class GsoBatcher {
 public:
  // The kernel's limit is 128 segments on current kernels, 64 on older
  // ones; 64 works everywhere and already amortises the per-send cost.
  static constexpr size_t kMaxSegments = 64;
  // Largest UDP payload one send may carry (IPv4: 65535 - 20 - 8).
  static constexpr size_t kMaxGsoBytes = 65507;

  GsoBatcher(int fd, bool socket_ipv6, size_t max_datagrams);

  // Queues `len` bytes at `p` for `dest`. `p` must stay valid until Flush.
  // Flushes first when the batch is full.
  void Add(const uint8_t* p, size_t len, const SocketAddress& dest,
           relay::Counters* c) {
    AddRun(p, len, len, dest, c);
  }
  // Queues the datagrams of a GRO run for one destination: `total` bytes at
  // `p`, cut every `seg` bytes (the last piece may be shorter). One group
  // lookup for the whole run.
  void AddRun(const uint8_t* p, size_t seg, size_t total,
              const SocketAddress& dest, relay::Counters* c);
  // Sends everything queued with one sendmmsg (more if the kernel takes a
  // part). A GSO send the kernel refuses (e.g. segment above the path MTU)
  // is retried datagram by datagram; what still fails is send_failed.
  void Flush(relay::Counters* c);
  size_t pending() const { return n_entries_; }

 private:
  struct Entry {
    const uint8_t* p;
    size_t len;
    uint32_t group;
  };
  struct Group {
    SocketAddress dest;
    size_t first_iov = 0;  // set at flush, when iovecs are laid out
    size_t count = 0;
    size_t bytes = 0;
    size_t seg = 0;       // size of the first datagram
    bool closed = false;  // a shorter datagram ended it
  };
  void SendOneByOne(const Group& g, relay::Counters* c);

  int fd_;
  bool socket_ipv6_;
  size_t max_datagrams_;
  // Joins the newest group for `dest` if `len` keeps its GSO shape, else
  // opens a new group; returns the group's index.
  uint32_t GroupFor(const SocketAddress& dest, size_t len);

  std::vector<Entry> entries_;  // in arrival order; capacity max_datagrams
  size_t n_entries_ = 0;
  std::vector<iovec> iovs_;     // laid out group by group at flush
  std::vector<Group> groups_;
  std::vector<mmsghdr> msgs_;
  std::vector<sockaddr_storage> names_;
  std::vector<std::array<uint8_t, CMSG_SPACE(sizeof(uint16_t))>> cmsgs_;
};

// One datagram waiting for the slow path: a control datagram, or a data
// datagram waiting behind its source's control datagram (see WorkerPath).
struct QueueItem {
  enum Kind : uint8_t { kControl, kData };
  Kind kind = kControl;
  int fd = -1;  // the worker socket it came in on; replies leave from it
  bool socket_ipv6 = false;
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
  uint64_t TryPush(QueueItem::Kind kind, int fd, bool socket_ipv6,
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
  std::unique_ptr<uint8_t[]> bytes_;  // slots_ x kMaxBytes, touched lazily
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

  WorkerPath(relay::Server* server, SlowPathQueue* slow, int fd,
             bool socket_ipv6, relay::Counters* counters,
             size_t max_datagrams, HandshakeLimiter limiter);

  // One received buffer (GRO-coalesced when meta.gro_size is set).
  void OnReceive(const uint8_t* data, size_t len, const RxMeta& meta,
                 const SocketAddress& from, int64_t now_ns);
  void Flush() { batcher_.Flush(counters_); }
  // Sources with a queued item remembered (bounded; stale ones pruned).
  size_t pending_sources() const { return pending_.size(); }

 private:
  struct Pending {
    uint64_t seq = 0;      // last item queued from this source
    uint32_t waiting = 0;  // data queued behind its last control datagram
  };
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
  int fd_;
  bool socket_ipv6_;
  relay::Counters* counters_;
  GsoBatcher batcher_;
  HandshakeLimiter limiter_;
  const size_t max_pending_;
  absl::flat_hash_map<SocketAddress, Pending> pending_;
};

// The slow-path thread: disco crypto, replies sent from the worker socket
// the request came in on, from the local address it came to.
class SlowPathWorker {
 public:
  SlowPathWorker(relay::Server* server, SlowPathQueue* queue,
                 relay::Counters* counters);
  ~SlowPathWorker();
  void Stop();

 private:
  void Run();
  void HandleControl(const QueueItem& item);
  // A data datagram that waited behind its source's control datagram:
  // judged now that everything queued before it has been applied.
  void HandleWaitingData(const QueueItem& item);
  relay::Server* server_;
  SlowPathQueue* queue_;
  relay::Counters* counters_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_PACKET_PATH_H_
