#include "loadtest/pcap/replayer.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "client/allocation.h"
#include "common/clock.h"
#include "common/udp_options.h"
#include "common/udp_socket.h"
#include "geneve/geneve.h"
#include "loadtest/loadgen/stats.h"

namespace peerrelay::pcap {

absl::StatusOr<uint64_t> FetchDropped(const std::string& admin,
                                      const std::string& token) {
  auto body = client::AdminGet(admin, token, "/metrics");
  if (!body.ok()) return body.status();
  uint64_t sum = 0;
  constexpr absl::string_view kName = "peerrelay_dropped_datagrams_total";
  for (absl::string_view line : absl::StrSplit(*body, '\n')) {
    if (!absl::StartsWith(line, kName) || line.size() <= kName.size() ||
        (line[kName.size()] != '{' && line[kName.size()] != ' ')) {
      continue;
    }
    const size_t sp = line.rfind(' ');
    sum += uint64_t(std::strtod(std::string(line.substr(sp + 1)).c_str(), nullptr));
  }
  return sum;
}

namespace {

constexpr size_t kMaxHostileSockets = 64;
constexpr size_t kRxBuf = 65536;

uint64_t HashOf(const uint8_t* p, size_t n) {
  return absl::Hash<absl::string_view>{}(
      absl::string_view(reinterpret_cast<const char*>(p), n));
}

struct Pending {
  uint64_t seq;
  int64_t sent_ns;
  uint32_t item;
};

// Per session and sending side.
struct Flow {
  uint64_t next_seq = 0;
  uint64_t highest = 0;
  bool any = false;
  FlowStats st;
  loadgen::LatencyHistogram latency;
};

struct Key {
  uint32_t session;
  uint8_t dir;
  uint64_t hash;
  friend bool operator==(const Key&, const Key&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.session, k.dir, k.hash);
  }
};

struct Scheduled {
  int64_t offset_ns;
  uint32_t session;  // hostile: index into hostile datagrams
  uint32_t item;
  bool hostile;
};

// Where a socket's arrivals belong.
struct SocketRole {
  int session = -1;  // -1: a hostile socket; -2: a pair that was not set up
  int side = 0;
};

// Adds `from`'s counts (not its latency figures) to `to`.
void AddCounts(FlowStats* to, const FlowStats& from) {
  to->sent += from.sent;
  to->received += from.received;
  to->lost += from.lost;
  to->duplicates += from.duplicates;
  to->reordered += from.reordered;
  to->corrupted += from.corrupted;
  to->misdelivered += from.misdelivered;
}

void FillStats(FlowStats* st, const loadgen::LatencyHistogram& h) {
  st->p50_ns = h.Quantile(0.5);
  st->p99_ns = h.Quantile(0.99);
  st->p999_ns = h.Quantile(0.999);
  st->max_ns = h.max();
}

class Run {
 public:
  Run(const Capture& c, const ReplayOptions& o, std::FILE* progress)
      : c_(c), o_(o), progress_(progress) {}

  absl::StatusOr<ReplayResult> Go() {
    const bool sessions = !o_.hostile_all;
    if (sessions && !c_.sessions.empty()) {
      absl::Status s = SetUpSessions();
      if (!s.ok()) return s;
    }
    absl::Status s = SetUpHostile();
    if (!s.ok()) return s;
    BuildSchedule();
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < fds_.size(); ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fds_[i], &ev);
    }
    int64_t drops_before = -1;
    if (!o_.metrics_admin.empty()) {
      auto d = FetchDropped(o_.metrics_admin, o_.metrics_token);
      if (!d.ok()) return d.status();
      drops_before = int64_t(*d);
    }
    SendAll();
    Drain();
    close(ep_);
    if (drops_before >= 0) {
      auto d = FetchDropped(o_.metrics_admin, o_.metrics_token);
      if (!d.ok()) return d.status();
      r_.drops_counted = int64_t(*d) - drops_before;
    }
    Finish();
    return std::move(r_);
  }

 private:
  absl::Status SetUpSessions() {
    loadgen::SetupOptions so = o_.setup;
    so.pairs = int(c_.sessions.size());
    so.sockets = 0;  // two per pair: a socket names its session and side
    auto setup = loadgen::SetUp(so, progress_);
    if (!setup.ok()) return setup.status();
    setup_ = std::move(*setup);
    pair_of_.assign(c_.sessions.size(), -1);
    for (size_t i = 0; i < setup_.pairs.size(); ++i) {
      pair_of_[size_t(setup_.pairs[i].index)] = int(i);
    }
    r_.sessions.resize(c_.sessions.size());
    flows_.resize(c_.sessions.size() * 2);
    roles_.assign(setup_.sockets.size(), SocketRole{-2, 0});
    for (size_t s = 0; s < c_.sessions.size(); ++s) {
      r_.sessions[s].captured_vni = c_.sessions[s].vni;
      const int p = pair_of_[s];
      if (p < 0) {
        r_.sessions[s].failure = "not set up";
        continue;
      }
      const loadgen::Pair& pair = setup_.pairs[size_t(p)];
      r_.sessions[s].vni = pair.vni;
      for (int side = 0; side < 2; ++side) {
        roles_[size_t(pair.sock[side])] = {int(s), side};
      }
    }
    for (const std::string& f : setup_.failures) {
      // "pair N: why": N is the session.
      int n = -1;
      if (std::sscanf(f.c_str(), "pair %d:", &n) == 1 && n >= 0 &&
          size_t(n) < r_.sessions.size()) {
        r_.sessions[size_t(n)].failure = f.substr(f.find(':') + 2);
      }
    }
    // The items with the new VNI in their Geneve header.
    rewritten_.resize(c_.sessions.size());
    for (size_t s = 0; s < c_.sessions.size(); ++s) {
      if (pair_of_[s] < 0) continue;
      const uint32_t vni = setup_.pairs[size_t(pair_of_[s])].vni;
      for (const Item& it : c_.sessions[s].items) {
        Bytes b = it.bytes;
        b[4] = uint8_t(vni >> 16);
        b[5] = uint8_t(vni >> 8);
        b[6] = uint8_t(vni);
        rewritten_[s].push_back(std::move(b));
      }
    }
    for (UdpSocket& u : setup_.sockets) fds_.push_back(u.fd());
    return absl::OkStatus();
  }

  absl::Status SetUpHostile() {
    if (o_.hostile_all) {
      for (const Datagram& d : c_.datagrams) {
        if (c_.relay && d.dst == *c_.relay) hostile_.push_back(&d);
      }
    } else if (o_.hostile) {
      for (const Datagram& d : c_.hostile) hostile_.push_back(&d);
    }
    if (hostile_.empty()) return absl::OkStatus();
    const SocketAddress any =
        SocketAddress::Parse(o_.setup.relay.is_ipv4() ? "127.0.0.1:0" : "[::1]:0")
            .value();
    absl::flat_hash_map<SocketAddress, size_t> by_source;
    for (const Datagram* d : hostile_) {
      if (by_source.contains(d->src)) continue;
      if (hostile_sockets_.size() < kMaxHostileSockets) {
        auto s = UdpSocket::Open(any);
        if (!s.ok()) return s.status();
        hostile_sockets_.push_back(std::move(*s));
      }
      by_source[d->src] = by_source.size() % hostile_sockets_.size();
    }
    for (const Datagram* d : hostile_) hostile_sock_.push_back(by_source[d->src]);
    for (UdpSocket& u : hostile_sockets_) {
      fds_.push_back(u.fd());
      roles_.push_back(SocketRole{});
    }
    return absl::OkStatus();
  }

  void BuildSchedule() {
    int64_t first = INT64_MAX;
    for (size_t s = 0; s < rewritten_.size(); ++s) {
      if (!rewritten_[s].empty()) {
        first = std::min(first, c_.sessions[s].items.front().ts_ns);
      }
    }
    for (const Datagram* d : hostile_) first = std::min(first, d->ts_ns);
    auto offset = [&](int64_t ts) {
      return o_.speed > 0 ? int64_t(double(ts - first) / o_.speed) : 0;
    };
    for (size_t s = 0; s < rewritten_.size(); ++s) {
      for (size_t i = 0; i < rewritten_[s].size(); ++i) {
        sched_.push_back({offset(c_.sessions[s].items[i].ts_ns), uint32_t(s),
                          uint32_t(i), false});
      }
    }
    for (size_t h = 0; h < hostile_.size(); ++h) {
      sched_.push_back({offset(hostile_[h]->ts_ns), uint32_t(h), 0, true});
    }
    std::stable_sort(sched_.begin(), sched_.end(),
                     [](const Scheduled& a, const Scheduled& b) {
                       return a.offset_ns < b.offset_ns;
                     });
  }

  void SendOne(const Scheduled& e, int64_t now) {
    sockaddr_storage ss;
    if (e.hostile) {
      const Datagram& d = *hostile_[e.session];
      UdpSocket& u = hostile_sockets_[hostile_sock_[e.session]];
      const socklen_t sl = o_.setup.relay.ToSockaddr(&ss, !u.local().is_ipv4());
      if (sendto(u.fd(), d.payload.data(), d.payload.size(), 0,
                 reinterpret_cast<sockaddr*>(&ss), sl) >= 0) {
        ++r_.hostile_sent;
        ++sent_raw_;
      }
      return;
    }
    const Session& cs = c_.sessions[e.session];
    const int side = cs.items[e.item].side;
    const loadgen::Pair& pair = setup_.pairs[size_t(pair_of_[e.session])];
    UdpSocket& u = setup_.sockets[size_t(pair.sock[side])];
    const Bytes& b = rewritten_[e.session][e.item];
    const socklen_t sl = o_.setup.relay.ToSockaddr(&ss, !u.local().is_ipv4());
    if (sendto(u.fd(), b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&ss),
               sl) < 0) {
      ++send_errors_;
      return;
    }
    ++sent_raw_;
    Flow& f = flows_[size_t(e.session) * 2 + size_t(side)];
    ++f.st.sent;
    ++in_flight_;
    const Key k{e.session, uint8_t(side), HashOf(b.data(), b.size())};
    outstanding_[k].push_back({f.next_seq++, now, e.item});
    ever_sent_.try_emplace(k.hash, k);
  }

  void SendAll() {
    const int64_t start = MonotonicNowNs();
    const int64_t end = o_.duration_s > 0
                            ? start + int64_t(o_.duration_s * 1e9)
                            : INT64_MAX;
    int64_t base = start;
    int64_t next_line = start + 1'000'000'000;
    size_t idx = 0;
    uint64_t since_drain = 0;
    int64_t now = start;
    if (sched_.empty()) {
      r_.seconds = 0;
      return;
    }
    while (true) {
      if (idx == sched_.size()) {
        ++r_.loops;
        if (o_.duration_s <= 0 || now >= end) break;
        base = now;
        idx = 0;
      }
      const Scheduled& e = sched_[idx];
      const int64_t due = base + e.offset_ns;
      if (due >= end) break;
      now = MonotonicNowNs();
      if (due > now) {
        const int64_t wait = due - now;
        // Millisecond waits in epoll; the last stretch by a short sleep.
        if (wait >= 1'000'000) {
          Poll(int(std::min<int64_t>(wait / 1'000'000, 100)));
        } else {
          Poll(0);
          if (due - MonotonicNowNs() > 20'000) {
            std::this_thread::sleep_for(std::chrono::microseconds(10));
          }
        }
      } else {
        SendOne(e, now);
        ++idx;
        if (++since_drain >= 32) {
          Poll(0);
          since_drain = 0;
        }
      }
      now = MonotonicNowNs();
      if (now >= next_line) {
        Line(now - start);
        ForgetLost(now);
        next_line += 1'000'000'000;
      }
    }
    r_.seconds = double(MonotonicNowNs() - start) / 1e9;
  }

  void Drain() {
    const int64_t end = MonotonicNowNs() + int64_t(o_.drain_s * 1e9);
    while (true) {
      const int64_t left = end - MonotonicNowNs();
      if (left <= 0) break;
      // Everything arrived: a short grace for duplicates, then stop.
      if (in_flight_ == 0 && hostile_.empty()) {
        Poll(std::min<int>(int(left / 1'000'000), 50));
        break;
      }
      Poll(int(std::min<int64_t>(left / 1'000'000 + 1, 100)));
    }
  }

  // Datagrams sent more than kLostAfterNs ago are lost (loopback delivers
  // in microseconds): they leave the outstanding lists, which would
  // otherwise grow with every loss of an hour-long replay. They stay lost
  // in the counts (sent - received); one arriving after all would count
  // as a duplicate.
  static constexpr int64_t kLostAfterNs = 5'000'000'000;
  void ForgetLost(int64_t now) {
    for (auto it = outstanding_.begin(); it != outstanding_.end();) {
      std::deque<Pending>& q = it->second;
      while (!q.empty() && now - q.front().sent_ns > kLostAfterNs) {
        q.pop_front();
        --in_flight_;
      }
      if (q.empty()) {
        outstanding_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  void Line(int64_t elapsed) {
    if (progress_ == nullptr) return;
    uint64_t sent = 0, received = 0;
    for (const Flow& f : flows_) {
      sent += f.st.sent;
      received += f.st.received;
    }
    std::fprintf(progress_,
                 "pcap_replay: %3lds sent %lu received %lu in flight %lu "
                 "(loop %lu)%s\n",
                 long(elapsed / 1'000'000'000), sent, received, in_flight_,
                 r_.loops + 1,
                 hostile_.empty()
                     ? ""
                     : absl::StrCat(", hostile sent ", r_.hostile_sent,
                                    " answered ", r_.hostile_answered)
                           .c_str());
    std::fflush(progress_);
  }

  // Reads what is waiting on the sockets, waiting up to `timeout_ms`.
  void Poll(int timeout_ms) {
    epoll_event evs[64];
    const int n = epoll_wait(ep_, evs, 64, timeout_ms);
    for (int i = 0; i < n; ++i) DrainSocket(size_t(evs[i].data.u64));
  }

  void DrainSocket(size_t sock) {
    const int fd = fds_[sock];
    while (true) {
      iovec iov{buf_, kRxBuf};
      alignas(cmsghdr) char ctrl[64];
      msghdr h{};
      h.msg_iov = &iov;
      h.msg_iovlen = 1;
      h.msg_control = ctrl;
      h.msg_controllen = sizeof(ctrl);
      const ssize_t got = recvmsg(fd, &h, MSG_DONTWAIT);
      if (got < 0) return;
      const int64_t now = MonotonicNowNs();
      size_t seg = UdpGroSize(h);
      if (seg == 0) seg = size_t(got);
      for (size_t off = 0; off < size_t(got); off += seg) {
        OnArrival(sock, buf_ + off, std::min(seg, size_t(got) - off), now);
      }
    }
  }

  void OnArrival(size_t sock, const uint8_t* p, size_t len, int64_t now) {
    const SocketRole role = roles_[sock];
    if (role.session == -2) return;  // late handshake replies
    if (role.session < 0) {
      ++r_.hostile_answered;  // relayd said something to a hostile source
      return;
    }
    // Arrives on side `role.side`: sent by the other side.
    const uint8_t dir = uint8_t(1 - role.side);
    const uint64_t hash = HashOf(p, len);
    Flow& f = flows_[size_t(role.session) * 2 + dir];
    auto it = outstanding_.find(Key{uint32_t(role.session), dir, hash});
    if (it == outstanding_.end() || it->second.empty()) {
      auto owner = ever_sent_.find(hash);
      if (owner == ever_sent_.end()) {
        ++f.st.corrupted;  // no datagram ever sent looks like it
      } else if (owner->second.session != uint32_t(role.session) ||
                 owner->second.dir != dir) {
        ++flows_[size_t(owner->second.session) * 2 + owner->second.dir]
              .st.misdelivered;
      } else {
        ++f.st.duplicates;
      }
      return;
    }
    const Pending pd = it->second.front();
    it->second.pop_front();
    if (it->second.empty()) outstanding_.erase(it);
    --in_flight_;
    const Bytes& want = rewritten_[size_t(role.session)][pd.item];
    if (want.size() != len || std::memcmp(want.data(), p, len) != 0) {
      ++f.st.corrupted;  // same hash, other bytes
      return;
    }
    ++f.st.received;
    if (f.any && pd.seq < f.highest) ++f.st.reordered;
    if (!f.any || pd.seq > f.highest) f.highest = pd.seq;
    f.any = true;
    f.latency.Add(now - pd.sent_ns);
  }

  void Finish() {
    loadgen::LatencyHistogram all;
    for (size_t s = 0; s < r_.sessions.size(); ++s) {
      FlowStats& st = r_.sessions[s].stats;
      loadgen::LatencyHistogram h;
      for (int side = 0; side < 2; ++side) {
        Flow& f = flows_[s * 2 + size_t(side)];
        f.st.lost = f.st.sent - f.st.received;
        AddCounts(&st, f.st);
        h.Merge(f.latency);
      }
      FillStats(&st, h);
      all.Merge(h);
      AddCounts(&r_.total, st);
    }
    FillStats(&r_.total, all);
    r_.datagrams_to_relay = sent_raw_;
    for (const UdpSocket& u : setup_.sockets) r_.datagrams_to_relay += u.sent_datagrams();
    if (!hostile_.empty()) {
      r_.hostile_ok = r_.hostile_answered == 0;
      if (r_.drops_counted >= 0) {
        r_.hostile_ok = r_.hostile_ok &&
                        (o_.exclusive ? uint64_t(r_.drops_counted) == r_.hostile_sent
                                      : uint64_t(r_.drops_counted) >= r_.hostile_sent);
      }
    }
    r_.send_errors = send_errors_;
  }

  const Capture& c_;
  const ReplayOptions& o_;
  std::FILE* progress_;
  ReplayResult r_;
  loadgen::Setup setup_;
  std::vector<int> pair_of_;  // session -> index into setup_.pairs, -1
  std::vector<std::vector<Bytes>> rewritten_;
  std::vector<const Datagram*> hostile_;
  std::vector<size_t> hostile_sock_;
  std::vector<UdpSocket> hostile_sockets_;
  std::vector<int> fds_;
  std::vector<SocketRole> roles_;
  std::vector<Flow> flows_;
  std::vector<Scheduled> sched_;
  absl::flat_hash_map<Key, std::deque<Pending>> outstanding_;
  absl::flat_hash_map<uint64_t, Key> ever_sent_;
  uint64_t in_flight_ = 0, sent_raw_ = 0, send_errors_ = 0;
  int ep_ = -1;
  uint8_t buf_[kRxBuf];
};

}  // namespace

absl::StatusOr<ReplayResult> Replay(const Capture& c, const ReplayOptions& o,
                                    std::FILE* progress) {
  if (!o.hostile_all && c.sessions.empty() && (!o.hostile || c.hostile.empty())) {
    return absl::FailedPreconditionError(
        absl::StrCat(c.path, ": no relay session to replay"));
  }
  auto run = std::make_unique<Run>(c, o, progress);
  return run->Go();
}

}  // namespace peerrelay::pcap
