// HttpClient: a small blocking HTTP/1.1 client for relayd's admin API, used
// by relayctl and the load-test tools (allocation, the server key, scrapes).
//
// What it does and does not do:
//   - numeric addresses only ("ip:port", "[ip6]:port"): no DNS, no TLS, no
//     proxies, no redirects (relayd's admin API is plain HTTP on an
//     address the operator gives);
//   - one request at a time; the connection is kept while the server keeps
//     it, and a kept connection the server closed while it was idle is
//     reopened once, before any byte of a reply arrived;
//   - replies are read as strictly as relayd's own parser reads requests: a
//     status line "HTTP/1.x DDD", header fields without control characters,
//     a body by Content-Length (one value; repeats must agree) or chunked
//     (chunk sizes 1*HEXDIG, overflow checked), else until the server
//     closes; 1xx interim replies are skipped;
//   - bounded: the head (64 KiB) and the body (Options::max_body) are
//     capped, connecting and the whole exchange have deadlines.
//
// Errors name the server: Unavailable "connect ADDR: connection refused",
// DeadlineExceeded "ADDR: no reply within 10s", DataLoss "bad reply from
// ADDR: WHAT" for anything that is not HTTP/1.1 as relayd speaks it.
#ifndef PEERRELAY_CLIENT_HTTP_CLIENT_H_
#define PEERRELAY_CLIENT_HTTP_CLIENT_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/socket_address.h"

namespace peerrelay::client {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // names lowercased, in the order received
  std::string body;
  // The first value of header `name` (any case), or "" when absent.
  absl::string_view Header(absl::string_view name) const;
};

class HttpClient {
 public:
  struct Options {
    absl::Duration connect_timeout = absl::Seconds(3);
    // Sending the request and reading the whole reply.
    absl::Duration timeout = absl::Seconds(10);
    size_t max_body = size_t{16} << 20;
  };
  static constexpr size_t kMaxHead = 64 << 10;

  // `server`: "ip:port" or "[ip6]:port"; InvalidArgument otherwise.
  static absl::StatusOr<HttpClient> Create(absl::string_view server,
                                           Options options);
  static absl::StatusOr<HttpClient> Create(absl::string_view server) {
    return Create(server, Options());
  }
  HttpClient(HttpClient&& o) noexcept;
  HttpClient& operator=(HttpClient&& o) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  ~HttpClient();

  // `target`: origin form ("/path?query"). `headers` are sent as given
  // (Host, and Content-Length when there is a body or the method is POST
  // or PUT, are added).
  absl::StatusOr<HttpResponse> Send(absl::string_view method,
                                    absl::string_view target,
                                    const HttpHeaders& headers,
                                    absl::string_view body = {});
  absl::StatusOr<HttpResponse> Get(absl::string_view target,
                                   const HttpHeaders& headers = {}) {
    return Send("GET", target, headers);
  }
  // POST with Content-Type: application/json.
  absl::StatusOr<HttpResponse> PostJson(absl::string_view target,
                                        absl::string_view body,
                                        HttpHeaders headers = {});

  const std::string& server() const { return name_; }
  // Connections opened so far (tests: keep-alive is kept).
  int connections_opened() const { return opened_; }

 private:
  HttpClient(SocketAddress address, std::string name, Options options)
      : address_(address), name_(std::move(name)), options_(options) {}
  absl::Status Connect();
  void Close();
  // One attempt on the current connection; `got_any` says whether any
  // byte of a reply arrived (a retry is safe only when none did).
  absl::StatusOr<HttpResponse> Exchange(absl::string_view method,
                                        const std::string& request,
                                        absl::Time deadline, bool* got_any,
                                        bool* keep);

  SocketAddress address_;
  std::string name_;
  Options options_;
  int fd_ = -1;
  int opened_ = 0;
};

// Percent-encodes `s` as a query parameter value (RFC 3986: unreserved
// characters kept, every other byte as %XX).
std::string QueryEscape(absl::string_view s);

// "Bearer TOKEN" as an Authorization header, or no header for "".
HttpHeaders BearerAuth(absl::string_view token);

}  // namespace peerrelay::client

#endif  // PEERRELAY_CLIENT_HTTP_CLIENT_H_
