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
// Send: the forwards of a batch, GSO-coalesced per destination, straight
// from the receive buffers (no user-space copy). With send_sqes (default)
// they are SENDMSG SQEs with MSG_DONTWAIT that leave in the same
// io_uring_enter that waits for the next receives: one system call per
// batch where recvmmsg + sendmmsg take two. MSG_DONTWAIT makes each send
// complete inside that enter (a full socket buffer fails it with -EAGAIN
// instead of parking it): its buffers go back to the ring when its
// completion is harvested, and -EAGAIN is retried with a blocking sendmsg.
// Batches of more than max_sqe_sends messages (many destinations) and any
// batch while sends are still outstanding use one sendmmsg, synchronous:
// when it returns the kernel holds its own copy.
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

#include <sys/syscall.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "engine/uring_worker.h"

namespace peerrelay::engine {
namespace {

constexpr uint16_t kBufGroup = 1;
constexpr uint64_t kRecvTag = 1;
// Send completions: kSendTag | the message's index in the batch.
constexpr uint64_t kSendTag = uint64_t{1} << 32;
constexpr unsigned kSqEntries = 256;
// IORING_REGISTER_NAPI (kernel 6.9) and its argument; liburing 2.3 has
// neither.
constexpr unsigned kRegisterNapi = 27;
struct NapiArg {
  uint32_t busy_poll_to;
  uint8_t prefer_busy_poll;
  uint8_t pad[3];
  uint64_t resv;
};
// 32 bytes of name space: sockaddr_in6 is 28, and 32 keeps the control
// messages that follow 8-byte aligned.
constexpr socklen_t kNameSpace = 32;
constexpr size_t kBufBytes =
    sizeof(io_uring_recvmsg_out) + kNameSpace + kRxControlSpace +
    kRxBufferBytes;

class UringWorker : public Worker, public BatchSender {
 public:
  UringWorker(const SocketInfo& sock, WorkerPath* path, PacketWriter* writer,
              relay::Counters* counters, const Clock* clock, size_t buffers,
              UringOptions options)
      : sock_(sock),
        path_(path),
        writer_(writer),
        counters_(counters),
        clock_(clock),
        nbufs_(buffers),
        o_(options) {}

  ~UringWorker() override {
    if (writer_ != nullptr && async_) writer_->AttachSender(nullptr);
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
    int r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (r == -EINVAL) {  // kernel older than 6.1: no DEFER_TASKRUN
      p = {};
      p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
      p.cq_entries = 1024;
      r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    }
    if (r < 0) return absl::ErrnoToStatus(-r, "io_uring_queue_init");
    ring_ready_ = true;
    if (o_.register_fds) {
      // Both are optimisations: a kernel that refuses one runs without it.
      (void)io_uring_register_ring_fd(&ring_);
      fixed_ = io_uring_register_files(&ring_, &sock_.fd, 1) == 0;
    }
    if (o_.napi_busy_poll_us > 0) {
      NapiArg napi{};
      napi.busy_poll_to = o_.napi_busy_poll_us;
      napi.prefer_busy_poll = 1;
      if (syscall(__NR_io_uring_register, ring_.ring_fd, kRegisterNapi, &napi,
                  1) != 0) {
        PEERRELAY_LOG(kWarning, "NAPI busy polling refused (",
                      std::strerror(errno),
                      "; needs Linux 6.9+): running without it");
      } else {
        PEERRELAY_LOG(kInfo, "NAPI busy polling on: ", o_.napi_busy_poll_us,
                      " us per wait");
      }
    }

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
    // The batches' sends as SQEs when the writer can hand them off; else
    // it sends them itself (synchronously) and InFlight() stays 0.
    if (armed_ && o_.send_sqes && writer_ != nullptr) {
      async_ = writer_->AttachSender(this);
    }
    return armed;
  }

  size_t InFlight() const override { return pending_sends_; }

  // BatchSender: the batch's messages as SENDMSG SQEs, submitted by the
  // next io_uring_enter (the one that waits for receives).
  bool Submit(mmsghdr* msgs, size_t n) override {
    if (pending_sends_ > 0 || n > o_.max_sqe_sends ||
        io_uring_sq_space_left(&ring_) < n + 1) {  // + 1: a re-arm
      return false;
    }
    for (size_t i = 0; i < n; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      io_uring_prep_sendmsg(sqe, fixed_ ? 0 : sock_.fd, &msgs[i].msg_hdr,
                            MSG_DONTWAIT);
      if (fixed_) sqe->flags |= IOSQE_FIXED_FILE;
      if (o_.skip_send_cqes) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
      io_uring_sqe_set_data64(sqe, kSendTag | i);
    }
    sent_msgs_ = msgs;
    pending_sends_ = n;
    return true;
  }

  void Run(const std::atomic<bool>* stop) override {
    std::vector<uint16_t> to_return;
    to_return.reserve(nbufs_);
    in_flight_bufs_.reserve(nbufs_);
    __kernel_timespec ts{0, 100'000'000};
    while (!stop->load(std::memory_order_relaxed)) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_cq_ready(&ring_) == 0) {
        // Submits the last batch's sends and waits for receives: one enter.
        // Errors (-ETIME, -EINTR, -EBUSY with a CQ overflow pending) need no
        // handling here: whatever completions there are get harvested below.
        (void)io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      } else if (io_uring_sq_ready(&ring_) > 0) {
        (void)io_uring_submit(&ring_);
      }
      // MSG_DONTWAIT sends complete inside the enter that submitted them:
      // with skipped completions, only failures will say anything.
      if (o_.skip_send_cqes && io_uring_sq_ready(&ring_) == 0) {
        pending_sends_ = 0;
      }
      const int64_t now = clock_->NowNs();
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        if (cqe->user_data & kSendTag) {
          OnSendCompletion(cqe);
          continue;
        }
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
      // The writer contract (packet_writer.h): a receive buffer goes back
      // to the ring only when no send still in flight may read it.
      if (writer_->InFlight() == 0) ReturnBuffers(in_flight_bufs_);
      // Sends: queued as SQEs (their buffers stay out until they complete)
      // or sent now with sendmmsg (buffers may be refilled at once).
      path_->Flush();
      if (writer_->InFlight() > 0) {
        in_flight_bufs_.insert(in_flight_bufs_.end(), to_return.begin(),
                               to_return.end());
        to_return.clear();
      } else {
        ReturnBuffers(to_return);
      }
      // Re-arm a receive that ended; if that fails (no SQE, a submit
      // error), try again next round rather than stop receiving.
      if (!armed_) armed_ = Arm().ok();
    }
  }

 private:
  // Each returned buffer takes the next slot after the ring's tail.
  void ReturnBuffers(std::vector<uint16_t>& bids) {
    if (bids.empty()) return;
    for (size_t k = 0; k < bids.size(); ++k) {
      const uint16_t bid = bids[k];
      io_uring_buf_ring_add(buf_ring_, &buffers_[bid * kBufBytes], kBufBytes,
                            bid, io_uring_buf_ring_mask(nbufs_), int(k));
    }
    io_uring_buf_ring_advance(buf_ring_, bids.size());
    bids.clear();
  }

  // A send SQE's completion: success, or the fallbacks sendmmsg would
  // have taken (its batch's messages are intact until the flush after
  // next, and that flush comes after this harvest).
  void OnSendCompletion(const io_uring_cqe* cqe) {
    if (!o_.skip_send_cqes && pending_sends_ > 0) --pending_sends_;
    if (cqe->res >= 0) return;
    const msghdr& m = sent_msgs_[cqe->user_data & 0xFFFF].msg_hdr;
    const int err = -cqe->res;
    // A full socket buffer: wait for room, as sendmmsg would.
    if (err == EAGAIN && sendmsg(sock_.fd, &m, 0) >= 0) return;
    GsoBatcher::OnRefused(sock_.fd, m, err, counters_);
  }

  absl::Status Arm() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return absl::ResourceExhaustedError("no SQE");
    }
    // MSG_TRUNC: a datagram larger than the buffer reports its real size
    // in payloadlen (counted in received_bytes), not the bytes copied.
    io_uring_prep_recvmsg_multishot(sqe, fixed_ ? 0 : sock_.fd, &msg_,
                                    MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    if (fixed_) sqe->flags |= IOSQE_FIXED_FILE;
    sqe->buf_group = kBufGroup;
    io_uring_sqe_set_data64(sqe, kRecvTag);
    int r = io_uring_submit(&ring_);
    if (r < 0) return absl::ErrnoToStatus(-r, "io_uring_submit");
    return absl::OkStatus();
  }

  SocketInfo sock_;
  WorkerPath* path_;
  PacketWriter* writer_;
  bool async_ = false;  // the writer hands its batches to this worker
  relay::Counters* counters_;
  const Clock* clock_;
  const size_t nbufs_;
  const UringOptions o_;
  bool fixed_ = false;    // the socket is fixed file 0
  // Send SQEs of the last submitted batch not yet completed, their
  // messages, and the receive buffers they (may) point into.
  size_t pending_sends_ = 0;
  mmsghdr* sent_msgs_ = nullptr;
  std::vector<uint16_t> in_flight_bufs_;
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
    const SocketInfo& sock, WorkerPath* path, PacketWriter* writer,
    relay::Counters* counters, const Clock* clock, size_t buffers,
    UringOptions options) {
  if (writer == nullptr) return absl::InvalidArgumentError("no writer");
  auto w = std::make_unique<UringWorker>(sock, path, writer, counters, clock,
                                         buffers, options);
  absl::Status s = w->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<Worker>(std::move(w));
}

}  // namespace peerrelay::engine
