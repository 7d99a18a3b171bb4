#include "tools/relayd_config.h"

#include <ifaddrs.h>
#include <net/if.h>

#include <algorithm>
#include <cstdio>
#include <array>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/small_file.h"
#include "disco/key_file.h"
#include "engine/engines.h"
#include "engine/xdp_tier.h"
#include "relay/vni_allocator.h"
#include "common/cli.h"

ABSL_FLAG(int, port, 7777, "UDP port of the relay");
ABSL_FLAG(std::string, listen, "::",
          "address to listen on; '::' is dual-stack (IPv4 and IPv6)");
ABSL_FLAG(std::vector<std::string>, advertise, {},
          "addresses handed to clients, 'ip' or 'ip:port' / '[ip6]:port', "
          "comma separated; default: the host's non-loopback addresses, or "
          "the listen address when that is loopback");
ABSL_FLAG(int, workers, 0, "worker threads (one socket each); 0 = all CPUs");
ABSL_FLAG(std::string, engine, "auto", "packet engine: auto, io_uring, mmsg");
ABSL_FLAG(std::string, uring_sends, "sqe",
          "io_uring engine tuning: 'sqe' sends each batch as SENDMSG SQEs in "
          "the io_uring_enter that waits for receives (one system call per "
          "batch), 'sendmmsg' with one sendmmsg per batch");
ABSL_FLAG(int, uring_max_sqe_sends, 16,
          "io_uring engine tuning: batches with more messages than this (many "
          "destinations) use sendmmsg");
ABSL_FLAG(bool, uring_skip_send_cqes, true,
          "io_uring engine tuning: successful sends post no completion "
          "(IOSQE_CQE_SKIP_SUCCESS)");
ABSL_FLAG(bool, uring_register_fds, true,
          "io_uring engine tuning: register the ring fd and the socket as a "
          "fixed file");
ABSL_FLAG(uint32_t, napi_busy_poll_us, 0,
          "io_uring engine on a NIC: NAPI busy-poll this many microseconds "
          "per wait (Linux 6.9+; costs a core's idle time; 0: off)");
ABSL_FLAG(std::string, profile, "current",
          "protocol profile: current (today's clients) or seed");
ABSL_FLAG(absl::Duration, bind_lifetime, absl::Seconds(30),
          "how long an endpoint may wait for both sides to bind");
ABSL_FLAG(absl::Duration, steady_state_lifetime, absl::Minutes(5),
          "how long a bound side may stay silent");
ABSL_FLAG(uint32_t, max_endpoints, 0,
          "cap on endpoints alive at once; 0 = sized to memory (a quarter of "
          "RAM at ~1 KiB per endpoint, at most the VNI space)");
ABSL_FLAG(uint32_t, max_endpoints_per_caller, 10000,
          "cap on endpoints alive at once allocated by one caller (an HTTP "
          "client IP or a UDP requester key); 0 = none");
ABSL_FLAG(double, alloc_rate_total, 500,
          "new endpoints per second over all callers and transports; over it "
          "HTTP answers 503 with Retry-After");
ABSL_FLAG(double, alloc_burst_total, 1000,
          "burst of new endpoints over all callers");
ABSL_FLAG(std::string, key_file, "",
          "file holding the server's disco secret key (created 0600 on first "
          "start); empty: a new key every start");
ABSL_FLAG(std::string, allocate_allowlist, "",
          "file of client disco keys (discokey:<hex>, one per line, # "
          "comments) allowed to allocate over UDP");
ABSL_FLAG(bool, print_public_key, false,
          "print the server's disco public key (from --key_file) and exit");
ABSL_FLAG(bool, pin_cpus, false, "pin worker i to CPU i");
ABSL_FLAG(bool, check_config, false,
          "validate flags and the files they name, print the result and "
          "exit (0: valid) without opening sockets or creating files");
ABSL_FLAG(absl::Duration, stats_interval, absl::ZeroDuration(),
          "log a counters line this often; 0 = only at exit");
ABSL_FLAG(absl::Duration, run_for, absl::ZeroDuration(),
          "stop after this long (demos, soak runs); 0 = until a signal");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9780",
          "admin HTTP listener (allocation, /metrics, /v0/relay/sessions, "
          "/healthz), 'ip:port' or '[ip6]:port'; 'off' disables it");
ABSL_FLAG(std::string, admin_token_file, "",
          "file holding the bearer token that allocation, the session list "
          "and drain require; without it they are refused (403); "
          "'credential:NAME' reads $CREDENTIALS_DIRECTORY/NAME (systemd)");
ABSL_FLAG(std::string, admin_read_token_file, "",
          "file holding a second token that may only read the session list "
          "(monitoring); 'credential:NAME' as above");
ABSL_FLAG(std::string, admin_bridge_token_file, "",
          "file holding the token of a trusted allocation front end (the "
          "tailnet bridge, relayd-bridge): it may only allocate, and may "
          "name the node it allocates for, so that --alloc_rate and "
          "--max_endpoints_per_caller apply per node; 'credential:NAME' as "
          "above");
ABSL_FLAG(std::string, metrics_listen, "off",
          "a second HTTP listener with /metrics, /livez, /readyz and "
          "/healthz only (nothing naming a client), 'ip:port'; 'off': none");
ABSL_FLAG(std::string, log_level, "info",
          "error, warning, notice, info or debug; reloaded on SIGHUP from "
          "the --flagfile");
ABSL_FLAG(std::string, capture_file, "",
          "record every datagram relayd receives and sends to this pcap file "
          "(off when empty). The file holds client addresses and traffic: "
          "use it to diagnose or to record a capture for loadtest/pcap_replay, "
          "then delete it. With --xdp on, datagrams the kernel forwards "
          "never reach relayd and are not in the file");
ABSL_FLAG(std::string, xdp, "off",
          "XDP tier: forward bound pairs' data in the kernel's driver hook "
          "(docs/xdp.md). off; native (the driver's hook); generic (any "
          "interface, slower); auto (native where the driver has it, else "
          "generic). Needs CAP_BPF and CAP_NET_ADMIN and forwarding on the "
          "interfaces; when attaching fails relayd says why in one line and "
          "relays through its sockets");
ABSL_FLAG(std::vector<std::string>, xdp_interfaces, {},
          "interfaces to attach the XDP tier to (comma-separated), the ones "
          "clients reach the relay through; required with --xdp");
ABSL_FLAG(uint32_t, xdp_max_pairs, 65536,
          "bound pairs the XDP tier forwards at once; pairs past it stay on "
          "the sockets");
ABSL_FLAG(uint64_t, capture_max_bytes, 100ull << 20,
          "stop recording once --capture_file reaches this size");
ABSL_FLAG(double, alloc_rate, 5, "HTTP allocations per second per caller");
ABSL_FLAG(double, alloc_burst, 20, "HTTP allocation burst per caller");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Minutes(5),
          "a drain (SIGUSR1, SIGUSR2, relayctl drain): stop allocating, keep "
          "relaying, exit when no endpoint is left or after this long");
ABSL_FLAG(absl::Duration, stop_timeout, absl::Seconds(10),
          "on SIGTERM (systemctl stop, a container runtime): drain for at "
          "most this long, then stop; endpoints still live then are cut. 0 "
          "= stop at once; a second SIGTERM, or SIGINT, stops at once");
ABSL_FLAG(std::string, status_file, "",
          "keep relayd's pid, state (serving, draining) and the result of "
          "the last SIGHUP reload in this file (relayctl reload waits on "
          "it); empty: none");


namespace peerrelay {
namespace {

absl::Status Fail(absl::string_view msg) {
  return absl::InvalidArgumentError(msg);
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           size_t max_bytes) {
  absl::StatusOr<std::string> resolved = cli::ResolveSecretPath(path);
  if (!resolved.ok()) return resolved.status();
  return ReadSmallFile(*resolved, max_bytes);
}

}  // namespace

absl::StatusOr<absl::flat_hash_set<disco::DiscoKey>> LoadAllowlist(
    const std::string& path) {
  absl::flat_hash_set<disco::DiscoKey> keys;
  if (path.empty()) return keys;
  absl::StatusOr<std::string> text = ReadSecretFile(path, 1 << 20);
  if (!text.ok()) return text.status();
  int n = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++n;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    auto k = disco::DiscoKey::ParseText(l);
    if (!k.ok()) {
      return Fail(absl::StrCat(path, ":", n, ": ", k.status().message()));
    }
    keys.insert(*k);
  }
  return keys;
}

absl::StatusOr<std::string> LoadToken(const std::string& path) {
  if (path.empty()) return std::string();
  absl::StatusOr<std::string> text = ReadSecretFile(path, 4096);
  if (!text.ok()) return text.status();
  std::string token(absl::StripAsciiWhitespace(
      absl::string_view(*text).substr(0, text->find('\n'))));
  if (token.empty()) return Fail(absl::StrCat(path, ": empty token"));
  return token;
}

std::string AllowlistFlag() { return absl::GetFlag(FLAGS_allocate_allowlist); }
bool CheckConfigFlag() { return absl::GetFlag(FLAGS_check_config); }
bool PrintPublicKeyFlag() { return absl::GetFlag(FLAGS_print_public_key); }
std::string TokenFlag() { return absl::GetFlag(FLAGS_admin_token_file); }
std::string ReadTokenFlag() {
  return absl::GetFlag(FLAGS_admin_read_token_file);
}
std::string BridgeTokenFlag() {
  return absl::GetFlag(FLAGS_admin_bridge_token_file);
}

namespace {

// The host's non-loopback, non-link-local addresses.
std::vector<SocketAddress> HostAddresses(uint16_t port) {
  std::vector<SocketAddress> out;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return out;
  for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) ||
        !(i->ifa_flags & IFF_UP)) {
      continue;
    }
    socklen_t len = i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in)
                                                      : sizeof(sockaddr_in6);
    auto a = SocketAddress::FromSockaddr(i->ifa_addr, len);
    if (!a) continue;
    if (!a->is_ipv4() && a->bytes()[0] == 0xfe && (a->bytes()[1] & 0xc0) == 0x80) {
      continue;  // link-local
    }
    a->set_port(port);
    out.push_back(*a);
  }
  freeifaddrs(ifs);
  return out;
}



}  // namespace

// Physical memory, from /proc/meminfo (0 when unknown).
uint64_t MemTotalBytes() {
  absl::StatusOr<std::string> info = ReadSmallFile("/proc/meminfo", 1 << 16);
  if (!info.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*info, '\n')) {
    if (!absl::ConsumePrefix(&line, "MemTotal:")) continue;
    line = absl::StripAsciiWhitespace(line);
    uint64_t kib = 0;
    if (absl::SimpleAtoi(line.substr(0, line.find(' ')), &kib)) {
      return kib * 1024;
    }
  }
  return 0;
}

// The memory limit of relayd's cgroup, the smallest along its path up to
// the root (0 when there is none): a container or a unit with MemoryMax=
// is killed at it, whatever the host has. cgroup v2 (memory.max) or v1's
// memory controller (memory.limit_in_bytes; "no limit" is a huge number).
uint64_t CgroupMemoryLimitBytes() {
  absl::StatusOr<std::string> self = ReadSmallFile("/proc/self/cgroup", 1 << 16);
  if (!self.ok()) return 0;
  std::string v2, v1;
  for (absl::string_view line : absl::StrSplit(*self, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3 || f[2].empty() || f[2][0] != '/') continue;
    if (f[0] == "0" && f[1].empty()) v2 = std::string(f[2]);
    for (absl::string_view c : absl::StrSplit(f[1], ',')) {
      if (c == "memory") v1 = std::string(f[2]);
    }
  }
  const std::string root = v1.empty() ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
  const char* file = v1.empty() ? "/memory.max" : "/memory.limit_in_bytes";
  std::string path = v1.empty() ? v2 : v1;
  if (path.empty()) return 0;
  uint64_t limit = 0;
  while (true) {
    absl::StatusOr<std::string> max =
        ReadSmallFile(absl::StrCat(root, path == "/" ? "" : path, file), 64);
    uint64_t v = 0;
    // v1 says "no limit" with the largest page-aligned int64.
    if (max.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*max), &v) &&
        v > 0 && v < (uint64_t{1} << 60) && (limit == 0 || v < limit)) {
      limit = v;
    }
    if (path == "/") break;
    const size_t slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return limit;
}

// The default endpoint cap: a quarter of memory at ~1 KiB per endpoint
// (measured: 850-890 bytes of RSS each, table and indexes included), within
// 1 and the VNI space; 1 M when memory is unknown.
uint32_t DefaultMaxEndpoints(uint64_t mem_bytes) {
  if (mem_bytes == 0) return 1 << 20;
  const uint64_t n = mem_bytes / 4 / 1024;
  return uint32_t(std::clamp<uint64_t>(n, 1, relay::VniAllocator::kMaxVni));
}

absl::StatusOr<AdvertiseSpec> ParseAdvertise(const std::string& s) {
  if (auto full = SocketAddress::Parse(s); full.ok()) {
    return AdvertiseSpec{*full, true};
  }
  absl::StatusOr<SocketAddress> bare = SocketAddress::ParseWithDefaultPort(s, 0);
  if (!bare.ok()) return bare.status();
  return AdvertiseSpec{*bare, false};
}

// Reads and checks every flag except --print_public_key and --check_config.
// `read_only` (those two modes): the key file is read, never created.
absl::StatusOr<RelaydConfig> ParseConfig(bool read_only) {
  RelaydConfig c;
  c.key_file = absl::GetFlag(FLAGS_key_file);
  c.capture_file = absl::GetFlag(FLAGS_capture_file);
  c.capture_max_bytes = absl::GetFlag(FLAGS_capture_max_bytes);
  if (!c.capture_file.empty() && c.capture_max_bytes < 4096) {
    return Fail("--capture_max_bytes must be at least 4096");
  }
  std::string warning;
  absl::StatusOr<disco::KeyPair> kp = disco::KeyPair::Generate();
  if (!c.key_file.empty()) {
    kp = read_only ? disco::LoadKeyFile(c.key_file, &warning)
                   : disco::LoadOrCreateKeyFile(c.key_file, &warning);
    if (read_only && absl::IsNotFound(kp.status())) {
      c.key_missing = true;
      kp = disco::KeyPair::Generate();
    }
  }
  if (!kp.ok()) return kp.status();
  if (!warning.empty()) PEERRELAY_LOG(kWarning, warning);
  c.key_pair = *kp;
  if (!log::ParseLevel(absl::GetFlag(FLAGS_log_level), &c.log_level)) {
    return Fail("--log_level must be error, warning, notice, info or debug");
  }
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) return Fail("--port must be 0..65535");
  c.port = uint16_t(port);
  if (!disco::ParseDialect(absl::GetFlag(FLAGS_profile), &c.dialect)) {
    return Fail("--profile must be 'current' or 'seed'");
  }
  c.engine = absl::GetFlag(FLAGS_engine);
  if (c.engine != "auto" && engine::FindEngine(c.engine) == nullptr) {
    return Fail(absl::StrCat("--engine must be one of ", engine::EngineChoices()));
  }
  const std::string sends = absl::GetFlag(FLAGS_uring_sends);
  if (sends != "sqe" && sends != "sendmmsg") {
    return Fail("--uring_sends must be sqe or sendmmsg");
  }
  c.uring.send_sqes = sends == "sqe";
  const int max_sqe = absl::GetFlag(FLAGS_uring_max_sqe_sends);
  if (max_sqe < 1 || max_sqe > 128) {
    return Fail("--uring_max_sqe_sends must be 1..128");
  }
  c.uring.max_sqe_sends = size_t(max_sqe);
  c.uring.skip_send_cqes = absl::GetFlag(FLAGS_uring_skip_send_cqes);
  c.uring.register_fds = absl::GetFlag(FLAGS_uring_register_fds);
  c.uring.napi_busy_poll_us = absl::GetFlag(FLAGS_napi_busy_poll_us);
  if (c.uring.napi_busy_poll_us > 1'000'000) {
    return Fail("--napi_busy_poll_us must be at most 1000000");
  }
  c.workers = absl::GetFlag(FLAGS_workers);
  if (c.workers < 0) return Fail("--workers must be >= 0");
  c.pin_cpus = absl::GetFlag(FLAGS_pin_cpus);
  c.bind_lifetime = absl::GetFlag(FLAGS_bind_lifetime);
  c.steady_state_lifetime = absl::GetFlag(FLAGS_steady_state_lifetime);
  if (c.bind_lifetime <= absl::ZeroDuration() ||
      c.steady_state_lifetime <= absl::ZeroDuration()) {
    return Fail("lifetimes must be positive");
  }
  c.max_endpoints = absl::GetFlag(FLAGS_max_endpoints);
  if (c.max_endpoints == 0) {
    uint64_t mem = MemTotalBytes();
    const uint64_t cgroup = CgroupMemoryLimitBytes();
    const bool limited = cgroup != 0 && (mem == 0 || cgroup < mem);
    if (limited) mem = cgroup;
    c.max_endpoints = DefaultMaxEndpoints(mem);
    c.max_endpoints_why = absl::StrCat(
        " (auto: a quarter of ", mem >> 20, " MiB",
        limited ? ", the cgroup's memory limit," : "", " at ~1 KiB per endpoint)");
  }
  c.max_endpoints_per_caller = absl::GetFlag(FLAGS_max_endpoints_per_caller);
  c.alloc_rate_total = absl::GetFlag(FLAGS_alloc_rate_total);
  c.alloc_burst_total = absl::GetFlag(FLAGS_alloc_burst_total);
  if (c.alloc_rate_total <= 0 || c.alloc_burst_total < 1) {
    return Fail("--alloc_rate_total must be > 0 and --alloc_burst_total >= 1");
  }
  auto listen = SocketAddress::ParseWithDefaultPort(absl::GetFlag(FLAGS_listen), c.port);
  if (!listen.ok()) {
    return Fail(absl::StrCat("--listen: ", listen.status().message()));
  }
  c.listen = *listen;
  for (const std::string& a : absl::GetFlag(FLAGS_advertise)) {
    auto spec = ParseAdvertise(a);
    if (!spec.ok()) return Fail(absl::StrCat("--advertise: bad address '", a, "'"));
    c.advertise.push_back(*spec);
  }
  auto allow = LoadAllowlist(absl::GetFlag(FLAGS_allocate_allowlist));
  if (!allow.ok()) return allow.status();
  c.allowlist = std::move(*allow);
  auto token = LoadToken(absl::GetFlag(FLAGS_admin_token_file));
  if (!token.ok()) return token.status();
  c.token = *token;
  auto read_token = LoadToken(absl::GetFlag(FLAGS_admin_read_token_file));
  if (!read_token.ok()) return read_token.status();
  c.read_token = *read_token;
  auto bridge_token = LoadToken(absl::GetFlag(FLAGS_admin_bridge_token_file));
  if (!bridge_token.ok()) return bridge_token.status();
  c.bridge_token = *bridge_token;
  if (!c.bridge_token.empty() &&
      (c.bridge_token == c.token || c.bridge_token == c.read_token)) {
    return Fail("--admin_bridge_token_file holds the same token as another "
                "token file: give the bridge a token of its own");
  }
  if (absl::GetFlag(FLAGS_admin_listen) != "off") {
    auto a = SocketAddress::Parse(absl::GetFlag(FLAGS_admin_listen));
    if (!a.ok()) return Fail(absl::StrCat("--admin_listen: ", a.status().message()));
    c.admin_listen = *a;
  }
  if (absl::GetFlag(FLAGS_metrics_listen) != "off") {
    auto a = SocketAddress::Parse(absl::GetFlag(FLAGS_metrics_listen));
    if (!a.ok()) {
      return Fail(absl::StrCat("--metrics_listen: ", a.status().message()));
    }
    if (!c.admin_listen) {
      return Fail("--metrics_listen needs the admin API (--admin_listen is off)");
    }
    c.metrics_listen = *a;
  }
  c.alloc_rate = absl::GetFlag(FLAGS_alloc_rate);
  c.alloc_burst = absl::GetFlag(FLAGS_alloc_burst);
  if (c.alloc_rate <= 0 || c.alloc_burst < 1) {
    return Fail("--alloc_rate must be > 0 and --alloc_burst >= 1");
  }
  c.stats_interval = absl::GetFlag(FLAGS_stats_interval);
  c.run_for = absl::GetFlag(FLAGS_run_for);
  c.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  c.stop_timeout = absl::GetFlag(FLAGS_stop_timeout);
  if (c.drain_timeout <= absl::ZeroDuration()) {
    return Fail("--drain_timeout must be positive");
  }
  if (c.stop_timeout < absl::ZeroDuration()) {
    return Fail("--stop_timeout must be 0 or more");
  }
  c.status_file = absl::GetFlag(FLAGS_status_file);
  c.xdp = absl::GetFlag(FLAGS_xdp);
  if (c.xdp != "off" && !engine::IsXdpAttachMode(c.xdp)) {
    return Fail("--xdp must be off, auto, native or generic");
  }
  c.xdp_interfaces = absl::GetFlag(FLAGS_xdp_interfaces);
  for (const std::string& i : c.xdp_interfaces) {
    if (i.empty() || i.size() >= 16 || i.find('/') != std::string::npos) {
      return Fail(absl::StrCat("--xdp_interfaces: \"", i,
                               "\" is not an interface name"));
    }
  }
  if (c.xdp != "off" && c.xdp_interfaces.empty()) {
    return Fail("--xdp needs --xdp_interfaces (the interfaces clients "
                "reach the relay through)");
  }
  if (c.xdp != "off" && c.port == 0) {
    return Fail("--xdp needs a fixed --port");
  }
  c.xdp_max_pairs = absl::GetFlag(FLAGS_xdp_max_pairs);
  if (c.xdp_max_pairs == 0 || c.xdp_max_pairs > (1u << 24)) {
    return Fail("--xdp_max_pairs must be 1..16777216");
  }
  return c;
}

int PrintCheck(const RelaydConfig& c) {
  std::printf("config ok: port %d, listen %s, engine %s, profile %s, "
              "key %s, %zu allowlisted keys, admin %s, metrics %s, HTTP "
              "allocation %s, log level %s, xdp %s\n",
              c.port, c.listen.IpString().c_str(),
              c.engine.c_str(),
              std::string(disco::DialectName(c.dialect)).c_str(),
              c.key_file.empty() ? "new at every start"
              : c.key_missing    ? "would be created"
                                 : c.key_pair->public_key().ToText().c_str(),
              c.allowlist.size(),
              c.admin_listen ? c.admin_listen->ToString().c_str() : "off",
              c.metrics_listen ? c.metrics_listen->ToString().c_str()
                               : "on the admin listener",
              c.token.empty() ? "refused (no token)" : "token required",
              std::string(log::LevelName(c.log_level)).c_str(),
              c.xdp == "off"
                  ? "off"
                  : absl::StrCat(c.xdp, " on ",
                                 absl::StrJoin(c.xdp_interfaces, ","))
                        .c_str());
  // What clients would be told (the port as configured: with --port=0 the
  // kernel picks it at start).
  const std::vector<SocketAddress> adv = Advertised(c, c.port);
  std::printf("advertised addresses (%s):%s\n",
              !c.advertise.empty()          ? "from --advertise"
              : !c.listen.is_unspecified() ? "the --listen address"
                                           : "found on this host; set "
                                             "--advertise to choose",
              adv.empty() ? " none: allocations would fail" : "");
  for (const SocketAddress& a : adv) {
    const std::string scope = AddressScope(a);
    std::printf("  %s%s\n", a.ToString().c_str(),
                scope.empty() ? ""
                              : absl::StrCat("  (", scope,
                                             ": clients elsewhere cannot "
                                             "reach it)")
                                    .c_str());
  }
  if (!c.capture_file.empty()) {
    std::printf("capture: every datagram to %s, at most %lu bytes (holds "
                "client addresses)\n",
                c.capture_file.c_str(), c.capture_max_bytes);
  }
  return 0;
}

std::string AddressScope(const SocketAddress& a) {
  const auto& b = a.bytes();
  if (a.is_unspecified()) return "unspecified";
  if (a.is_ipv4()) {
    const uint8_t x = b[12], y = b[13];
    if (x == 127) return "loopback";
    if (x == 10 || (x == 172 && (y & 0xf0) == 16) || (x == 192 && y == 168)) {
      return "private (RFC 1918)";
    }
    if (x == 100 && (y & 0xc0) == 64) {
      return "shared (RFC 6598 CGNAT; also Tailscale's range: on a host "
             "running tailscaled, probably its tailnet address, which only "
             "tailnet members reach)";
    }
    if (x == 169 && y == 254) return "link-local";
    return "";
  }
  static constexpr std::array<uint8_t, 16> kLoopback6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                         0, 0, 0, 0, 0, 0, 0, 1};
  if (b == kLoopback6) return "loopback";
  if ((b[0] & 0xfe) == 0xfc) return "unique local (ULA)";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";
  return "";
}

void WarnAboutAdvertised(const RelaydConfig& c,
                         const std::vector<SocketAddress>& advertised) {
  for (const SocketAddress& a : advertised) {
    const std::string scope = AddressScope(a);
    if (scope.empty()) continue;
    if (c.advertise.empty()) {
      PEERRELAY_LOG(kWarning, "advertising ", a.ToString(), ", a ", scope,
                    " address ",
                    c.listen.is_unspecified() ? "found on this host"
                                              : "taken from --listen",
                    ": clients outside its network cannot reach it. Behind "
                    "1:1 NAT or port forwarding, set "
                    "--advertise=PUBLIC_IP[:PORT]");
    } else {
      PEERRELAY_LOG(kNotice, "advertising ", a.ToString(), " (", scope,
                    ", as --advertise says)");
    }
  }
}

// The addresses handed to clients: --advertise (the relay's port where none
// was given), else a specific listen address, else the host's addresses.
std::vector<SocketAddress> Advertised(const RelaydConfig& c,
                                      uint16_t bound_port) {
  std::vector<SocketAddress> adv;
  for (AdvertiseSpec spec : c.advertise) {
    if (!spec.explicit_port) spec.addr.set_port(bound_port);
    adv.push_back(spec.addr);
  }
  if (!adv.empty()) return adv;
  SocketAddress l = c.listen;
  l.set_port(bound_port);
  if (!l.is_unspecified()) return {l};  // loopback included
  return HostAddresses(bound_port);
}


}  // namespace peerrelay
