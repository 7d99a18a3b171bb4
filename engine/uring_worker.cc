// The io_uring engine.
//
// Receive: one multishot recvmsg over a provided buffer ring of
// RelayOptions::rx_buffers buffers (64 by default). Each completion names
// the buffer the kernel filled; its layout is
// io_uring_recvmsg_out | name (32 bytes reserved, so the control messages
// stay aligned) | control | payload.
//
// Batches: one io_uring_submit_and_wait_timeout per batch (with
// DEFER_TASKRUN, completions only appear after an enter that waits), then
// every ready completion is harvested before anything is sent.
//
// Send: the forwards of a batch leave with one sendmmsg, straight from the
// receive buffers (no user-space copy), GSO-coalesced per destination.
// docs/performance.md: measured 4-7% faster at 64 B than one SENDMSG SQE per
// group, and it makes the send synchronous: when sendmmsg returns, the
// kernel holds its own copy, the buffers go straight back to the ring.
//
// ENOBUFS policy: when every buffer is in use the kernel ends the multishot
// request with -ENOBUFS. Nothing is lost by that: datagrams stay queued in
// the (7 MiB) socket buffer. We count it, return the batch's buffers, and
// re-arm. A multishot request also ends on CQ overflow or any error; it is
// re-armed whenever a completion arrives without IORING_CQE_F_MORE.
#include <liburing.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/uring_worker.h"

namespace peerrelay::engine {
namespace {

constexpr uint16_t kBufGroup = 1;
constexpr uint64_t kRecvTag = 1;
// 32 bytes of name space: sockaddr_in6 is 28, and 32 keeps the control
// messages that follow 8-byte aligned.
constexpr socklen_t kNameSpace = 32;
constexpr size_t kBufBytes =
    sizeof(io_uring_recvmsg_out) + kNameSpace + kRxControlSpace +
    kRxBufferBytes;

class UringWorker : public Worker {
 public:
  UringWorker(const SocketInfo& sock, WorkerPath* path,
              relay::Counters* counters, const Clock* clock, size_t buffers)
      : sock_(sock),
        path_(path),
        counters_(counters),
        clock_(clock),
        nbufs_(buffers) {}

  ~UringWorker() override {
    if (ring_ready_) {
      if (buf_ring_ != nullptr) io_uring_unregister_buf_ring(&ring_, kBufGroup);
      io_uring_queue_exit(&ring_);
    }
    if (buf_ring_ != nullptr) munmap(buf_ring_, buf_ring_bytes_);
  }

  absl::Status Init() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_CQSIZE;
    p.cq_entries = 1024;
    int r = io_uring_queue_init_params(64, &ring_, &p);
    if (r == -EINVAL) {  // kernel older than 6.1: no DEFER_TASKRUN
      p = {};
      p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
      p.cq_entries = 1024;
      r = io_uring_queue_init_params(64, &ring_, &p);
    }
    if (r < 0) return absl::ErrnoToStatus(-r, "io_uring_queue_init");
    ring_ready_ = true;

    // liburing 2.3 has no io_uring_setup_buf_ring: map and register it.
    buf_ring_bytes_ = sizeof(io_uring_buf) * nbufs_;
    void* mem = mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap buf ring");
    buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
    reg.ring_entries = nbufs_;
    reg.bgid = kBufGroup;
    r = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (r < 0) {
      munmap(buf_ring_, buf_ring_bytes_);
      buf_ring_ = nullptr;
      return absl::ErrnoToStatus(-r, "io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(buf_ring_);
    buffers_.resize(nbufs_ * kBufBytes);
    for (uint16_t i = 0; i < nbufs_; ++i) {
      io_uring_buf_ring_add(buf_ring_, &buffers_[i * kBufBytes], kBufBytes, i,
                            io_uring_buf_ring_mask(nbufs_), i);
    }
    io_uring_buf_ring_advance(buf_ring_, nbufs_);

    std::memset(&msg_, 0, sizeof(msg_));
    msg_.msg_namelen = kNameSpace;
    msg_.msg_controllen = kRxControlSpace;
    absl::Status armed = Arm();
    armed_ = armed.ok();
    return armed;
  }

  void Run(const std::atomic<bool>* stop) override {
    std::vector<uint16_t> to_return;
    to_return.reserve(nbufs_);
    __kernel_timespec ts{0, 100'000'000};
    while (!stop->load(std::memory_order_relaxed)) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_cq_ready(&ring_) == 0) {
        // Errors (-ETIME, -EINTR, -EBUSY with a CQ overflow pending) need no
        // handling here: whatever completions there are get harvested below.
        (void)io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      }
      const int64_t now = clock_->NowNs();
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        if (cqe->user_data != kRecvTag) continue;
        if (!(cqe->flags & IORING_CQE_F_MORE)) armed_ = false;
        if (cqe->res < 0) {
          if (cqe->res == -ENOBUFS) counters_->rx_buffer_exhausted.Add();
          continue;
        }
        if (!(cqe->flags & IORING_CQE_F_BUFFER)) continue;
        const uint16_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        to_return.push_back(bid);
        DeliverUringBuffer(path_, counters_, &buffers_[bid * kBufBytes],
                           cqe->res, &msg_, now);
      }
      io_uring_cq_advance(&ring_, seen);
      path_->Flush();  // sends done: the buffers may be refilled
      // Each returned buffer takes the next slot after the ring's tail.
      for (size_t k = 0; k < to_return.size(); ++k) {
        const uint16_t bid = to_return[k];
        io_uring_buf_ring_add(buf_ring_, &buffers_[bid * kBufBytes],
                              kBufBytes, bid,
                              io_uring_buf_ring_mask(nbufs_), int(k));
      }
      if (!to_return.empty()) {
        io_uring_buf_ring_advance(buf_ring_, to_return.size());
        to_return.clear();
      }
      // Re-arm a receive that ended; if that fails (no SQE, a submit
      // error), try again next round rather than stop receiving.
      if (!armed_) armed_ = Arm().ok();
    }
  }

 private:
  absl::Status Arm() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return absl::ResourceExhaustedError("no SQE");
    }
    io_uring_prep_recvmsg_multishot(sqe, sock_.fd, &msg_, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
    io_uring_sqe_set_data64(sqe, kRecvTag);
    int r = io_uring_submit(&ring_);
    if (r < 0) return absl::ErrnoToStatus(-r, "io_uring_submit");
    return absl::OkStatus();
  }

  SocketInfo sock_;
  WorkerPath* path_;
  relay::Counters* counters_;
  const Clock* clock_;
  const size_t nbufs_;
  io_uring ring_{};
  bool ring_ready_ = false;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  std::vector<uint8_t> buffers_;
  msghdr msg_{};
  bool armed_ = false;  // a multishot recvmsg is in flight
};

}  // namespace

void DeliverUringBuffer(WorkerPath* path, relay::Counters* c, uint8_t* buf,
                        int res, msghdr* tmpl, int64_t now_ns) {
  io_uring_recvmsg_out* o = io_uring_recvmsg_validate(buf, res, tmpl);
  if (o == nullptr) {
    c->received.Add();
    c->Drop(relay::DropReason::kBadCompletion);
    return;
  }
  const size_t len = io_uring_recvmsg_payload_length(o, res, tmpl);
  const uint8_t* payload =
      static_cast<uint8_t*>(io_uring_recvmsg_payload(o, tmpl));
  // Wrap the cmsg area in a msghdr so one parser serves both engines.
  msghdr h{};
  h.msg_control = reinterpret_cast<uint8_t*>(o + 1) + tmpl->msg_namelen;
  h.msg_controllen = o->controllen;
  const socklen_t namelen =
      o->namelen > socklen_t(kNameSpace) ? kNameSpace : o->namelen;
  DeliverReceived(path, c,
                  static_cast<const sockaddr*>(io_uring_recvmsg_name(o)),
                  namelen, &h, payload, len, o->payloadlen,
                  (o->flags & MSG_TRUNC) != 0, now_ns);
}

absl::Status ProbeIoUring() {
  io_uring ring;
  io_uring_params p{};
  int r = io_uring_queue_init_params(8, &ring, &p);
  if (r < 0) return absl::ErrnoToStatus(-r, "io_uring_setup");
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  absl::Status s;
  if (mem == MAP_FAILED) {
    s = absl::ErrnoToStatus(errno, "mmap");
  } else {
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = 8;
    reg.bgid = 7;
    r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) {
      s = absl::ErrnoToStatus(-r, "io_uring_register_buf_ring");
    } else {
      io_uring_unregister_buf_ring(&ring, 7);
    }
    munmap(mem, 4096);
  }
  io_uring_queue_exit(&ring);
  return s;
}

absl::StatusOr<std::unique_ptr<Worker>> MakeUringWorker(
    const SocketInfo& sock, WorkerPath* path, relay::Counters* counters,
    const Clock* clock, size_t buffers) {
  auto w =
      std::make_unique<UringWorker>(sock, path, counters, clock, buffers);
  absl::Status s = w->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<Worker>(std::move(w));
}

}  // namespace peerrelay::engine
