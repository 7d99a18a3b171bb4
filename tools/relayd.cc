// relayd: the peer relay appliance.
//
//   relayd --port=7777 --advertise=203.0.113.7 --key_file=/var/lib/relayd/key
//   relayd --flagfile=/etc/relayd/relayd.flags
//
// Starts one worker per core on the relay port, logs one start-up line, and
// runs until stopped or drained (see kUsage for the signals and the exit
// statuses). Bad flags exit 2 with a message.
// Flags and their checks live in relayd_config.cc.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/pcap_file.h"
#include "control/admin.h"
#include "engine/port_guard.h"
#include "engine/relay.h"
#include "relay/server.h"
#include "tools/build_commit.h"
#include "common/cli.h"
#include "tools/lamport_file.h"
#include "tools/relayd_config.h"

#include <systemd/sd-daemon.h>

namespace peerrelay {
namespace {

constexpr char kVersion[] = "0.2.0";

constexpr char kUsage[] =
    "peer relay appliance for Tailscale's peer-relay protocol\n"
    "\n"
    "usage:\n"
    "  relayd [--flag=value ...]\n"
    "  relayd --flagfile=/etc/relayd/relayd.flags   (one --flag=value per "
    "line, # comments)\n"
    "  relayd --check_config [flags]     validate flags and files, print "
    "what would be served, exit\n"
    "  relayd --print_public_key --key_file=F\n"
    "  relayd --version | --help | -h\n"
    "\n"
    "signals:\n"
    "  SIGTERM          stop: drain for at most --stop_timeout (no new "
    "allocations, /readyz 503, relaying goes on), then exit 0; a second "
    "SIGTERM stops at once\n"
    "  SIGINT           stop now (exit 0)\n"
    "  SIGHUP           reload the token files, the allowlist and "
    "--log_level (from the flag file); relayctl reload waits for the result\n"
    "  SIGUSR1          drain and stay down: no new allocations (HTTP 503 + "
    "Retry-After), /readyz 503, relaying goes on; exit 0 once no endpoint is "
    "left or after --drain_timeout (also: relayctl drain)\n"
    "  SIGUSR2          drain, then exit 75 so that a supervisor starts a "
    "fresh relayd (a rolling restart; also: relayctl drain --restart)\n"
    "\n"
    "admin API (--admin_listen; token: --admin_token_file):\n"
    "  POST /v0/relay/endpoint   allocate (bearer token)\n"
    "  GET  /v0/relay/sessions   endpoints and both legs (token or read token)\n"
    "  POST /v0/relay/drain      drain, as SIGUSR1 (?then=restart: as "
    "SIGUSR2) (bearer token)\n"
    "  GET  /metrics /livez /readyz /healthz   (also on --metrics_listen)\n"
    "\n"
    "exit status: 0 stopped or drained, 1 could not start, 2 bad flags or "
    "files (restarting cannot help), 75 drained and asking to be started "
    "again\n";

std::string VersionString() {
  return absl::StrCat("relayd ", kVersion, " (commit ", PEERRELAY_GIT_COMMIT,
                      ")\n");
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
  PEERRELAY_LOG(kInfo, when, ": ", line);
}

// What runs while relayd serves.
struct Running {
  std::optional<engine::PortGuard> port_guard;  // one relayd per UDP port
  std::unique_ptr<LamportFile> lamport;  // with --key_file; outlives server
  std::unique_ptr<relay::Server> server;
  std::unique_ptr<PcapWriter> capture;  // --capture_file; outlives relay
  std::unique_ptr<engine::XdpTier> xdp;  // --xdp; outlives relay
  std::unique_ptr<engine::Relay> relay;
  std::unique_ptr<control::Admin> admin;  // null with --admin_listen=off
};

std::string HostPort(const SocketAddress& l, uint16_t port) {
  return absl::StrCat(l.is_ipv4() ? "" : "[", l.IpString(),
                      l.is_ipv4() ? "" : "]", ":", port);
}

// Start-up warnings about what the kernel granted.
void WarnAboutSockets(const engine::Relay& relay) {
  int rcv = 0, snd = 0;
  for (const engine::SocketInfo& s : relay.sockets()) {
    rcv = rcv == 0 ? s.rcvbuf : std::min(rcv, s.rcvbuf);
    snd = snd == 0 ? s.sndbuf : std::min(snd, s.sndbuf);
  }
  // The kernel reports twice what it granted (its bookkeeping overhead).
  const int want = 2 * engine::kSocketBufferBytes;
  if (rcv < want || snd < want) {
    PEERRELAY_LOG(kWarning, "socket buffers are ", rcv / 2 / 1024,
                  " KiB receive / ", snd / 2 / 1024, " KiB send, asked for ",
                  engine::kSocketBufferBytes / 1024,
                  " KiB: bursts beyond them are dropped by the kernel "
                  "(peerrelay_kernel_socket_drops_total). Raise "
                  "net.core.rmem_max and net.core.wmem_max to at least ",
                  engine::kSocketBufferBytes,
                  " (the package's /usr/lib/sysctl.d/60-relayd.conf does; "
                  "in a container, set them on the host), or give relayd "
                  "CAP_NET_ADMIN");
  }
}

// Descriptors relayd keeps for itself (sockets and rings per worker, the
// key, capture and flag files, the journal): the admin listeners share the
// rest.
constexpr rlim_t kReservedFds = 256;

// Raises the soft fd limit to the hard one (a shell's default soft limit
// is 1024) and returns the admin listeners' limits, their connection caps
// clamped to what the limit allows: past it, accept would fail with EMFILE.
control::HttpLimits AdminHttpLimits(const RelaydConfig& c) {
  control::HttpLimits limits;
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return limits;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  const size_t listeners = c.metrics_listen ? 2 : 1;
  const size_t budget =
      rl.rlim_cur > kReservedFds + 32 * listeners
          ? size_t(rl.rlim_cur - kReservedFds) / listeners
          : 32;
  if (limits.max_connections > budget) {
    PEERRELAY_LOG(kWarning, "file descriptor limit ", rl.rlim_cur,
                  ": admin HTTP connections capped at ", budget,
                  " per listener (not ", limits.max_connections,
                  "); raise LimitNOFILE (ulimit -n) for more");
    limits.max_connections = budget;
    limits.max_connections_per_ip =
        std::min(limits.max_connections_per_ip, std::max<size_t>(budget / 4, 1));
  }
  return limits;
}

// /readyz's note when no advertised address is global: such a relay is
// ready, for the clients that can reach it.
std::string ReadyNote(const std::vector<SocketAddress>& adv) {
  if (adv.empty()) return "";
  for (const SocketAddress& a : adv) {
    if (AddressScope(a).empty()) return "";
  }
  return "advertising only non-global addresses: reachable only from their "
         "networks; set --advertise for a public relay";
}

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
  if (!c.key_file.empty()) {
    // The key outlives the process, so the Lamport IDs must too.
    auto lamport = LamportFile::Open(c.key_file + ".lamport");
    if (!lamport.ok()) return lamport.status();
    r.lamport = std::make_unique<LamportFile>(std::move(*lamport));
    cfg.lamport_start = r.lamport->start();
    cfg.lamport_reserved = r.lamport->reserved();
    cfg.reserve_lamport = [f = r.lamport.get()](uint64_t id) -> uint64_t {
      absl::StatusOr<uint64_t> mark = f->Reserve(id);
      if (mark.ok()) return *mark;
      // Keep allocating: IDs still grow in this process; only a restart
      // before the file is writable again could repeat some. Try again
      // after 1024 more IDs, not at every allocation.
      PEERRELAY_LOG(kError, "Lamport ID reservation: ", mark.status().message());
      return id + 1024;
    };
  }
  auto server = relay::Server::Create(cfg, MonotonicNowNs());
  if (!server.ok()) return server.status();
  r.server = std::move(*server);
  r.server->SetAllocateAllowlist(c.allowlist);
  if (!c.capture_file.empty()) {
    auto w = PcapWriter::Open(c.capture_file, {.max_bytes = c.capture_max_bytes});
    if (!w.ok()) return w.status();
    r.capture = std::move(*w);
    PEERRELAY_LOG(kWarning, "capturing every datagram to ", c.capture_file,
                  " (at most ", c.capture_max_bytes,
                  " bytes): the file holds client addresses and traffic, "
                  "and capturing slows the relay; delete it when done");
  }
  if (c.xdp != "off") {
    auto t = engine::XdpTier::Attach({.mode = c.xdp,
                                      .interfaces = c.xdp_interfaces,
                                      .port = c.port,
                                      .listen = c.listen,
                                      .max_pairs = c.xdp_max_pairs});
    if (!t.ok()) {
      // One line, and the sockets carry everything as without --xdp.
      PEERRELAY_LOG(kWarning, t.status().message(),
                    "; relaying through the sockets only");
    } else {
      r.xdp = std::move(*t);
      for (const std::string& w : r.xdp->warnings()) {
        PEERRELAY_LOG(kWarning, w);
      }
      PEERRELAY_LOG(kNotice, "xdp: bound pairs forwarded in the kernel on ",
                    absl::StrJoin(c.xdp_interfaces, ","), " (", r.xdp->mode(),
                    " mode)");
      if (r.capture != nullptr) {
        PEERRELAY_LOG(kWarning, "capture: datagrams the XDP tier forwards in "
                      "the kernel never reach relayd and are not in ",
                      c.capture_file);
      }
    }
  }
  auto relay = engine::Relay::Start(r.server.get(),
                                    {.bind = c.listen,
                                     .workers = c.workers,
                                     .engine = c.engine,
                                     .pin_cpus = c.pin_cpus,
                                     .capture = r.capture.get(),
                                     .uring = c.uring,
                                     .xdp = r.xdp.get()});
  if (!relay.ok()) return relay.status();
  r.relay = std::move(*relay);
  if (!r.port_guard) {
    // Port 0: the kernel chose a free port; claim it so that a relayd
    // started on it later is refused.
    auto g = engine::PortGuard::Claim(r.relay->port(), c.listen,
                                      /*already_bound=*/true);
    if (!g.ok()) return g.status();
    if (!g->note().empty()) PEERRELAY_LOG(kWarning, g->note());
    r.port_guard = std::move(*g);
  }
  std::vector<SocketAddress> adv = Advertised(c, r.relay->port());
  if (adv.empty()) {
    PEERRELAY_LOG(kWarning,
                  "no address to advertise (no non-loopback address; use "
                  "--advertise or --listen=127.0.0.1): allocations fail and "
                  "/readyz says 503 until one is set");
  }
  WarnAboutAdvertised(c, adv);
  r.server->SetAddresses(adv);
  if (!r.relay->engine_note().empty()) {
    // The fallback engine costs throughput: journalctl -p warning shows it.
    PEERRELAY_LOG(kWarning, r.relay->engine_note());
  }
  WarnAboutSockets(*r.relay);
  if (c.key_file.empty()) {
    PEERRELAY_LOG(kWarning,
                  "no --key_file: the server's disco key is new at every "
                  "start, so endpoints handed out before a restart stop "
                  "working with it");
  }
  if (c.admin_listen) {
    auto a = control::Admin::Start(
        r.server.get(), r.relay.get(),
        {.listen = *c.admin_listen,
         .token = c.token,
         .alloc_rate = c.alloc_rate,
         .alloc_burst = c.alloc_burst,
         .read_token = c.read_token,
         .bridge_token = c.bridge_token,
         .metrics_listen = c.metrics_listen,
         // The same path as the signal: the main loop drains.
         .on_drain = [](bool restart) { kill(getpid(), restart ? SIGUSR2 : SIGUSR1); },
         .ready_note = ReadyNote(adv),
         .version = kVersion,
         .commit = PEERRELAY_GIT_COMMIT,
         .http_limits = AdminHttpLimits(c)});
    if (!a.ok()) return a.status();
    r.admin = std::move(*a);
    PEERRELAY_LOG(kInfo, "admin API on ", HostPort(*c.admin_listen, r.admin->port()),
                  c.token.empty() ? " (no --admin_token_file: allocation, "
                                    "sessions and drain refused)"
                                  : "");
    if (c.metrics_listen) {
      PEERRELAY_LOG(kInfo, "metrics on ",
                    HostPort(*c.metrics_listen, r.admin->metrics_port()));
    }
  }
  std::vector<std::string> adv_text;
  for (const SocketAddress& a : adv) adv_text.push_back(a.ToString());
  PEERRELAY_LOG(kInfo, "listening on ", c.listen.IpString(), " port ",
                r.relay->port(), " engine=", r.relay->engine(),
                " workers=", r.relay->workers(),
                " profile=", disco::DialectName(c.dialect),
                " server_key=", r.server->server_key().ToText(), " advertise=[",
                absl::StrJoin(adv_text, ","), "] max_endpoints=",
                c.max_endpoints, c.max_endpoints_why);
  return r;
}

// --status_file: relayd's pid, its state, how many SIGHUPs arrived, how
// many of them the last finished reload covers, and that reload's result.
// relayctl reload sends SIGHUP and waits here for a reload that started
// after its signal. Replaced whole (rename) at every change.
class StatusFile {
 public:
  explicit StatusFile(std::string path) : path_(std::move(path)) {}
  std::string state = "serving";  // serving, draining, stopping
  uint64_t reload_requests = 0;   // SIGHUPs received
  uint64_t reload_done = 0;       // the last finished reload covers these
  std::string reload_result = "none";  // none, ok, failed
  std::string reload_message;

  void Write() {
    if (path_.empty()) return;
    std::string message = reload_message;
    for (char& ch : message) {
      if (ch == '\n' || ch == '\r') ch = ' ';
    }
    const std::string text = absl::StrCat(
        "pid=", getpid(), "\nstate=", state,
        "\nreload_requests=", reload_requests, "\nreload_done=", reload_done,
        "\nreload_result=", reload_result, "\nreload_message=", message, "\n");
    const std::string tmp = path_ + ".tmp";
    absl::Status s = WriteFileAtomically(path_, tmp, text);
    if (!s.ok() && !warned_) {
      warned_ = true;
      PEERRELAY_LOG(kWarning, "--status_file: ", s.message(),
                    " (relayctl reload cannot follow reloads)");
    }
  }

 private:
  static absl::Status WriteFileAtomically(const std::string& path,
                                          const std::string& tmp,
                                          const std::string& text) {
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", tmp));
    const ssize_t n = write(fd, text.data(), text.size());
    const int err = errno;
    close(fd);
    if (n != ssize_t(text.size())) {
      unlink(tmp.c_str());
      return absl::ErrnoToStatus(n < 0 ? err : EIO, absl::StrCat("write ", tmp));
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      unlink(tmp.c_str());
      return absl::ErrnoToStatus(e, absl::StrCat("rename to ", path));
    }
    return absl::OkStatus();
  }
  const std::string path_;
  bool warned_ = false;
};

// SIGHUP: the allowlist, the tokens (all or none) and --log_level from the
// flag files. The files are read on a thread of their own, so a file that
// cannot be read at once (a hung mount) never stops the signal loop or the
// watchdog; the loop applies the result when it is there. A SIGHUP that
// arrives while a reload runs gets a reload of its own right after it, so
// every SIGHUP is followed by a reload that read the files after it came.
class Reloader {
 public:
  explicit Reloader(std::vector<std::string> flagfiles)
      : flagfiles_(std::move(flagfiles)) {}

  // A SIGHUP: starts a reload, or queues one behind the running one. The
  // allowlist's shared keys are computed on the reload's thread too (with a
  // copy of the server's key pair): a list of many keys takes a while.
  void Request(const disco::KeyPair& server_key, StatusFile& status) {
    ++status.reload_requests;
    status.Write();
    if (running_) {
      pending_ = true;
      PEERRELAY_LOG(kInfo, "SIGHUP: a reload is running; another follows it");
      return;
    }
    Start(server_key, status);
  }
  // Applies a finished reload.
  void Poll(Running& r, StatusFile& status) {
    if (!running_) return;
    std::lock_guard<std::mutex> l(result_->mu);
    if (!result_->done) return;
    running_ = false;
    std::vector<std::string> errors;
    for (const absl::Status& s :
         {result_->allow.status(), result_->token.status(),
          result_->read_token.status(), result_->bridge_token.status(),
          result_->level.status()}) {
      if (!s.ok()) errors.emplace_back(s.message());
    }
    log::Level level = log::GetLevel();
    if (result_->level.ok() && result_->level->has_value() &&
        !log::ParseLevel(**result_->level, &level)) {
      errors.push_back(absl::StrCat("--log_level=", **result_->level,
                                    " in the flag file is not a level"));
    }
    status.reload_done = covers_;
    if (errors.empty()) {
      r.server->SetPreparedAllowlist(std::move(*result_->prepared));
      if (r.admin) {
        r.admin->SetToken(*result_->token);
        r.admin->SetReadToken(*result_->read_token);
        r.admin->SetBridgeToken(*result_->bridge_token);
      }
      if (level != log::GetLevel()) {
        PEERRELAY_LOG(kNotice, "SIGHUP: log level ",
                      log::LevelName(log::GetLevel()), " -> ",
                      log::LevelName(level));
        log::SetLevel(level);
      }
      status.reload_result = "ok";
      status.reload_message = absl::StrCat(
          "reloaded allowlist (", result_->allow->size(), " keys) and tokens");
      PEERRELAY_LOG(kInfo, "SIGHUP: ", status.reload_message,
                    "; other flags take effect at the next start");
      // systemd copies a credential when the service starts: a token file
      // changed since is not what relayd reads here.
      std::vector<std::string> credentials;
      for (const std::string& f : {TokenFlag(), ReadTokenFlag(), BridgeTokenFlag()}) {
        if (absl::StartsWith(f, "credential:")) credentials.push_back(f);
      }
      if (!credentials.empty()) {
        PEERRELAY_LOG(kWarning, "SIGHUP: ", absl::StrJoin(credentials, ", "),
                      ": systemd's copy, made when the service started; a "
                      "token changed since then takes effect at the next "
                      "restart (name the file itself to rotate by reload)");
        absl::StrAppend(&status.reload_message, " (",
                        absl::StrJoin(credentials, ", "),
                        ": unchanged until a restart)");
      }
    } else {
      status.reload_result = "failed";
      status.reload_message = absl::StrCat(
          "reload failed, keeping the old settings: ", absl::StrJoin(errors, "; "));
      PEERRELAY_LOG(kError, "SIGHUP: ", status.reload_message);
    }
    status.Write();
    sd_notify(0, "READY=1");
    if (pending_) {
      pending_ = false;
      Start(r.server->server_key_pair(), status);
    }
  }

 private:
  void Start(const disco::KeyPair& server_key, StatusFile& status) {
    running_ = true;
    covers_ = status.reload_requests;
    sd_notify(0, "RELOADING=1");
    auto result = std::make_shared<Result>();
    result_ = result;
    // Detached: if a read hangs for good, exiting must not wait for it.
    std::thread([result, files = flagfiles_, server_key] {
      auto allow = LoadAllowlist(AllowlistFlag());
      std::optional<relay::Server::Allowlist> prepared;
      if (allow.ok()) prepared = relay::Server::PrepareAllowlist(*allow, server_key);
      auto token = LoadToken(TokenFlag());
      auto read_token = LoadToken(ReadTokenFlag());
      auto bridge_token = LoadToken(BridgeTokenFlag());
      auto level = cli::FlagValueInFiles(files, "log_level");
      std::lock_guard<std::mutex> l(result->mu);
      result->allow = std::move(allow);
      result->prepared = std::move(prepared);
      result->token = std::move(token);
      result->read_token = std::move(read_token);
      result->bridge_token = std::move(bridge_token);
      result->level = std::move(level);
      result->done = true;
    }).detach();
  }
  struct Result {
    std::mutex mu;
    bool done = false;
    absl::StatusOr<absl::flat_hash_set<disco::DiscoKey>> allow;
    std::optional<relay::Server::Allowlist> prepared;  // when allow is ok
    absl::StatusOr<std::string> token, read_token, bridge_token;
    absl::StatusOr<std::optional<std::string>> level;
  };
  const std::vector<std::string> flagfiles_;
  bool running_ = false;
  bool pending_ = false;     // a SIGHUP came while running
  uint64_t covers_ = 0;      // reload_requests when the running one started
  std::shared_ptr<Result> result_;
};

// Exit status of a drain that asks its supervisor for a fresh start
// (EX_TEMPFAIL; the unit's RestartForceExitStatus).
constexpr int kExitRestart = 75;

// Serves until a stop or the end of a drain; returns the exit status.
//   SIGINT: stop now. SIGTERM: drain for at most --stop_timeout (none when
//   no endpoint is left), then exit 0; a second SIGTERM stops now.
//   SIGUSR1 / POST /v0/relay/drain: drain (no new allocations, /readyz 503,
//   relaying goes on) until the last endpoint expires or --drain_timeout,
//   exit 0. SIGUSR2 / ?then=restart: the same, exit kExitRestart.
// Also stops after --run_for. Feeds the systemd watchdog from this loop, so
// a wedged main loop gets the service restarted.
int Serve(const RelaydConfig& c, Running& r, const sigset_t& sigs,
          Reloader& reloader, StatusFile& status) {
  const absl::Time start = absl::Now();
  absl::Time next_stats = start + c.stats_interval;
  uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  absl::Time next_watchdog = start;
  status.Write();
  sd_notify(0, "READY=1");
  std::optional<absl::Time> drain_deadline;
  bool stopping = false;       // the drain is a SIGTERM's
  bool restart_after = false;  // a SIGUSR2's (unless a stop came)
  absl::Time next_drain_note;
  bool capture_full_noted = false;
  auto start_drain = [&](absl::Time now, absl::Duration bound, const char* why) {
    if (!drain_deadline) {
      r.server->Close();
      if (r.admin) r.admin->SetDraining(true);
      drain_deadline = now + bound;
    } else {
      drain_deadline = std::min(*drain_deadline, now + bound);
    }
    next_drain_note = now + absl::Seconds(10);
    status.state = stopping ? "stopping" : "draining";
    status.Write();
    if (stopping) sd_notify(0, "STOPPING=1");
    sd_notify(0, absl::StrCat("STATUS=", status.state).c_str());
    PEERRELAY_LOG(kNotice, why, ": draining: ", r.server->endpoint_count(),
                  " endpoints left; no new allocations; ",
                  stopping        ? "stop"
                  : restart_after ? "exit for a restart"
                                  : "exit",
                  " when none is left or in ",
                  absl::FormatDuration(*drain_deadline - now));
  };
  while (true) {
    timespec ts{0, 200'000'000};
    const int sig = sigtimedwait(&sigs, nullptr, &ts);
    const absl::Time now = absl::Now();
    if (sig == SIGINT || (sig == SIGTERM && stopping)) {
      PEERRELAY_LOG(kNotice, strsignal(sig), ": stopping now (",
                    r.server->endpoint_count(), " endpoints cut)");
      return 0;
    }
    if (sig == SIGTERM) {
      stopping = true;
      restart_after = false;
      if (c.stop_timeout <= absl::ZeroDuration() ||
          r.server->endpoint_count() == 0) {
        PEERRELAY_LOG(kNotice, strsignal(sig), ": stopping (",
                      r.server->endpoint_count(), " endpoints cut)");
        return 0;
      }
      start_drain(now, c.stop_timeout, "SIGTERM");
    }
    if (sig == SIGUSR1 && !stopping) {
      start_drain(now, c.drain_timeout, "SIGUSR1");
    }
    if (sig == SIGUSR2 && !stopping) {
      restart_after = true;
      start_drain(now, c.drain_timeout, "SIGUSR2");
    }
    if (sig == SIGHUP) reloader.Request(r.server->server_key_pair(), status);
    reloader.Poll(r, status);
    if (r.capture != nullptr) {
      r.capture->Flush();  // readable while relayd runs, ~5 times a second
      if (r.capture->dropped() > 0 && !capture_full_noted) {
        capture_full_noted = true;
        PEERRELAY_LOG(kNotice, "capture ", c.capture_file, " reached ",
                      r.capture->bytes(),
                      " bytes (--capture_max_bytes): no longer recording");
      }
    }
    if (drain_deadline) {
      const size_t left = r.server->endpoint_count();
      if (left == 0 || now >= *drain_deadline) {
        const int rc = restart_after ? kExitRestart : 0;
        PEERRELAY_LOG(kNotice, "drained: ",
                      stopping        ? "stopping"
                      : restart_after ? "exiting 75 to be started again"
                                      : "exiting",
                      " (", left, " endpoints left",
                      left == 0 ? ")" : ", cut at the timeout)");
        return rc;
      }
      if (now >= next_drain_note) {
        PEERRELAY_LOG(kInfo, "draining: ", left, " endpoints left, ",
                      absl::FormatDuration(absl::Trunc(*drain_deadline - now,
                                                        absl::Seconds(1))),
                      " to the timeout");
        sd_notify(0, absl::StrCat("STATUS=", status.state, ": ", left,
                                  " endpoints left").c_str());
        next_drain_note = now + absl::Seconds(10);
      }
    }
    if (c.run_for > absl::ZeroDuration() && now - start >= c.run_for) return 0;
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
  log::Init("relayd");
  absl::FlagsUsageConfig usage;
  usage.version_string = VersionString;
  absl::SetFlagsUsageConfig(usage);
  auto bad = [](absl::string_view msg) {
    log::UsageError(msg);
    return 2;
  };
  // Every mistake in the flags is reported here, relayd's way (exit 2);
  // abseil's parser then finds none.
  const cli::Parsed parsed = cli::ParseFlags(
      argc, argv,
      {.name = "relayd",
       .usage = kUsage,
       .flag_sources = {"tools/relayd_config.cc"},
       .help_footer = "\nabseil's own: --flagfile, --helpfull, --version\n",
       .report = [](absl::string_view msg) { log::UsageError(msg); }});
  if (parsed.done()) return parsed.exit_code;
  if (parsed.args.size() > 1) {
    return bad(absl::StrCat("unexpected argument '", parsed.args[1], "'"));
  }
  const bool check = CheckConfigFlag();
  const bool print = PrintPublicKeyFlag();
  absl::StatusOr<RelaydConfig> config = ParseConfig(check || print);
  if (!config.ok()) return bad(config.status().message());
  log::SetLevel(config->log_level);
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
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  // One relayd per UDP port: a second one joining the first one's
  // SO_REUSEPORT group would silently take over half of its flows.
  std::optional<engine::PortGuard> guard;
  if (config->port != 0) {
    absl::StatusOr<engine::PortGuard> g =
        engine::PortGuard::Claim(config->port, config->listen);
    if (!g.ok()) return bad(g.status().message());
    guard = std::move(*g);
  }
  PEERRELAY_LOG(kInfo, "relayd ", kVersion, " (commit ", PEERRELAY_GIT_COMMIT,
                ") starting");
  if (guard && !guard->note().empty()) PEERRELAY_LOG(kWarning, guard->note());
  absl::StatusOr<Running> running = StartServing(*config, std::move(guard));
  if (!running.ok()) {
    PEERRELAY_LOG(kError, "cannot start: ", running.status().message());
    return 1;
  }
  Reloader reloader(parsed.flagfiles);
  StatusFile status(config->status_file);
  const int rc = Serve(*config, *running, sigs, reloader, status);
  status.state = "stopped";
  status.Write();
  sd_notify(0, "STOPPING=1");
  if (running->admin) {
    running->admin->SetDraining(true);
    running->admin->Stop();
  }
  running->server->Close();
  running->relay->Stop();
  LogCounters("final", *running->relay, *running->server);
  if (running->capture != nullptr) {
    running->capture->Flush();
    PEERRELAY_LOG(kInfo, "capture ", config->capture_file, ": ",
                  running->capture->packets(), " datagrams, ",
                  running->capture->bytes(), " bytes",
                  running->capture->dropped() > 0
                      ? absl::StrCat(", ", running->capture->dropped(),
                                     " not recorded (--capture_max_bytes)")
                      : "");
  }
  return rc;
}

}  // namespace
}  // namespace peerrelay

int main(int argc, char** argv) { return peerrelay::Main(argc, argv); }
