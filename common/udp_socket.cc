#include "common/udp_socket.h"

#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/udp_options.h"

namespace peerrelay {

absl::StatusOr<UdpSocket> UdpSocket::Open(const SocketAddress& bind) {
  const bool v6 = !bind.is_ipv4();
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_storage ss;
  socklen_t len = bind.ToSockaddr(&ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    close(fd);
    return absl::ErrnoToStatus(e, "bind");
  }
  SetSocketBuffers(fd, 4 << 20);
  len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return UdpSocket(fd, *SocketAddress::FromSockaddr(&ss, len));
}

UdpSocket& UdpSocket::operator=(UdpSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    local_ = o.local_;
    capture_ = o.capture_;
    sent_ = o.sent_;
    o.fd_ = -1;
  }
  return *this;
}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) close(fd_);
}

bool UdpSocket::SendTo(const Bytes& d, const SocketAddress& to) {
  sockaddr_storage ss;
  socklen_t len = to.ToSockaddr(&ss, !local_.is_ipv4());
  const bool ok = sendto(fd_, d.data(), d.size(), 0,
                         reinterpret_cast<sockaddr*>(&ss),
                         len) == ssize_t(d.size());
  if (ok) ++sent_;
  if (ok && capture_ != nullptr) {
    capture_->Write(RealtimeNowNs(), local_, to, d.data(), d.size());
  }
  return ok;
}

bool UdpSocket::SendGso(const std::vector<Bytes>& ds, const SocketAddress& to) {
  if (ds.empty()) return true;
  std::vector<iovec> iov;
  for (const Bytes& d : ds) {
    iov.push_back({const_cast<uint8_t*>(d.data()), d.size()});
  }
  sockaddr_storage ss;
  msghdr m{};
  m.msg_name = &ss;
  m.msg_namelen = to.ToSockaddr(&ss, !local_.is_ipv4());
  m.msg_iov = iov.data();
  m.msg_iovlen = iov.size();
  alignas(cmsghdr) uint8_t control[kUdpSegmentSpace];
  if (ds.size() > 1) SetUdpSegment(&m, control, uint16_t(ds[0].size()));
  const bool ok = sendmsg(fd_, &m, 0) >= 0;
  if (ok) sent_ += ds.size();
  if (ok && capture_ != nullptr) {
    const int64_t now = RealtimeNowNs();
    for (const Bytes& d : ds) capture_->Write(now, local_, to, d.data(), d.size());
  }
  return ok;
}

std::optional<std::pair<Bytes, SocketAddress>> UdpSocket::Recv(
    int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
  Bytes buf(65536);
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  ssize_t n = recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                       reinterpret_cast<sockaddr*>(&ss), &len);
  if (n < 0) return std::nullopt;
  buf.resize(size_t(n));
  auto from = SocketAddress::FromSockaddr(&ss, len);
  if (!from) return std::nullopt;
  if (capture_ != nullptr) {
    capture_->Write(RealtimeNowNs(), *from, local_, buf.data(), buf.size());
  }
  return std::make_pair(std::move(buf), *from);
}

}  // namespace peerrelay
