#include "loadtest/loadgen/setup.h"

#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/small_file.h"
#include "disco/key_file.h"
#include "common/clock.h"
#include "geneve/geneve.h"
#include "client/allocation.h"
#include "client/disco_client.h"
#include "client/http_client.h"
#include "client/turn.h"

namespace peerrelay::loadgen {
namespace {

using client::Bytes;
using client::DiscoClient;
using client::HttpClient;
using client::RecvMatching;
namespace turn = client::turn;

// A disco-protocol datagram through the relay from one side to the other:
// relayed only once both sides are bound.
// Sends `probe` from one client until the other receives it through the
// relay (5 tries, 200 ms apart); `prefix`: what arrives may carry more
// after it (a TURN server may pad ChannelData).
bool Echoed(UdpSocket& from, UdpSocket& to, const Bytes& probe,
            const SocketAddress& relay, bool prefix = false) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (!from.SendTo(probe, relay)) return false;
    if (RecvMatching(to, 200, [&](const Bytes& d) {
          return prefix ? d.size() >= probe.size() &&
                              std::equal(probe.begin(), probe.end(), d.begin())
                        : d == probe;
        })) {
      return true;
    }
  }
  return false;
}

bool Probe(UdpSocket& from, UdpSocket& to, DiscoClient& c, uint32_t pair,
           const SocketAddress& relay) {
  return Echoed(from, to,
                c.Data({'l', 'g', 'p', uint8_t(pair), uint8_t(pair >> 8),
                        uint8_t(pair >> 16), uint8_t(pair >> 24)},
                       geneve::kProtocolDisco),
                relay);
}

// Open() asked for 4 MiB buffers; receives also coalesce (UDP_GRO).
void EnableGro(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
}

}  // namespace

// TURN: both clients allocate, permit and bind a channel to the other's
// relayed address; then a ChannelData probe each way. Every failure is
// Unavailable: the TURN server did not serve the pair.
absl::Status SetUpTurnPair(const SetupOptions& o, UdpSocket& sa, UdpSocket& sb,
                           int p, Pair* pair) {
  absl::StatusOr<SocketAddress> ra = turn::Allocate(sa, o.relay);
  if (!ra.ok()) return ra.status();
  absl::StatusOr<SocketAddress> rb = turn::Allocate(sb, o.relay);
  if (!rb.ok()) return rb.status();
  for (const absl::Status& s :
       {turn::CreatePermission(sa, o.relay, *rb),
        turn::CreatePermission(sb, o.relay, *ra),
        turn::ChannelBind(sa, o.relay, turn::kFirstChannel, *rb),
        turn::ChannelBind(sb, o.relay, turn::kFirstChannel, *ra)}) {
    if (!s.ok()) return s;
  }
  pair->vni = uint32_t(p + 1);
  pair->channel = turn::kFirstChannel;
  for (int dir = 0; dir < 2; ++dir) {
    UdpSocket& from = dir == 0 ? sa : sb;
    UdpSocket& to = dir == 0 ? sb : sa;
    Bytes probe(4 + 8);
    turn::ChannelDataHeader(probe.data(), turn::kFirstChannel, 8);
    std::memcpy(probe.data() + 4, "lgprobe", 7);
    probe[11] = uint8_t(p);
    if (!Echoed(from, to, probe, o.relay, /*prefix=*/true)) {
      return absl::UnavailableError("no ChannelData through the TURN server");
    }
  }
  return absl::OkStatus();
}

// Pair `p`: allocation, both handshakes, the probes. Unavailable when the
// relay gave it no endpoint (allocation or TURN failed), FailedPrecondition
// when it has one but does not relay.
absl::Status SetUpPair(const SetupOptions& o, int p, int nsock,
                       std::vector<UdpSocket>& sockets, HttpClient* http,
                       Pair* out) {
  Pair pair;
  pair.index = p;
  pair.sock[0] = (2 * p) % nsock;
  pair.sock[1] = (2 * p + 1) % nsock;
  UdpSocket& sa = sockets[size_t(pair.sock[0])];
  UdpSocket& sb = sockets[size_t(pair.sock[1])];
  if (o.turn) {
    absl::Status s = SetUpTurnPair(o, sa, sb, p, &pair);
    if (s.ok()) *out = pair;
    return s;
  }
  DiscoClient a(o.dialect, o.server_key, sa.local(),
                o.udp_key ? *o.udp_key : disco::KeyPair::Generate());
  DiscoClient b(o.dialect, o.server_key, sb.local(),
                disco::KeyPair::Generate());
  absl::StatusOr<uint32_t> vni =
      o.reference ? absl::StatusOr<uint32_t>(uint32_t(p + 1))
      : o.udp_key ? client::AllocateUdp(sa, a, b.key(), o.relay, uint32_t(p + 1))
                  : client::AllocateHttp(*http, o.token, a.key(), b.key());
  if (!vni.ok()) return absl::UnavailableError(vni.status().message());
  pair.vni = *vni;
  pair.key[0] = a.key();
  pair.key[1] = b.key();
  a.SetEndpoint(*vni, b.key());
  b.SetEndpoint(*vni, a.key());
  bool bound = false;
  if (o.reference) {
    // A first (it becomes side 0), then B, whose datagram reaches A.
    bound = sa.SendTo(a.Data({'h', 'i'}, geneve::kProtocolDisco), o.relay) &&
            Probe(sb, sa, b, uint32_t(p), o.relay) &&
            Probe(sa, sb, a, uint32_t(p), o.relay);
  }
  for (int round = 1; round <= o.rounds && !bound && !o.reference; ++round) {
    // B answered last, so B probes first (its probe is judged after its
    // Answer; A's Answer was applied before B's Bind got its Challenge),
    // then A, as a client that got a probe answers it.
    bound = client::HandshakeRound(sa, a, o.relay, uint32_t(round)) &&
            client::HandshakeRound(sb, b, o.relay, uint32_t(round)) &&
            Probe(sb, sa, b, uint32_t(p), o.relay) &&
            Probe(sa, sb, a, uint32_t(p), o.relay);
  }
  // Each re-bind gets up to `rounds` attempts, each a new round with a
  // higher generation, as a client whose round was lost starts another.
  uint32_t generation = uint32_t(o.rounds);
  for (int r = 1; r <= o.rebinds && bound && !o.reference; ++r) {
    bool rebound = false;
    for (int attempt = 1; attempt <= o.rounds && !rebound; ++attempt) {
      ++generation;
      rebound = client::HandshakeRound(sa, a, o.relay, generation) &&
                client::HandshakeRound(sb, b, o.relay, generation) &&
                Probe(sb, sa, b, uint32_t(p), o.relay) &&
                Probe(sa, sb, a, uint32_t(p), o.relay);
    }
    if (!rebound) {
      return absl::FailedPreconditionError(absl::StrCat(
          "VNI ", *vni, ": re-bind ", r, " did not relay after ", o.rounds,
          " rounds (last generation ", generation, ")"));
    }
  }
  if (!bound) {
    return absl::FailedPreconditionError(
        absl::StrCat("VNI ", *vni, ": not bound after ",
                     o.reference ? 1 : o.rounds, " rounds"));
  }
  *out = pair;
  return absl::OkStatus();
}

namespace {

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("HTTP allocation needs --token_file");
  }
  absl::StatusOr<std::string> t = ReadSmallFile(path, 4096);
  if (!t.ok()) return absl::InvalidArgumentError(t.status().message());
  return std::string(absl::StripAsciiWhitespace(
      absl::string_view(*t).substr(0, t->find('\n'))));
}

}  // namespace

absl::Status ConfigureAllocation(const AllocationFlags& f, SetupOptions* so) {
  if (!f.client_key_file.empty()) {
    auto kp = disco::LoadKeyFile(f.client_key_file);
    if (!kp.ok()) return absl::InvalidArgumentError(kp.status().message());
    so->udp_key = *kp;
    auto sk = disco::DiscoKey::ParseText(f.server_key);
    if (!sk.ok()) {
      return absl::InvalidArgumentError(
          "UDP allocation needs --server_key=discokey:...");
    }
    so->server_key = *sk;
    return absl::OkStatus();
  }
  auto token = ReadToken(f.token_file);
  if (!token.ok()) return token.status();
  so->admin = f.admin;
  so->token = *token;
  if (!f.server_key.empty()) {
    auto sk = disco::DiscoKey::ParseText(f.server_key);
    if (!sk.ok()) return absl::InvalidArgumentError(sk.status().message());
    so->server_key = *sk;
    return absl::OkStatus();
  }
  auto sk = client::FetchServerKey(so->admin, so->token);
  if (!sk.ok()) return sk.status();
  so->server_key = *sk;
  return absl::OkStatus();
}

absl::StatusOr<Setup> SetUp(const SetupOptions& o, std::FILE* progress) {
  Setup out;
  const int64_t start = MonotonicNowNs();
  const int nsock =
      o.sockets > 0 ? o.sockets : std::min(2 * o.pairs, 2000);
  if (nsock < 2) return absl::InvalidArgumentError("need at least 2 sockets");
  if (o.turn && nsock < 2 * o.pairs) {
    return absl::InvalidArgumentError(
        "TURN mode needs a socket per client (at most 1000 pairs)");
  }
  const SocketAddress local =
      o.local ? *o.local
              : SocketAddress::Parse(o.relay.is_ipv4() ? "127.0.0.1:0" : "[::1]:0")
                    .value();
  for (int i = 0; i < nsock; ++i) {
    auto s = UdpSocket::Open(local);
    if (!s.ok()) {
      return absl::Status(s.status().code(),
                          absl::StrCat("socket ", i, ": ", s.status().message()));
    }
    EnableGro(s->fd());
    s->set_capture(o.capture);
    out.sockets.push_back(std::move(*s));
  }
  // Threads take pairs p = t, t + T, ...; with a socket per client no two
  // threads share a socket (else one thread).
  const int threads =
      nsock >= 2 * o.pairs ? std::clamp(o.threads, 1, 64) : 1;
  std::mutex mu;  // guards out.pairs, out.failures, fatal, done
  absl::Status fatal;
  int done = 0;
  int64_t next_line = start + 1'000'000'000;
  auto run = [&](int t) {
    std::optional<HttpClient> http;
    if (!o.udp_key && !o.reference && !o.turn) {
      absl::StatusOr<HttpClient> h = HttpClient::Create(o.admin);
      if (!h.ok()) {
        std::lock_guard<std::mutex> l(mu);
        fatal = absl::InvalidArgumentError(
            absl::StrCat("--admin: ", h.status().message()));
        return;
      }
      http.emplace(std::move(*h));
    }
    for (int p = t; p < o.pairs; p += threads) {
      if (o.rate > 0) {
        const int64_t due = start + int64_t(double(p) / o.rate * 1e9);
        const int64_t wait = due - MonotonicNowNs();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
      }
      Pair pair;
      const absl::Status s = SetUpPair(o, p, nsock, out.sockets,
                                       http ? &*http : nullptr, &pair);
      std::lock_guard<std::mutex> l(mu);
      ++done;
      if (s.ok()) {
        out.pairs.push_back(pair);
      } else if (p == 0 && absl::IsUnavailable(s)) {
        fatal = s;  // no endpoint for the first pair: nothing will work
        return;
      } else {
        out.failures.push_back(absl::StrCat("pair ", p, ": ", s.message()));
      }
      if (!fatal.ok()) return;
      if (progress != nullptr && MonotonicNowNs() >= next_line) {
        std::fprintf(progress, "loadgen: setup %d/%d pairs done, %zu failed\n",
                     done, o.pairs, out.failures.size());
        std::fflush(progress);
        next_line += 1'000'000'000;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (std::thread& th : pool) th.join();
  if (!fatal.ok()) return fatal;
  // Pair ids are their place in `pairs`: keep them in setup order.
  std::sort(out.pairs.begin(), out.pairs.end(),
            [](const Pair& a, const Pair& b) { return a.vni < b.vni; });
  out.seconds = double(MonotonicNowNs() - start) / 1e9;
  return out;
}

}  // namespace peerrelay::loadgen
