// Admin: the relay's control plane over HTTP (http_server.h), beside the data
// plane. Serves, on an admin address (127.0.0.1 by default):
//
//   POST /v0/relay/endpoint   allocation, exactly as docs/protocol.md "Allocation
//                             over HTTP" (bearer token, per-caller rate limit)
//   GET  /metrics             Prometheus text exposition
//   GET  /v0/relay/sessions   endpoints, both legs, counters (JSON;
//                             ?limit=N, default 1000)
//   GET  /healthz             200 when ready, 503 when draining or not ready
//
// Counters are read from the workers' per-core blocks at scrape time; the
// data plane never updates anything for the control plane's sake.
#ifndef PEERRELAY_CONTROL_ADMIN_H_
#define PEERRELAY_CONTROL_ADMIN_H_

#include <atomic>
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

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  int retry_after = 0;  // seconds; 0: no header
};

struct AdminOptions {
  SocketAddress listen = SocketAddress::Parse("127.0.0.1:9780").value();
  // Bearer token for allocation. Empty: allocation is refused (403).
  std::string token;
  // Allocations per second per caller, and the burst.
  double alloc_rate = 5;
  double alloc_burst = 20;
  std::string version = "dev";
  // Connection caps, deadlines and size limits of the HTTP listener.
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
  void SetToken(std::string token);
  // Draining: /healthz answers 503; the caller stops allocations.
  void SetDraining(bool draining) { draining_.store(draining); }

  // The handlers, without HTTP (the HTTP layer only adapts them).
  HttpReply Allocate(absl::string_view method, absl::string_view auth_header,
                     absl::string_view caller, absl::string_view body);
  HttpReply Metrics() const;
  // At most `limit` endpoints (lowest VNIs first); "Count" is the total and
  // "Truncated" says whether some were left out.
  HttpReply Sessions(size_t limit = kDefaultSessionsLimit) const;
  // A million-endpoint relay would otherwise answer with hundreds of MB.
  static constexpr size_t kDefaultSessionsLimit = 1000;
  HttpReply Health() const;
  // The HTTP server's connection figures (for /metrics and tests).
  HttpServerStats http_stats() const;

 private:
  // Before a request's body is read: the answer for requests that must not
  // be read further (no or a wrong token, a wrong method, an unknown path).
  std::optional<HttpResponse> OnHeaders(const HttpRequest& req);
  HttpResponse Handle(const HttpRequest& req);
  // 403 unless `auth_header` carries the current bearer token.
  bool Authorized(absl::string_view auth_header) const;
  HttpReply Error(int status, std::string text);
  Admin(relay::Server* server, engine::Relay* relay, AdminOptions options);

  relay::Server* server_;
  engine::Relay* relay_;
  AdminOptions options_;
  mutable std::mutex token_mu_;
  std::string token_;
  RateLimiter limiter_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> http_allocations_{0};
  // Allocation errors by HTTP status: 400, 403, 405, 429, 500, 503.
  std::atomic<uint64_t> http_errors_[6] = {};
  std::unique_ptr<HttpServer> http_;
  uint16_t port_ = 0;
};

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_ADMIN_H_
