#include "engine/packet_path.h"

#include <netinet/udp.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>

#include "geneve/geneve.h"

namespace peerrelay::engine {

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

GsoBatcher::GsoBatcher(int fd, bool socket_ipv6, size_t max_datagrams)
    : fd_(fd),
      socket_ipv6_(socket_ipv6),
      max_datagrams_(max_datagrams),
      entries_(max_datagrams),
      iovs_(max_datagrams),
      msgs_(max_datagrams),
      names_(max_datagrams),
      cmsgs_(max_datagrams) {
  groups_.reserve(max_datagrams);
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

void GsoBatcher::SendOneByOne(const Group& g, relay::Counters* c) {
  for (size_t i = 0; i < g.count; ++i) {
    msghdr m{};
    sockaddr_storage ss;
    m.msg_name = &ss;
    m.msg_namelen = g.dest.ToSockaddr(&ss, socket_ipv6_);
    m.msg_iov = &iovs_[g.first_iov + i];
    m.msg_iovlen = 1;
    if (sendmsg(fd_, &m, 0) < 0) c->send_failed.Add();
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
  for (size_t i = 0; i < n_entries_; ++i) {
    const Entry& e = entries_[i];
    Group& g = groups_[e.group];
    iovs_[g.first_iov + g.count++] = {const_cast<uint8_t*>(e.p), e.len};
  }
  const size_t n = groups_.size();
  for (size_t gi = 0; gi < n; ++gi) {
    const Group& g = groups_[gi];
    mmsghdr& mm = msgs_[gi];
    std::memset(&mm, 0, sizeof(mm));
    mm.msg_hdr.msg_name = &names_[gi];
    mm.msg_hdr.msg_namelen = g.dest.ToSockaddr(&names_[gi], socket_ipv6_);
    mm.msg_hdr.msg_iov = &iovs_[g.first_iov];
    mm.msg_hdr.msg_iovlen = g.count;
    if (g.count > 1) {
      cmsghdr* cm = reinterpret_cast<cmsghdr*>(cmsgs_[gi].data());
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t seg = static_cast<uint16_t>(g.seg);
      std::memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
      mm.msg_hdr.msg_control = cmsgs_[gi].data();
      mm.msg_hdr.msg_controllen = cmsgs_[gi].size();
    }
  }
  size_t done = 0;
  while (done < n) {
    int r = sendmmsg(fd_, &msgs_[done], static_cast<unsigned>(n - done), 0);
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
    const Group& g = groups_[done];
    if (g.count > 1 &&
        (errno == EINVAL || errno == EIO || errno == EMSGSIZE)) {
      SendOneByOne(g, c);
    } else {
      c->send_failed.Add(g.count);
    }
    ++done;
  }
  groups_.clear();
  n_entries_ = 0;
}

SlowPathQueue::SlowPathQueue(size_t control_capacity, size_t data_capacity)
    : control_capacity_(control_capacity),
      data_capacity_(data_capacity),
      slots_(std::max<size_t>(1, control_capacity + data_capacity)),
      items_(new QueueItem[slots_]),
      // Not value-initialised: pages are touched only when a slot is used.
      bytes_(new uint8_t[slots_ * kMaxBytes]) {}

uint64_t SlowPathQueue::TryPush(QueueItem::Kind kind, int fd,
                                bool socket_ipv6, const SocketAddress& from,
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
          .fd = fd,
          .socket_ipv6 = socket_ipv6,
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

WorkerPath::WorkerPath(relay::Server* server, SlowPathQueue* slow, int fd,
                       bool socket_ipv6, relay::Counters* counters,
                       size_t max_datagrams, HandshakeLimiter limiter)
    : server_(server),
      slow_(slow),
      fd_(fd),
      socket_ipv6_(socket_ipv6),
      counters_(counters),
      batcher_(fd, socket_ipv6, max_datagrams),
      limiter_(std::move(limiter)),
      max_pending_(std::max(kMinPendingSources, 2 * slow->capacity())) {}

void WorkerPath::OnReceive(const uint8_t* data, size_t len, const RxMeta& meta,
                           const SocketAddress& from, int64_t now_ns) {
  if (meta.kernel_drops) counters_->kernel_drops.Set(*meta.kernel_drops);
  const size_t seg = meta.gro_size;
  if (seg == 0 || len <= seg) {
    OnDatagram(data, len, meta, from, now_ns);
    return;
  }
  // GRO: equal-size segments, the last possibly shorter; all from `from`.
  // Runs of data segments with identical Geneve headers (one client's
  // WireGuard burst for one endpoint) share one verdict: one table lookup
  // per run instead of per segment.
  size_t off = 0;
  while (off < len) {
    const uint8_t* head = data + off;
    const size_t head_len = std::min(seg, len - off);
    if (head_len < geneve::kHeaderSize || (head[1] & 0x80) != 0) {
      OnDatagram(head, head_len, meta, from, now_ns);  // short or control
      off += head_len;
      continue;
    }
    // The 8-byte Geneve header compared as one 64-bit word.
    static_assert(geneve::kHeaderSize == sizeof(uint64_t));
    uint64_t head_word;
    std::memcpy(&head_word, head, sizeof(head_word));
    uint32_t count = 1;
    size_t bytes = head_len;
    size_t next = off + head_len;
    while (next < len) {
      const size_t l = std::min(seg, len - next);
      uint64_t word;
      if (l < geneve::kHeaderSize) break;
      std::memcpy(&word, data + next, sizeof(word));
      if (word != head_word) break;
      ++count;
      bytes += l;
      next += l;
    }
    counters_->received.Add(count);
    counters_->received_bytes.Add(bytes);
    relay::Verdict v =
        server_->Classify(head, head_len, count, bytes, from, now_ns);
    if (v.kind == relay::Verdict::kForward) {
      counters_->relayed.Add(count);
      counters_->relayed_bytes.Add(bytes);
      batcher_.AddRun(data + off, seg, bytes, v.destination, counters_);
    } else if (!pending_.empty() && MayWait(v.reason) &&
               pending_.contains(from)) {
      // Each segment waits (or not) on its own, in order.
      for (size_t o = off; o < next; o += std::min(seg, len - o)) {
        OnDropped(data + o, std::min(seg, len - o), meta, from, now_ns,
                  v.reason);
      }
    } else {
      counters_->Drop(v.reason, count);
    }
    off = next;
  }
}

void WorkerPath::OnDatagram(const uint8_t* data, size_t len,
                            const RxMeta& meta, const SocketAddress& from,
                            int64_t now_ns) {
  counters_->received.Add();
  counters_->received_bytes.Add(len);
  relay::Verdict v = server_->Classify(data, len, 1, len, from, now_ns);
  if (v.kind == relay::Verdict::kForward) {
    counters_->relayed.Add();
    counters_->relayed_bytes.Add(len);
    batcher_.Add(data, len, v.destination, counters_);
  } else if (v.kind == relay::Verdict::kSlowPath) {
    OnControl(data, len, meta, from, now_ns);
  } else if (!pending_.empty() && MayWait(v.reason)) {
    OnDropped(data, len, meta, from, now_ns, v.reason);
  } else {
    counters_->Drop(v.reason);
  }
}

void WorkerPath::OnControl(const uint8_t* data, size_t len,
                           const RxMeta& meta, const SocketAddress& from,
                           int64_t now_ns) {
  if (len > SlowPathQueue::kMaxControlBytes) {
    counters_->Drop(relay::DropReason::kOversizedControl);
    return;
  }
  if (!limiter_.Allow(from, now_ns)) {
    counters_->Drop(relay::DropReason::kRateLimited);
    return;
  }
  const uint64_t seq = slow_->TryPush(QueueItem::kControl, fd_, socket_ipv6_,
                                      from, meta.local, data, len);
  if (seq == 0) {
    counters_->Drop(relay::DropReason::kSlowPathQueueFull);
    return;
  }
  counters_->to_slow_path.Add();
  // Remember it, so this source's data is not judged before it is applied.
  // Entries whose item is done are stale; they are pruned in one sweep when
  // the table reaches twice what the queue can hold at once, so the table
  // stays bounded however many sources send control datagrams.
  if (pending_.size() >= max_pending_) {
    const uint64_t done = slow_->completed();
    absl::erase_if(pending_,
                   [done](const auto& kv) { return kv.second.seq <= done; });
  }
  pending_[from] = {.seq = seq, .waiting = 0};
}

void WorkerPath::OnDropped(const uint8_t* data, size_t len,
                           const RxMeta& meta, const SocketAddress& from,
                           int64_t now_ns, relay::DropReason reason) {
  auto it = pending_.find(from);
  if (it == pending_.end()) {
    counters_->Drop(reason);
    return;
  }
  if (it->second.seq <= slow_->completed()) {
    // Everything this source queued has been applied, possibly after the
    // table was read above: judge it again, once, against the new state.
    pending_.erase(it);
    relay::Verdict v = server_->Classify(data, len, 1, len, from, now_ns);
    if (v.kind == relay::Verdict::kForward) {
      counters_->relayed.Add();
      counters_->relayed_bytes.Add(len);
      batcher_.Add(data, len, v.destination, counters_);
    } else {
      counters_->Drop(v.reason);
    }
    return;
  }
  if (it->second.waiting >= kMaxWaitPerControl) {
    counters_->Drop(relay::DropReason::kControlWaitFull);
    return;
  }
  const uint64_t seq = slow_->TryPush(QueueItem::kData, fd_, socket_ipv6_,
                                      from, meta.local, data, len);
  if (seq == 0) {
    counters_->Drop(relay::DropReason::kControlWaitFull);
    return;
  }
  // Later data from this source now waits behind this one, keeping order
  // among the waiting datagrams.
  it->second.seq = seq;
  ++it->second.waiting;
  counters_->to_slow_path.Add();
  counters_->waited_for_control.Add();
}

SlowPathWorker::SlowPathWorker(relay::Server* server, SlowPathQueue* queue,
                               relay::Counters* counters)
    : server_(server), queue_(queue), counters_(counters) {
  thread_ = std::thread([this] { Run(); });
}

SlowPathWorker::~SlowPathWorker() { Stop(); }

void SlowPathWorker::Stop() {
  stop_.store(true);
  queue_->Close();
  if (thread_.joinable()) thread_.join();
}

void SlowPathWorker::Run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    const QueueItem* item = queue_->Front(100);
    if (item == nullptr) continue;
    if (item->kind == QueueItem::kControl) {
      HandleControl(*item);
    } else {
      HandleWaitingData(*item);
    }
    queue_->Release();
  }
}

void SlowPathWorker::HandleControl(const QueueItem& item) {
  relay::ControlReply reply;
  if (!server_->HandleControl(item.bytes, item.len, item.from,
                              MonotonicNowNs(), counters_, &reply)) {
    return;
  }
  msghdr m{};
  sockaddr_storage ss;
  m.msg_name = &ss;
  m.msg_namelen = reply.destination.ToSockaddr(&ss, item.socket_ipv6);
  iovec iov{reply.bytes.data(), reply.len};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) uint8_t control[64];
  size_t clen =
      WritePktinfo(item.local, item.socket_ipv6, control, sizeof(control));
  if (clen > 0) {
    m.msg_control = control;
    m.msg_controllen = clen;
  }
  if (sendmsg(item.fd, &m, 0) < 0) counters_->send_failed.Add();
}

void SlowPathWorker::HandleWaitingData(const QueueItem& item) {
  relay::Verdict v = server_->Classify(item.bytes, item.len, 1, item.len,
                                       item.from, MonotonicNowNs());
  if (v.kind != relay::Verdict::kForward) {
    counters_->Drop(v.reason);
    return;
  }
  counters_->relayed.Add();
  counters_->relayed_bytes.Add(item.len);
  // Sent as the worker would have: unchanged, from the socket it came in
  // on, the kernel choosing the source address.
  msghdr m{};
  sockaddr_storage ss;
  m.msg_name = &ss;
  m.msg_namelen = v.destination.ToSockaddr(&ss, item.socket_ipv6);
  iovec iov{const_cast<uint8_t*>(item.bytes), item.len};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (sendmsg(item.fd, &m, 0) < 0) counters_->send_failed.Add();
}

}  // namespace peerrelay::engine
