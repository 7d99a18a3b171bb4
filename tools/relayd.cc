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

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "control/admin.h"
#include "disco/key_file.h"
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
ABSL_FLAG(uint32_t, max_endpoints, 0, "cap on endpoints; 0 = VNI space");
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

absl::StatusOr<disco::KeyPair> LoadOrCreateKey(const std::string& path) {
  if (path.empty()) return disco::KeyPair::Generate();
  return disco::LoadOrCreateKeyFile(path);
}

absl::StatusOr<absl::flat_hash_set<disco::DiscoKey>> LoadAllowlist(
    const std::string& path) {
  absl::flat_hash_set<disco::DiscoKey> keys;
  if (path.empty()) return keys;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
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
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string token;
  std::getline(in, token);
  token = std::string(absl::StripAsciiWhitespace(token));
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

void LogCounters(const char* when, const engine::Relay& r,
                 const relay::Server& s) {
  relay::CountersSnapshot c = r.Counters();
  std::string drops;
  for (size_t i = 0; i < relay::kNumDropReasons; ++i) {
    if (c.dropped[i] == 0) continue;
    absl::StrAppend(&drops, drops.empty() ? "" : " ",
                    relay::DropReasonName(relay::DropReason(i)), "=",
                    c.dropped[i]);
  }
  std::fprintf(stderr,
               "relayd: %s: endpoints=%zu received=%lu relayed=%lu "
               "relayed_bytes=%lu to_slow_path=%lu challenges=%lu "
               "handshakes=%lu gso_sends=%lu kernel_drops=%lu "
               "send_failed=%lu dropped=%lu%s%s%s\n",
               when, s.endpoint_count(), c.received, c.relayed,
               c.relayed_bytes, c.to_slow_path, c.challenges_sent,
               c.handshakes_completed, c.gso_sends, c.kernel_drops,
               c.send_failed, c.DroppedTotal(), drops.empty() ? "" : " (",
               drops.c_str(), drops.empty() ? "" : ")");
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "peer relay appliance (Tailscale peer-relay protocol)\n"
      "  relayd --port=7777 [--advertise=IP,...] [--key_file=PATH]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  auto bad = [](const std::string& msg) {
    std::fprintf(stderr, "relayd: %s\n", msg.c_str());
    return 2;
  };
  if (rest.size() > 1) return bad(absl::StrCat("unexpected argument '", rest[1], "'"));

  const bool check = absl::GetFlag(FLAGS_check_config);
  const std::string key_file = absl::GetFlag(FLAGS_key_file);
  // A dry run does not create the key file.
  const bool key_missing = !key_file.empty() && access(key_file.c_str(), F_OK) != 0;
  auto kp = check && key_missing ? absl::StatusOr<disco::KeyPair>(disco::KeyPair::Generate())
                                 : LoadOrCreateKey(key_file);
  if (!kp.ok()) return bad(std::string(kp.status().message()));
  if (absl::GetFlag(FLAGS_print_public_key)) {
    std::printf("%s\n", kp->public_key().ToText().c_str());
    return 0;
  }
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) return bad("--port must be 0..65535");
  disco::Dialect dialect;
  if (!disco::ParseDialect(absl::GetFlag(FLAGS_profile), &dialect)) {
    return bad("--profile must be 'current' or 'seed'");
  }
  engine::EngineKind kind;
  if (!engine::ParseEngineKind(absl::GetFlag(FLAGS_engine), &kind)) {
    return bad("--engine must be auto, io_uring or mmsg");
  }
  if (absl::GetFlag(FLAGS_workers) < 0) return bad("--workers must be >= 0");
  const absl::Duration bind_lt = absl::GetFlag(FLAGS_bind_lifetime);
  const absl::Duration steady_lt = absl::GetFlag(FLAGS_steady_state_lifetime);
  if (bind_lt <= absl::ZeroDuration() || steady_lt <= absl::ZeroDuration()) {
    return bad("lifetimes must be positive");
  }
  auto listen = ParseHostMaybePort(absl::GetFlag(FLAGS_listen), uint16_t(port));
  if (!listen.ok()) return bad(absl::StrCat("--listen: ", listen.status().message()));
  auto allow = LoadAllowlist(absl::GetFlag(FLAGS_allocate_allowlist));
  if (!allow.ok()) return bad(std::string(allow.status().message()));
  auto token = LoadToken(absl::GetFlag(FLAGS_admin_token_file));
  if (!token.ok()) return bad(std::string(token.status().message()));
  std::optional<SocketAddress> admin_listen;
  if (absl::GetFlag(FLAGS_admin_listen) != "off") {
    auto a = SocketAddress::Parse(absl::GetFlag(FLAGS_admin_listen));
    if (!a.ok()) return bad(absl::StrCat("--admin_listen: ", a.status().message()));
    admin_listen = *a;
  }
  if (absl::GetFlag(FLAGS_alloc_rate) <= 0 || absl::GetFlag(FLAGS_alloc_burst) < 1) {
    return bad("--alloc_rate must be > 0 and --alloc_burst >= 1");
  }

  for (const std::string& a : absl::GetFlag(FLAGS_advertise)) {
    if (!ParseHostMaybePort(a, uint16_t(port)).ok()) {
      return bad(absl::StrCat("--advertise: bad address '", a, "'"));
    }
  }
  if (check) {
    std::printf("config ok: port %d, listen %s, engine %s, profile %s, "
                "key %s, %zu allowlisted keys, admin %s, HTTP allocation %s\n",
                port, listen->IpString().c_str(),
                absl::GetFlag(FLAGS_engine).c_str(),
                absl::GetFlag(FLAGS_profile).c_str(),
                key_file.empty() ? "new at every start"
                : key_missing    ? "would be created"
                                 : kp->public_key().ToText().c_str(),
                allow->size(),
                admin_listen ? admin_listen->ToString().c_str() : "off",
                token->empty() ? "refused (no token)" : "token required");
    return 0;
  }

  relay::ServerConfig cfg;
  cfg.key_pair = *kp;
  cfg.dialect = dialect;
  cfg.bind_lifetime_ns = absl::ToInt64Nanoseconds(bind_lt);
  cfg.steady_state_lifetime_ns = absl::ToInt64Nanoseconds(steady_lt);
  cfg.max_endpoints = absl::GetFlag(FLAGS_max_endpoints);
  auto server = relay::Server::Create(cfg, MonotonicNowNs());
  if (!server.ok()) return bad(std::string(server.status().message()));
  (*server)->SetAllocateAllowlist(*allow);

  // Signals are taken synchronously by this thread; block them before any
  // other thread starts so that none of those receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto relay = engine::Relay::Start(
      server->get(), {.bind = *listen,
                      .workers = absl::GetFlag(FLAGS_workers),
                      .engine = kind,
                      .pin_cpus = absl::GetFlag(FLAGS_pin_cpus)});
  if (!relay.ok()) {
    std::fprintf(stderr, "relayd: cannot start: %s\n",
                 relay.status().ToString().c_str());
    return 1;
  }
  const uint16_t bound_port = (*relay)->port();

  std::vector<SocketAddress> adv;
  for (const std::string& a : absl::GetFlag(FLAGS_advertise)) {
    auto p = ParseHostMaybePort(a, bound_port);
    if (!p.ok()) return bad(absl::StrCat("--advertise: ", p.status().message()));
    adv.push_back(*p);
  }
  if (adv.empty()) {
    SocketAddress l = *listen;
    l.set_port(bound_port);
    if (!l.is_unspecified()) {
      adv.push_back(l);  // a specific listen address (loopback included)
    } else {
      adv = HostAddresses(bound_port);
    }
  }
  if (adv.empty()) {
    std::fprintf(stderr,
                 "relayd: warning: no address to advertise (no non-loopback "
                 "address; use --advertise or --listen=127.0.0.1): "
                 "allocations fail until one is set\n");
  }
  (*server)->SetAddresses(adv);
  if (!(*relay)->engine_note().empty()) {
    std::fprintf(stderr, "relayd: %s\n", (*relay)->engine_note().c_str());
  }
  std::unique_ptr<control::Admin> admin;
  if (admin_listen) {
    control::AdminOptions ao;
    ao.listen = *admin_listen;
    ao.token = *token;
    ao.alloc_rate = absl::GetFlag(FLAGS_alloc_rate);
    ao.alloc_burst = absl::GetFlag(FLAGS_alloc_burst);
    ao.version = kVersion;
    auto a = control::Admin::Start(server->get(), relay->get(), ao);
    if (!a.ok()) {
      std::fprintf(stderr, "relayd: cannot start: %s\n",
                   a.status().ToString().c_str());
      return 1;
    }
    admin = std::move(*a);
    std::fprintf(stderr, "relayd: admin API on %s%s\n",
                 absl::StrCat(admin_listen->is_ipv4() ? "" : "[",
                              admin_listen->IpString(),
                              admin_listen->is_ipv4() ? "" : "]", ":",
                              admin->port())
                     .c_str(),
                 token->empty() ? " (no --admin_token_file: HTTP allocation "
                                  "refused)"
                                : "");
  }
  std::vector<std::string> adv_text;
  for (const SocketAddress& a : adv) adv_text.push_back(a.ToString());
  std::fprintf(stderr,
               "relayd: listening on %s port %u engine=%s workers=%d "
               "profile=%s server_key=%s advertise=[%s]\n",
               listen->IpString().c_str(), bound_port,
               std::string(engine::EngineName((*relay)->engine())).c_str(),
               (*relay)->workers(),
               std::string(disco::DialectName(dialect)).c_str(),
               (*server)->server_key().ToText().c_str(),
               absl::StrJoin(adv_text, ",").c_str());

  const absl::Duration stats = absl::GetFlag(FLAGS_stats_interval);
  const absl::Duration run_for = absl::GetFlag(FLAGS_run_for);
  const absl::Time start = absl::Now();
  absl::Time next_stats = start + stats;
  // systemd: READY once serving; the watchdog is fed from this loop, so a
  // wedged main loop gets the service restarted.
  uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  absl::Time next_watchdog = start;
  sd_notify(0, "READY=1");
  std::optional<absl::Time> drain_deadline;
  while (true) {
    timespec ts{0, 200'000'000};
    int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      std::fprintf(stderr, "relayd: %s: stopping\n", strsignal(sig));
      break;
    }
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      auto new_allow = LoadAllowlist(absl::GetFlag(FLAGS_allocate_allowlist));
      auto new_token = LoadToken(absl::GetFlag(FLAGS_admin_token_file));
      if (new_allow.ok() && new_token.ok()) {
        (*server)->SetAllocateAllowlist(*new_allow);
        if (admin) admin->SetToken(*new_token);
        std::fprintf(stderr,
                     "relayd: SIGHUP: reloaded allowlist (%zu keys) and token\n",
                     new_allow->size());
      } else {
        std::fprintf(stderr, "relayd: SIGHUP: reload failed, keeping the old "
                             "settings: %s %s\n",
                     new_allow.status().ToString().c_str(),
                     new_token.status().ToString().c_str());
      }
      sd_notify(0, "READY=1");
    }
    if (sig == SIGUSR1 && !drain_deadline) {
      // Drain: no new allocations, /healthz 503, relaying goes on until
      // the last endpoint expires or the timeout.
      drain_deadline = absl::Now() + absl::GetFlag(FLAGS_drain_timeout);
      (*server)->Close();
      if (admin) admin->SetDraining(true);
      sd_notify(0, "STATUS=draining");
      std::fprintf(stderr, "relayd: SIGUSR1: draining (%zu endpoints)\n",
                   (*server)->endpoint_count());
    }
    const absl::Time now = absl::Now();
    if (drain_deadline &&
        ((*server)->endpoint_count() == 0 || now >= *drain_deadline)) {
      std::fprintf(stderr, "relayd: drained: stopping\n");
      break;
    }
    if (run_for > absl::ZeroDuration() && now - start >= run_for) break;
    if (stats > absl::ZeroDuration() && now >= next_stats) {
      LogCounters("stats", **relay, **server);
      next_stats = now + stats;
    }
    if (watchdog && now >= next_watchdog) {
      sd_notify(0, "WATCHDOG=1");
      next_watchdog = now + absl::Microseconds(watchdog_usec / 2);
    }
  }
  sd_notify(0, "STOPPING=1");
  if (admin) {
    admin->SetDraining(true);
    admin->Stop();
  }
  (*server)->Close();
  (*relay)->Stop();
  LogCounters("final", **relay, **server);
  return 0;
}

}  // namespace
}  // namespace peerrelay

int main(int argc, char** argv) { return peerrelay::Main(argc, argv); }
