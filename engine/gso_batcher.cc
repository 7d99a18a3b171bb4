#include "engine/gso_batcher.h"

#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/socket.h"

namespace peerrelay::engine {

GsoBatcher::GsoBatcher(int fd, bool socket_ipv6, size_t max_datagrams)
    : fd_(fd),
      socket_ipv6_(socket_ipv6),
      max_datagrams_(max_datagrams),
      entries_(max_datagrams) {
  groups_.reserve(max_datagrams);
  for (Built& b : built_) {
    b.iovs.resize(max_datagrams);
    b.msgs.resize(max_datagrams);
    b.names.resize(max_datagrams);
    b.cmsgs.resize(max_datagrams);
  }
}

uint32_t GsoBatcher::GroupFor(const SocketAddress& dest, size_t len) {
  // Join the newest group for this destination when the datagram keeps the
  // GSO shape (all segments equal, only the last may be shorter). Only the
  // last few groups are searched: a batch rarely has more destinations, and
  // a miss only costs a separate send.
  const size_t look = groups_.size() < 8 ? groups_.size() : 8;
  for (size_t k = 0; k < look; ++k) {
    const size_t gi = groups_.size() - 1 - k;
    Group& g = groups_[gi];
    if (g.dest != dest) continue;
    if (!g.closed && len <= g.seg && g.count < kMaxSegments &&
        g.bytes + len <= kMaxGsoBytes) {
      ++g.count;
      g.bytes += len;
      if (len < g.seg) g.closed = true;
      return uint32_t(gi);
    }
    break;  // the newest group for dest cannot take it: start a new one
  }
  Group g;
  g.dest = dest;
  g.count = 1;
  g.bytes = len;
  g.seg = len;
  groups_.push_back(g);
  return uint32_t(groups_.size() - 1);
}

void GsoBatcher::AddRun(const uint8_t* p, size_t seg, size_t total,
                        const SocketAddress& dest, relay::Counters* c) {
  size_t off = 0;
  while (off < total) {
    if (n_entries_ == max_datagrams_) Flush(c);
    const uint32_t gi = GroupFor(dest, std::min(seg, total - off));
    entries_[n_entries_++] = {p + off, std::min(seg, total - off), gi};
    off += std::min(seg, total - off);
    // The rest of the run joins this group while it has room: how many
    // whole segments fit is computed once, then filled in a tight loop.
    Group& g = groups_[gi];
    if (g.closed || seg > g.seg) continue;
    const size_t whole = (total - off) / seg;
    size_t n = std::min(whole, kMaxSegments - g.count);
    n = std::min(n, (kMaxGsoBytes - g.bytes) / seg);
    n = std::min(n, max_datagrams_ - n_entries_);
    Entry* e = &entries_[n_entries_];
    for (size_t i = 0; i < n; ++i) e[i] = {p + off + i * seg, seg, gi};
    n_entries_ += n;
    off += n * seg;
    g.count += n;
    g.bytes += n * seg;
    // A short tail joins too, and closes the group.
    const size_t tail = total - off;
    if (n == whole && tail > 0 && tail < seg && g.count < kMaxSegments &&
        g.bytes + tail <= kMaxGsoBytes && n_entries_ < max_datagrams_) {
      entries_[n_entries_++] = {p + off, tail, gi};
      off += tail;
      ++g.count;
      g.bytes += tail;
      g.closed = true;
    }
  }
}

void GsoBatcher::OnRefused(int fd, const msghdr& m, int err,
                           relay::Counters* c) {
  if (m.msg_iovlen <= 1 || (err != EINVAL && err != EIO && err != EMSGSIZE)) {
    c->send_failed.Add(m.msg_iovlen);
    return;
  }
  for (size_t i = 0; i < m.msg_iovlen; ++i) {
    msghdr one{};
    one.msg_name = m.msg_name;
    one.msg_namelen = m.msg_namelen;
    one.msg_iov = &m.msg_iov[i];
    one.msg_iovlen = 1;
    if (sendmsg(fd, &one, 0) < 0) c->send_failed.Add();
  }
}

void GsoBatcher::Flush(relay::Counters* c) {
  if (groups_.empty()) return;
  // Lay the iovecs out group by group (each msghdr needs its own contiguous
  // run), keeping arrival order within a group.
  size_t off = 0;
  for (Group& g : groups_) {
    g.first_iov = off;
    off += g.count;
    g.count = 0;  // refilled below as a cursor
  }
  Built& b = built_[cur_];
  for (size_t i = 0; i < n_entries_; ++i) {
    const Entry& e = entries_[i];
    Group& g = groups_[e.group];
    b.iovs[g.first_iov + g.count++] = {const_cast<uint8_t*>(e.p), e.len};
  }
  const size_t n = groups_.size();
  for (size_t gi = 0; gi < n; ++gi) {
    const Group& g = groups_[gi];
    mmsghdr& mm = b.msgs[gi];
    std::memset(&mm, 0, sizeof(mm));
    mm.msg_hdr.msg_name = &b.names[gi];
    mm.msg_hdr.msg_namelen = g.dest.ToSockaddr(&b.names[gi], socket_ipv6_);
    mm.msg_hdr.msg_iov = &b.iovs[g.first_iov];
    mm.msg_hdr.msg_iovlen = g.count;
    if (g.count > 1) {
      SetUdpSegment(&mm.msg_hdr, b.cmsgs[gi].data(),
                    static_cast<uint16_t>(g.seg));
    }
  }
  if (sender_ != nullptr && sender_->Submit(b.msgs.data(), n)) {
    // Counted as sent; the sender counts what the kernel refuses.
    for (size_t k = 0; k < n; ++k) {
      if (groups_[k].count > 1) {
        c->gso_sends.Add();
        c->gso_segments.Add(groups_[k].count);
      }
    }
    cur_ ^= 1;  // the sender may read this set until the flush after next
    groups_.clear();
    n_entries_ = 0;
    return;
  }
  size_t done = 0;
  while (done < n) {
    int r = sendmmsg(fd_, &b.msgs[done], static_cast<unsigned>(n - done), 0);
    if (r > 0) {
      for (size_t k = done; k < done + size_t(r); ++k) {
        if (groups_[k].count > 1) {
          c->gso_sends.Add();
          c->gso_segments.Add(groups_[k].count);
        }
      }
      done += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // The message at `done` failed. A GSO group is retried without GSO (the
    // kernel refuses GSO e.g. when a segment exceeds the path MTU); a single
    // datagram is lost and counted.
    OnRefused(fd_, b.msgs[done].msg_hdr, errno, c);
    ++done;
  }
  groups_.clear();
  n_entries_ = 0;
}

bool GsoBatcher::SendNow(const uint8_t* p, size_t len,
                         const SocketAddress& dest, const LocalAddress& local) {
  msghdr m{};
  sockaddr_storage ss;
  m.msg_name = &ss;
  m.msg_namelen = dest.ToSockaddr(&ss, socket_ipv6_);
  iovec iov{const_cast<uint8_t*>(p), len};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) uint8_t control[64];
  const size_t clen =
      WritePktinfo(local, socket_ipv6_, control, sizeof(control));
  if (clen > 0) {
    m.msg_control = control;
    m.msg_controllen = clen;
  }
  return sendmsg(fd_, &m, 0) >= 0;
}

}  // namespace peerrelay::engine
