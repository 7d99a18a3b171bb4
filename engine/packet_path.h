// The per-datagram path both engines share, between "a buffer arrived" and
// "the kernel has the sends":
//
//   received buffer --split GRO segments--> Server::Process() per segment
//     Forward  -> GsoBatcher (no copy: iovecs point into the receive buffer)
//     SlowPath -> copied into SlowPathQueue (bounded; full = counted drop)
//     Drop     -> counted by Process
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
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

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

// A control datagram waiting for the slow path.
struct ControlItem {
  // Largest control datagram worth queueing: a current-dialect handshake is
  // 160 bytes and an allocate request 156; anything longer is not one.
  static constexpr size_t kMaxLen = 512;
  int fd = -1;
  bool socket_ipv6 = false;
  SocketAddress from;
  LocalAddress local;
  uint16_t len = 0;
  uint8_t bytes[kMaxLen];
};

// Bounded queue between the workers and the slow-path thread. Workers never
// wait on it: TryPush fails when it is full.
class SlowPathQueue {
 public:
  explicit SlowPathQueue(size_t capacity) : capacity_(capacity) {}
  bool TryPush(const ControlItem& item);
  // Waits up to `timeout_ms` for an item; false on timeout or after Close.
  bool Pop(ControlItem* out, int timeout_ms);
  void Close();
  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ControlItem> items_;
  bool closed_ = false;
};

// One worker's view: turns received buffers into sends and queue entries.
class WorkerPath {
 public:
  WorkerPath(relay::Server* server, SlowPathQueue* slow, int fd,
             bool socket_ipv6, relay::Counters* counters,
             size_t max_datagrams, HandshakeLimiter limiter);

  // One received buffer (GRO-coalesced when meta.gro_size is set).
  void OnReceive(const uint8_t* data, size_t len, const RxMeta& meta,
                 const SocketAddress& from, int64_t now_ns);
  void Flush() { batcher_.Flush(counters_); }

 private:
  void OnDatagram(const uint8_t* data, size_t len, const RxMeta& meta,
                  const SocketAddress& from, int64_t now_ns);

  relay::Server* server_;
  SlowPathQueue* slow_;
  int fd_;
  bool socket_ipv6_;
  relay::Counters* counters_;
  GsoBatcher batcher_;
  HandshakeLimiter limiter_;
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
  relay::Server* server_;
  SlowPathQueue* queue_;
  relay::Counters* counters_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_PACKET_PATH_H_
