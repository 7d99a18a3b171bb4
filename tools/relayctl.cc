// relayctl: talks to a running relayd's admin API, and reloads it.
//
//   relayctl [--admin=127.0.0.1:9780] [--token_file=F] COMMAND
//
// Commands: allocate KEY KEY, sessions, metrics, health, drain [--restart],
// reload, help. Without --admin and --token_file, relayctl finds relayd the
// way relayd itself is configured: --admin_listen and --admin_token_file in
// relayd's flag file (--relayd_flags, /etc/relayd/relayd.flags), else
// 127.0.0.1:9780 and /etc/relayd/admin_token when readable.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>


#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/http_client.h"
#include "common/small_file.h"
#include "common/socket_address.h"
#include "common/cli.h"

ABSL_FLAG(std::string, admin, "",
          "relayd's admin address, ip:port or [ip6]:port; default: "
          "--admin_listen in --relayd_flags, else 127.0.0.1:9780");
ABSL_FLAG(std::string, token_file, "",
          "bearer token file (allocate, sessions, drain); default: "
          "--admin_token_file in --relayd_flags, else "
          "/etc/relayd/admin_token when readable");
ABSL_FLAG(std::string, relayd_flags, "/etc/relayd/relayd.flags",
          "relayd's flag file, where the admin address and token file are "
          "found when --admin or --token_file is not given (skipped when "
          "absent)");
ABSL_FLAG(bool, json, false, "sessions: print relayd's JSON as it is");
ABSL_FLAG(std::string, key, "",
          "sessions: only endpoints with a client key starting with this "
          "(discokey:HEX, d:HEX or a hex prefix)");
ABSL_FLAG(std::string, addr, "",
          "sessions: only endpoints with a client bound to IP or IP:PORT");
ABSL_FLAG(int, limit, 1000, "sessions: at most this many endpoints");
ABSL_FLAG(bool, restart, false,
          "drain: relayd exits 75 once drained, so that systemd starts a "
          "fresh one (a rolling restart); without it a drained relayd stays "
          "down");
ABSL_FLAG(std::string, status_file, "/run/relayd/status",
          "reload: relayd's --status_file");
ABSL_FLAG(int, pid, 0,
          "reload: relayd's pid (systemd: $MAINPID); default: the one in "
          "--status_file");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "reload: how long to wait for the result");

namespace {

using nlohmann::json;

constexpr char kDefaultTokenFile[] = "/etc/relayd/admin_token";
constexpr char kDefaultAdmin[] = "127.0.0.1:9780";

constexpr char kUsage[] =
    "relayctl: talk to a running relayd's admin API, and reload it\n"
    "\n"
    "usage: relayctl [--admin=HOST:PORT] [--token_file=F] COMMAND\n"
    "\n"
    "commands:\n"
    "  sessions [--json] [--key=PREFIX] [--addr=IP[:PORT]] [--limit=N]\n"
    "                      endpoints, both legs, packets/bytes each way\n"
    "  metrics             counters in human form (non-zero series)\n"
    "  health              exit 0 when relayd accepts allocations (/readyz)\n"
    "  drain [--restart]   stop allocating, keep relaying, exit once no "
    "endpoint is left or at --drain_timeout; the drained relayd stays down, "
    "or with --restart exits 75 for systemd to start a fresh one\n"
    "  reload [--pid=N]    SIGHUP relayd, wait for the reload's result; exit "
    "1 when it failed (the unit's ExecReload)\n"
    "  allocate KEY KEY    allocate an endpoint for two disco keys\n"
    "  help                this text\n"
    "\n"
    "relayd's address and token: --admin and --token_file, else what relayd's "
    "flag file (--relayd_flags) sets, else 127.0.0.1:9780 and "
    "/etc/relayd/admin_token.\n"
    "Exit status: 0 done, 1 relayd said no, could not be reached or the "
    "reload failed, 2 bad usage.\n";

int Fail(const std::string& msg) {
  std::fprintf(stderr, "relayctl: %s\n", msg.c_str());
  return 1;
}

std::string Human(double v) {
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (v >= 10000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrCat(int64_t(v)) : absl::StrFormat("%.1f%s", v, units[u]);
}

// A reply from relayd: status and body, the body capped while it arrives.
struct Reply {
  int status = 0;
  std::string body;
};

// The largest reply relayctl takes: a session list of the default 1000
// endpoints is about 0.5 MB; a reply far beyond that is not relayd's.
constexpr size_t kMaxReplyBytes = 16 << 20;

class Admin {
 public:
  Admin(std::string admin, std::string token)
      : admin_(std::move(admin)), token_(std::move(token)) {}
  // The reply, or a message saying why there is none.
  absl::StatusOr<Reply> Get(const std::string& path) {
    return Send("GET", path, "");
  }
  absl::StatusOr<Reply> Post(const std::string& path, const std::string& body) {
    return Send("POST", path, body);
  }
  bool has_token() const { return !token_.empty(); }
  // "bad reply from ADDR: WHAT", for every reply that is not what relayd
  // sends.
  absl::Status BadReply(const std::string& what) const {
    return absl::DataLossError(absl::StrCat("bad reply from ", admin_, ": ", what));
  }

 private:
  absl::StatusOr<Reply> Send(const char* method, const std::string& path,
                             const std::string& body) {
    if (!client_) {
      peerrelay::client::HttpClient::Options o;
      o.max_body = kMaxReplyBytes;
      absl::StatusOr<peerrelay::client::HttpClient> c =
          peerrelay::client::HttpClient::Create(admin_, o);
      if (!c.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad --admin: ", c.status().message()));
      }
      client_.emplace(std::move(*c));
    }
    peerrelay::client::HttpHeaders headers = peerrelay::client::BearerAuth(token_);
    absl::StatusOr<peerrelay::client::HttpResponse> r =
        std::string(method) == "POST" ? client_->PostJson(path, body, headers)
                                      : client_->Send(method, path, headers);
    if (!r.ok()) return r.status();
    return Reply{r->status, std::move(r->body)};
  }
  std::string admin_, token_;
  std::optional<peerrelay::client::HttpClient> client_;
};

// "HTTP 403: forbidden ..." plus a hint where one helps.
int HttpFail(const Admin& admin, const Reply& r) {
  std::string msg = absl::StrCat("HTTP ", r.status, ": ",
                                 absl::StripTrailingAsciiWhitespace(
                                     absl::string_view(r.body).substr(0, 500)));
  if (r.status == 403 && !admin.has_token()) {
    absl::StrAppend(&msg, " (no token: pass --token_file, or run as a user "
                          "who can read ", kDefaultTokenFile, ")");
  }
  return Fail(msg);
}

// Typed reads of relayd's JSON that never throw: each says what it wanted.
class Checked {
 public:
  explicit Checked(const Admin& admin) : admin_(admin) {}
  bool ok() const { return error_.empty(); }
  int Fail() const { return ::Fail(std::string(admin_.BadReply(error_).message())); }
  const json* Field(const json& o, const char* key, json::value_t want,
                    bool null_ok = false) {
    if (!ok()) return nullptr;
    if (!o.is_object() || !o.contains(key)) return Bad(absl::StrCat("no \"", key, "\""));
    const json& v = o[key];
    if (null_ok && v.is_null()) return &v;
    const bool number = want == json::value_t::number_float;
    if (number ? !v.is_number() : v.type() != want) {
      return Bad(absl::StrCat("\"", key, "\" is not ", TypeName(want)));
    }
    return &v;
  }
  double Number(const json& o, const char* key, double min = 0, double max = 1e300) {
    const json* v = Field(o, key, json::value_t::number_float);
    if (v == nullptr) return 0;
    const double d = v->get<double>();
    if (!(d >= min && d <= max)) {
      Bad(absl::StrCat("\"", key, "\" out of range"));
      return 0;
    }
    return d;
  }
  std::string String(const json& o, const char* key, bool null_ok = false) {
    const json* v = Field(o, key, json::value_t::string, null_ok);
    return v == nullptr || v->is_null() ? std::string() : v->get<std::string>();
  }
  const json* Array(const json& o, const char* key) {
    return Field(o, key, json::value_t::array);
  }
  std::nullptr_t Bad(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    return nullptr;
  }

 private:
  static const char* TypeName(json::value_t t) {
    switch (t) {
      case json::value_t::string: return "a string";
      case json::value_t::array: return "an array";
      case json::value_t::object: return "an object";
      default: return "a number";
    }
  }
  const Admin& admin_;
  std::string error_;
};

int Sessions(Admin& admin) {
  std::string query = absl::StrCat("?limit=", absl::GetFlag(FLAGS_limit));
  if (!absl::GetFlag(FLAGS_key).empty()) {
    absl::StrAppend(&query, "&key=", peerrelay::client::QueryEscape(absl::GetFlag(FLAGS_key)));
  }
  if (!absl::GetFlag(FLAGS_addr).empty()) {
    absl::StrAppend(&query, "&addr=", peerrelay::client::QueryEscape(absl::GetFlag(FLAGS_addr)));
  }
  auto r = admin.Get("/v0/relay/sessions" + query);
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return HttpFail(admin, *r);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", r->body.c_str());
    return 0;
  }
  const json j = json::parse(r->body, nullptr, false);
  Checked c(admin);
  if (j.is_discarded() || !j.is_object()) {
    c.Bad("not a JSON object");
    return c.Fail();
  }
  const double port = c.Number(j, "ServerPort", 0, 65535);
  const double count = c.Number(j, "Count");
  const json* sessions = c.Array(j, "Sessions");
  if (!c.ok()) return c.Fail();
  const bool truncated = j.contains("Truncated") && j["Truncated"].is_boolean() &&
                         j["Truncated"].get<bool>();
  // Check everything before printing anything.
  std::vector<std::string> lines;
  for (const json& s : *sessions) {
    const json* clients = c.Array(s, "Clients");
    if (clients != nullptr && clients->size() != 2) c.Bad("a session without 2 clients");
    if (!c.ok()) return c.Fail();
    std::string legs[2];
    double pkts[2], bytes[2];
    for (int i = 0; i < 2; ++i) {
      const json& cl = (*clients)[i];
      const std::string where = c.String(cl, "Endpoint", /*null_ok=*/true);
      const std::string shortd = c.String(cl, "ShortDisco");
      pkts[i] = c.Number(cl, "PacketsFromClient");
      bytes[i] = c.Number(cl, "BytesFromClient");
      legs[i] = absl::StrCat(where.empty() ? "<no handshake>" : where, "(",
                             shortd, ")");
    }
    const double vni = c.Number(s, "VNI", 0, 0xffffff);
    const double lamport = c.Number(s, "LamportID");
    const double age = c.Number(s, "AgeSeconds");
    if (!c.ok()) return c.Fail();
    lines.push_back(absl::StrFormat(
        "  VNI %u (lamport %.0f, age %.0fs): %s <-> %s  -> %s pkts / %s B, "
        "<- %s pkts / %s B\n",
        uint32_t(vni), lamport, age, legs[0], legs[1], Human(pkts[0]),
        Human(bytes[0]), Human(pkts[1]), Human(bytes[1])));
  }
  std::printf("Server port: %d\n", int(port));
  std::printf("Sessions: %.0f%s\n", count,
              truncated ? absl::StrCat(" (first ", sessions->size(), " shown)").c_str()
                        : "");
  for (const std::string& l : lines) std::fputs(l.c_str(), stdout);
  return 0;
}

int Metrics(Admin& admin) {
  auto r = admin.Get("/metrics");
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return HttpFail(admin, *r);
  // name -> sum over series, plus the labelled series worth seeing apart.
  std::map<std::string, double> totals;
  std::map<std::string, double> labelled;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    double v = 0;
    if (sp == std::string::npos || sp == 0 ||
        !absl::SimpleAtod(line.substr(sp + 1), &v) || !std::isfinite(v)) {
      return Fail(std::string(
          admin.BadReply(absl::StrCat("not a metrics line: ", line.substr(0, 80)))
              .message()));
    }
    const std::string series = line.substr(0, sp);
    absl::string_view name_view(series);
    name_view = name_view.substr(0, name_view.find('{'));
    if (!absl::ConsumePrefix(&name_view, "peerrelay_")) continue;  // process_*
    const std::string name(name_view);
    if (name == "dropped_datagrams_total" || name == "endpoints" ||
        name == "allocation_errors_total" || name == "allocations_total" ||
        name == "forwarded_packets_total" || name == "forwarded_bytes_total") {
      if (v != 0) labelled[series.substr(std::string("peerrelay_").size())] += v;
    } else if (name != "build_info") {
      totals[name] += v;
    }
  }
  for (const auto& [k, v] : totals) {
    if (v != 0) std::printf("%-34s %s\n", k.c_str(), Human(v).c_str());
  }
  for (const auto& [k, v] : labelled) {
    std::printf("%-34s %s\n", k.c_str(), Human(v).c_str());
  }
  return 0;
}

int Allocate(Admin& admin, const std::string& a, const std::string& b) {
  auto r = admin.Post("/v0/relay/endpoint", json{{"DiscoKeys", {a, b}}}.dump());
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return HttpFail(admin, *r);
  const json j = json::parse(r->body, nullptr, false);
  Checked c(admin);
  if (j.is_discarded() || !j.is_object()) {
    c.Bad("not a JSON object");
    return c.Fail();
  }
  c.String(j, "ServerDisco");
  c.Number(j, "VNI", 1, 0xffffff);
  c.Array(j, "AddrPorts");
  if (!c.ok()) return c.Fail();
  // Invalid UTF-8 in a string is replaced, never thrown over.
  std::printf("%s\n",
              j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  return 0;
}

int Simple(Admin& admin, bool post, const std::string& path) {
  auto r = post ? admin.Post(path, "") : admin.Get(path);
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status >= 300) return HttpFail(admin, *r);  // "HTTP 503: draining"
  std::printf("%s", r->body.c_str());
  return 0;
}

// Where relayd is and its token: the flags, else relayd's flag file, else
// the package's defaults.
struct Target {
  std::string admin;
  std::string token;
};

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  absl::StatusOr<std::string> resolved = peerrelay::cli::ResolveSecretPath(path);
  if (!resolved.ok()) return resolved.status();
  absl::StatusOr<std::string> text = peerrelay::ReadSmallFile(*resolved, 4096);
  if (!text.ok()) return text.status();
  return std::string(absl::StripAsciiWhitespace(
      absl::string_view(*text).substr(0, text->find('\n'))));
}

absl::StatusOr<Target> FindRelayd() {
  Target t;
  t.admin = absl::GetFlag(FLAGS_admin);
  std::string token_file = absl::GetFlag(FLAGS_token_file);
  const std::string flags = absl::GetFlag(FLAGS_relayd_flags);
  if ((t.admin.empty() || token_file.empty()) && !flags.empty() &&
      access(flags.c_str(), F_OK) == 0) {
    if (t.admin.empty()) {
      auto v = peerrelay::cli::FlagValueInFiles({flags}, "admin_listen");
      if (!v.ok()) return v.status();
      if (v->has_value()) {
        if (**v == "off") {
          return absl::FailedPreconditionError(absl::StrCat(
              "relayd's admin API is off (--admin_listen=off in ", flags, ")"));
        }
        absl::StatusOr<peerrelay::SocketAddress> a =
            peerrelay::SocketAddress::Parse(**v);
        if (!a.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              flags, ": --admin_listen=", **v, ": ", a.status().message()));
        }
        // A listener on every address answers on loopback.
        if (a->is_unspecified()) {
          *a = peerrelay::SocketAddress::Parse(
                   a->is_ipv4() ? absl::StrCat("127.0.0.1:", a->port())
                                : absl::StrCat("[::1]:", a->port()))
                   .value();
        }
        t.admin = a->ToString();
      }
    }
    if (token_file.empty() && access(flags.c_str(), R_OK) == 0) {
      auto v = peerrelay::cli::FlagValueInFiles({flags}, "admin_token_file");
      if (!v.ok()) return v.status();
      if (v->has_value() && !(*v)->empty()) token_file = **v;
    }
  }
  if (t.admin.empty()) t.admin = kDefaultAdmin;
  if (token_file.empty()) {
    if (access(kDefaultTokenFile, R_OK) != 0) return t;  // no token
    token_file = kDefaultTokenFile;
  } else if (!absl::GetFlag(FLAGS_token_file).empty() ||
             absl::StartsWith(token_file, "credential:") ||
             access(token_file.c_str(), R_OK) == 0) {
    // Named: it must be readable.
  } else {
    return t;  // relayd's token file, not readable by this user: no token
  }
  absl::StatusOr<std::string> token = ReadToken(token_file);
  if (!token.ok()) return token.status();
  t.token = std::move(*token);
  return t;
}

// relayd's --status_file as key=value pairs.
absl::StatusOr<std::map<std::string, std::string>> ReadStatus(
    const std::string& path) {
  absl::StatusOr<std::string> text = peerrelay::ReadSmallFile(path, 1 << 16);
  if (!text.ok()) return text.status();
  std::map<std::string, std::string> kv;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    kv[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return kv;
}

uint64_t StatusNumber(const std::map<std::string, std::string>& kv,
                      const std::string& key) {
  uint64_t v = 0;
  auto it = kv.find(key);
  if (it == kv.end() || !absl::SimpleAtoi(it->second, &v)) return 0;
  return v;
}

// SIGHUP, then the result of a reload that started after the signal came.
int Reload() {
  const std::string path = absl::GetFlag(FLAGS_status_file);
  auto st = ReadStatus(path);
  if (!st.ok()) {
    return Fail(absl::StrCat("reload: cannot read relayd's status file: ",
                             st.status().message(),
                             " (is relayd running with --status_file=", path,
                             "?)"));
  }
  const uint64_t file_pid = StatusNumber(*st, "pid");
  const int pid = absl::GetFlag(FLAGS_pid) > 0 ? absl::GetFlag(FLAGS_pid)
                                               : int(file_pid);
  if (file_pid <= 1) return Fail(absl::StrCat("reload: no pid in ", path));
  if (file_pid != uint64_t(pid)) {
    return Fail(absl::StrCat("reload: ", path, " is relayd pid ", file_pid,
                             "'s, not ", pid, "'s (another --status_file?)"));
  }
  absl::StatusOr<std::string> comm =
      peerrelay::ReadSmallFile(absl::StrCat("/proc/", pid, "/comm"), 256);
  if (!comm.ok() || absl::StripTrailingAsciiWhitespace(*comm) != "relayd") {
    return Fail(absl::StrCat("reload: process ", pid, " is not relayd"));
  }
  const uint64_t before = StatusNumber(*st, "reload_requests");
  if (kill(pid, SIGHUP) != 0) {
    return Fail(absl::StrCat("reload: kill ", pid, ": ", std::strerror(errno)));
  }
  const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_timeout);
  while (absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    st = ReadStatus(path);
    if (!st.ok() || StatusNumber(*st, "pid") != uint64_t(pid)) {
      return Fail(absl::StrCat("reload: relayd ", pid,
                               " stopped during the reload"));
    }
    if (StatusNumber(*st, "reload_done") > before) {
      const std::string& message = (*st)["reload_message"];
      if ((*st)["reload_result"] != "ok") {
        return Fail(absl::StrCat("reload: ", message));
      }
      std::printf("relayd %d: %s\n", pid, message.c_str());
      return 0;
    }
  }
  return Fail(absl::StrCat("reload: no result from relayd ", pid, " within ",
                           absl::FormatDuration(absl::GetFlag(FLAGS_timeout))));
}

}  // namespace

int main(int argc, char** argv) {
  auto usage_error = [](absl::string_view msg) {
    std::fprintf(stderr, "relayctl: %.*s\n(relayctl help lists the commands)\n",
                 int(msg.size()), msg.data());
    return 2;
  };
  const peerrelay::cli::Parsed parsed = peerrelay::cli::ParseFlags(
      argc, argv,
      {.name = "relayctl",
       .usage = kUsage,
       .flag_sources = {"tools/relayctl.cc"},
       .report = [&](absl::string_view msg) { usage_error(msg); }});
  if (parsed.done()) return parsed.exit_code;
  const std::vector<char*>& args = parsed.args;
  if (args.size() < 2) return usage_error("need a command");
  const std::string cmd = args[1];
  if (cmd == "help") {
    std::printf("%s\nflags:\n%s", kUsage,
                peerrelay::cli::FlagsHelp({"tools/relayctl.cc"}).c_str());
    return 0;
  }
  const size_t want_args = cmd == "allocate" ? 4 : 2;
  if (cmd != "sessions" && cmd != "metrics" && cmd != "health" &&
      cmd != "drain" && cmd != "allocate" && cmd != "reload") {
    return usage_error("unknown command '" + cmd + "'");
  }
  if (args.size() != want_args) {
    return usage_error(cmd == "allocate" ? "allocate needs two disco keys"
                                         : cmd + " takes no arguments");
  }
  if (cmd == "reload") return Reload();
  absl::StatusOr<Target> target = FindRelayd();
  if (!target.ok()) return Fail(std::string(target.status().message()));
  Admin admin(target->admin, target->token);
  if (cmd == "sessions") return Sessions(admin);
  if (cmd == "metrics") return Metrics(admin);
  if (cmd == "health") return Simple(admin, false, "/readyz");
  if (cmd == "drain") {
    return Simple(admin, true,
                  absl::GetFlag(FLAGS_restart) ? "/v0/relay/drain?then=restart"
                                               : "/v0/relay/drain");
  }
  return Allocate(admin, args[2], args[3]);
}
