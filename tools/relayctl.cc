// relayctl: talks to a running relayd's admin API.
//
//   relayctl [--admin=127.0.0.1:9780] [--token_file=F] COMMAND
//
// Commands: allocate KEY KEY, sessions, metrics, health, drain, help. The
// token is read from --token_file, else from /etc/relayd/admin_token when
// that is readable (the package installs it there, root only).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/small_file.h"
#include "common/socket_address.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, admin, "127.0.0.1:9780",
          "relayd's admin address, ip:port or [ip6]:port");
ABSL_FLAG(std::string, token_file, "",
          "bearer token file (allocate, sessions, drain); default "
          "/etc/relayd/admin_token when readable");
ABSL_FLAG(bool, json, false, "sessions: print relayd's JSON as it is");
ABSL_FLAG(std::string, key, "",
          "sessions: only endpoints with a client key starting with this "
          "(discokey:HEX, d:HEX or a hex prefix)");
ABSL_FLAG(std::string, addr, "",
          "sessions: only endpoints with a client bound to IP or IP:PORT");
ABSL_FLAG(int, limit, 1000, "sessions: at most this many endpoints");

namespace {

using nlohmann::json;

constexpr char kDefaultTokenFile[] = "/etc/relayd/admin_token";

constexpr char kUsage[] =
    "relayctl: talk to a running relayd's admin API\n"
    "\n"
    "usage: relayctl [--admin=HOST:PORT] [--token_file=F] COMMAND\n"
    "\n"
    "commands:\n"
    "  sessions [--json] [--key=PREFIX] [--addr=IP[:PORT]] [--limit=N]\n"
    "                      endpoints, both legs, packets/bytes each way\n"
    "  metrics             counters in human form (non-zero series)\n"
    "  health              exit 0 when relayd accepts allocations (/readyz)\n"
    "  drain               stop allocating, keep relaying, exit when empty "
    "(as SIGUSR1)\n"
    "  allocate KEY KEY    allocate an endpoint for two disco keys\n"
    "  help                this text\n"
    "\n"
    "The token comes from --token_file, else /etc/relayd/admin_token.\n"
    "Exit status: 0 done, 1 relayd said no or could not be reached, 2 bad "
    "usage.\n";

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

// Why `admin` cannot be reached, as "connect ADDR: reason": httplib says
// only that it failed, so one plain connect() asks the kernel.
std::string Unreachable(const std::string& admin, httplib::Error e) {
  absl::StatusOr<peerrelay::SocketAddress> a = peerrelay::SocketAddress::Parse(admin);
  if (!a.ok()) return absl::StrCat("bad --admin '", admin, "': ", a.status().message());
  if (e == httplib::Error::Connection) {
    sockaddr_storage ss;
    const socklen_t len = a->ToSockaddr(&ss);
    const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = 0;
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 3000) == 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t l = sizeof(err);
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        }
      }
    }
    close(fd);
    if (err != 0) {
      return absl::StrCat("connect ", admin, ": ",
                          absl::AsciiStrToLower(std::strerror(err)));
    }
  }
  return absl::StrCat("request to ", admin, ": ", httplib::to_string(e));
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
      : admin_(std::move(admin)),
        token_(std::move(token)),
        client_(absl::StrCat("http://", admin_)) {
    client_.set_connection_timeout(3, 0);
    client_.set_read_timeout(10, 0);
  }
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
    httplib::Request req;
    req.method = method;
    req.path = path;
    if (!token_.empty()) req.headers.emplace("Authorization", "Bearer " + token_);
    if (req.method == "POST") {
      req.headers.emplace("Content-Type", "application/json");
      req.body = body;
    }
    Reply reply;
    bool too_large = false;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (reply.body.size() + n > kMaxReplyBytes) {
        too_large = true;
        return false;  // stop reading
      }
      reply.body.append(data, n);
      return true;
    };
    httplib::Result r = client_.send(req);
    if (too_large) {
      return BadReply(absl::StrCat("larger than ", kMaxReplyBytes >> 20, " MiB"));
    }
    if (!r) return absl::UnavailableError(Unreachable(admin_, r.error()));
    reply.status = r->status;
    return reply;
  }
  std::string admin_, token_;
  httplib::Client client_;
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
    absl::StrAppend(&query, "&key=", httplib::detail::encode_query_param(absl::GetFlag(FLAGS_key)));
  }
  if (!absl::GetFlag(FLAGS_addr).empty()) {
    absl::StrAppend(&query, "&addr=", httplib::detail::encode_query_param(absl::GetFlag(FLAGS_addr)));
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

// The token: --token_file, else the package's file when readable.
absl::StatusOr<std::string> Token() {
  std::string path = absl::GetFlag(FLAGS_token_file);
  const bool given = !path.empty();
  if (!given) {
    if (access(kDefaultTokenFile, R_OK) != 0) return std::string();
    path = kDefaultTokenFile;
  }
  absl::StatusOr<std::string> text = peerrelay::ReadSmallFile(path, 4096);
  if (!text.ok()) return text.status();
  return std::string(absl::StripAsciiWhitespace(
      absl::string_view(*text).substr(0, text->find('\n'))));
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  auto usage_error = [](const std::string& msg) {
    std::fprintf(stderr, "relayctl: %s\n(relayctl help lists the commands)\n",
                 msg.c_str());
    return 2;
  };
  absl::StatusOr<peerrelay::cli::CommandLine> cmdline =
      peerrelay::cli::CheckCommandLine(argc, argv);
  if (!cmdline.ok()) return usage_error(std::string(cmdline.status().message()));
  if (cmdline->help) {
    std::printf("%s\nflags:\n%s", kUsage,
                peerrelay::cli::FlagsHelp({"tools/relayctl.cc"}).c_str());
    return 0;
  }
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return usage_error("need a command");
  const std::string cmd = args[1];
  if (cmd == "help") {
    std::printf("%s\nflags:\n%s", kUsage,
                peerrelay::cli::FlagsHelp({"tools/relayctl.cc"}).c_str());
    return 0;
  }
  const size_t want_args = cmd == "allocate" ? 4 : 2;
  if (cmd != "sessions" && cmd != "metrics" && cmd != "health" &&
      cmd != "drain" && cmd != "allocate") {
    return usage_error("unknown command '" + cmd + "'");
  }
  if (args.size() != want_args) {
    return usage_error(cmd == "allocate" ? "allocate needs two disco keys"
                                         : cmd + " takes no arguments");
  }
  absl::StatusOr<std::string> token = Token();
  if (!token.ok()) return Fail(std::string(token.status().message()));
  Admin admin(absl::GetFlag(FLAGS_admin), *token);
  if (cmd == "sessions") return Sessions(admin);
  if (cmd == "metrics") return Metrics(admin);
  if (cmd == "health") return Simple(admin, false, "/readyz");
  if (cmd == "drain") return Simple(admin, true, "/v0/relay/drain");
  return Allocate(admin, args[2], args[3]);
}
