#include "engine/xdp_tier.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "engine/xdp_relay.skel.h"

namespace peerrelay::engine {
namespace {

// libbpf's own messages (the verifier's log among them) go to the debug log.
int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG || !log::Enabled(log::Level::kDebug)) return 0;
  char line[1024];
  const int n = std::vsnprintf(line, sizeof(line), fmt, args);
  if (n > 0) {
    absl::string_view text(line, std::min<size_t>(n, sizeof(line) - 1));
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    PEERRELAY_LOG(kDebug, "libbpf: ", text);
  }
  return 0;
}

// What to suspect when the kernel refuses with `err` (an errno).
std::string Hint(int err, absl::string_view interface, bool native) {
  switch (err) {
    case EPERM:
    case EACCES:
      return "not permitted: relayd needs CAP_BPF and CAP_NET_ADMIN (see "
             "docs/xdp.md), or a seccomp filter refuses bpf()";
    case EOPNOTSUPP:
      return native ? absl::StrCat("the driver of ", interface,
                                   " has no native XDP (--xdp=generic or "
                                   "auto works anywhere)")
                    : "the kernel refused generic XDP";
    case EBUSY:
    case EEXIST:
      return absl::StrCat("another XDP program is attached to ", interface,
                          " (another relayd?)");
    case ENOSYS:
      return "this kernel has no BPF";
    case EINVAL:
      return "the kernel refused the program or the link (XDP links need "
             "Linux 5.9 or later)";
    default:
      return "";
  }
}

std::string Describe(int err, absl::string_view interface, bool native) {
  std::string hint = Hint(err, interface, native);
  return absl::StrCat(std::strerror(err), hint.empty() ? "" : ": ", hint);
}

xdp_local_addr ToLocal(const SocketAddress& a) {
  xdp_local_addr k{};
  if (a.is_ipv4()) {
    k.family = XDP_FAMILY_IPV4;
    std::memcpy(k.addr, a.bytes().data() + 12, 4);
  } else {
    k.family = XDP_FAMILY_IPV6;
    std::memcpy(k.addr, a.bytes().data(), 16);
  }
  return k;
}

xdp_side ToSide(const SocketAddress& a) {
  const xdp_local_addr k = ToLocal(a);
  xdp_side s{};
  std::memcpy(s.addr, k.addr, sizeof(s.addr));
  s.family = k.family;
  s.port = htons(a.port());
  return s;
}

constexpr size_t kStatsStride = (sizeof(xdp_slot_stats) + 7) / 8 * 8;

}  // namespace

bool IsXdpAttachMode(absl::string_view mode) {
  return mode == "native" || mode == "generic" || mode == "auto";
}

const char* XdpPassReasonName(int reason) {
  switch (reason) {
    case XDP_PASS_IP_OPTIONS: return "ip_options";
    case XDP_PASS_FRAGMENT: return "fragment";
    case XDP_PASS_BAD_LENGTH: return "bad_length";
    case XDP_PASS_SHORT: return "short";
    case XDP_PASS_CONTROL: return "control";
    case XDP_PASS_UNKNOWN_VNI: return "unknown_vni";
    case XDP_PASS_UNKNOWN_SOURCE: return "unknown_source";
    case XDP_PASS_NO_ROUTE: return "no_route";
    case XDP_PASS_ZERO_CHECKSUM6: return "zero_checksum6";
    case XDP_PASS_NO_NEIGHBOUR: return "no_neighbour";
    case XDP_PASS_FORWARDING_OFF: return "forwarding_off";
    default: return "unknown";
  }
}

XdpTier::XdpTier(XdpOptions options) : options_(std::move(options)) {}

XdpTier::~XdpTier() {
  for (int fd : link_fds_) close(fd);  // detaches
  if (skel_ != nullptr) xdp_relay__destroy(skel_);
}

absl::StatusOr<std::unique_ptr<XdpTier>> XdpTier::LoadForTesting(
    XdpOptions options) {
  std::unique_ptr<XdpTier> tier(new XdpTier(std::move(options)));
  if (absl::Status s = tier->Load(); !s.ok()) return s;
  return tier;
}

absl::StatusOr<std::unique_ptr<XdpTier>> XdpTier::Attach(XdpOptions options) {
  if (!IsXdpAttachMode(options.mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "xdp: unknown mode \"", options.mode, "\" (off, auto, native, generic)"));
  }
  if (options.interfaces.empty()) {
    return absl::InvalidArgumentError(
        "xdp: no interface to attach to (--xdp_interfaces)");
  }
  if (options.port == 0) {
    return absl::InvalidArgumentError("xdp: needs a fixed relay port");
  }
  std::unique_ptr<XdpTier> tier(new XdpTier(std::move(options)));
  if (absl::Status s = tier->Load(); !s.ok()) return s;
  if (absl::Status s = tier->AttachAll(); !s.ok()) return s;
  tier->RefreshLocalAddresses();
  return tier;
}

absl::Status XdpTier::Load() {
  libbpf_set_print(LibbpfPrint);
  // The MTU bounds what the program forwards as one datagram (see
  // max_ip_len in the program).
  uint32_t mtu = 1500;
  bool first = true;
  for (const std::string& name : options_.interfaces) {
    if (if_nametoindex(name.c_str()) == 0) {
      return absl::NotFoundError(
          absl::StrCat("xdp: no interface named \"", name, "\""));
    }
    std::ifstream f("/sys/class/net/" + name + "/mtu");
    uint32_t m = 0;
    if (f >> m && m > 0) {
      mtu = first ? m : std::max(mtu, m);
      first = false;
    }
  }
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return absl::InternalError(absl::StrCat(
        "xdp: cannot count the CPUs: ", std::strerror(-ncpus)));
  }
  ncpus_ = ncpus;
  skel_ = xdp_relay__open();
  if (skel_ == nullptr) {
    return absl::InternalError(
        absl::StrCat("xdp: cannot open the program: ", std::strerror(errno)));
  }
  skel_->rodata->relay_port = htons(options_.port);
  skel_->rodata->max_ip_len = mtu;
  const uint32_t max_pairs = std::max<uint32_t>(options_.max_pairs, 1);
  bpf_map__set_max_entries(skel_->maps.pairs, max_pairs);
  bpf_map__set_max_entries(skel_->maps.stats, max_pairs);
  if (int err = xdp_relay__load(skel_); err != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("xdp: cannot load the program: ",
                     Describe(-err, "", false)));
  }
  slots_.resize(max_pairs);
  free_slots_.reserve(max_pairs);
  for (uint32_t i = max_pairs; i > 0; --i) free_slots_.push_back(i - 1);
  return absl::OkStatus();
}

namespace {
// "1" in /proc/sys/net/ipv{4,6}/conf/IF/forwarding (false when unreadable:
// no IPv6 on the interface, say).
bool ForwardingOn(absl::string_view family, const std::string& interface) {
  std::ifstream f(absl::StrCat("/proc/sys/net/", family, "/conf/", interface,
                               "/forwarding"));
  int v = 0;
  return f >> v && v != 0;
}
}  // namespace

absl::Status XdpTier::CheckForwarding() {
  // The program asks the kernel's FIB for the next hop, and the kernel
  // answers only for interfaces with forwarding on (it refuses otherwise,
  // and every datagram would go up to the sockets). On with a FORWARD
  // policy of drop, the host still routes nothing else (docs/xdp.md).
  const bool want_v6 = !options_.listen.is_ipv4();
  for (const std::string& name : options_.interfaces) {
    const bool v4 = ForwardingOn("ipv4", name);
    const bool v6 = want_v6 && ForwardingOn("ipv6", name);
    if (!v4 && !v6) {
      return absl::FailedPreconditionError(absl::StrCat(
          "xdp: forwarding is off on ", name,
          ", and the kernel's FIB lookup answers only where it is on: set "
          "net.ipv4.conf.", name, ".forwarding=1",
          want_v6 ? absl::StrCat(" and net.ipv6.conf.", name, ".forwarding=1")
                  : "",
          " (see docs/xdp.md)"));
    }
    if (!v4) {
      warnings_.push_back(absl::StrCat(
          "xdp: IPv4 forwarding is off on ", name,
          ": IPv4 pairs stay on the sockets (net.ipv4.conf.", name,
          ".forwarding=1)"));
    }
    if (want_v6 && !v6) {
      warnings_.push_back(absl::StrCat(
          "xdp: IPv6 forwarding is off on ", name,
          ": IPv6 pairs stay on the sockets (net.ipv6.conf.", name,
          ".forwarding=1)"));
    }
  }
  return absl::OkStatus();
}

absl::Status XdpTier::AttachAll() {
  if (absl::Status s = CheckForwarding(); !s.ok()) return s;
  const int prog_fd = bpf_program__fd(skel_->progs.relay_xdp);
  std::vector<std::string> modes;
  for (const std::string& name : options_.interfaces) {
    const int ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    std::vector<std::pair<const char*, uint32_t>> tries;
    if (options_.mode != "generic") tries.push_back({"native", XDP_FLAGS_DRV_MODE});
    if (options_.mode != "native") tries.push_back({"generic", XDP_FLAGS_SKB_MODE});
    std::string failures;
    int fd = -1;
    for (const auto& [mode, flags] : tries) {
      LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
      // A link, not a netlink attachment: it lives as long as this
      // process holds its fd (nothing pinned), so the program is detached
      // when relayd exits, crashes or is killed; and the kernel refuses a
      // second program on the interface while it is there.
      fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
      if (fd >= 0) {
        modes.push_back(mode);
        break;
      }
      const int err = errno;
      absl::StrAppend(&failures, failures.empty() ? "" : "; ", mode, ": ",
                      Describe(err, name, std::string(mode) == "native"));
    }
    if (fd < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "xdp: cannot attach to ", name, " (", failures, ")"));
    }
    link_fds_.push_back(fd);
  }
  const bool same = std::all_of(modes.begin(), modes.end(),
                                [&](const std::string& m) { return m == modes[0]; });
  mode_ = same ? modes[0] : absl::StrJoin(modes, "+");
  return absl::OkStatus();
}

absl::Status XdpTier::ZeroSlot(uint32_t slot) {
  std::vector<uint8_t> zeros(kStatsStride * ncpus_, 0);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.stats), &slot, zeros.data(),
                          BPF_ANY) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  return absl::OkStatus();
}

absl::Status XdpTier::ReadSlot(uint32_t slot, xdp_slot_stats* out) const {
  std::vector<uint8_t> per_cpu(kStatsStride * ncpus_);
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.stats), &slot,
                          per_cpu.data()) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  *out = {};
  for (int cpu = 0; cpu < ncpus_; ++cpu) {
    xdp_slot_stats one;
    std::memcpy(&one, per_cpu.data() + cpu * kStatsStride, sizeof(one));
    for (int s = 0; s < 2; ++s) {
      out->packets[s] += one.packets[s];
      out->bytes[s] += one.bytes[s];
    }
  }
  return absl::OkStatus();
}

void XdpTier::PairBound(const relay::Endpoint& ep) {
  const SocketAddress& a = ep.sides[0].addr;
  const SocketAddress& b = ep.sides[1].addr;
  std::lock_guard<std::mutex> l(mu_);
  auto it = mirrored_.find(ep.vni);
  if (it != mirrored_.end() && it->second.lamport_id != ep.lamport_id) {
    RemoveLocked(ep.vni);  // not expected: removal comes first
    it = mirrored_.end();
  }
  if (a.is_ipv4() != b.is_ipv4()) {
    // Relayed across families by the sockets (the kernel program keeps
    // the family of the datagram it rewrites).
    if (it != mirrored_.end()) RemoveLocked(ep.vni);
    mixed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const bool fresh = it == mirrored_.end();
  uint32_t slot;
  if (fresh) {
    if (free_slots_.empty()) {
      full_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    slot = free_slots_.back();
    if (!ZeroSlot(slot).ok()) {
      map_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    free_slots_.pop_back();
    slots_[slot] = Slot{.vni = ep.vni,
                        .lamport_id = ep.lamport_id,
                        .ipv6 = !a.is_ipv4()};
  } else {
    slot = it->second.slot;
  }
  xdp_pair pair{};
  pair.side[0] = ToSide(a);
  pair.side[1] = ToSide(b);
  pair.slot = slot;
  const uint32_t vni = ep.vni;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.pairs), &vni, &pair,
                          BPF_ANY) != 0) {
    map_errors_.fetch_add(1, std::memory_order_relaxed);
    if (fresh) {
      free_slots_.push_back(slot);
    } else {
      RemoveLocked(vni);  // never leave the old addresses forwarding
    }
    return;
  }
  if (fresh) mirrored_[vni] = Mirrored{slot, ep.lamport_id};
}

void XdpTier::PairRemoved(const relay::Endpoint& ep) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = mirrored_.find(ep.vni);
  if (it != mirrored_.end() && it->second.lamport_id == ep.lamport_id) {
    RemoveLocked(ep.vni);
  }
}

void XdpTier::RemoveLocked(uint32_t vni) {
  auto it = mirrored_.find(vni);
  if (it == mirrored_.end()) return;
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.pairs), &vni) != 0 &&
      errno != ENOENT) {
    map_errors_.fetch_add(1, std::memory_order_relaxed);
  }
  retiring_.push_back({it->second.slot, harvests_});
  mirrored_.erase(it);
}

size_t XdpTier::pairs() const {
  std::lock_guard<std::mutex> l(mu_);
  return mirrored_.size();
}

void XdpTier::Harvest(relay::Server* server, int64_t now_ns, bool last) {
  RefreshLocalAddresses();
  struct Moved {
    uint32_t vni;
    uint64_t lamport_id;
    bool live;
    bool ipv6;
    int side;
    uint64_t packets, bytes;
  };
  std::vector<Moved> moved;
  auto collect = [&](Slot& s, bool live) {
    xdp_slot_stats now{};
    if (!ReadSlot(static_cast<uint32_t>(&s - slots_.data()), &now).ok()) {
      map_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    for (int side = 0; side < 2; ++side) {
      const uint64_t p = now.packets[side] - s.seen.packets[side];
      const uint64_t b = now.bytes[side] - s.seen.bytes[side];
      if (p == 0 && b == 0) continue;
      moved.push_back({s.vni, s.lamport_id, live, s.ipv6, side, p, b});
    }
    s.seen = now;
  };
  {
    std::lock_guard<std::mutex> l(mu_);
    ++harvests_;
    for (const auto& [vni, m] : mirrored_) collect(slots_[m.slot], true);
    // A slot retired at harvest H is read a last time and freed at H + 2:
    // a whole interval after the pair left the map, long past any program
    // run that had looked it up before.
    size_t kept = 0;
    for (const auto& [slot, retired_at] : retiring_) {
      if (last || harvests_ >= retired_at + 2) {
        collect(slots_[slot], false);
        free_slots_.push_back(slot);
      } else {
        retiring_[kept++] = {slot, retired_at};
      }
    }
    retiring_.resize(kept);
  }
  for (const Moved& m : moved) {
    counters_.received.Add(m.packets);
    counters_.received_bytes.Add(m.bytes);
    counters_.Relayed(m.ipv6, m.ipv6, m.packets, m.bytes);
    if (m.live && server != nullptr) {
      server->AddKernelTraffic(m.vni, m.lamport_id, m.side, m.packets,
                               m.bytes, now_ns);
    }
  }
}

relay::CountersSnapshot XdpTier::Counters() const {
  relay::CountersSnapshot s;
  s.Add(counters_);
  return s;
}

std::array<uint64_t, XDP_PASS_REASONS> XdpTier::Passes() const {
  std::array<uint64_t, XDP_PASS_REASONS> out{};
  std::vector<uint64_t> per_cpu(ncpus_);
  for (uint32_t r = 0; r < XDP_PASS_REASONS; ++r) {
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.passes), &r,
                            per_cpu.data()) != 0) {
      continue;
    }
    for (uint64_t v : per_cpu) out[r] += v;
  }
  return out;
}

void XdpTier::RefreshLocalAddresses() {
  const SocketAddress& listen = options_.listen;
  absl::flat_hash_set<SocketAddress> want;
  if (!listen.is_unspecified()) {
    SocketAddress a = listen;
    a.set_port(0);
    want.insert(a);
  } else {
    const bool v4_only = listen.is_ipv4();
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return;  // keep what we have
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr) continue;
      const int family = i->ifa_addr->sa_family;
      if (family != AF_INET && (family != AF_INET6 || v4_only)) continue;
      auto a = SocketAddress::FromSockaddr(
          i->ifa_addr, family == AF_INET ? sizeof(sockaddr_in)
                                         : sizeof(sockaddr_in6));
      if (!a) continue;
      // Link-local IPv6 is not a source to re-originate from.
      if (!a->is_ipv4() && a->bytes()[0] == 0xFE &&
          (a->bytes()[1] & 0xC0) == 0x80) {
        continue;
      }
      a->set_port(0);
      want.insert(*a);
    }
    freeifaddrs(list);
  }
  ApplyLocalAddresses(want);
}

void XdpTier::ApplyLocalAddresses(
    const absl::flat_hash_set<SocketAddress>& want) {
  const int fd = bpf_map__fd(skel_->maps.local_addrs);
  for (auto it = local_.begin(); it != local_.end();) {
    if (!want.contains(*it)) {
      const xdp_local_addr k = ToLocal(*it);
      bpf_map_delete_elem(fd, &k);
      local_.erase(it++);
    } else {
      ++it;
    }
  }
  for (const SocketAddress& a : want) {
    if (local_.contains(a)) continue;
    const xdp_local_addr k = ToLocal(a);
    const uint8_t one = 1;
    if (bpf_map_update_elem(fd, &k, &one, BPF_ANY) == 0) {
      local_.insert(a);
    } else {
      map_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

absl::Status XdpTier::SetLocalAddressesForTesting(
    const std::vector<SocketAddress>& addrs) {
  absl::flat_hash_set<SocketAddress> want;
  for (SocketAddress a : addrs) {
    a.set_port(0);
    want.insert(a);
  }
  ApplyLocalAddresses(want);
  return absl::OkStatus();
}

absl::StatusOr<XdpRunResult> XdpTier::Run(const std::vector<uint8_t>& packet,
                                          int ifindex) const {
  XdpRunResult r;
  r.packet.resize(packet.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(packet.size());
  ctx.ingress_ifindex = static_cast<uint32_t>(ifindex);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(),
              .data_out = r.packet.data(),
              .data_size_in = static_cast<uint32_t>(packet.size()),
              .data_size_out = static_cast<uint32_t>(r.packet.size()),
              .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.relay_xdp),
                             &opts) != 0) {
    return absl::InternalError(
        absl::StrCat("xdp test run: ", std::strerror(errno)));
  }
  r.action = opts.retval;
  r.packet.resize(opts.data_size_out);
  return r;
}

}  // namespace peerrelay::engine
