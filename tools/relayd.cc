// relayd: the peer relay appliance.
//
//   relayd --port=7777 --advertise=203.0.113.7 --key_file=/var/lib/relayd/key
//
// Starts one worker per core on the relay port, logs one start-up line, and
// runs until SIGTERM or SIGINT (exit 0). Bad flags exit 2 with a message.
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "control/admin.h"
#include "common/small_file.h"
#include "disco/key_file.h"
#include "engine/port_guard.h"
#include "engine/relay.h"
#include "relay/server.h"

#include <systemd/sd-daemon.h>

ABSL_FLAG(int, port, 7777, "UDP port of the relay");
ABSL_FLAG(std::string, listen, "::",
          "address to listen on; '::' is dual-stack (IPv4 and IPv6)");
ABSL_FLAG(std::vector<std::string>, advertise, {},
          "addresses handed to clients, 'ip' or 'ip:port' / '[ip6]:port', "
          "comma separated; default: the host's non-loopback addresses, or "
          "the listen address when that is loopback");
ABSL_FLAG(int, workers, 0, "worker threads (one socket each); 0 = all CPUs");
ABSL_FLAG(std::string, engine, "auto", "packet engine: auto, io_uring, mmsg");
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
          "file holding the bearer token that POST /v0/relay/endpoint "
          "requires; without it HTTP allocation is refused (403)");
ABSL_FLAG(double, alloc_rate, 5, "HTTP allocations per second per caller");
ABSL_FLAG(double, alloc_burst, 20, "HTTP allocation burst per caller");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Minutes(5),
          "on SIGUSR1: stop allocating, keep relaying, exit when no "
          "endpoint is left or after this long");

namespace peerrelay {
namespace {

constexpr char kVersion[] = "0.1.0";

absl::Status Fail(absl::string_view msg) {
  return absl::InvalidArgumentError(msg);
}

absl::StatusOr<absl::flat_hash_set<disco::DiscoKey>> LoadAllowlist(
    const std::string& path) {
  absl::flat_hash_set<disco::DiscoKey> keys;
  if (path.empty()) return keys;
  absl::StatusOr<std::string> text = ReadSmallFile(path);
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
  absl::StatusOr<std::string> text = ReadSmallFile(path, 4096);
  if (!text.ok()) return text.status();
  std::string token(absl::StripAsciiWhitespace(
      absl::string_view(*text).substr(0, text->find('\n'))));
  if (token.empty()) return Fail(absl::StrCat(path, ": empty token"));
  return token;
}

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

// "ip:port", "[ip6]:port", or a bare "ip" / "ip6" / "[ip6]" that takes the
// relay port.
absl::StatusOr<SocketAddress> ParseHostMaybePort(const std::string& s,
                                                 uint16_t port) {
  auto full = SocketAddress::Parse(s);
  if (full.ok()) return full;
  absl::string_view host = s;
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return Fail(absl::StrCat("bad address '", s, "'"));
  }
  std::string with = host.find(':') != absl::string_view::npos
                         ? absl::StrCat("[", host, "]:", port)
                         : absl::StrCat(host, ":", port);
  auto bare = SocketAddress::Parse(with);
  if (!bare.ok()) return Fail(absl::StrCat("bad address '", s, "'"));
  return bare;
}

// One line of every per-core counter (the field list in relay/counters.h,
// so a new counter needs no edit here), then the drops by reason.
void LogCounters(const char* when, const engine::Relay& r,
                 const relay::Server& s) {
  const relay::CountersSnapshot c = r.Counters();
  std::string line = absl::StrCat("endpoints=", s.endpoint_count());
#define PEERRELAY_APPEND_COUNTER(field, metric, help) \
  absl::StrAppend(&line, " " #field "=", c.field);
  PEERRELAY_COUNTER_FIELDS(PEERRELAY_APPEND_COUNTER)
#undef PEERRELAY_APPEND_COUNTER
  std::string drops;
  for (size_t i = 0; i < relay::kNumDropReasons; ++i) {
    if (c.dropped[i] == 0) continue;
    absl::StrAppend(&drops, drops.empty() ? "" : " ",
                    relay::DropReasonName(relay::DropReason(i)), "=",
                    c.dropped[i]);
  }
  absl::StrAppend(&line, " dropped=", c.DroppedTotal());
  if (!drops.empty()) absl::StrAppend(&line, " (", drops, ")");
  std::fprintf(stderr, "relayd: %s: %s\n", when, line.c_str());
}

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

// The default endpoint cap: a quarter of memory at ~1 KiB per endpoint
// (measured: 850-890 bytes of RSS each, table and indexes included), within
// 1 and the VNI space; 1 M when memory is unknown.
uint32_t DefaultMaxEndpoints(uint64_t mem_bytes) {
  if (mem_bytes == 0) return 1 << 20;
  const uint64_t n = mem_bytes / 4 / 1024;
  return uint32_t(std::clamp<uint64_t>(n, 1, relay::VniAllocator::kMaxVni));
}

// An --advertise entry, parsed once: its port is the relay's unless given.
struct AdvertiseSpec {
  SocketAddress addr;
  bool explicit_port = false;
};

// Everything the flags say, checked: what --check_config reports and what
// serving uses.
struct RelaydConfig {
  std::optional<disco::KeyPair> key_pair;  // always set by ParseConfig
  std::string key_file;
  bool key_missing = false;  // --check_config with a key file not there yet
  uint16_t port = 0;
  SocketAddress listen;
  std::vector<AdvertiseSpec> advertise;
  disco::Dialect dialect = disco::Dialect::kCurrent;
  engine::EngineKind engine = engine::EngineKind::kAuto;
  int workers = 0;
  bool pin_cpus = false;
  absl::Duration bind_lifetime, steady_state_lifetime;
  uint32_t max_endpoints = 0;
  std::string max_endpoints_why;  // how an automatic cap was sized
  uint32_t max_endpoints_per_caller = 0;
  double alloc_rate_total = 0, alloc_burst_total = 0;
  absl::flat_hash_set<disco::DiscoKey> allowlist;
  std::string token;
  std::optional<SocketAddress> admin_listen;
  double alloc_rate = 0, alloc_burst = 0;
  absl::Duration stats_interval, run_for, drain_timeout;
};

absl::StatusOr<AdvertiseSpec> ParseAdvertise(const std::string& s) {
  if (auto full = SocketAddress::Parse(s); full.ok()) {
    return AdvertiseSpec{*full, true};
  }
  absl::StatusOr<SocketAddress> bare = ParseHostMaybePort(s, 0);
  if (!bare.ok()) return bare.status();
  return AdvertiseSpec{*bare, false};
}

// Reads and checks every flag except --print_public_key and --check_config.
// `read_only` (those two modes): the key file is read, never created.
absl::StatusOr<RelaydConfig> ParseConfig(bool read_only) {
  RelaydConfig c;
  c.key_file = absl::GetFlag(FLAGS_key_file);
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
  if (!warning.empty()) {
    std::fprintf(stderr, "relayd: warning: %s\n", warning.c_str());
  }
  c.key_pair = *kp;
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) return Fail("--port must be 0..65535");
  c.port = uint16_t(port);
  if (!disco::ParseDialect(absl::GetFlag(FLAGS_profile), &c.dialect)) {
    return Fail("--profile must be 'current' or 'seed'");
  }
  if (!engine::ParseEngineKind(absl::GetFlag(FLAGS_engine), &c.engine)) {
    return Fail("--engine must be auto, io_uring or mmsg");
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
    const uint64_t mem = MemTotalBytes();
    c.max_endpoints = DefaultMaxEndpoints(mem);
    c.max_endpoints_why = absl::StrCat(" (auto: a quarter of ", mem >> 20,
                                       " MiB at ~1 KiB per endpoint)");
  }
  c.max_endpoints_per_caller = absl::GetFlag(FLAGS_max_endpoints_per_caller);
  c.alloc_rate_total = absl::GetFlag(FLAGS_alloc_rate_total);
  c.alloc_burst_total = absl::GetFlag(FLAGS_alloc_burst_total);
  if (c.alloc_rate_total <= 0 || c.alloc_burst_total < 1) {
    return Fail("--alloc_rate_total must be > 0 and --alloc_burst_total >= 1");
  }
  auto listen = ParseHostMaybePort(absl::GetFlag(FLAGS_listen), c.port);
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
  if (absl::GetFlag(FLAGS_admin_listen) != "off") {
    auto a = SocketAddress::Parse(absl::GetFlag(FLAGS_admin_listen));
    if (!a.ok()) return Fail(absl::StrCat("--admin_listen: ", a.status().message()));
    c.admin_listen = *a;
  }
  c.alloc_rate = absl::GetFlag(FLAGS_alloc_rate);
  c.alloc_burst = absl::GetFlag(FLAGS_alloc_burst);
  if (c.alloc_rate <= 0 || c.alloc_burst < 1) {
    return Fail("--alloc_rate must be > 0 and --alloc_burst >= 1");
  }
  c.stats_interval = absl::GetFlag(FLAGS_stats_interval);
  c.run_for = absl::GetFlag(FLAGS_run_for);
  c.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  return c;
}

int PrintCheck(const RelaydConfig& c) {
  std::printf("config ok: port %d, listen %s, engine %s, profile %s, "
              "key %s, %zu allowlisted keys, admin %s, HTTP allocation %s\n",
              c.port, c.listen.IpString().c_str(),
              std::string(engine::EngineName(c.engine)).c_str(),
              std::string(disco::DialectName(c.dialect)).c_str(),
              c.key_file.empty() ? "new at every start"
              : c.key_missing    ? "would be created"
                                 : c.key_pair->public_key().ToText().c_str(),
              c.allowlist.size(),
              c.admin_listen ? c.admin_listen->ToString().c_str() : "off",
              c.token.empty() ? "refused (no token)" : "token required");
  return 0;
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

// What runs while relayd serves.
struct Running {
  std::optional<engine::PortGuard> port_guard;  // one relayd per UDP port
  std::unique_ptr<relay::Server> server;
  std::unique_ptr<engine::Relay> relay;
  std::unique_ptr<control::Admin> admin;  // null with --admin_listen=off
};

absl::StatusOr<Running> StartServing(const RelaydConfig& c,
                                     std::optional<engine::PortGuard> guard) {
  Running r;
  r.port_guard = std::move(guard);
  relay::ServerConfig cfg;
  cfg.key_pair = c.key_pair;
  cfg.dialect = c.dialect;
  cfg.bind_lifetime_ns = absl::ToInt64Nanoseconds(c.bind_lifetime);
  cfg.steady_state_lifetime_ns =
      absl::ToInt64Nanoseconds(c.steady_state_lifetime);
  cfg.max_endpoints = c.max_endpoints;
  cfg.max_endpoints_per_caller = c.max_endpoints_per_caller;
  cfg.allocation_rate = c.alloc_rate_total;
  cfg.allocation_burst = c.alloc_burst_total;
  auto server = relay::Server::Create(cfg, MonotonicNowNs());
  if (!server.ok()) return server.status();
  r.server = std::move(*server);
  r.server->SetAllocateAllowlist(c.allowlist);
  auto relay = engine::Relay::Start(r.server.get(),
                                    {.bind = c.listen,
                                     .workers = c.workers,
                                     .engine = c.engine,
                                     .pin_cpus = c.pin_cpus});
  if (!relay.ok()) return relay.status();
  r.relay = std::move(*relay);
  if (!r.port_guard) {
    // Port 0: the kernel chose a free port; claim it so that a relayd
    // started on it later is refused.
    auto g = engine::PortGuard::Claim(r.relay->port(), /*already_bound=*/true);
    if (!g.ok()) return g.status();
    r.port_guard = std::move(*g);
  }
  std::vector<SocketAddress> adv = Advertised(c, r.relay->port());
  if (adv.empty()) {
    std::fprintf(stderr,
                 "relayd: warning: no address to advertise (no non-loopback "
                 "address; use --advertise or --listen=127.0.0.1): "
                 "allocations fail until one is set\n");
  }
  r.server->SetAddresses(adv);
  if (!r.relay->engine_note().empty()) {
    std::fprintf(stderr, "relayd: %s\n", r.relay->engine_note().c_str());
  }
  if (c.admin_listen) {
    auto a = control::Admin::Start(r.server.get(), r.relay.get(),
                                   {.listen = *c.admin_listen,
                                    .token = c.token,
                                    .alloc_rate = c.alloc_rate,
                                    .alloc_burst = c.alloc_burst,
                                    .version = kVersion});
    if (!a.ok()) return a.status();
    r.admin = std::move(*a);
    const SocketAddress& l = *c.admin_listen;
    std::fprintf(stderr, "relayd: admin API on %s%s\n",
                 absl::StrCat(l.is_ipv4() ? "" : "[", l.IpString(),
                              l.is_ipv4() ? "" : "]", ":", r.admin->port())
                     .c_str(),
                 c.token.empty() ? " (no --admin_token_file: HTTP allocation "
                                   "refused)"
                                 : "");
  }
  std::vector<std::string> adv_text;
  for (const SocketAddress& a : adv) adv_text.push_back(a.ToString());
  std::fprintf(stderr,
               "relayd: listening on %s port %u engine=%s workers=%d "
               "profile=%s server_key=%s advertise=[%s] max_endpoints=%u%s\n",
               c.listen.IpString().c_str(), r.relay->port(),
               std::string(engine::EngineName(r.relay->engine())).c_str(),
               r.relay->workers(),
               std::string(disco::DialectName(c.dialect)).c_str(),
               r.server->server_key().ToText().c_str(),
               absl::StrJoin(adv_text, ",").c_str(), c.max_endpoints,
               c.max_endpoints_why.c_str());
  return r;
}

// SIGHUP: the allowlist and the token, both or neither. The files are read
// on a thread of their own, so a file that cannot be read at once (a hung
// mount) never stops the signal loop or the watchdog; the loop applies the
// result when it is there.
class Reloader {
 public:
  // Starts a reload unless one is still running (then says so).
  void Start() {
    if (running_) {
      std::fprintf(stderr, "relayd: SIGHUP: a reload is still running\n");
      return;
    }
    running_ = true;
    sd_notify(0, "RELOADING=1");
    auto result = std::make_shared<Result>();
    result_ = result;
    // Detached: if a read hangs for good, exiting must not wait for it.
    std::thread([result] {
      auto allow = LoadAllowlist(absl::GetFlag(FLAGS_allocate_allowlist));
      auto token = LoadToken(absl::GetFlag(FLAGS_admin_token_file));
      std::lock_guard<std::mutex> l(result->mu);
      result->allow = std::move(allow);
      result->token = std::move(token);
      result->done = true;
    }).detach();
  }
  // Applies a finished reload.
  void Poll(Running& r) {
    if (!running_) return;
    std::lock_guard<std::mutex> l(result_->mu);
    if (!result_->done) return;
    running_ = false;
    if (result_->allow.ok() && result_->token.ok()) {
      r.server->SetAllocateAllowlist(*result_->allow);
      if (r.admin) r.admin->SetToken(*result_->token);
      std::fprintf(stderr,
                   "relayd: SIGHUP: reloaded allowlist (%zu keys) and token\n",
                   result_->allow->size());
    } else {
      std::fprintf(stderr,
                   "relayd: SIGHUP: reload failed, keeping the old settings: "
                   "%s %s\n",
                   std::string(result_->allow.status().message()).c_str(),
                   std::string(result_->token.status().message()).c_str());
    }
    sd_notify(0, "READY=1");
  }

 private:
  struct Result {
    std::mutex mu;
    bool done = false;
    absl::StatusOr<absl::flat_hash_set<disco::DiscoKey>> allow;
    absl::StatusOr<std::string> token;
  };
  bool running_ = false;
  std::shared_ptr<Result> result_;
};

// Serves until SIGTERM/SIGINT, --run_for, or the end of a drain (SIGUSR1:
// no new allocations, /healthz 503, relaying goes on until the last
// endpoint expires or --drain_timeout). Feeds the systemd watchdog from this
// loop, so a wedged main loop gets the service restarted.
void Serve(const RelaydConfig& c, Running& r, const sigset_t& sigs) {
  const absl::Time start = absl::Now();
  absl::Time next_stats = start + c.stats_interval;
  uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  absl::Time next_watchdog = start;
  sd_notify(0, "READY=1");
  std::optional<absl::Time> drain_deadline;
  Reloader reloader;
  while (true) {
    timespec ts{0, 200'000'000};
    const int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      std::fprintf(stderr, "relayd: %s: stopping\n", strsignal(sig));
      return;
    }
    if (sig == SIGHUP) reloader.Start();
    reloader.Poll(r);
    if (sig == SIGUSR1 && !drain_deadline) {
      drain_deadline = absl::Now() + c.drain_timeout;
      r.server->Close();
      if (r.admin) r.admin->SetDraining(true);
      sd_notify(0, "STATUS=draining");
      std::fprintf(stderr, "relayd: SIGUSR1: draining (%zu endpoints)\n",
                   r.server->endpoint_count());
    }
    const absl::Time now = absl::Now();
    if (drain_deadline &&
        (r.server->endpoint_count() == 0 || now >= *drain_deadline)) {
      std::fprintf(stderr, "relayd: drained: stopping\n");
      return;
    }
    if (c.run_for > absl::ZeroDuration() && now - start >= c.run_for) return;
    if (c.stats_interval > absl::ZeroDuration() && now >= next_stats) {
      LogCounters("stats", *r.relay, *r.server);
      next_stats = now + c.stats_interval;
    }
    if (watchdog && now >= next_watchdog) {
      sd_notify(0, "WATCHDOG=1");
      next_watchdog = now + absl::Microseconds(watchdog_usec / 2);
    }
  }
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "peer relay appliance (Tailscale peer-relay protocol)\n"
      "  relayd --port=7777 [--advertise=IP,...] [--key_file=PATH]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  auto bad = [](absl::string_view msg) {
    std::fprintf(stderr, "relayd: %s\n", std::string(msg).c_str());
    return 2;
  };
  if (rest.size() > 1) {
    return bad(absl::StrCat("unexpected argument '", rest[1], "'"));
  }
  const bool check = absl::GetFlag(FLAGS_check_config);
  const bool print = absl::GetFlag(FLAGS_print_public_key);
  absl::StatusOr<RelaydConfig> config = ParseConfig(check || print);
  if (!config.ok()) return bad(config.status().message());
  if (print) {
    if (config->key_file.empty() || config->key_missing) {
      return bad(absl::StrCat(
          "--print_public_key: no key file",
          config->key_file.empty() ? "" : absl::StrCat(" at ", config->key_file),
          " (relayd creates it on its first start with --key_file)"));
    }
    std::printf("%s\n", config->key_pair->public_key().ToText().c_str());
    return 0;
  }
  if (check) return PrintCheck(*config);

  // Signals are taken synchronously by this thread; block them before any
  // other thread starts so that none of those receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  // One relayd per UDP port: a second one joining the first one's
  // SO_REUSEPORT group would silently take over half of its flows.
  std::optional<engine::PortGuard> guard;
  if (config->port != 0) {
    absl::StatusOr<engine::PortGuard> g = engine::PortGuard::Claim(config->port);
    if (!g.ok()) return bad(g.status().message());
    guard = std::move(*g);
  }
  absl::StatusOr<Running> running = StartServing(*config, std::move(guard));
  if (!running.ok()) {
    std::fprintf(stderr, "relayd: cannot start: %s\n",
                 running.status().ToString().c_str());
    return 1;
  }
  Serve(*config, *running, sigs);
  sd_notify(0, "STOPPING=1");
  if (running->admin) {
    running->admin->SetDraining(true);
    running->admin->Stop();
  }
  running->server->Close();
  running->relay->Stop();
  LogCounters("final", *running->relay, *running->server);
  return 0;
}

}  // namespace
}  // namespace peerrelay

int main(int argc, char** argv) { return peerrelay::Main(argc, argv); }
