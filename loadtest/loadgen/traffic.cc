#include "loadtest/loadgen/traffic.h"

#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/small_file.h"
#include "common/udp_options.h"
#include "disco/envelope.h"
#include "geneve/geneve.h"
#include "loadtest/loadgen/stats.h"
#include "client/turn.h"
#include "client/wire.h"

namespace peerrelay::loadgen {
namespace {

constexpr int kMaxGsoSegments = 64;
constexpr size_t kRxBufSize = 65536;
constexpr int kRxBatch = 16;

struct Flow {
  uint32_t pair = 0;
  uint8_t dir = 0;
  uint64_t next_seq = 0;
};

// The receive side: per-flow trackers and the latency histogram.
class Receiver {
 public:
  Receiver(const Setup& s, const TrafficOptions& o)
      : setup_(s), o_(o), trackers_(s.pairs.size() * 2) {
    bufs_.reset(new uint8_t[kRxBatch * kRxBufSize]);
    // Count mode: the kernel copies only the first segment's header.
    const size_t take =
        o.count_only ? kHeaderSize + turn::kChannelDataHeader : kRxBufSize;
    for (int i = 0; i < kRxBatch; ++i) {
      iov_[i] = {bufs_.get() + size_t(i) * kRxBufSize, take};
      std::memset(&msgs_[i], 0, sizeof(msgs_[i]));
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_control = ctrl_[i];
      msgs_[i].msg_hdr.msg_controllen = sizeof(ctrl_[i]);
    }
  }

  // Reads everything waiting on socket `fd` (index `sock`).
  void Drain(int fd, int sock) {
    while (true) {
      for (int i = 0; i < kRxBatch; ++i) {
        msgs_[i].msg_hdr.msg_controllen = sizeof(ctrl_[i]);
      }
      const int n = recvmmsg(fd, msgs_, kRxBatch,
                             MSG_DONTWAIT | (o_.count_only ? MSG_TRUNC : 0),
                             nullptr);
      if (n <= 0) return;
      const int64_t now = MonotonicNowNs();
      for (int i = 0; i < n; ++i) {
        OnMessage(sock, bufs_.get() + size_t(i) * kRxBufSize, msgs_[i].msg_len,
                  UdpGroSize(msgs_[i].msg_hdr), now);
      }
      if (n < kRxBatch) return;
    }
  }

  void Finish(TrafficResult* r) const {
    for (const SeqTracker& t : trackers_) {
      r->duplicates += t.duplicates();
      r->reordered += t.reordered();
    }
    r->received = received_;
    r->received_bytes = received_bytes_;
    r->corrupted = corrupted_;
    r->misdelivered = misdelivered_;
    r->foreign = foreign_;
    r->p50_ns = latency_.Quantile(0.5);
    r->p99_ns = latency_.Quantile(0.99);
    r->p999_ns = latency_.Quantile(0.999);
    r->max_ns = latency_.max();
  }
  uint64_t unique() const {
    uint64_t n = 0;
    for (const SeqTracker& t : trackers_) n += t.unique();
    return n;
  }
  uint64_t received() const { return received_; }
  uint64_t received_bytes() const { return received_bytes_; }
  const LatencyHistogram& latency() const { return latency_; }

 private:
  void OnMessage(int sock, const uint8_t* p, size_t len, size_t seg,
                 int64_t now) {
    if (seg == 0) seg = len;
    if (o_.capture != nullptr) {
      // Each segment as the datagram the relay sent (the sockets are
      // connected to it: nothing else arrives).
      o_.capture->WriteSegments(RealtimeNowNs(), o_.capture_peer,
                                setup_.sockets[size_t(sock)].local(), p, len,
                                seg);
    }
    if (o_.count_only) {
      OnCounted(sock, p, len, seg, now);
      return;
    }
    for (size_t off = 0; off < len; off += seg) {
      const size_t n = std::min(seg, len - off);
      OnDatagram(sock, p + off, n, now);
    }
  }

  // TURN mode: the ChannelData header off, or false when it is not one.
  bool Unwrap(const uint8_t*& p, size_t& len) const {
    if (!o_.turn) return true;
    if (len < turn::kChannelDataHeader || (p[0] & 0xc0) != 0x40) return false;
    p += turn::kChannelDataHeader;
    len -= turn::kChannelDataHeader;
    return true;
  }
  size_t inner_size() const {
    return o_.turn ? o_.size - turn::kChannelDataHeader : o_.size;
  }

  void OnDatagram(int sock, const uint8_t* p, size_t len, int64_t now) {
    DatagramInfo d;
    if (!Unwrap(p, len)) {
      ++foreign_;
      return;
    }
    if (!ParseDatagram(p, len, &d) || d.pair >= setup_.pairs.size()) {
      ++foreign_;
      return;
    }
    const Pair& pair = setup_.pairs[d.pair];
    ++received_;
    received_bytes_ += len;
    // A to B arrives on B's socket and the other way round.
    if (pair.sock[d.direction == 0 ? 1 : 0] != sock) {
      ++misdelivered_;
      return;
    }
    if (d.vni != pair.vni || len != inner_size() ||
        (o_.check_payload && !FillIntact(p, len, d))) {
      ++corrupted_;
      return;
    }
    trackers_[size_t(d.pair) * 2 + d.direction].Add(d.seq);
    latency_.Add(now - d.sent_ns);
  }

  // Count mode: `len` bytes in segments of `seg` arrived; only the first
  // segment's header was copied.
  void OnCounted(int sock, const uint8_t* p, size_t len, size_t seg,
                 int64_t now) {
    DatagramInfo d;
    size_t first = kHeaderSize + (o_.turn ? turn::kChannelDataHeader : 0);
    if (!Unwrap(p, first) || !ParseDatagram(p, kHeaderSize, &d) ||
        d.pair >= setup_.pairs.size()) {
      ++foreign_;
      return;
    }
    const uint64_t n = (len + seg - 1) / seg;
    received_ += n;
    received_bytes_ += len;
    const Pair& pair = setup_.pairs[d.pair];
    if (pair.sock[d.direction == 0 ? 1 : 0] != sock) {
      misdelivered_ += n;
      return;
    }
    if (d.vni != pair.vni || seg != o_.size) {
      corrupted_ += n;
      return;
    }
    SeqTracker& t = trackers_[size_t(d.pair) * 2 + d.direction];
    for (uint64_t k = 0; k < n; ++k) t.Add(d.seq + k);
    latency_.Add(now - d.sent_ns);
  }

  const Setup& setup_;
  const TrafficOptions& o_;
  std::vector<SeqTracker> trackers_;
  LatencyHistogram latency_;
  std::unique_ptr<uint8_t[]> bufs_;
  iovec iov_[kRxBatch];
  mmsghdr msgs_[kRxBatch];
  alignas(cmsghdr) char ctrl_[kRxBatch][64];
  uint64_t received_ = 0, received_bytes_ = 0, corrupted_ = 0;
  uint64_t misdelivered_ = 0, foreign_ = 0;
};

// One send of `count` datagrams of `size` bytes from `fd` to `to`: one
// sendmsg with UDP_SEGMENT, or sendmmsg of separate datagrams.
// The socket is connected to the relay.
int SendBurst(int fd, uint8_t* buf, size_t size, int count, bool gso) {
  if (gso && count > 1) {
    iovec iov{buf, size * size_t(count)};
    alignas(cmsghdr) char ctrl[kUdpSegmentSpace];
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    SetUdpSegment(&h, ctrl, uint16_t(size));
    return sendmsg(fd, &h, 0) > 0 ? count : -1;
  }
  mmsghdr msgs[kMaxGsoSegments];
  iovec iov[kMaxGsoSegments];
  for (int i = 0; i < count; ++i) {
    iov[i] = {buf + size * size_t(i), size};
    std::memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  return sendmmsg(fd, msgs, unsigned(count), 0);
}

// A forged Bind for `vni` from `sender`: the real framing, a random nonce
// and a box of random bytes.
size_t Forge(uint8_t* out, uint32_t vni, const disco::DiscoKey& sender,
             uint64_t* rng) {
  geneve::Header h;
  h.control = true;
  h.protocol = geneve::kProtocolDisco;
  h.vni = vni;
  geneve::Encode(h, out);
  size_t n = geneve::kHeaderSize;
  std::memcpy(out + n, disco::kMagic, disco::kMagicSize);
  n += disco::kMagicSize;
  std::memcpy(out + n, sender.bytes.data(), disco::kKeySize);
  n += disco::kKeySize;
  for (size_t end = n + disco::kNonceSize + 80; n < end; n += 8) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    std::memcpy(out + n, rng, 8);
  }
  return n;
}

std::string Human(double v) {
  char b[32];
  if (v >= 1e6) {
    std::snprintf(b, sizeof(b), "%.2fM", v / 1e6);
  } else if (v >= 1e3) {
    std::snprintf(b, sizeof(b), "%.1fk", v / 1e3);
  } else {
    std::snprintf(b, sizeof(b), "%.0f", v);
  }
  return b;
}

}  // namespace

CpuMeter::CpuMeter() : last_(Read()) {}

std::vector<CpuMeter::Times> CpuMeter::Read() {
  std::vector<Times> out;
  absl::StatusOr<std::string> stat = ReadSmallFile("/proc/stat", 1 << 20);
  if (!stat.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    if (!absl::ConsumePrefix(&line, "cpu") || line.empty() || line[0] == ' ') {
      continue;
    }
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    size_t cpu;
    if (f.size() < 5 || !absl::SimpleAtoi(f[0], &cpu)) continue;
    Times t;
    for (size_t i = 1; i < f.size() && i <= 8; ++i) {
      uint64_t v = 0;
      (void)absl::SimpleAtoi(f[i], &v);
      t.total += v;
      if (i != 4 && i != 5) t.busy += v;  // idle, iowait
    }
    if (out.size() <= cpu) out.resize(cpu + 1);
    out[cpu] = t;
  }
  return out;
}

std::vector<double> CpuMeter::Sample() {
  std::vector<Times> now = Read();
  std::vector<double> busy(now.size(), -1);
  for (size_t i = 0; i < now.size() && i < last_.size(); ++i) {
    const uint64_t total = now[i].total - last_[i].total;
    if (total > 0) busy[i] = double(now[i].busy - last_[i].busy) / double(total);
  }
  last_ = now;
  return busy;
}

TrafficResult RunTraffic(Setup& setup, const SocketAddress& relay,
                         const TrafficOptions& o, std::FILE* progress) {
  TrafficResult r;
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  std::vector<Flow> flows;
  for (size_t p = 0; p < setup.pairs.size(); ++p) {
    flows.push_back({uint32_t(p), 0, 0});
    if (o.both_ways) flows.push_back({uint32_t(p), 1, 0});
  }
  Receiver rx(setup, o);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < setup.sockets.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, setup.sockets[i].fd(), &ev);
  }
  auto drain = [&](int timeout_ms) {
    epoll_event evs[256];
    const int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; ++i) {
      const int s = int(evs[i].data.u64);
      rx.Drain(setup.sockets[size_t(s)].fd(), s);
    }
    return n;
  };
  const int burst = std::clamp(o.burst, 1, kMaxGsoSegments);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[o.size * size_t(burst)]);
  // TURN: each datagram is ChannelData around a loadgen datagram.
  const size_t wrap = o.turn ? turn::kChannelDataHeader : 0;
  const size_t inner = o.size - wrap;
  for (int i = 0; i < burst; ++i) {
    WriteDatagram(buf.get() + o.size * size_t(i) + wrap, inner, {});
  }
  // Every client socket talks to the relay only: connect them, so each
  // send skips the route lookup and only the relay's datagrams arrive.
  {
    sockaddr_storage ss;
    const socklen_t sl = relay.ToSockaddr(&ss);
    for (UdpSocket& s : setup.sockets) {
      connect(s.fd(), reinterpret_cast<sockaddr*>(&ss), sl);
    }
  }
  // Forgers: plain sockets of their own (the relay limits per source).
  std::vector<UdpSocket> forgers;
  if (o.forge_rate > 0) {
    const SocketAddress local =
        o.local ? *o.local
                : SocketAddress::Parse(relay.is_ipv4() ? "127.0.0.1:0" : "[::1]:0")
                      .value();
    for (int i = 0; i < o.forge_sockets; ++i) {
      auto s = UdpSocket::Open(local);
      if (s.ok()) forgers.push_back(std::move(*s));
    }
  }
  uint64_t rng = 0x243f6a8885a308d3ull;
  uint8_t forged[256];
  CpuMeter cpu;
  CpuMeter cpu_line;
  const int64_t start = MonotonicNowNs();
  const int64_t end = start + int64_t(o.duration_s * 1e9);
  int64_t next_line = start + 1'000'000'000;
  uint64_t line_rx = 0, line_sent = 0;
  size_t rr = 0;
  int64_t now = start;
  while (!flows.empty() && now < end &&
         (o.max_datagrams == 0 || r.sent < o.max_datagrams)) {
    int64_t due = burst;
    if (o.rate > 0) {
      due = int64_t(double(now - start) / 1e9 * o.rate) - int64_t(r.sent);
      due = std::min<int64_t>(due, burst);
    }
    if (o.max_datagrams > 0) {
      due = std::min<int64_t>(due, int64_t(o.max_datagrams - r.sent));
    }
    if (due > 0) {
      Flow& f = flows[rr++ % flows.size()];
      const Pair& pair = setup.pairs[f.pair];
      for (int i = 0; i < due; ++i) {
        const DatagramInfo d = {.vni = pair.vni, .pair = f.pair,
                                .direction = f.dir,
                                .seq = f.next_seq + uint64_t(i),
                                .sent_ns = now};
        uint8_t* at = buf.get() + o.size * size_t(i);
        if (o.turn) {
          turn::ChannelDataHeader(at, pair.channel, inner);
          at += wrap;
        }
        if (o.check_payload) {
          WriteDatagram(at, inner, d);
        } else {
          WriteHeader(at, d);  // the fill was written once, below
        }
      }
      const UdpSocket& sock = setup.sockets[size_t(pair.sock[f.dir])];
      const int sent = SendBurst(sock.fd(), buf.get(), o.size, int(due), o.gso);
      if (sent > 0 && o.capture != nullptr) {
        o.capture->WriteSegments(RealtimeNowNs(), sock.local(), relay,
                                 buf.get(), o.size * size_t(sent), o.size);
      }
      if (sent > 0) {
        f.next_seq += uint64_t(sent);
        r.sent += uint64_t(sent);
        r.sent_bytes += uint64_t(sent) * o.size;
      } else {
        ++r.send_errors;
      }
    }
    if (!forgers.empty()) {
      const int64_t want = int64_t(double(now - start) / 1e9 * o.forge_rate);
      for (int k = 0; k < 64 && int64_t(r.forged) < want; ++k) {
        const Pair& p = setup.pairs[r.forged % setup.pairs.size()];
        const size_t n = Forge(forged, p.vni, p.key[0], &rng);
        UdpSocket& s = forgers[r.forged % forgers.size()];
        sockaddr_storage ss;
        const socklen_t sl = relay.ToSockaddr(&ss);
        if (sendto(s.fd(), forged, n, 0, reinterpret_cast<sockaddr*>(&ss),
                   sl) > 0 &&
            o.capture != nullptr) {
          o.capture->Write(RealtimeNowNs(), s.local(), relay, forged, n);
        }
        ++r.forged;
      }
    }
    // Drain what has arrived: every few sends, and whenever pacing waits.
    if (due <= 0 || rr % 8 == 0) drain(0);
    now = MonotonicNowNs();
    if (progress != nullptr && now >= next_line) {
      std::vector<double> busy = cpu_line.Sample();
      auto share = [&](int c) {
        return c >= 0 && size_t(c) < busy.size() && busy[size_t(c)] >= 0
                   ? std::to_string(int(busy[size_t(c)] * 100 + 0.5)) + "%"
                   : std::string("-");
      };
      std::fprintf(progress,
                   "loadgen: t=%.0fs sent %s/s delivered %s/s (%.2f Gbit/s) "
                   "p99 %.0fus relay cpu %s generator cpu %s\n",
                   double(now - start) / 1e9, Human(double(r.sent - line_sent)).c_str(),
                   Human(double(rx.received() - line_rx)).c_str(),
                   double(rx.received() - line_rx) * double(o.size) * 8 / 1e9,
                   double(rx.latency().Quantile(0.99)) / 1e3,
                   share(o.relay_cpu).c_str(), share(o.cpu).c_str());
      std::fflush(progress);
      line_rx = rx.received();
      line_sent = r.sent;
      next_line += 1'000'000'000;
    }
  }
  r.seconds = double(now - start) / 1e9;
  std::vector<double> busy = cpu.Sample();
  // What is still in flight.
  const int64_t drain_end = MonotonicNowNs() + int64_t(o.drain_s * 1e9);
  while (rx.unique() < r.sent && MonotonicNowNs() < drain_end) drain(10);
  close(ep);
  rx.Finish(&r);
  const uint64_t unique = rx.unique();
  r.lost = r.sent > unique ? r.sent - unique : 0;
  auto at = [&](int c) {
    return c >= 0 && size_t(c) < busy.size() ? busy[size_t(c)] : -1.0;
  };
  r.generator_busy = at(o.cpu);
  r.relay_busy = at(o.relay_cpu);
  if (r.relay_busy >= 0.95) {
    r.bound = "relay-bound";
  } else if (r.generator_busy >= 0.95) {
    r.bound = "generator-bound";
  } else if (o.rate > 0) {
    r.bound = "rate-limited";
  } else {
    r.bound = "unknown";
  }
  return r;
}

}  // namespace peerrelay::loadgen
