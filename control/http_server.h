// HttpServer: the admin API's HTTP/1.1 server, built for hostile peers.
//
// Why not cpp-httplib (which the admin API used before): it read a chunked
// request body whole into memory before any handler (or the token check)
// ran, gave every connection a thread from a pool of 8 with no deadline for
// a whole request (8 slow clients froze the API), queued accepted
// connections without bound and dropped pipelined requests. This server:
//
//   - one thread, epoll, non-blocking sockets: a slow client costs a
//     connection slot and its buffers, never a thread;
//   - bounded memory before authentication: request head at most
//     `max_header_bytes`, body at most `max_body_bytes` (chunked or not,
//     counted as decoded and refused with 413 the moment it is exceeded);
//     the OnHeaders hook (the bearer-token check) runs before one byte of
//     body is read, and a request it answers is never read further;
//   - a deadline for each whole request (first byte to last) and one for
//     idle keep-alive connections;
//   - a cap on connections in all and per client IP (over it: closed at
//     once), and a bounded listen backlog;
//   - pipelined requests answered one after another, in order;
//   - requests parsed strictly (HttpRequestParser, http_parser.h: no I/O,
//     fuzzed on its own), so that nothing in front can read one differently.
//
// Handlers run on the server's thread and must be quick (the admin API's
// are: an allocation, a counter scrape, a bounded session list).
//
//   auto s = HttpServer::Start(addr, HttpLimits{}, on_headers, handle);
//   ... (*s)->port() ...
//   (*s)->Stop();  // also on destruction
#ifndef PEERRELAY_CONTROL_HTTP_SERVER_H_
#define PEERRELAY_CONTROL_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/socket_address.h"
#include "control/http_parser.h"

namespace peerrelay::control {

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
};

struct HttpLimits {
  // Request line and headers. 8 KiB is what common servers allow.
  size_t max_header_bytes = 8 * 1024;
  // Decoded body. The admin API's largest request is a 512-byte allocation.
  size_t max_body_bytes = 4 * 1024;
  // A whole request, from its first byte to its last.
  int request_timeout_ms = 10'000;
  // A keep-alive connection with no request under way.
  int idle_timeout_ms = 30'000;
  // Connections at once, in all and from one address (an IPv4 address, an
  // IPv6 /64: one host's share). A new connection over its address's cap is
  // closed as soon as it is accepted; at the total cap it takes the place
  // of the least recently active connection that is not writing a response
  // (idle, or a request not complete yet), so that connections parked by
  // many addresses cannot lock everyone else out.
  size_t max_connections = 2048;
  size_t max_connections_per_ip = 64;
  // Above this share of max_connections, an idle connection (or one that
  // has not sent its first byte) gets `pressure_idle_ms` instead of
  // idle_timeout_ms / request_timeout_ms.
  double pressure_share = 0.75;
  int pressure_idle_ms = 1'000;
  // Requests one connection may have answered in a row before the others
  // get their turn (pipelining cannot monopolize the server's thread).
  int requests_per_turn = 4;
  // Kernel socket buffers of accepted connections: small, fixed (no
  // autotuning), so that a client that never reads holds little kernel
  // memory; a response larger than them is written as the client reads.
  int socket_send_buffer = 32 * 1024;
  int socket_receive_buffer = 16 * 1024;
  // Connections the kernel may hold before we accept them.
  int listen_backlog = 128;
};

struct HttpServerStats {
  uint64_t accepted = 0;
  uint64_t refused = 0;    // over an address's connection cap
  uint64_t evicted = 0;    // closed to make room at the total cap
  uint64_t accept_paused = 0;  // out of file descriptors: listener paused
  uint64_t timed_out = 0;  // request or idle deadline
  uint64_t rejected = 0;   // malformed, head or body too large
  uint64_t requests = 0;   // answered
  uint64_t open = 0;       // connections open now
};

class HttpServer {
 public:
  // Runs once a request's head is complete, before any of its body is
  // read. A response returned is sent at once and the connection closed
  // after it, unread. nullopt: the body is read and the handler runs.
  using HeadersHook =
      std::function<std::optional<HttpResponse>(const HttpRequest&)>;
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds `listen` (port 0: any free port) and starts the server's thread.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const SocketAddress& listen, HttpLimits limits, HeadersHook on_headers,
      Handler handler);
  ~HttpServer();
  // Closes every connection and joins the thread. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  HttpServerStats stats() const;

 private:
  struct Conn;
  HttpServer(HttpLimits limits, HeadersHook on_headers, Handler handler);
  void Run();
  void Accept(int64_t now_ms);
  void OnReadable(Conn& c, int64_t now_ms);
  void OnWritable(Conn& c);
  // Writes what the socket takes; true when everything went and the
  // connection stays open for more requests.
  bool TryWrite(Conn& c);
  // Maps the connection's parser events (http_parser.h) to answers,
  // request after request, while no response is waiting to be written: the
  // hook at kHeadReady, the handler at kComplete, an error response at
  // kError.
  void Process(Conn& c, int64_t now_ms);
  // Process, then finish a closing connection or update what it waits for
  // (after a write completed, or on a connection's next turn).
  void Resume(Conn& c, int64_t now_ms);
  void Respond(Conn& c, const HttpResponse& r, bool close);
  // An error response that closes the connection.
  void Reject(Conn& c, int status, const std::string& text);
  void UpdateInterest(Conn& c);
  // The last response is written: stop writing, discard what still comes
  // for a moment (Drain), then close.
  void Finish(Conn& c);
  void Drain(Conn& c);
  void Close(int fd);
  void ExpireDeadlines(int64_t now_ms);
  // Closes the least recently active connection that is not writing a
  // response; false when there is none.
  bool EvictOne();
  void PauseListener(int64_t now_ms);

  const HttpLimits limits_;
  HeadersHook on_headers_;
  Handler handler_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the loop
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Owned by the server's thread.
  absl::flat_hash_map<int, std::unique_ptr<Conn>> conns_;
  absl::flat_hash_map<std::string, size_t> per_ip_;
  // Connections with requests buffered that waited for their next turn.
  std::vector<int> pending_;
  int64_t listen_paused_until_ms_ = 0;  // 0: listening
  // Read by stats() from any thread.
  std::atomic<uint64_t> accepted_{0}, refused_{0}, evicted_{0},
      accept_paused_{0}, timed_out_{0}, rejected_{0}, requests_{0}, open_{0};
 public:
  // The key connections are counted under: the IPv4 address, or the IPv6
  // /64 ("2001:db8:1:2::/64"); an IPv4-mapped address counts as IPv4.
  static std::string AddressKey(const SocketAddress& peer);
};

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_HTTP_SERVER_H_
