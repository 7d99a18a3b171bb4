// The XDP tier end to end: relayd (the real binary) in a network namespace
// of its own with --xdp=native or --xdp=generic on a veth, its clients in
// this test's namespace on the other end, every datagram over the wire.
// Clients behave like Tailscale's: one Bind and one Answer per round, then
// data at once.
//
//   - data byte-exact both ways, IPv4 and IPv6, and carried by the kernel
//     (the stage="xdp" counters, not the workers')
//   - the accounting identity, exact, from a scrape: every datagram the
//     clients sent is received by the kernel tier or a worker, and each
//     stage's received = relayed + slow path + dropped
//   - re-bind moves the kernel's forwarding to the new address at once
//   - kernel-forwarded traffic keeps a pair alive; silence expires it, and
//     the kernel stops forwarding it
//   - fallback: a second relayd cannot attach over the first and relays
//     through its sockets, one log line saying why; an unknown interface
//     likewise; killing relayd (SIGKILL) leaves no program attached
//
// Needs root, iproute2 and ethtool: tagged local and exclusive.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/allocation.h"
#include "client/disco_client.h"
#include "client/http_client.h"
#include "common/udp_socket.h"
#include "engine/xdp_tier.h"
#include "gtest/gtest.h"

namespace peerrelay {
namespace {

using client::Bytes;
using client::DiscoClient;

const std::string kNs = absl::StrCat("prxdp", getpid());
constexpr char kToken[] = "xdp-e2e-token";
const SocketAddress kRelay4 = SocketAddress::Parse("10.66.0.1:7777").value();
const SocketAddress kRelay6 = SocketAddress::Parse("[fd66::1]:7777").value();

std::string Shell(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int status = pclose(p);
  if (rc != nullptr) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

bool Sh(const std::string& cmd) {
  int rc = 0;
  const std::string out = Shell(cmd, &rc);
  if (rc != 0) ADD_FAILURE() << cmd << ": " << out;
  return rc == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

template <typename Pred>
bool WaitFor(Pred pred, int ms = 5000) {
  for (int waited = 0; waited < ms; waited += 50) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// Sum of a metric's samples whose labels contain every one of `labels`.
double Metric(const std::string& text, const std::string& name,
              const std::vector<std::string>& labels = {}) {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    const char after = line.size() > name.size() ? line[name.size()] : 0;
    if (after != '{' && after != ' ') continue;
    bool all = true;
    for (const std::string& l : labels) {
      all = all && line.find(l) != absl::string_view::npos;
    }
    if (!all) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) sum += v;
  }
  return sum;
}

// One relayd in the relay namespace.
class Relayd {
 public:
  // `unprivileged`: relayd runs as root without CAP_BPF, CAP_NET_ADMIN and
  // CAP_SYS_ADMIN (as under the unit without its XDP drop-in).
  Relayd(const std::string& mode, int port, int admin_port,
         const std::string& interface = "xr0", bool unprivileged = false) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const std::string relayd =
        absl::StrCat(srcdir ? srcdir : ".", "/peerrelay/tools/relayd");
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = tmp ? tmp : "/tmp";
    token_file_ = dir_ + "/admin_token";
    {
      std::ofstream t(token_file_);
      t << kToken << "\n";
    }
    chmod(token_file_.c_str(), 0600);
    log_ = absl::StrCat(dir_, "/relayd-", port, ".log");
    admin_ = absl::StrCat("10.66.0.1:", admin_port);
    std::vector<std::string> args = {"/usr/sbin/ip", "netns", "exec", kNs};
    if (unprivileged) {
      args.insert(args.end(), {"/usr/bin/setpriv",
                               "--bounding-set=-bpf,-net_admin,-sys_admin"});
    }
    args.insert(args.end(), {relayd,
        absl::StrCat("--port=", port), "--listen=::",
        absl::StrCat("--advertise=10.66.0.1:", port),
        absl::StrCat("--admin_listen=", admin_),
        absl::StrCat("--admin_token_file=", token_file_), "--workers=1",
        "--steady_state_lifetime=4s", "--bind_lifetime=10s",
        absl::StrCat("--xdp=", mode),
        absl::StrCat("--xdp_interfaces=", interface)});
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Relayd() { Stop(SIGTERM); }

  bool Ready() {
    return WaitFor([&] { return client::AdminGet(admin_, "", "/readyz").ok(); },
                   10000);
  }
  void Stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    for (int i = 0; i < 200 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  std::string Metrics() {
    auto m = client::AdminGet(admin_, "", "/metrics");
    return m.ok() ? *m : "";
  }
  std::string Log() const { return ReadFile(log_); }
  const std::string& admin() const { return admin_; }

 private:
  pid_t pid_ = -1;
  std::string dir_, token_file_, log_, admin_;
};

// A client: its socket and disco identity.
struct Peer {
  UdpSocket sock;
  std::unique_ptr<DiscoClient> disco;
};

class XdpEndToEnd : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "needs root (network namespaces, BPF)";
    // This process's own namespace is the clients' side; relayd runs in a
    // named one (ip netns exec), joined by a veth.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    Shell("ip netns del " + kNs);
    ASSERT_TRUE(Sh("ip netns add " + kNs));
    ASSERT_TRUE(Sh("ip link set lo up"));
    ASSERT_TRUE(Sh("ip link add xc0 type veth peer name xr0 netns " + kNs));
    const std::string in = "ip netns exec " + kNs + " ";
    ASSERT_TRUE(Sh(in + "ip link set lo up"));
    ASSERT_TRUE(Sh(in + "ip addr add 10.66.0.1/24 dev xr0"));
    ASSERT_TRUE(Sh(in + "ip -6 addr add fd66::1/64 dev xr0 nodad"));
    ASSERT_TRUE(Sh(in + "ip link set xr0 up"));
    // The kernel's FIB lookup answers only where forwarding is on.
    ASSERT_TRUE(Sh(in + "sysctl -qw net.ipv4.conf.xr0.forwarding=1 "
                        "net.ipv6.conf.xr0.forwarding=1"));
    for (const char* a : {"10.66.0.2/24", "10.66.0.3/24", "10.66.0.4/24"}) {
      ASSERT_TRUE(Sh(absl::StrCat("ip addr add ", a, " dev xc0")));
    }
    for (const char* a : {"fd66::2/64", "fd66::3/64"}) {
      ASSERT_TRUE(Sh(absl::StrCat("ip -6 addr add ", a, " dev xc0 nodad")));
    }
    ASSERT_TRUE(Sh("ip link set xc0 up"));
    // Sockets sending into a veth leave the UDP checksum to "hardware"
    // (CHECKSUM_PARTIAL: only the pseudo-header sum in the field); a frame
    // off a wire always carries the whole checksum. The clients' end
    // computes it, as a NIC's peer would have.
    ASSERT_TRUE(Sh("ethtool -K xc0 tx off"));
    // A veth delivers what the other end's native XDP transmits (XDP_TX)
    // only into an XDP context of its own (a NIC has its own rings): the
    // relay's program on the clients' end, with no pairs and another port,
    // passes everything.
    ASSERT_TRUE(Sh("sysctl -qw net.ipv4.conf.xc0.forwarding=1"));
    // A veth's qdisc stays noop (dropping) until the kernel's link watch
    // sees the carrier, up to a second after "up": wait for both ends.
    ASSERT_TRUE(WaitFor([&] {
      return Shell("ip link show xc0").find("qdisc noqueue state UP") !=
                 std::string::npos &&
             Shell(in + "ip link show xr0").find("qdisc noqueue state UP") !=
                 std::string::npos;
    })) << Shell("ip link show xc0") << Shell(in + "ip link show xr0");
    auto peer = engine::XdpTier::Attach(
        {.mode = "native", .interfaces = {"xc0"}, .port = 9});
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_tier_ = std::move(*peer);
  }
  static void TearDownTestSuite() {
    peer_tier_.reset();
    Shell("ip netns del " + kNs);
  }
  static inline std::unique_ptr<engine::XdpTier> peer_tier_;

  void StartRelayd(const char* mode) {
    relayd_ = std::make_unique<Relayd>(mode, 7777, 9780);
    ASSERT_TRUE(relayd_->Ready()) << relayd_->Log();
    auto key = client::FetchServerKey(relayd_->admin(), kToken);
    ASSERT_TRUE(key.ok()) << key.status();
    server_key_ = *key;
    auto http = client::HttpClient::Create(relayd_->admin());
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = std::make_unique<client::HttpClient>(std::move(*http));
  }

  Peer NewPeer(const char* bind) {
    auto s = UdpSocket::Open(SocketAddress::Parse(bind).value());
    EXPECT_TRUE(s.ok()) << s.status();
    Peer p{std::move(*s), nullptr};
    p.disco = std::make_unique<DiscoClient>(disco::Dialect::kCurrent,
                                            server_key_, p.sock.local());
    return p;
  }

  // Allocation over HTTP and one handshake round per side, as Tailscale's
  // client does it (no retries).
  void BindPair(Peer& a, Peer& b, const SocketAddress& relay) {
    auto vni = client::AllocateHttp(*http_, kToken, a.disco->key(),
                                    b.disco->key());
    ASSERT_TRUE(vni.ok()) << vni.status();
    a.disco->SetEndpoint(*vni, b.disco->key());
    b.disco->SetEndpoint(*vni, a.disco->key());
    ASSERT_TRUE(client::HandshakeRound(a.sock, *a.disco, relay, 1));
    ASSERT_TRUE(client::HandshakeRound(b.sock, *b.disco, relay, 1));
  }

  // Sends `n` data datagrams from `from` to `to` through `relay`, each
  // different (size 16..1400), each received byte for byte before the next.
  void Exchange(Peer& from, Peer& to, const SocketAddress& relay, int n,
                uint32_t seed) {
    for (int i = 0; i < n; ++i) {
      Bytes payload(16 + (i * 97 + seed) % 1385);
      for (size_t k = 0; k < payload.size(); ++k) {
        payload[k] = static_cast<uint8_t>(k * 31 + i + seed);
      }
      const Bytes d = from.disco->Data(payload);
      ASSERT_TRUE(from.sock.SendTo(d, relay));
      auto got = to.sock.Recv(2000);
      ASSERT_TRUE(got.has_value()) << "datagram " << i << " lost";
      EXPECT_EQ(got->first, d) << "datagram " << i << " changed";
      EXPECT_EQ(got->second, relay) << "not from the relay's address";
    }
  }

  // Every datagram the clients sent, accounted for by the scrape: received
  // by the kernel tier or a worker, and each stage's identity exact.
  void ExpectAccounting(uint64_t sent) {
    std::string m;
    const bool settled = WaitFor([&] {
      m = relayd_->Metrics();
      return Metric(m, "peerrelay_received_datagrams_total") == double(sent);
    });
    EXPECT_TRUE(settled) << "clients sent " << sent << ", relayd received "
                         << Metric(m, "peerrelay_received_datagrams_total");
    for (const char* stage : {"stage=\"worker\"", "stage=\"xdp\""}) {
      const double received =
          Metric(m, "peerrelay_received_datagrams_total", {stage});
      const double relayed =
          Metric(m, "peerrelay_relayed_datagrams_total", {stage});
      const double slow = Metric(m, "peerrelay_slow_path_datagrams_total", {stage});
      const double dropped = Metric(m, "peerrelay_dropped_datagrams_total", {stage});
      EXPECT_EQ(received, relayed + slow + dropped) << stage;
    }
    EXPECT_EQ(Metric(m, "peerrelay_received_datagrams_total", {"stage=\"xdp\""}),
              Metric(m, "peerrelay_relayed_datagrams_total", {"stage=\"xdp\""}));
  }

  std::unique_ptr<Relayd> relayd_;
  disco::DiscoKey server_key_;
  std::unique_ptr<client::HttpClient> http_;
};

TEST_P(XdpEndToEnd, KernelRelaysBoundPairsRebindsAndExpires) {
  StartRelayd(GetParam());
  std::string m = relayd_->Metrics();
  ASSERT_EQ(Metric(m, "peerrelay_xdp_mode",
                   {absl::StrCat("mode=\"", GetParam(), "\"")}),
            1)
      << relayd_->Log();

  // IPv4 and IPv6 pairs, bound with real handshakes, data both ways.
  Peer a = NewPeer("10.66.0.2:0"), b = NewPeer("10.66.0.3:0");
  Peer a6 = NewPeer("[fd66::2]:0"), b6 = NewPeer("[fd66::3]:0");
  BindPair(a, b, kRelay4);
  BindPair(a6, b6, kRelay6);
  // b answered last, so b speaks first (as loadgen's probes do): a's data
  // could otherwise overtake b's Answer, which only b's own data waits for.
  Exchange(b, a, kRelay4, 100, 1);
  Exchange(a, b, kRelay4, 100, 2);
  Exchange(b6, a6, kRelay6, 100, 3);
  Exchange(a6, b6, kRelay6, 100, 4);
  m = relayd_->Metrics();
  EXPECT_EQ(Metric(m, "peerrelay_xdp_pairs"), 2);
  uint64_t sent = a.sock.sent_datagrams() + b.sock.sent_datagrams() +
                  a6.sock.sent_datagrams() + b6.sock.sent_datagrams();
  ExpectAccounting(sent);
  m = relayd_->Metrics();
  // The kernel carried the data: the first datagram of a direction may go
  // up (the neighbour not yet resolved, or right behind the Answer).
  const double by_kernel =
      Metric(m, "peerrelay_relayed_datagrams_total", {"stage=\"xdp\""});
  EXPECT_GE(by_kernel, 400 - 8) << m;
  // Every data datagram relayed once, by one of the stages (the first of a
  // side, right behind its Answer, by the slow path).
  EXPECT_EQ(Metric(m, "peerrelay_relayed_datagrams_total"), 400);
  EXPECT_GT(Metric(m, "peerrelay_forwarded_packets_total",
                   {"transport_in=\"udp6\"", "transport_out=\"udp6\""}),
            190);
  // Handshakes went up to the slow path, counted as the kernel passed them.
  EXPECT_EQ(Metric(m, "peerrelay_xdp_passed_datagrams_total",
                   {"reason=\"control\""}),
            8);

  // Re-bind: a moves to a new port; the kernel follows at once.
  Peer a2{std::move(*UdpSocket::Open(SocketAddress::Parse("10.66.0.4:0").value())),
          nullptr};
  a.disco->set_address(a2.sock.local());
  a2.disco = std::move(a.disco);
  ASSERT_TRUE(client::HandshakeRound(a2.sock, *a2.disco, kRelay4, 2));
  Exchange(a2, b, kRelay4, 50, 5);
  Exchange(b, a2, kRelay4, 50, 6);
  // The old address is no longer a side: dropped (by a worker), not
  // forwarded.
  const Bytes stale = a2.disco->Data({1, 2, 3});
  ASSERT_TRUE(a.sock.SendTo(stale, kRelay4));
  EXPECT_FALSE(b.sock.Recv(300).has_value());
  EXPECT_FALSE(a.sock.Recv(100).has_value()) << "old address got data";
  sent = a.sock.sent_datagrams() + a2.sock.sent_datagrams() +
         b.sock.sent_datagrams() + a6.sock.sent_datagrams() +
         b6.sock.sent_datagrams();
  ExpectAccounting(sent);
  m = relayd_->Metrics();
  EXPECT_GE(Metric(m, "peerrelay_relayed_datagrams_total", {"stage=\"xdp\""}),
            500 - 12);
  EXPECT_EQ(Metric(m, "peerrelay_dropped_datagrams_total",
                   {"reason=\"unknown_source\"", "stage=\"worker\""}),
            1);

  // Traffic only through the kernel for longer than the steady-state
  // lifetime (4 s) keeps the v4 pair; the silent v6 pair expires.
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(6500);
  uint32_t seed = 100;
  while (std::chrono::steady_clock::now() < until) {
    Exchange(a2, b, kRelay4, 1, seed++);
    Exchange(b, a2, kRelay4, 1, seed++);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  m = relayd_->Metrics();
  EXPECT_EQ(Metric(m, "peerrelay_endpoints", {"state=\"bound\""}), 1) << m;
  EXPECT_EQ(Metric(m, "peerrelay_xdp_pairs"), 1);
  // Silence: the pair expires, and the kernel no longer forwards it.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric(relayd_->Metrics(), "peerrelay_endpoints",
                      {"state=\"bound\""}) == 0;
      },
      8000));
  m = relayd_->Metrics();
  EXPECT_EQ(Metric(m, "peerrelay_xdp_pairs"), 0);
  EXPECT_EQ(Metric(m, "peerrelay_endpoints_expired_total"), 2);
  ASSERT_TRUE(a2.sock.SendTo(a2.disco->Data({9, 9, 9}), kRelay4));
  EXPECT_FALSE(b.sock.Recv(300).has_value());
  ASSERT_TRUE(WaitFor([&] {
    return Metric(relayd_->Metrics(), "peerrelay_dropped_datagrams_total",
                  {"reason=\"unknown_vni\"", "stage=\"worker\""}) == 1;
  }));
  sent = a.sock.sent_datagrams() + a2.sock.sent_datagrams() +
         b.sock.sent_datagrams() + a6.sock.sent_datagrams() +
         b6.sock.sent_datagrams();
  ExpectAccounting(sent);
  EXPECT_GE(Metric(relayd_->Metrics(), "peerrelay_xdp_passed_datagrams_total",
                   {"reason=\"unknown_vni\""}),
            1);
}

INSTANTIATE_TEST_SUITE_P(Modes, XdpEndToEnd,
                         ::testing::Values("native", "generic"),
                         [](const auto& info) { return info.param; });

TEST_F(XdpEndToEnd, FallsBackToSocketsAndDetachesWhenKilled) {
  StartRelayd("native");
  ASSERT_NE(Shell("ip -n " + kNs + " link show xr0").find("xdp"),
            std::string::npos)
      << "no program attached";
  // A second relayd cannot attach over the first: one line, then sockets.
  Relayd second("native", 7778, 9781);
  ASSERT_TRUE(second.Ready()) << second.Log();
  const std::string log = second.Log();
  EXPECT_NE(log.find("xdp: cannot attach to xr0 (native: "), std::string::npos)
      << log;
  EXPECT_NE(log.find("another XDP program is attached to xr0"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("relaying through the sockets only"), std::string::npos);
  std::string m = second.Metrics();
  EXPECT_EQ(Metric(m, "peerrelay_xdp_mode", {"mode=\"off\""}), 1);
  // And it relays, through its sockets.
  auto key = client::FetchServerKey(second.admin(), kToken);
  ASSERT_TRUE(key.ok());
  server_key_ = *key;
  auto http = client::HttpClient::Create(second.admin());
  ASSERT_TRUE(http.ok());
  http_ = std::make_unique<client::HttpClient>(std::move(*http));
  const SocketAddress relay2 = SocketAddress::Parse("10.66.0.1:7778").value();
  Peer a = NewPeer("10.66.0.2:0"), b = NewPeer("10.66.0.3:0");
  BindPair(a, b, relay2);
  Exchange(b, a, relay2, 20, 7);
  Exchange(a, b, relay2, 20, 8);
  // (All stages: b's first datagram, right behind its Answer, waits for it
  // and is relayed by the slow path. A worker counts a batch after sending
  // it: the scrape may come first.)
  EXPECT_TRUE(WaitFor([&] {
    return Metric(second.Metrics(), "peerrelay_relayed_datagrams_total") == 40;
  }));
  EXPECT_EQ(Metric(second.Metrics(), "peerrelay_relayed_datagrams_total",
                   {"stage=\"xdp\""}),
            0);
  second.Stop(SIGTERM);

  // An interface that is not there: the same kind of line.
  Relayd third("generic", 7779, 9782, "nosuch0");
  ASSERT_TRUE(third.Ready()) << third.Log();
  EXPECT_NE(third.Log().find("xdp: no interface named \"nosuch0\"; relaying "
                             "through the sockets only"),
            std::string::npos)
      << third.Log();
  third.Stop(SIGTERM);

  // No privilege (the unit without its drop-in): the same kind of line.
  Relayd fourth("generic", 7780, 9783, "xr0", /*unprivileged=*/true);
  ASSERT_TRUE(fourth.Ready()) << fourth.Log();
  EXPECT_NE(fourth.Log().find("not permitted: relayd needs CAP_BPF and "
                              "CAP_NET_ADMIN"),
            std::string::npos)
      << fourth.Log();
  EXPECT_NE(fourth.Log().find("relaying through the sockets only"),
            std::string::npos);
  EXPECT_EQ(Metric(fourth.Metrics(), "peerrelay_xdp_mode", {"mode=\"off\""}),
            1);
  fourth.Stop(SIGTERM);

  // SIGKILL: nothing is left forwarding for a dead relay.
  relayd_->Stop(SIGKILL);
  EXPECT_TRUE(WaitFor([&] {
    return Shell("ip -n " + kNs + " link show xr0").find("xdp") ==
           std::string::npos;
  })) << Shell("ip -n " + kNs + " link show xr0");
}

}  // namespace
}  // namespace peerrelay
