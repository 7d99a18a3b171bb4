// reference_relay: the yardsticks relayd is measured against. Each does
// only what a relay cannot skip: check the 8-byte Geneve header, look the
// VNI up, and send the datagram unchanged to the other client of that VNI.
// No handshake: a VNI's first source address becomes its side 0, the next
// different one its side 1 (loadgen --reference binds pairs that way).
// One thread, one socket, blocking receives.
//
//   --mode=mmsg      recvmmsg (64 x 2 KiB) + sendmmsg, one datagram per
//                    message both ways
//   --mode=mmsg_gso  the same receive; consecutive datagrams of one batch to
//                    the same destination and size leave as one UDP_SEGMENT
//                    send (iovecs point into the receive buffers)
//   --mode=gro_gso   UDP_GRO on, recvmmsg into 64 x 64 KiB buffers; each
//                    coalesced buffer's segments are checked one by one and
//                    runs to one destination leave as one UDP_SEGMENT send
//                    straight from the buffer
//
// Prints its counters on SIGTERM / SIGINT and exits 0.
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/cli.h"
#include "common/socket_address.h"
#include "common/udp_options.h"
#include "geneve/geneve.h"

ABSL_FLAG(std::string, mode, "gro_gso", "mmsg, mmsg_gso or gro_gso");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to listen on");
ABSL_FLAG(int, cpu, -1, "pin to this CPU (-1: not pinned)");

namespace peerrelay::bench {
namespace {

std::atomic<bool> g_stop{false};

struct Sides {
  sockaddr_storage addr[2];
  socklen_t len[2] = {0, 0};
};

bool Same(const sockaddr_storage& a, socklen_t al, const sockaddr_storage& b,
          socklen_t bl) {
  return al == bl && std::memcmp(&a, &b, al) == 0;
}

class Relay {
 public:
  Relay(int fd, bool gso, size_t buf_size, bool gro)
      : fd_(fd), gso_(gso), gro_(gro), buf_size_(buf_size) {
    bufs_.reset(new uint8_t[kBatch * buf_size]);
    for (int i = 0; i < kBatch; ++i) {
      rx_iov_[i] = {bufs_.get() + size_t(i) * buf_size, buf_size};
      std::memset(&rx_[i], 0, sizeof(rx_[i]));
      rx_[i].msg_hdr.msg_name = &from_[i];
      rx_[i].msg_hdr.msg_iov = &rx_iov_[i];
      rx_[i].msg_hdr.msg_iovlen = 1;
      rx_[i].msg_hdr.msg_control = rx_ctrl_[i];
    }
  }

  void Run() {
    while (!g_stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < kBatch; ++i) {
        rx_[i].msg_hdr.msg_namelen = sizeof(from_[i]);
        rx_[i].msg_hdr.msg_controllen = gro_ ? sizeof(rx_ctrl_[i]) : 0;
      }
      const int n = recvmmsg(fd_, rx_, kBatch, MSG_WAITFORONE, nullptr);
      if (n <= 0) continue;
      ntx_ = 0;
      niov_ = 0;
      for (int i = 0; i < n; ++i) {
        const uint8_t* p = bufs_.get() + size_t(i) * buf_size_;
        const size_t len = rx_[i].msg_len;
        size_t seg = gro_ ? UdpGroSize(rx_[i].msg_hdr) : 0;
        if (seg == 0) seg = len;
        for (size_t off = 0; off < len; off += seg) {
          OnDatagram(i, p + off, std::min(seg, len - off));
        }
      }
      Flush();
    }
  }

  uint64_t received = 0, forwarded = 0, dropped = 0, sends = 0,
           send_errors = 0;

 private:
  static constexpr int kBatch = 64;
  static constexpr int kMaxTx = 1024;

  void OnDatagram(int i, const uint8_t* p, size_t len) {
    ++received;
    geneve::Header h;
    if (!geneve::Decode(p, len, &h) || h.version != 0) {
      ++dropped;
      return;
    }
    Sides& s = sides_[h.vni];
    const sockaddr_storage& from = from_[i];
    const socklen_t fl = rx_[i].msg_hdr.msg_namelen;
    int other;
    if (s.len[0] == 0) {
      s.addr[0] = from;
      s.len[0] = fl;
      ++dropped;  // no other side yet
      return;
    } else if (Same(s.addr[0], s.len[0], from, fl)) {
      other = 1;
    } else if (s.len[1] == 0 || Same(s.addr[1], s.len[1], from, fl)) {
      if (s.len[1] == 0) {
        s.addr[1] = from;
        s.len[1] = fl;
      }
      other = 0;
    } else {
      ++dropped;
      return;
    }
    Queue(p, len, &s.addr[other], s.len[other]);
  }

  // Appends to the current send when it goes to the same place with the
  // same segment size (GSO), else starts a new one.
  void Queue(const uint8_t* p, size_t len, const sockaddr_storage* to,
             socklen_t tl) {
    ++forwarded;
    if (gso_ && ntx_ > 0) {
      Tx& t = tx_[ntx_ - 1];
      if (t.tl == tl && std::memcmp(&t.to, to, tl) == 0 && t.seg == len && !t.short_tail && t.count < 64 &&
          t.bytes + len <= 65000 && niov_ < kMaxIov) {
        iov_[niov_++] = {const_cast<uint8_t*>(p), len};
        ++t.count;
        t.bytes += len;
        return;
      }
      if (t.tl == tl && std::memcmp(&t.to, to, tl) == 0 && len < t.seg && !t.short_tail && t.count < 64 &&
          t.bytes + len <= 65000 && niov_ < kMaxIov) {
        iov_[niov_++] = {const_cast<uint8_t*>(p), len};  // a shorter tail
        ++t.count;
        t.bytes += len;
        t.short_tail = true;
        return;
      }
    }
    if (ntx_ == kMaxTx || niov_ == kMaxIov) Flush();
    Tx& t = tx_[ntx_++];
    // The address is copied: a later VNI insert may move the map's entries.
    t = Tx{*to, tl, len, 1, len, false, niov_};
    iov_[niov_++] = {const_cast<uint8_t*>(p), len};
  }

  void Flush() {
    if (ntx_ == 0) return;
    for (int k = 0; k < ntx_; ++k) {
      Tx& t = tx_[k];
      msghdr& h = msgs_[k].msg_hdr;
      std::memset(&msgs_[k], 0, sizeof(msgs_[k]));
      h.msg_name = &t.to;
      h.msg_namelen = t.tl;
      h.msg_iov = &iov_[t.first_iov];
      h.msg_iovlen = size_t(t.count);
      if (t.count > 1) SetUdpSegment(&h, tx_ctrl_[k], uint16_t(t.seg));
    }
    int done = 0;
    while (done < ntx_) {
      const int n = sendmmsg(fd_, msgs_ + done, unsigned(ntx_ - done), 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ++send_errors;  // skip the message the kernel refused
        ++done;
        continue;
      }
      done += n;
      sends += uint64_t(n);
    }
    ntx_ = 0;
    niov_ = 0;
  }

  struct Tx {
    sockaddr_storage to;
    socklen_t tl;
    size_t seg;
    int count;
    size_t bytes;
    bool short_tail;
    int first_iov;
  };
  static constexpr int kMaxIov = 8192;

  const int fd_;
  const bool gso_, gro_;
  const size_t buf_size_;
  std::unique_ptr<uint8_t[]> bufs_;
  mmsghdr rx_[kBatch];
  iovec rx_iov_[kBatch];
  sockaddr_storage from_[kBatch];
  alignas(cmsghdr) char rx_ctrl_[kBatch][64];
  absl::flat_hash_map<uint32_t, Sides> sides_;
  Tx tx_[kMaxTx];
  mmsghdr msgs_[kMaxTx];
  alignas(cmsghdr) char tx_ctrl_[kMaxTx][kUdpSegmentSpace];
  iovec iov_[kMaxIov];
  int ntx_ = 0, niov_ = 0;
};

int Main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "the yardstick relays relayd is measured against (no handshake: a "
      "VNI's first two source addresses are its sides)\n"
      "  reference_relay [--mode=mmsg|mmsg_gso|gro_gso] [--listen=IP:PORT] "
      "[--cpu=N]";
  const cli::Parsed parsed = cli::ParseFlags(
      argc, argv,
      {.name = "reference_relay",
       .usage = kUsage,
       .flag_sources = {"bench/reference_relay.cc"}});
  if (parsed.done()) return parsed.exit_code;
  if (parsed.args.size() > 1) {
    return cli::UsageError({.name = "reference_relay"},
                           "takes no positional arguments");
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "mmsg" && mode != "mmsg_gso" && mode != "gro_gso") {
    std::fprintf(stderr, "reference_relay: --mode must be mmsg, mmsg_gso or gro_gso\n");
    return 2;
  }
  auto listen = SocketAddress::Parse(absl::GetFlag(FLAGS_listen));
  if (!listen.ok()) {
    std::fprintf(stderr, "reference_relay: bad --listen\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_cpu) >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(absl::GetFlag(FLAGS_cpu), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  const bool v6 = !listen->is_ipv4();
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  SetSocketBuffers(fd, 7 << 20);  // as relayd asks
  const bool gro = mode == "gro_gso";
  if (gro) setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
  sockaddr_storage ss;
  socklen_t sl = listen->ToSockaddr(&ss, v6);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0) {
    std::perror("reference_relay: bind");
    return 1;
  }
  sl = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  // A receive timeout so that a stop request is seen without traffic.
  timeval tv{0, 200'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop.store(true); };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::printf("reference_relay: mode=%s listening on port %u\n", mode.c_str(),
              SocketAddress::FromSockaddr(&ss, sl)->port());
  std::fflush(stdout);
  auto relay = std::make_unique<Relay>(fd, mode != "mmsg", gro ? 65536 : 2048, gro);
  relay->Run();
  std::printf(
      "reference_relay: received=%lu forwarded=%lu dropped=%lu sends=%lu "
      "send_errors=%lu\n",
      relay->received, relay->forwarded, relay->dropped, relay->sends,
      relay->send_errors);
  return 0;
}

}  // namespace
}  // namespace peerrelay::bench

int main(int argc, char** argv) { return peerrelay::bench::Main(argc, argv); }
