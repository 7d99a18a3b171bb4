#include "control/admin.h"

#include <sodium.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "disco/key.h"
#include "common/clock.h"
#include "control/process_stats.h"
#include "engine/xdp_tier.h"

namespace peerrelay::control {
namespace {

using nlohmann::json;

// Bodies larger than this are refused with 400, as Tailscale's handler did.
constexpr size_t kMaxAllocateBody = 512;
// What Tailscale's handler sent in Retry-After when it had no address yet.
constexpr int kNotReadyRetryAfter = 3;

// A node key in Tailscale's text form: "nodekey:" and 64 lowercase hex.
bool IsNodeKeyText(absl::string_view s) {
  return absl::ConsumePrefix(&s, "nodekey:") && s.size() == 64 &&
         s.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

int ErrorSlot(int status) {
  switch (status) {
    case 400: return 0;
    case 403: return 1;
    case 405: return 2;
    case 429: return 3;
    case 500: return 4;
    case 503: return 5;
  }
  return -1;
}
constexpr int kErrorStatuses[6] = {400, 403, 405, 429, 500, 503};

// Go's strconv-like trimming of a fraction: "1.500" -> "1.5", "2.000" -> "2".
std::string Fraction(int64_t whole, int64_t frac, int digits) {
  std::string f = absl::StrFormat("%0*d", digits, frac);
  while (!f.empty() && f.back() == '0') f.pop_back();
  return f.empty() ? absl::StrCat(whole) : absl::StrCat(whole, ".", f);
}

// process_* families (Prometheus client libraries' names), unprefixed.
void AddProcessFamilies(std::vector<prometheus::MetricFamily>* fams) {
  std::optional<ProcessStats> p = ReadProcessStats();
  if (!p) return;
  auto gauge = [&](const char* name, const char* help, double v,
                   prometheus::MetricType type = prometheus::MetricType::Gauge) {
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) {
      m.counter.value = v;
    } else {
      m.gauge.value = v;
    }
    fams->push_back({name, help, type, {m}});
  };
  gauge("process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        p->start_time_seconds);
  gauge("process_cpu_seconds_total", "User and system CPU time, in seconds.",
        p->cpu_seconds, prometheus::MetricType::Counter);
  gauge("process_resident_memory_bytes", "Resident memory size, in bytes.",
        double(p->resident_bytes));
  gauge("process_virtual_memory_bytes", "Virtual memory size, in bytes.",
        double(p->virtual_bytes));
  gauge("process_open_fds", "Open file descriptors.", double(p->open_fds));
  gauge("process_max_fds", "Limit on open file descriptors.",
        double(p->max_fds));
  gauge("process_threads", "Threads of the process.", double(p->threads));
}

}  // namespace

std::string FormatGoDuration(int64_t ns) {
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? uint64_t(-(ns + 1)) + 1 : uint64_t(ns);
  if (u < 1'000) return absl::StrCat(sign, u, "ns");
  if (u < 1'000'000) return absl::StrCat(sign, Fraction(u / 1000, u % 1000, 3), "µs");
  if (u < 1'000'000'000) {
    return absl::StrCat(sign, Fraction(u / 1'000'000, u % 1'000'000, 6), "ms");
  }
  const uint64_t secs_total = u / 1'000'000'000;
  const uint64_t frac = u % 1'000'000'000;
  const uint64_t h = secs_total / 3600, m = secs_total / 60 % 60,
                 s = secs_total % 60;
  std::string out = sign;
  if (h > 0) absl::StrAppend(&out, h, "h");
  if (h > 0 || m > 0) absl::StrAppend(&out, m, "m");
  absl::StrAppend(&out, Fraction(s, frac, 9), "s");
  return out;
}

// Retry-After, in seconds, on a refusal the caller may retry.
void SetRetryAfter(HttpResponse& r, int seconds) {
  r.headers.emplace_back("Retry-After", std::to_string(seconds));
}

absl::StatusOr<std::unique_ptr<Admin>> Admin::Start(relay::Server* server,
                                                    engine::Relay* relay,
                                                    AdminOptions options) {
  std::unique_ptr<Admin> a(new Admin(server, relay, options));
  Admin* self = a.get();
  auto http = HttpServer::Start(
      options.listen, options.http_limits,
      [self](const HttpRequest& req) { return self->OnHeaders(req, false); },
      [self](const HttpRequest& req) { return self->Handle(req); });
  if (!http.ok()) return http.status();
  a->http_ = std::move(*http);
  a->port_ = a->http_->port();
  if (options.metrics_listen) {
    auto m = HttpServer::Start(
        *options.metrics_listen, options.http_limits,
        [self](const HttpRequest& req) { return self->OnHeaders(req, true); },
        [self](const HttpRequest& req) { return self->Handle(req); });
    if (!m.ok()) {
      return absl::Status(m.status().code(),
                          absl::StrCat("metrics listener: ",
                                       m.status().message()));
    }
    a->metrics_http_ = std::move(*m);
    a->metrics_port_ = a->metrics_http_->port();
  }
  return a;
}

namespace {
constexpr char kAllocatePath[] = "/v0/relay/endpoint";
constexpr char kSessionsPath[] = "/v0/relay/sessions";
constexpr char kDrainPath[] = "/v0/relay/drain";

HttpResponse Text(int status, std::string body) {
  return HttpResponse{
      .status = status, .content_type = "text/plain", .body = std::move(body)};
}

// Paths served on the metrics listener: nothing on them names a client.
bool PublicPath(absl::string_view path) {
  return path == "/metrics" || path == "/livez" || path == "/readyz" ||
         path == "/healthz";
}
}  // namespace

std::optional<HttpResponse> Admin::OnHeaders(const HttpRequest& req,
                                             bool metrics_only) {
  const bool is_public = PublicPath(req.path);
  if (metrics_only && !is_public) return Text(404, "not found\n");
  if (req.path == kAllocatePath || req.path == kDrainPath) {
    // Tailscale's order: permission, then method; both before the body.
    const Access access = AccessOf(req.Header("authorization"));
    if (access != Access::kAdmin &&
        !(access == Access::kBridge && req.path == kAllocatePath)) {
      return Error(403, req.path == kAllocatePath
                            ? "forbidden: allocation needs a valid bearer token"
                            : "forbidden: drain needs a valid bearer token");
    }
    if (req.method != "POST") {
      return Error(405, "method not allowed: use POST");
    }
    return std::nullopt;
  }
  if (!is_public && req.path != kSessionsPath) {
    return Text(404, "not found\n");
  }
  if (req.path == kSessionsPath) {
    const Access access = AccessOf(req.Header("authorization"));
    if (access != Access::kAdmin && access != Access::kRead) {
      // Client addresses and keys: never without a token.
      return Text(403,
                  "forbidden: the session list needs a valid bearer token "
                  "(admin or read token)\n");
    }
  }
  if (req.path == "/metrics") {
    const std::string conn = req.peer.ToString();
    const int64_t now = MonotonicNowNs();
    if (!scrape_limiter_.Allow(conn, now)) {
      HttpResponse r = Text(429, "too many scrapes on this connection\n");
      r.headers.emplace_back(
          "Retry-After",
          std::to_string(scrape_limiter_.RetryAfterSeconds(conn, now)));
      return r;
    }
  }
  const absl::string_view cl = req.Header("content-length");
  if (req.method != "GET" || (!cl.empty() && cl != "0") ||
      !req.Header("transfer-encoding").empty()) {
    return HttpResponse{.status = 405,
                        .content_type = "text/plain",
                        .body = "method not allowed: use GET, no body\n"};
  }
  return std::nullopt;
}

HttpResponse Admin::Handle(const HttpRequest& req) {
  if (req.path == kAllocatePath) {
    return Allocate(req.method, req.Header("authorization"),
                    req.peer.IpString(), req.body);
  }
  if (req.path == kDrainPath) return Drain(req);
  if (req.path == "/metrics") return Metrics();
  if (req.path == "/healthz" || req.path == "/readyz") {
    return Health();
  }
  if (req.path == "/livez") return Live();
  return HandleSessions(req);
}

HttpResponse Admin::HandleSessions(const HttpRequest& req) {
  size_t limit = kDefaultSessionsLimit;
  if (std::optional<std::string> l = req.QueryParam("limit")) {
    if (!absl::SimpleAtoi(*l, &limit)) {
      return Text(400, "limit must be a non-negative integer\n");
    }
    if (limit > kMaxSessionsLimit) {
      return Text(400, absl::StrCat("limit must be at most ", kMaxSessionsLimit,
                                    "\n"));
    }
  }
  relay::SessionFilter filter;
  if (std::optional<std::string> k = req.QueryParam("key")) {
    absl::string_view hex = *k;
    if (!absl::ConsumePrefix(&hex, "discokey:")) absl::ConsumePrefix(&hex, "d:");
    std::string lower = absl::AsciiStrToLower(hex);
    if (lower.empty() || lower.size() > 64 ||
        lower.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return Text(400,
                  "key must be a disco key or a hex prefix of one "
                  "(discokey:HEX, d:HEX or HEX)\n");
    }
    filter.key_hex_prefix = std::move(lower);
  }
  if (std::optional<std::string> a = req.QueryParam("addr")) {
    // Without a port: any port.
    absl::StatusOr<SocketAddress> addr =
        SocketAddress::ParseWithDefaultPort(*a, 0);
    if (!addr.ok()) {
      return Text(400, "addr must be IP, IP:PORT or [IPv6]:PORT\n");
    }
    filter.address = *addr;
  }
  return Sessions(limit, filter);
}


HttpServerStats Admin::http_stats() const {
  return http_ ? http_->stats() : HttpServerStats{};
}

Admin::Admin(relay::Server* server, engine::Relay* relay, AdminOptions options)
    : server_(server),
      relay_(relay),
      options_(options),
      token_(options.token),
      read_token_(options.read_token),
      bridge_token_(options.bridge_token),
      limiter_(options.alloc_rate, options.alloc_burst) {}

Admin::~Admin() { Stop(); }

void Admin::Stop() {
  if (metrics_http_) metrics_http_->Stop();
  if (http_) http_->Stop();
}

void Admin::SetToken(std::string token) {
  std::lock_guard<std::mutex> l(token_mu_);
  token_ = std::move(token);
}

void Admin::SetReadToken(std::string token) {
  std::lock_guard<std::mutex> l(token_mu_);
  read_token_ = std::move(token);
}

void Admin::SetBridgeToken(std::string token) {
  std::lock_guard<std::mutex> l(token_mu_);
  bridge_token_ = std::move(token);
}

namespace {
// Constant-time comparison of a "Bearer X" header with a non-empty token.
bool BearerIs(absl::string_view header, const std::string& token) {
  return !token.empty() && absl::ConsumePrefix(&header, "Bearer ") &&
         header.size() == token.size() &&
         sodium_memcmp(header.data(), token.data(), token.size()) == 0;
}
}  // namespace

Admin::Access Admin::AccessOf(absl::string_view auth_header) const {
  std::lock_guard<std::mutex> l(token_mu_);
  if (BearerIs(auth_header, token_)) return Access::kAdmin;
  if (BearerIs(auth_header, bridge_token_)) return Access::kBridge;
  if (BearerIs(auth_header, read_token_)) return Access::kRead;
  return Access::kNone;
}
HttpResponse Admin::Drain(const HttpRequest& req) {
  HttpResponse r;
  r.content_type = "text/plain";
  if (!options_.on_drain) {
    r.status = 501;
    r.body = "drain is not wired in this process\n";
    return r;
  }
  // ?then=exit (the default: the drained process stays down) or
  // ?then=restart (it exits asking its supervisor for a fresh start).
  const std::string then = req.QueryParam("then").value_or("exit");
  if (then != "exit" && then != "restart") {
    return Error(400, "then must be exit or restart");
  }
  const bool restart = then == "restart";
  if (draining_.load()) {
    // A drain already running may still be told to end in a restart.
    if (restart) options_.on_drain(true);
    r.body = restart ? "already draining; it ends in a restart\n"
                     : "already draining\n";
    return r;
  }
  options_.on_drain(restart);
  r.status = 202;
  r.body = absl::StrCat("draining: ", server_->endpoint_count(),
                        " endpoints left; then ", then, "\n");
  return r;
}

HttpResponse Admin::Error(int status, std::string text) {
  const int slot = ErrorSlot(status);
  if (slot >= 0) http_errors_[slot].fetch_add(1, std::memory_order_relaxed);
  HttpResponse r;
  r.status = status;
  r.body = std::move(text) + "\n";
  r.content_type = "text/plain";
  return r;
}

HttpResponse Admin::Allocate(absl::string_view method,
                          absl::string_view auth_header,
                          absl::string_view caller, absl::string_view body) {
  auto error = [this](int status, std::string text) {
    return Error(status, std::move(text));
  };
  // Tailscale's order: permission, method, body, allocation.
  const Access access = AccessOf(auth_header);
  if (access != Access::kAdmin && access != Access::kBridge) {
    return error(403, "forbidden: allocation needs a valid bearer token");
  }
  if (method != "POST") return error(405, "method not allowed: use POST");
  if (draining_.load()) {
    HttpResponse r = error(503, "draining: this relay takes no new allocations");
    SetRetryAfter(r, kDrainRetryAfter);
    return r;
  }
  if (body.size() > kMaxAllocateBody) {
    return error(400, absl::StrCat("body larger than ", kMaxAllocateBody,
                                   " bytes"));
  }
  json req = json::parse(body.begin(), body.end(), nullptr,
                         /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object() || !req.contains("DiscoKeys") ||
      !req["DiscoKeys"].is_array()) {
    return error(400, "body must be {\"DiscoKeys\":[key, key]}");
  }
  // Who the limits count: the bridge names the node it asks for; anyone
  // else is its IP address.
  std::string who(caller);
  if (req.contains("Requester")) {
    if (access != Access::kBridge) {
      return error(403, "forbidden: only the bridge token may name a Requester");
    }
    if (!req["Requester"].is_string() ||
        !IsNodeKeyText(req["Requester"].get<std::string>())) {
      return error(400, "Requester must be \"nodekey:\" and 64 hex digits");
    }
    who = req["Requester"].get<std::string>();
  }
  const int64_t now = MonotonicNowNs();
  if (!limiter_.Allow(who, now)) {
    HttpResponse r = error(429, "too many allocation requests from this caller");
    SetRetryAfter(r, limiter_.RetryAfterSeconds(who, now));
    return r;
  }
  const json& keys = req["DiscoKeys"];
  if (keys.size() != 2) return error(400, "exactly 2 DiscoKeys required");
  disco::DiscoKey k[2];
  for (int i = 0; i < 2; ++i) {
    if (!keys[i].is_string()) return error(400, "DiscoKeys must be strings");
    auto parsed = disco::DiscoKey::ParseText(keys[i].get<std::string>());
    if (!parsed.ok()) return error(400, std::string(parsed.status().message()));
    if (parsed->IsLowOrder()) {
      return error(400, "a disco key is a low-order point (all zero?): no "
                        "handshake could ever succeed with it");
    }
    k[i] = *parsed;
  }
  absl::StatusOr<relay::EndpointInfo> ep =
      server_->Allocate(k[0], k[1], now, who);
  if (!ep.ok()) {
    // Not ready, over a cap or the allocation rate, closed by a drain: the
    // relay cannot take it now; another may, or this one later.
    switch (ep.status().code()) {
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kResourceExhausted: {
        HttpResponse r = error(503, std::string(ep.status().message()));
        SetRetryAfter(r, kNotReadyRetryAfter);
        return r;
      }
      case absl::StatusCode::kFailedPrecondition: {
        HttpResponse r = error(503, "draining: this relay takes no new allocations");
        SetRetryAfter(r, kDrainRetryAfter);
        return r;
      }
      case absl::StatusCode::kInvalidArgument:
        return error(400, std::string(ep.status().message()));
      default:
        return error(500, std::string(ep.status().message()));
    }
  }
  http_allocations_.fetch_add(1, std::memory_order_relaxed);
  json addrs = json::array();
  for (const SocketAddress& a : ep->addresses) addrs.push_back(a.ToString());
  json out = {
      {"ServerDisco", ep->server_key.ToText()},
      {"ClientDisco",
       {ep->client_keys[0].ToText(), ep->client_keys[1].ToText()}},
      {"LamportID", ep->lamport_id},
      {"AddrPorts", addrs},
      {"VNI", ep->vni},
      {"BindLifetime", FormatGoDuration(ep->bind_lifetime_ns)},
      {"SteadyStateLifetime", FormatGoDuration(ep->steady_state_lifetime_ns)},
  };
  HttpResponse r;
  r.body = out.dump();
  return r;
}

HttpResponse Admin::Metrics() const {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  std::vector<MetricFamily> fams;
  auto family = [&](std::string name, std::string help, MetricType type) {
    fams.push_back({absl::StrCat("peerrelay_", name), std::move(help), type,
                    {}});
    return &fams.back();
  };
  auto add = [](MetricFamily* f, std::vector<ClientMetric::Label> labels,
                double v) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f->type == MetricType::Counter) {
      m.counter.value = v;
    } else {
      m.gauge.value = v;
    }
    f->metric.push_back(std::move(m));
  };

  // Per-core counters, per worker, with the stage that counted them:
  // stage="worker" for the receive workers (every datagram received is
  // counted once there: received = relayed + slow_path + dropped), and
  // stage="slow_path" for what the slow path did with what it was handed.
  // stage="xdp" for what the kernel tier forwarded (received = relayed
  // there: what it does not forward, the workers receive).
  const int workers = relay_->workers();
  const engine::XdpTier* xdp = relay_->xdp();
  std::vector<relay::CountersSnapshot> blocks;
  for (int i = 0; i < workers; ++i) blocks.push_back(relay_->WorkerCounters(i));
  blocks.push_back(relay_->SlowPathCounters());
  if (xdp != nullptr) blocks.push_back(relay_->XdpCounters());
  auto stage = [workers](size_t i) {
    return int(i) == workers ? "slow_path"
           : int(i) > workers ? "xdp"
                              : "worker";
  };
  auto labels = [&](size_t i) {
    return std::vector<ClientMetric::Label>{
        {"stage", stage(i)},
        {"worker", int(i) >= workers ? stage(i) : std::to_string(i)}};
  };
#define PEERRELAY_EXPORT(field, metric, help)                    \
  {                                                              \
    MetricFamily* f = family(metric, help, MetricType::Counter); \
    for (size_t i = 0; i < blocks.size(); ++i) {                 \
      add(f, labels(i), double(blocks[i].field));                \
    }                                                            \
  }
  PEERRELAY_COUNTER_FIELDS(PEERRELAY_EXPORT)
#undef PEERRELAY_EXPORT

  MetricFamily* drops =
      family("dropped_datagrams_total",
             "Datagrams dropped, by reason and by the stage that dropped them "
             "(every drop is silent on the wire).",
             MetricType::Counter);
  for (const char* st : {"worker", "slow_path", "xdp"}) {
    if (std::string(st) == "xdp" && xdp == nullptr) continue;
    for (size_t r = 0; r < relay::kNumDropReasons; ++r) {
      uint64_t n = 0;
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (std::string(stage(i)) == st) n += blocks[i].dropped[r];
      }
      add(drops,
          {{"reason", std::string(relay::DropReasonName(relay::DropReason(r)))},
           {"stage", st}},
          double(n));
    }
  }

  relay::CountersSnapshot sum;
  for (const auto& b : blocks) {
    for (size_t i = 0; i < 4; ++i) {
      sum.forwarded_packets[i] += b.forwarded_packets[i];
      sum.forwarded_bytes[i] += b.forwarded_bytes[i];
    }
  }
  MetricFamily* fwd_packets = family(
      "forwarded_packets_total",
      "Datagrams relayed, by the address family they came in on and went "
      "out on (as Tailscale's peer_relay_forwarded_packets_total).",
      MetricType::Counter);
  MetricFamily* fwd_bytes = family(
      "forwarded_bytes_total",
      "UDP payload bytes relayed, by address family in and out (as "
      "Tailscale's peer_relay_forwarded_bytes_total).",
      MetricType::Counter);
  for (bool in6 : {false, true}) {
    for (bool out6 : {false, true}) {
      const size_t i = relay::FamilyIndex(in6, out6);
      std::vector<ClientMetric::Label> l = {
          {"transport_in", in6 ? "udp6" : "udp4"},
          {"transport_out", out6 ? "udp6" : "udp4"}};
      add(fwd_packets, l, double(sum.forwarded_packets[i]));
      add(fwd_bytes, l, double(sum.forwarded_bytes[i]));
    }
  }

  // The kernel tier's state.
  MetricFamily* xdp_mode = family(
      "xdp_mode",
      "The XDP tier's mode: 1 for the one in use (off, native, generic, or "
      "a mix as native+generic across interfaces).",
      MetricType::Gauge);
  add(xdp_mode, {{"mode", xdp != nullptr ? xdp->mode() : "off"}}, 1);
  if (xdp != nullptr) {
    add(family("xdp_pairs",
               "Bound pairs in the XDP tier's map, forwarded in the kernel.",
               MetricType::Gauge),
        {}, double(xdp->pairs()));
    MetricFamily* kept = family(
        "xdp_pairs_on_sockets_total",
        "Bound pairs (or re-binds) the XDP tier left to the sockets, by why: "
        "mixed_family (sides of different address families), map_full "
        "(--xdp_max_pairs), map_error (the kernel refused the update).",
        MetricType::Counter);
    add(kept, {{"reason", "mixed_family"}}, double(xdp->pairs_mixed_family()));
    add(kept, {{"reason", "map_full"}}, double(xdp->pairs_map_full()));
    add(kept, {{"reason", "map_error"}}, double(xdp->map_errors()));
    MetricFamily* passed = family(
        "xdp_passed_datagrams_total",
        "Datagrams for the relay's address and port that the XDP program "
        "handed to the sockets unchanged, by why (the workers then receive "
        "and count them).",
        MetricType::Counter);
    const auto passes = xdp->Passes();
    for (int r = 0; r < XDP_PASS_REASONS; ++r) {
      add(passed, {{"reason", engine::XdpPassReasonName(r)}},
          double(passes[r]));
    }
  }

  const relay::EndpointStates st = server_->StateCounts();
  MetricFamily* eps = family(
      "endpoints",
      "Endpoints by state, as Tailscale names them: open (allocated, no "
      "side bound yet), semi_bound (one side bound), bound (both sides "
      "bound; data flows).",
      MetricType::Gauge);
  add(eps, {{"state", "open"}}, double(st.open));
  add(eps, {{"state", "semi_bound"}}, double(st.semi_bound));
  add(eps, {{"state", "bound"}}, double(st.bound));
  MetricFamily* expired = family(
      "endpoints_expired_total",
      "Endpoints removed because their bind or steady-state lifetime ran "
      "out.",
      MetricType::Counter);
  add(expired, {}, double(server_->expired_total()));

  MetricFamily* allocs = family("allocations_total",
                                "Endpoints allocated, by transport.",
                                MetricType::Counter);
  add(allocs, {{"transport", "http"}}, double(http_allocations_.load()));
  uint64_t udp = 0;
  for (const auto& b : blocks) udp += b.allocations_udp;
  add(allocs, {{"transport", "udp"}}, double(udp));
  MetricFamily* alloc_err = family(
      "allocation_errors_total", "HTTP allocation requests refused, by status.",
      MetricType::Counter);
  for (int i = 0; i < 6; ++i) {
    add(alloc_err, {{"status", std::to_string(kErrorStatuses[i])}},
        double(http_errors_[i].load()));
  }
  // The admin and metrics listeners under load or attack.
  MetricFamily* conns = family(
      "http_connections_total",
      "Admin HTTP connections by listener and outcome: accepted, refused "
      "(over an address's cap), evicted (made room at the total cap), "
      "timed_out, rejected (malformed or too large).",
      MetricType::Counter);
  MetricFamily* open_conns = family(
      "http_open_connections", "Admin HTTP connections open now.",
      MetricType::Gauge);
  MetricFamily* paused = family(
      "http_accept_paused_total",
      "Times a listener paused accepting because the process was out of "
      "file descriptors.",
      MetricType::Counter);
  for (const auto& [name, server] :
       {std::pair<const char*, const HttpServer*>{"admin", http_.get()},
        {"metrics", metrics_http_.get()}}) {
    if (server == nullptr) continue;
    const HttpServerStats st = server->stats();
    for (const auto& [outcome, v] :
         {std::pair<const char*, uint64_t>{"accepted", st.accepted},
          {"refused", st.refused}, {"evicted", st.evicted},
          {"timed_out", st.timed_out}, {"rejected", st.rejected}}) {
      add(conns, {{"listener", name}, {"outcome", outcome}}, double(v));
    }
    add(open_conns, {{"listener", name}}, double(st.open));
    add(paused, {{"listener", name}}, double(st.accept_paused));
  }
  MetricFamily* ready = family(
      "ready", "1 when accepting allocations (what /readyz says).",
      MetricType::Gauge);
  add(ready, {}, Health().status == 200 ? 1 : 0);
  MetricFamily* draining = family("draining", "1 while draining.",
                                  MetricType::Gauge);
  add(draining, {}, draining_.load() ? 1 : 0);
  MetricFamily* info = family("build_info", "Build and runtime facts.",
                              MetricType::Gauge);
  add(info,
      {{"version", options_.version},
       {"commit", options_.commit},
       {"engine", std::string(relay_->engine())},
       {"profile", std::string(disco::DialectName(server_->dialect()))},
       {"workers", std::to_string(workers)}},
      1);

  AddProcessFamilies(&fams);

  HttpResponse r;
  r.body = prometheus::TextSerializer().Serialize(fams);
  r.content_type = "text/plain; version=0.0.4";
  return r;
}

HttpResponse Admin::Sessions(size_t limit,
                          const relay::SessionFilter& filter) const {
  const int64_t now = MonotonicNowNs();
  json sessions = json::array();
  size_t total = 0;
  for (const relay::SessionInfo& s : server_->Sessions(limit, &total, filter)) {
    json clients = json::array();
    for (int i = 0; i < 2; ++i) {
      json c = {
          {"Disco", s.client_keys[i].ToText()},
          {"ShortDisco", s.client_keys[i].ShortString()},
          {"Endpoint", s.bound[i] ? json(s.bound[i]->ToString()) : json()},
          {"LastSeenSecondsAgo",
           s.last_seen_ns[i] != 0 ? json(double(now - s.last_seen_ns[i]) / 1e9)
                                  : json()},
          {"PacketsFromClient", s.packets[i]},
          {"BytesFromClient", s.bytes[i]},
      };
      clients.push_back(std::move(c));
    }
    sessions.push_back({{"VNI", s.vni},
                        {"LamportID", s.lamport_id},
                        {"AgeSeconds", double(now - s.allocated_at_ns) / 1e9},
                        {"Clients", std::move(clients)}});
  }
  json out = {{"ServerPort", relay_->port()},
              {"ServerDisco", server_->server_key().ToText()},
              {"Count", total},
              {"Truncated", sessions.size() < total},
              {"Sessions", std::move(sessions)}};
  HttpResponse r;
  r.body = out.dump(2);
  return r;
}

HttpResponse Admin::Health() const {
  HttpResponse r;
  r.content_type = "text/plain";
  if (draining_.load()) {
    r.status = 503;
    r.body = "draining\n";
  } else if (server_->addresses().empty()) {
    r.status = 503;
    r.body = "not ready: no address to advertise\n";
  } else {
    r.body = options_.ready_note.empty()
                 ? "ok\n"
                 : absl::StrCat("ok (", options_.ready_note, ")\n");
  }
  return r;
}

HttpResponse Admin::Live() const {
  HttpResponse r;
  r.content_type = "text/plain";
  r.body = "alive\n";
  return r;
}

}  // namespace peerrelay::control
