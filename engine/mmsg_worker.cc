// The recvmmsg/sendmmsg engine: the fallback where io_uring is unavailable,
// and the reference the io_uring engine is measured against.
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <vector>

#include "engine/mmsg_worker.h"

namespace peerrelay::engine {
namespace {

class MmsgWorker : public Worker {
 public:
  MmsgWorker(const SocketInfo& sock, WorkerPath* path,
             relay::Counters* counters, const Clock* clock, size_t buffers)
      : sock_(sock),
        path_(path),
        counters_(counters),
        clock_(clock),
        nbufs_(buffers),
        buffers_(buffers * kRxBufferBytes),
        names_(buffers),
        controls_(buffers * kRxControlSpace),
        iovs_(buffers),
        msgs_(buffers) {
    // Wake up every 100 ms to notice a stop request.
    timeval tv{0, 100'000};
    setsockopt(sock_.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    // The pointers never change; only the lengths and flags the kernel
    // writes are reset, and only for the entries a receive used.
    for (size_t i = 0; i < nbufs_; ++i) {
      iovs_[i] = {&buffers_[i * kRxBufferBytes], kRxBufferBytes};
      msghdr& h = msgs_[i].msg_hdr;
      h.msg_name = &names_[i];
      h.msg_iov = &iovs_[i];
      h.msg_iovlen = 1;
      h.msg_control = &controls_[i * kRxControlSpace];
      ResetLengths(i);
    }
  }

  void Run(const std::atomic<bool>* stop) override {
    while (!stop->load(std::memory_order_relaxed)) {
      // MSG_TRUNC: msg_len is a datagram's real size even when it did not
      // fit its buffer (counted in received_bytes; the datagram is dropped
      // as truncated).
      int n = recvmmsg(sock_.fd, msgs_.data(), unsigned(nbufs_),
                       MSG_WAITFORONE | MSG_TRUNC, nullptr);
      if (n <= 0) continue;  // timeout (EAGAIN), EINTR, or a passing error
      const int64_t now = clock_->NowNs();
      for (int i = 0; i < n; ++i) {
        msghdr& h = msgs_[i].msg_hdr;
        const size_t full = msgs_[i].msg_len;
        const size_t len = std::min(full, iovs_[i].iov_len);
        DeliverReceived(path_, counters_,
                        reinterpret_cast<const sockaddr*>(&names_[i]),
                        h.msg_namelen, &h,
                        static_cast<uint8_t*>(iovs_[i].iov_base), len, full,
                        (h.msg_flags & MSG_TRUNC) != 0, now);
      }
      path_->Flush();  // sends leave from the buffers; reuse after this
      for (int i = 0; i < n; ++i) ResetLengths(size_t(i));
    }
  }

 private:
  void ResetLengths(size_t i) {
    msghdr& h = msgs_[i].msg_hdr;
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_controllen = kRxControlSpace;
    h.msg_flags = 0;
  }

  SocketInfo sock_;
  WorkerPath* path_;
  relay::Counters* counters_;
  const Clock* clock_;
  size_t nbufs_;
  std::vector<uint8_t> buffers_;
  std::vector<sockaddr_storage> names_;
  std::vector<uint8_t> controls_;
  std::vector<iovec> iovs_;
  std::vector<mmsghdr> msgs_;
};

}  // namespace

std::unique_ptr<Worker> MakeMmsgWorker(const SocketInfo& sock,
                                       WorkerPath* path,
                                       relay::Counters* counters,
                                       const Clock* clock, size_t buffers) {
  return std::make_unique<MmsgWorker>(sock, path, counters, clock, buffers);
}

}  // namespace peerrelay::engine
