// One table of datagrams, each judged twice: by the relay core's fast-path
// verdict (Server::Classify, what the sockets' engines run) and by the XDP
// program in the kernel (BPF_PROG_TEST_RUN on a veth in a network namespace
// this test makes for itself, with a route and neighbours so the FIB lookup
// is real). The two may not drift: the program forwards only what the core
// forwards, to the same address and port, and its output is the frame this
// test builds from scratch (addresses, ports, TTL 64, checksums computed
// anew, MACs from the neighbour table). Every pass is counted under the
// reason the row names.
//
// Needs root (a network namespace, BPF): tagged local, run by
// scripts/run_tests.sh as root like CI does.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "disco/key.h"
#include "engine/xdp_tier.h"
#include "geneve/geneve.h"
#include "gtest/gtest.h"
#include "relay/server.h"

namespace peerrelay::engine {
namespace {

constexpr uint16_t kPort = 7777;
const uint8_t kRelayMac[6] = {0x02, 0, 0, 0, 0, 0x01};
const uint8_t kPeerMac[6] = {0x02, 0, 0, 0, 0, 0x02};
const uint8_t kOtherMac[6] = {0x02, 0, 0, 0, 0, 0x09};

SocketAddress Addr(const char* text) {
  return SocketAddress::Parse(text).value();
}

bool Sh(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  if (rc != 0) ADD_FAILURE() << "failed: " << cmd;
  return rc == 0;
}

// ---- Frames, built from scratch (no incremental arithmetic) -------------

uint32_t Sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n % 2) sum += p[n - 1] << 8;
  return sum;
}
uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

struct Frame {
  SocketAddress src, dst;
  std::vector<uint8_t> payload;  // the UDP payload (Geneve and beyond)
  const uint8_t* eth_src = kPeerMac;
  const uint8_t* eth_dst = kRelayMac;
  uint8_t ttl = 17;
  bool zero_checksum = false;     // IPv4 only: UDP checksum 0
  bool bad_zero_checksum6 = false;
  int ip_option_words = 0;        // IPv4 options (NOPs), 4 bytes each
  uint16_t frag = 0x4000;         // IPv4 flags + offset (DF)
  uint8_t protocol = 17;          // IPv4 protocol / IPv6 next header
  uint16_t ethertype = 0;         // 0: by family
  int udp_len_delta = 0;          // UDP length field minus the true one
  size_t pad_to = 0;              // Ethernet padding up to this size
  size_t cut_to = 0;              // frame cut short to this size
};

std::vector<uint8_t> Build(const Frame& f) {
  const bool v6 = !f.src.is_ipv4();
  std::vector<uint8_t> out(14);
  std::memcpy(&out[0], f.eth_dst, 6);
  std::memcpy(&out[6], f.eth_src, 6);
  const uint16_t et = f.ethertype ? f.ethertype : (v6 ? 0x86DD : 0x0800);
  out[12] = et >> 8;
  out[13] = et & 0xFF;
  const size_t udp_len = 8 + f.payload.size();
  std::vector<uint8_t> udp(udp_len);
  udp[0] = f.src.port() >> 8;
  udp[1] = f.src.port() & 0xFF;
  udp[2] = f.dst.port() >> 8;
  udp[3] = f.dst.port() & 0xFF;
  const uint16_t len_field = static_cast<uint16_t>(udp_len + f.udp_len_delta);
  udp[4] = len_field >> 8;
  udp[5] = len_field & 0xFF;
  if (!f.payload.empty()) {
    std::memcpy(&udp[8], f.payload.data(), f.payload.size());
  }
  // Pseudo-header + UDP.
  uint32_t sum = 0;
  const size_t alen = v6 ? 16 : 4;
  const uint8_t* s = f.src.bytes().data() + (v6 ? 0 : 12);
  const uint8_t* d = f.dst.bytes().data() + (v6 ? 0 : 12);
  sum = Sum16(s, alen, sum);
  sum = Sum16(d, alen, sum);
  sum += 17 + udp_len;
  sum = Sum16(udp.data(), udp.size(), sum);
  uint16_t check = Fold(sum);
  if (check == 0) check = 0xFFFF;
  if (f.zero_checksum || f.bad_zero_checksum6) check = 0;
  udp[6] = check >> 8;
  udp[7] = check & 0xFF;
  if (!v6) {
    const size_t ihl = 5 + f.ip_option_words;
    std::vector<uint8_t> ip(ihl * 4, 0);
    ip[0] = 0x40 | ihl;
    const size_t tot = ip.size() + udp.size();
    ip[2] = tot >> 8;
    ip[3] = tot & 0xFF;
    ip[4] = 0x12;
    ip[5] = 0x34;
    ip[6] = f.frag >> 8;
    ip[7] = f.frag & 0xFF;
    ip[8] = f.ttl;
    ip[9] = f.protocol;
    std::memcpy(&ip[12], s, 4);
    std::memcpy(&ip[16], d, 4);
    for (size_t i = 20; i < ip.size(); ++i) ip[i] = 1;  // NOP options
    const uint16_t hc = Fold(Sum16(ip.data(), ip.size()));
    ip[10] = hc >> 8;
    ip[11] = hc & 0xFF;
    out.insert(out.end(), ip.begin(), ip.end());
  } else {
    std::vector<uint8_t> ip(40, 0);
    ip[0] = 0x60;
    ip[4] = udp.size() >> 8;
    ip[5] = udp.size() & 0xFF;
    ip[6] = f.protocol;
    ip[7] = f.ttl;
    std::memcpy(&ip[8], s, 16);
    std::memcpy(&ip[24], d, 16);
    out.insert(out.end(), ip.begin(), ip.end());
  }
  out.insert(out.end(), udp.begin(), udp.end());
  if (out.size() < f.pad_to) out.resize(f.pad_to, 0);
  if (f.cut_to) out.resize(f.cut_to);
  return out;
}

std::vector<uint8_t> Geneve(uint32_t vni, bool control, uint16_t protocol,
                            size_t body) {
  std::vector<uint8_t> p(geneve::kHeaderSize + body);
  geneve::Encode({.control = control, .protocol = protocol, .vni = vni},
                 p.data());
  for (size_t i = 0; i < body; ++i) p[8 + i] = static_cast<uint8_t>(i * 7 + 3);
  return p;
}

// ---- The table ----------------------------------------------------------

enum class Kernel { kTx, kPass, kPassNotOurs };
enum class Core { kForward, kSlowPath, kDrop, kNotDelivered };

struct Row {
  const char* name;
  Frame in;
  Kernel kernel;
  int pass_reason = -1;  // for kPass
  Core core;
  relay::DropReason drop = relay::DropReason::kCount;
  std::optional<SocketAddress> to;      // kForward: the other side
  const uint8_t* to_mac = kPeerMac;     // kTx: the neighbour's MAC
};

class XdpVerdictTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "this test needs root (netns, BPF)";
    // A network namespace of our own for this process: the veth, its
    // addresses and neighbours vanish with it.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    ASSERT_TRUE(Sh("ip link set lo up"));
    ASSERT_TRUE(Sh("ip link add xr0 address 02:00:00:00:00:01 type veth "
                   "peer name xc0 address 02:00:00:00:00:02"));
    ASSERT_TRUE(Sh("ip link set xr0 up && ip link set xc0 up"));
    ASSERT_TRUE(Sh("ip addr add 10.9.0.1/24 dev xr0"));
    ASSERT_TRUE(Sh("ip -6 addr add fd09::1/64 dev xr0 nodad"));
    // The kernel's FIB lookup answers only where forwarding is on.
    ASSERT_TRUE(Sh("sysctl -qw net.ipv4.conf.xr0.forwarding=1 "
                   "net.ipv6.conf.xr0.forwarding=1"));
    for (const char* n : {"10.9.0.2", "10.9.0.3", "fd09::2", "fd09::3"}) {
      ASSERT_TRUE(Sh(absl::StrCat("ip neigh replace ", n,
                                  " lladdr 02:00:00:00:00:02 dev xr0 nud "
                                  "permanent")));
    }
    ASSERT_TRUE(Sh("ip neigh replace 10.9.0.4 lladdr 02:00:00:00:00:09 "
                   "dev xr0 nud permanent"));
    ifindex_ = static_cast<int>(if_nametoindex("xr0"));
    ASSERT_GT(ifindex_, 0);
  }

  void SetUp() override {
    relay::ServerConfig config;
    config.addresses = {Addr("10.9.0.1:7777")};
    server_ = relay::Server::Create(std::move(config), now_).value();
    auto tier = XdpTier::LoadForTesting({.port = kPort});
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = std::move(*tier);
    ASSERT_TRUE(tier_->SetLocalAddressesForTesting(
                          {Addr("10.9.0.1:0"), Addr("[fd09::1]:0")})
                    .ok());
    // Endpoints: a v4 pair, a v6 pair, a mixed pair (stays in user space),
    // a pair whose one side has no neighbour, a pair with a side behind
    // another MAC, and one never bound.
    v4_ = Bind(A4, B4);
    v6_ = Bind(A6, B6);
    mixed_ = Bind(Addr("10.9.0.2:40003"), Addr("[fd09::3]:40004"));
    noneigh_ = Bind(Addr("10.9.0.2:40005"), Addr("10.9.0.7:40006"));
    othermac_ = Bind(Addr("10.9.0.2:40007"), Addr("10.9.0.4:40008"));
    noroute_ = Bind(Addr("10.9.0.2:40009"), Addr("192.0.2.9:40010"));
    unbound_ = Allocate();
    // Observing now mirrors every pair bound so far.
    server_->SetPairObserver(tier_.get());
  }
  void TearDown() override { server_->SetPairObserver(nullptr); }

  uint32_t Allocate() {
    auto ep = server_->Allocate(disco::KeyPair::Generate().public_key(),
                                disco::KeyPair::Generate().public_key(), now_);
    EXPECT_TRUE(ep.ok()) << ep.status();
    return ep->vni;
  }
  uint32_t Bind(const SocketAddress& a, const SocketAddress& b) {
    const uint32_t vni = Allocate();
    EXPECT_TRUE(server_->BindForTesting(vni, a, b, now_));
    return vni;
  }

  std::vector<Row> Rows() const;

  const SocketAddress A4 = Addr("10.9.0.2:40001"), B4 = Addr("10.9.0.3:40002");
  const SocketAddress A6 = Addr("[fd09::2]:40001"),
                      B6 = Addr("[fd09::3]:40002");
  const SocketAddress R4 = Addr("10.9.0.1:7777"), R6 = Addr("[fd09::1]:7777");
  static inline int ifindex_ = 0;
  int64_t now_ = 1'000'000'000;
  std::unique_ptr<relay::Server> server_;
  std::unique_ptr<XdpTier> tier_;
  uint32_t v4_ = 0, v6_ = 0, mixed_ = 0, noneigh_ = 0, othermac_ = 0,
           noroute_ = 0, unbound_ = 0;
};

constexpr uint16_t kWg = geneve::kProtocolWireGuard;
constexpr uint16_t kDisco = geneve::kProtocolDisco;

std::vector<Row> XdpVerdictTest::Rows() const {
  using relay::DropReason;
  auto data = [](uint32_t vni, size_t body = 120) {
    return Geneve(vni, false, kWg, body);
  };
  std::vector<Row> rows;
  auto add = [&](Row r) { rows.push_back(std::move(r)); };
  add({"v4 a to b", {A4, R4, data(v4_)}, Kernel::kTx, -1, Core::kForward,
       DropReason::kCount, B4});
  add({"v4 b to a", {B4, R4, data(v4_)}, Kernel::kTx, -1, Core::kForward,
       DropReason::kCount, A4});
  add({"v6 a to b", {A6, R6, data(v6_)}, Kernel::kTx, -1, Core::kForward,
       DropReason::kCount, B6});
  add({"v6 b to a", {B6, R6, data(v6_)}, Kernel::kTx, -1, Core::kForward,
       DropReason::kCount, A6});
  add({"v4 1400 B", {A4, R4, data(v4_, 1392)}, Kernel::kTx, -1,
       Core::kForward, DropReason::kCount, B4});
  add({"v6 1400 B", {B6, R6, data(v6_, 1392)}, Kernel::kTx, -1,
       Core::kForward, DropReason::kCount, A6});
  add({"disco ping as data (protocol 0x7A11, control clear)",
       {A4, R4, Geneve(v4_, false, kDisco, 60)}, Kernel::kTx, -1,
       Core::kForward, DropReason::kCount, B4});
  add({"unknown protocol as data", {A4, R4, Geneve(v4_, false, 0x1234, 10)},
       Kernel::kTx, -1, Core::kForward, DropReason::kCount, B4});
  add({"Geneve header only", {A4, R4, data(v4_, 0)}, Kernel::kTx, -1,
       Core::kForward, DropReason::kCount, B4});
  add({"short datagram padded by Ethernet to 60 bytes",
       {.src = A4, .dst = R4, .payload = data(v4_, 2), .pad_to = 60},
       Kernel::kTx, -1, Core::kForward, DropReason::kCount, B4});
  add({"v4 UDP checksum 0 stays 0",
       {.src = A4, .dst = R4, .payload = data(v4_), .zero_checksum = true},
       Kernel::kTx, -1, Core::kForward, DropReason::kCount, B4});
  add({"v4 TTL 1 arriving leaves with 64",
       {.src = A4, .dst = R4, .payload = data(v4_), .ttl = 1}, Kernel::kTx,
       -1, Core::kForward, DropReason::kCount, B4});
  add({"v6 hop limit 255 arriving leaves with 64",
       {.src = A6, .dst = R6, .payload = data(v6_), .ttl = 255}, Kernel::kTx,
       -1, Core::kForward, DropReason::kCount, B6});
  add({"other side behind another MAC",
       {Addr("10.9.0.2:40007"), R4, data(othermac_)}, Kernel::kTx, -1,
       Core::kForward, DropReason::kCount, Addr("10.9.0.4:40008"),
       kOtherMac});
  // Passed, and the core's verdict on it.
  add({"control bit (disco handshake)", {A4, R4, Geneve(v4_, true, kDisco, 80)},
       Kernel::kPass, XDP_PASS_CONTROL, Core::kSlowPath});
  add({"control bit, other protocol", {A4, R4, Geneve(v4_, true, kWg, 80)},
       Kernel::kPass, XDP_PASS_CONTROL, Core::kDrop,
       DropReason::kBadControlProtocol});
  add({"unknown VNI", {A4, R4, data(0xABCDE)}, Kernel::kPass,
       XDP_PASS_UNKNOWN_VNI, Core::kDrop, DropReason::kUnknownVni});
  add({"VNI not bound", {A4, R4, data(unbound_)}, Kernel::kPass,
       XDP_PASS_UNKNOWN_VNI, Core::kDrop, DropReason::kNotBound});
  add({"wrong source port", {Addr("10.9.0.2:40009"), R4, data(v4_)},
       Kernel::kPass, XDP_PASS_UNKNOWN_SOURCE, Core::kDrop,
       DropReason::kUnknownSource});
  add({"wrong source address", {Addr("10.9.0.3:40001"), R4, data(v4_)},
       Kernel::kPass, XDP_PASS_UNKNOWN_SOURCE, Core::kDrop,
       DropReason::kUnknownSource});
  add({"v6 source for a v4 pair", {A6, R6, data(v4_)}, Kernel::kPass,
       XDP_PASS_UNKNOWN_SOURCE, Core::kDrop, DropReason::kUnknownSource});
  add({"7 bytes: no whole Geneve header",
       {A4, R4, std::vector<uint8_t>(7, 0)}, Kernel::kPass, XDP_PASS_SHORT,
       Core::kDrop, DropReason::kShortDatagram});
  add({"empty UDP payload", {A4, R4, {}}, Kernel::kPass, XDP_PASS_SHORT,
       Core::kDrop, DropReason::kShortDatagram});
  add({"mixed-family pair stays in user space",
       {Addr("10.9.0.2:40003"), R4, data(mixed_)}, Kernel::kPass,
       XDP_PASS_UNKNOWN_VNI, Core::kForward, DropReason::kCount,
       Addr("[fd09::3]:40004")});
  add({"no neighbour for the other side: the stack resolves it",
       {Addr("10.9.0.2:40005"), R4, data(noneigh_)}, Kernel::kPass,
       XDP_PASS_NO_NEIGHBOUR, Core::kForward, DropReason::kCount,
       Addr("10.9.0.7:40006")});
  add({"no route to the other side",
       {Addr("10.9.0.2:40009"), R4, data(noroute_)}, Kernel::kPass,
       XDP_PASS_NO_ROUTE, Core::kForward, DropReason::kCount,
       Addr("192.0.2.9:40010")});
  add({"IPv4 options",
       {.src = A4, .dst = R4, .payload = data(v4_), .ip_option_words = 1},
       Kernel::kPass, XDP_PASS_IP_OPTIONS, Core::kForward, DropReason::kCount,
       B4});
  add({"IPv4 fragment (more fragments)",
       {.src = A4, .dst = R4, .payload = data(v4_), .frag = 0x2000},
       Kernel::kPass, XDP_PASS_FRAGMENT, Core::kNotDelivered});
  add({"IPv4 fragment (offset)",
       {.src = A4, .dst = R4, .payload = data(v4_), .frag = 0x0010},
       Kernel::kPass, XDP_PASS_FRAGMENT, Core::kNotDelivered});
  add({"UDP length longer than the IP payload",
       {.src = A4, .dst = R4, .payload = data(v4_), .udp_len_delta = 4},
       Kernel::kPass, XDP_PASS_BAD_LENGTH, Core::kNotDelivered});
  add({"v6 UDP length shorter than the payload",
       {.src = A6, .dst = R6, .payload = data(v6_), .udp_len_delta = -4},
       Kernel::kPass, XDP_PASS_BAD_LENGTH, Core::kNotDelivered});
  add({"frame cut short of its IP length",
       {.src = A4, .dst = R4, .payload = data(v4_), .cut_to = 100},
       Kernel::kPass, XDP_PASS_BAD_LENGTH, Core::kNotDelivered});
  add({"over the MTU (GRO-merged in generic mode)",
       {A4, R4, data(v4_, 1600)}, Kernel::kPass, XDP_PASS_BAD_LENGTH,
       Core::kForward, DropReason::kCount, B4});
  add({"v6 UDP checksum 0 (invalid in IPv6)",
       {.src = A6, .dst = R6, .payload = data(v6_), .bad_zero_checksum6 = true},
       Kernel::kPass, XDP_PASS_ZERO_CHECKSUM6, Core::kNotDelivered});
  // Not the relay's: passed without a count.
  add({"other UDP port", {A4, Addr("10.9.0.1:7778"), data(v4_)},
       Kernel::kPassNotOurs, -1, Core::kNotDelivered});
  add({"not a local address", {A4, Addr("10.9.0.50:7777"), data(v4_)},
       Kernel::kPassNotOurs, -1, Core::kNotDelivered});
  add({"TCP", {.src = A4, .dst = R4, .payload = data(v4_), .protocol = 6},
       Kernel::kPassNotOurs, -1, Core::kNotDelivered});
  add({"IPv6 extension header first",
       {.src = A6, .dst = R6, .payload = data(v6_), .protocol = 0},
       Kernel::kPassNotOurs, -1, Core::kNotDelivered});
  add({"VLAN tag",
       {.src = A4, .dst = R4, .payload = data(v4_), .ethertype = 0x8100},
       Kernel::kPassNotOurs, -1, Core::kNotDelivered});
  add({"ARP", {.src = A4, .dst = R4, .payload = data(v4_), .ethertype = 0x0806},
       Kernel::kPassNotOurs, -1, Core::kNotDelivered});
  return rows;
}

TEST_F(XdpVerdictTest, KernelAndCoreAgreeOnEveryRow) {
  std::array<uint64_t, XDP_PASS_REASONS> want_passes{};
  uint64_t forwarded = 0, forwarded_bytes = 0;
  for (const Row& row : Rows()) {
    SCOPED_TRACE(row.name);
    const std::vector<uint8_t> in = Build(row.in);
    // The core, on what the socket would read.
    if (row.core != Core::kNotDelivered) {
      const relay::Verdict v =
          server_->Classify(row.in.payload.data(), row.in.payload.size(), 1,
                            row.in.payload.size(), row.in.src, now_);
      switch (row.core) {
        case Core::kForward:
          ASSERT_EQ(v.kind, relay::Verdict::kForward);
          EXPECT_EQ(v.destination, *row.to);
          break;
        case Core::kSlowPath:
          EXPECT_EQ(v.kind, relay::Verdict::kSlowPath);
          break;
        case Core::kDrop:
          EXPECT_EQ(v.kind, relay::Verdict::kDrop);
          EXPECT_EQ(v.reason, row.drop)
              << relay::DropReasonName(v.reason);
          break;
        case Core::kNotDelivered:
          break;
      }
    }
    // The kernel.
    auto run = tier_->Run(in, ifindex_);
    ASSERT_TRUE(run.ok()) << run.status();
    if (row.kernel == Kernel::kTx) {
      // Only what the core forwards, to the same place.
      ASSERT_EQ(row.core, Core::kForward);
      EXPECT_EQ(run->action, uint32_t{XDP_TX});
      Frame out = row.in;
      out.src = row.in.dst;
      out.dst = *row.to;
      out.ttl = 64;
      out.eth_src = kRelayMac;
      out.eth_dst = row.to_mac;
      EXPECT_EQ(run->packet, Build(out));
      ++forwarded;
      forwarded_bytes += row.in.payload.size();
    } else {
      EXPECT_EQ(run->action, uint32_t{XDP_PASS});
      EXPECT_EQ(run->packet, in) << "a passed frame must be unchanged";
      if (row.kernel == Kernel::kPass) ++want_passes[row.pass_reason];
    }
  }
  // Every pass counted under its reason, nothing else.
  const auto passes = tier_->Passes();
  for (int r = 0; r < XDP_PASS_REASONS; ++r) {
    EXPECT_EQ(passes[r], want_passes[r]) << XdpPassReasonName(r);
  }
  // What the kernel forwarded reaches the counters and the sessions view.
  const auto before = server_->Sessions();
  tier_->Harvest(server_.get(), now_ + 5'000'000'000);
  const relay::CountersSnapshot c = tier_->Counters();
  EXPECT_EQ(c.relayed, forwarded);
  EXPECT_EQ(c.received, forwarded);
  EXPECT_EQ(c.relayed_bytes, forwarded_bytes);
  EXPECT_EQ(c.received_bytes, forwarded_bytes);
  EXPECT_EQ(c.forwarded_packets[relay::FamilyIndex(false, false)] +
                c.forwarded_packets[relay::FamilyIndex(true, true)],
            forwarded);
  uint64_t in_sessions = 0;
  const auto after = server_->Sessions();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < after.size(); ++i) {
    for (int s = 0; s < 2; ++s) {
      in_sessions += after[i].packets[s] - before[i].packets[s];
      if (after[i].packets[s] != before[i].packets[s]) {
        EXPECT_EQ(after[i].last_seen_ns[s], now_ + 5'000'000'000);
      }
    }
  }
  EXPECT_EQ(in_sessions, forwarded);
}

TEST_F(XdpVerdictTest, MapFollowsTheTableThroughRebindAndRemoval) {
  EXPECT_EQ(tier_->pairs(), 5u);  // all but the mixed and unbound ones
  EXPECT_EQ(tier_->pairs_mixed_family(), 1u);
  Frame f{A4, R4, Geneve(v4_, false, kWg, 40)};
  EXPECT_EQ(tier_->Run(Build(f), ifindex_)->action, uint32_t{XDP_TX});
  // Re-bind side b to a new port: a moves to the new address at once.
  const SocketAddress b2 = Addr("10.9.0.3:40100");
  ASSERT_TRUE(server_->BindForTesting(v4_, A4, b2, now_));
  auto run = tier_->Run(Build(f), ifindex_);
  ASSERT_EQ(run->action, uint32_t{XDP_TX});
  Frame want = f;
  want.src = R4;
  want.dst = b2;
  want.ttl = 64;
  want.eth_src = kRelayMac;
  want.eth_dst = kPeerMac;
  EXPECT_EQ(run->packet, Build(want));
  // The old address of b is no longer a source.
  EXPECT_EQ(tier_->Run(Build({B4, R4, Geneve(v4_, false, kWg, 40)}), ifindex_)
                ->action,
            uint32_t{XDP_PASS});
  // Expiry removes the pair from the kernel too.
  EXPECT_EQ(server_->Expire(now_ + relay::kDefaultSteadyStateLifetime +
                            relay::kSecond),
            7u);
  EXPECT_EQ(tier_->pairs(), 0u);
  EXPECT_EQ(tier_->Run(Build(f), ifindex_)->action, uint32_t{XDP_PASS});
  // What was forwarded before the removal is still counted, once.
  tier_->Harvest(server_.get(), now_);
  tier_->Harvest(server_.get(), now_);
  EXPECT_EQ(tier_->Counters().relayed, 2u);
  tier_->Harvest(server_.get(), now_);
  EXPECT_EQ(tier_->Counters().relayed, 2u);
}

TEST_F(XdpVerdictTest, ForwardingOffSendsEverythingUpWithItsReason) {
  ASSERT_TRUE(Sh("sysctl -qw net.ipv4.conf.xr0.forwarding=0"));
  Frame f{A4, R4, Geneve(v4_, false, kWg, 40)};
  auto run = tier_->Run(Build(f), ifindex_);
  ASSERT_TRUE(Sh("sysctl -qw net.ipv4.conf.xr0.forwarding=1"));
  EXPECT_EQ(run->action, uint32_t{XDP_PASS});
  EXPECT_EQ(run->packet, Build(f));
  EXPECT_EQ(tier_->Passes()[XDP_PASS_FORWARDING_OFF], 1u);
}

TEST_F(XdpVerdictTest, KernelTrafficKeepsAPairFromExpiring) {
  const int64_t lifetime = relay::kDefaultSteadyStateLifetime;
  Frame f{A4, R4, Geneve(v4_, false, kWg, 40)};
  Frame g{B4, R4, Geneve(v4_, false, kWg, 40)};
  // Both sides talk only through the kernel, for longer than the lifetime.
  int64_t t = now_;
  for (int i = 0; i < 4; ++i) {
    t += lifetime / 2;
    ASSERT_EQ(tier_->Run(Build(f), ifindex_)->action, uint32_t{XDP_TX});
    ASSERT_EQ(tier_->Run(Build(g), ifindex_)->action, uint32_t{XDP_TX});
    tier_->Harvest(server_.get(), t);
    server_->Expire(t);
  }
  size_t total = 0;
  auto sessions = server_->Sessions(10, &total);
  bool found = false;
  for (const auto& s : sessions) {
    if (s.vni != v4_) continue;
    found = true;
    EXPECT_EQ(s.packets[0] + s.packets[1], 8u);
  }
  EXPECT_TRUE(found) << "kernel-forwarded pair expired as idle";
  EXPECT_EQ(tier_->pairs(), 1u);  // the others were silent and expired
}

}  // namespace
}  // namespace peerrelay::engine
