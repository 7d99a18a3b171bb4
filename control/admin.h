// Admin: the relay's control plane over HTTP (http_server.h), beside the data
// plane. Serves, on an admin address (127.0.0.1 by default):
//
//   POST /v0/relay/endpoint   allocation, exactly as docs/protocol.md "Allocation
//                             over HTTP" (bearer token, per-caller rate limit;
//                             503 + Retry-After while draining)
//   GET  /v0/relay/sessions   endpoints, both legs, counters (JSON; bearer
//                             token or read token; ?limit=N, default 1000;
//                             ?key=HEXPREFIX, ?addr=IP[:PORT] filters)
//   POST /v0/relay/drain      start a drain (bearer token), as SIGUSR1 does
//   GET  /metrics             Prometheus text exposition
//   GET  /livez               200 while the process serves HTTP at all
//   GET  /readyz, /healthz    200 when accepting allocations; 503 while
//                             draining or with no address to advertise
//
// and, on an optional separate metrics address, only the last four (no
// secrets: nothing there names a client).
//
// Counters are read from the workers' per-core blocks at scrape time; the
// data plane never updates anything for the control plane's sake.
#ifndef PEERRELAY_CONTROL_ADMIN_H_
#define PEERRELAY_CONTROL_ADMIN_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/socket_address.h"
#include "control/http_server.h"
#include "control/rate_limiter.h"
#include "engine/relay.h"
#include "relay/server.h"


namespace peerrelay::control {

// Go's time.Duration.String(): "30s", "5m0s", "1h0m0s", "1.5s", "250ms".
std::string FormatGoDuration(int64_t ns);



struct AdminOptions {
  SocketAddress listen = SocketAddress::Parse("127.0.0.1:9780").value();
  // Bearer token for allocation. Empty: allocation is refused (403).
  std::string token;
  // Allocations per second per caller, and the burst.
  double alloc_rate = 5;
  double alloc_burst = 20;
  // A second token that may read the session list but not allocate or
  // drain. Empty: only `token` reads it.
  std::string read_token;
  // A token for a trusted allocation front end (the tailnet bridge): it may
  // allocate, nothing else, and may name the node it allocates for
  // ("Requester":"nodekey:HEX" in the body); the per-caller rate limit and
  // endpoint cap then apply to that node instead of the bridge's address.
  // Empty: no such caller.
  std::string bridge_token;
  // A listener for /metrics and the probes only; none when unset.
  std::optional<SocketAddress> metrics_listen;
  // Called by POST /v0/relay/drain[?then=exit|restart] with restart set
  // for ?then=restart (relayd: does what SIGUSR1, or SIGUSR2, does). Unset:
  // the call answers 501.
  std::function<void(bool restart)> on_drain;
  // Added to /readyz's "ok" while ready (relayd: when every advertised
  // address is private, loopback or shared, a relay only clients on those
  // networks can reach; still ready, as such relays exist on purpose).
  std::string ready_note;
  std::string version = "dev";
  std::string commit = "unknown";
  // Connection caps, deadlines and size limits of the HTTP listeners.
  HttpLimits http_limits;
};

class Admin {
 public:
  static absl::StatusOr<std::unique_ptr<Admin>> Start(relay::Server* server,
                                                      engine::Relay* relay,
                                                      AdminOptions options);
  ~Admin();
  void Stop();

  uint16_t port() const { return port_; }
  // The metrics listener's port (0 without one).
  uint16_t metrics_port() const { return metrics_port_; }
  void SetToken(std::string token);
  void SetReadToken(std::string token);
  void SetBridgeToken(std::string token);
  // Draining: /readyz answers 503 and allocation 503 + Retry-After.
  void SetDraining(bool draining) { draining_.store(draining); }

  // The handlers, without HTTP (the HTTP layer only adapts them).
  HttpResponse Allocate(absl::string_view method, absl::string_view auth_header,
                     absl::string_view caller, absl::string_view body);
  HttpResponse Metrics() const;
  // At most `limit` endpoints (lowest VNIs first); "Count" is the total and
  // "Truncated" says whether some were left out.
  HttpResponse Sessions(size_t limit = kDefaultSessionsLimit,
                     const relay::SessionFilter& filter = {}) const;
  // A million-endpoint relay would otherwise answer with hundreds of MB.
  static constexpr size_t kDefaultSessionsLimit = 1000;
  // The most ?limit= may ask for: about 5 MB of JSON.
  static constexpr size_t kMaxSessionsLimit = 10000;
  // Readiness: accepting allocations.
  HttpResponse Health() const;
  HttpResponse Live() const;
  HttpResponse Drain(const HttpRequest& req);
  // Retry-After of an allocation refused by a drain: by then a restarted
  // or another relay is expected to take it.
  static constexpr int kDrainRetryAfter = 30;
  // The HTTP server's connection figures (for /metrics and tests).
  HttpServerStats http_stats() const;

 private:
  // Before a request's body is read: the answer for requests that must not
  // be read further (no or a wrong token, a wrong method, an unknown path).
  // `metrics_only`: the request came in on the metrics listener.
  std::optional<HttpResponse> OnHeaders(const HttpRequest& req,
                                        bool metrics_only);
  HttpResponse Handle(const HttpRequest& req);
  HttpResponse HandleSessions(const HttpRequest& req);
  // What the bearer token in `auth_header` may do.
  enum class Access { kNone, kRead, kBridge, kAdmin };
  Access AccessOf(absl::string_view auth_header) const;
  HttpResponse Error(int status, std::string text);
  Admin(relay::Server* server, engine::Relay* relay, AdminOptions options);

  relay::Server* server_;
  engine::Relay* relay_;
  AdminOptions options_;
  mutable std::mutex token_mu_;
  std::string token_;       // guarded by token_mu_
  std::string read_token_;  // guarded by token_mu_
  std::string bridge_token_;  // guarded by token_mu_
  RateLimiter limiter_;
  // /metrics per connection (peer address and port): a scrape renders
  // every counter; one connection pipelining scrapes must not keep the HTTP
  // thread busy. Prometheus scrapes every few seconds.
  RateLimiter scrape_limiter_{2, 4};
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> http_allocations_{0};
  // Allocation errors by HTTP status: 400, 403, 405, 429, 500, 503.
  std::atomic<uint64_t> http_errors_[6] = {};
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<HttpServer> metrics_http_;
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
};

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_ADMIN_H_
