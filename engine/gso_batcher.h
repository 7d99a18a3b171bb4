// GsoBatcher: the socket PacketWriter of both engines. The forwards of one
// batch are grouped per destination into runs of equal-size datagrams (a
// shorter one may close a run), each run becomes one msghdr with
// UDP_SEGMENT, and all of them leave with one sendmmsg at Flush(). Nothing
// is copied: iovecs point into the receive buffers (see packet_writer.h for
// who owns them until when).
#ifndef PEERRELAY_ENGINE_GSO_BATCHER_H_
#define PEERRELAY_ENGINE_GSO_BATCHER_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <vector>

#include "common/socket_address.h"
#include "common/udp_options.h"
#include "engine/packet_writer.h"
#include "relay/counters.h"

namespace peerrelay::engine {

class GsoBatcher final : public PacketWriter {
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
           relay::Counters* c) override {
    AddRun(p, len, len, dest, c);
  }
  // Queues the datagrams of a GRO run for one destination: `total` bytes at
  // `p`, cut every `seg` bytes (the last piece may be shorter). One group
  // lookup for the whole run.
  void AddRun(const uint8_t* p, size_t seg, size_t total,
              const SocketAddress& dest, relay::Counters* c) override;
  // Sends everything queued with one sendmmsg (more if the kernel takes a
  // part). A GSO send the kernel refuses (e.g. segment above the path MTU)
  // is retried datagram by datagram; what still fails is send_failed.
  void Flush(relay::Counters* c) override;
  // sendmsg with IP(V6)_PKTINFO; uses no batch state.
  bool SendNow(const uint8_t* p, size_t len, const SocketAddress& dest,
               const LocalAddress& local) override;
  size_t pending() const { return n_entries_; }
  // Flush hands built batches to `s` first (null: always sendmmsg).
  bool AttachSender(BatchSender* s) override {
    sender_ = s;
    return true;
  }
  size_t InFlight() const override {
    return sender_ != nullptr ? sender_->InFlight() : 0;
  }
  // What to do with message `m` the kernel refused with `err`: a GSO send
  // refused as such (EINVAL, EIO, EMSGSIZE: e.g. a segment above the path
  // MTU) is sent again datagram by datagram; anything else is lost. Counts
  // what fails as send_failed. Used by Flush and by a BatchSender.
  static void OnRefused(int fd, const msghdr& m, int err, relay::Counters* c);

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

  int fd_;
  bool socket_ipv6_;
  size_t max_datagrams_;
  // Joins the newest group for `dest` if `len` keeps its GSO shape, else
  // opens a new group; returns the group's index.
  uint32_t GroupFor(const SocketAddress& dest, size_t len);

  std::vector<Entry> entries_;  // in arrival order; capacity max_datagrams
  size_t n_entries_ = 0;
  std::vector<Group> groups_;
  // What a flush builds, twice: a sender may still read the last set while
  // the next flush builds the other.
  struct Built {
    std::vector<iovec> iovs;  // laid out group by group
    std::vector<mmsghdr> msgs;
    std::vector<sockaddr_storage> names;
    std::vector<std::array<uint8_t, kUdpSegmentSpace>> cmsgs;
  };
  Built built_[2];
  int cur_ = 0;
  BatchSender* sender_ = nullptr;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_GSO_BATCHER_H_
