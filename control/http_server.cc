#include "control/http_server.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"

namespace peerrelay::control {
namespace {

// Time to finish writing a response before a closing connection is cut.
constexpr int kCloseLingerMs = 5'000;
// After the last response of a connection we stop writing and read (and
// discard) what the peer still sends, for a little while, before closing:
// closing with unread input makes the kernel send a reset, which can destroy
// the response before the peer reads it.
constexpr int kDrainMs = 1'000;
constexpr size_t kMaxDrainBytes = 1 << 20;

int64_t NowMs() { return MonotonicNowNs() / 1'000'000; }

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "Unknown";
}

}  // namespace

struct HttpServer::Conn {
  explicit Conn(HttpParserLimits limits) : parser(limits) {}
  // kRequest: a request's first byte has arrived (its deadline runs).
  enum State : uint8_t { kIdle, kRequest, kClosing, kDraining };
  int fd = -1;
  SocketAddress peer;
  std::string ip;
  State state = kIdle;
  HttpRequestParser parser;
  std::string out;
  size_t out_off = 0;
  size_t drained = 0;
  int64_t deadline_ms = 0;
  int64_t last_active_ms = 0;  // accepted, bytes read, a response written
  uint32_t interest = 0;
  bool pending = false;        // in pending_
};

std::string HttpServer::AddressKey(const SocketAddress& peer) {
  if (peer.is_ipv4()) return peer.IpString();
  const std::array<uint8_t, 16>& b = peer.bytes();
  std::string key;
  for (int i = 0; i < 8; i += 2) {
    absl::StrAppend(&key, absl::Hex(uint16_t(b[i] << 8 | b[i + 1])), ":");
  }
  return key + ":/64";
}

HttpServer::HttpServer(HttpLimits limits, HeadersHook on_headers,
                       Handler handler)
    : limits_(limits),
      on_headers_(std::move(on_headers)),
      handler_(std::move(handler)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const SocketAddress& listen, HttpLimits limits, HeadersHook on_headers,
    Handler handler) {
  std::unique_ptr<HttpServer> s(
      new HttpServer(limits, std::move(on_headers), std::move(handler)));
  const bool v6 = !listen.is_ipv4();
  s->listen_fd_ = socket(v6 ? AF_INET6 : AF_INET,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->listen_fd_ < 0) return absl::ErrnoToStatus(errno, "socket");
  // SO_REUSEADDR only (restarts are quick); never SO_REUSEPORT, which would
  // let a second relayd share the port without a word.
  int yes = 1;
  setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  sockaddr_storage ss;
  const socklen_t len = listen.ToSockaddr(&ss, v6);
  if (bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat(
        "admin listener: cannot bind ", listen.ToString(), ": ",
        std::strerror(err),
        err == EADDRINUSE ? " (another program holds the port)" : ""));
  }
  if (::listen(s->listen_fd_, limits.listen_backlog) != 0) {
    return absl::ErrnoToStatus(errno, "listen");
  }
  socklen_t got = sizeof(ss);
  getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&ss), &got);
  s->port_ = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), got)
                 ->port();
  s->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  s->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->epoll_fd_ < 0 || s->wake_fd_ < 0) {
    return absl::ErrnoToStatus(errno, "epoll");
  }
  for (int fd : {s->listen_fd_, s->wake_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  HttpServer* self = s.get();
  s->thread_ = std::thread([self] { self->Run(); });
  return s;
}

HttpServer::~HttpServer() {
  Stop();
  for (int fd : {listen_fd_, epoll_fd_, wake_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void HttpServer::Stop() {
  if (stop_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  std::vector<int> fds;
  for (const auto& [fd, c] : conns_) fds.push_back(fd);
  for (int fd : fds) Close(fd);
}

HttpServerStats HttpServer::stats() const {
  HttpServerStats st;
  st.accepted = accepted_.load();
  st.refused = refused_.load();
  st.evicted = evicted_.load();
  st.accept_paused = accept_paused_.load();
  st.timed_out = timed_out_.load();
  st.rejected = rejected_.load();
  st.requests = requests_.load();
  st.open = open_.load();
  return st;
}

void HttpServer::Run() {
  epoll_event events[64];
  int64_t next_sweep = NowMs();
  while (!stop_.load()) {
    const int n = epoll_wait(epoll_fd_, events, 64, pending_.empty() ? 100 : 0);
    const int64_t now = NowMs();
    if (listen_paused_until_ms_ != 0 && now >= listen_paused_until_ms_) {
      listen_paused_until_ms_ = 0;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = listen_fd_;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) continue;
      if (fd == listen_fd_) {
        Accept(now);
        continue;
      }
      auto it = conns_.find(fd);
      if (it == conns_.end()) continue;
      Conn& c = *it->second;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        Close(fd);
        continue;
      }
      if (events[i].events & EPOLLOUT) OnWritable(c);
      if (conns_.contains(fd) && (events[i].events & EPOLLIN)) {
        OnReadable(c, now);
      }
    }
    // Connections whose buffered requests waited for their next turn.
    std::vector<int> turn;
    turn.swap(pending_);
    for (int fd : turn) {
      auto it = conns_.find(fd);
      if (it == conns_.end()) continue;
      Conn& c = *it->second;
      c.pending = false;
      Resume(c, now);
    }
    if (now >= next_sweep) {
      ExpireDeadlines(now);
      next_sweep = now + 100;
    }
  }
}

void HttpServer::PauseListener(int64_t now_ms) {
  // Out of file descriptors: the listener stays readable and accept keeps
  // failing, so stop asking for a moment instead of spinning (the
  // connections wait in the kernel's backlog).
  if (listen_paused_until_ms_ != 0) return;
  listen_paused_until_ms_ = now_ms + 100;
  accept_paused_.fetch_add(1, std::memory_order_relaxed);
  epoll_event ev{};
  ev.events = 0;
  ev.data.fd = listen_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
}

bool HttpServer::EvictOne() {
  Conn* oldest = nullptr;
  for (const auto& [fd, c] : conns_) {
    if (c->out_off < c->out.size()) continue;  // writing a response
    if (oldest == nullptr || c->last_active_ms < oldest->last_active_ms) {
      oldest = c.get();
    }
  }
  if (oldest == nullptr) return false;
  evicted_.fetch_add(1, std::memory_order_relaxed);
  Close(oldest->fd);
  return true;
}

void HttpServer::Accept(int64_t now_ms) {
  while (true) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        PauseListener(now_ms);
      }
      return;  // EAGAIN: all taken
    }
    auto peer = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss),
                                            len);
    const std::string key = peer ? AddressKey(*peer) : std::string();
    auto from_ip = per_ip_.find(key);
    if (!peer ||
        (from_ip != per_ip_.end() &&
         from_ip->second >= limits_.max_connections_per_ip) ||
        (conns_.size() >= limits_.max_connections && !EvictOne())) {
      close(fd);
      refused_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ++per_ip_[key];  // (EvictOne may have changed the map: look it up again)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &limits_.socket_send_buffer,
               sizeof(limits_.socket_send_buffer));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &limits_.socket_receive_buffer,
               sizeof(limits_.socket_receive_buffer));
    auto c = std::make_unique<Conn>(HttpParserLimits{
        .max_header_bytes = limits_.max_header_bytes,
        .max_body_bytes = limits_.max_body_bytes});
    c->fd = fd;
    c->peer = *peer;
    c->ip = key;
    // The first request's deadline runs from the connection.
    c->deadline_ms = now_ms + limits_.request_timeout_ms;
    c->last_active_ms = now_ms;
    c->interest = EPOLLIN;
    epoll_event ev{};
    ev.events = c->interest;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    conns_.emplace(fd, std::move(c));
    accepted_.fetch_add(1, std::memory_order_relaxed);
    open_.store(conns_.size(), std::memory_order_relaxed);
  }
}

void HttpServer::Close(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  auto ip = per_ip_.find(it->second->ip);
  if (ip != per_ip_.end() && --ip->second == 0) per_ip_.erase(ip);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  conns_.erase(it);
  open_.store(conns_.size(), std::memory_order_relaxed);
}

void HttpServer::Finish(Conn& c) {
  shutdown(c.fd, SHUT_WR);
  c.state = Conn::kDraining;
  c.deadline_ms = NowMs() + kDrainMs;
  UpdateInterest(c);
}

void HttpServer::Drain(Conn& c) {
  char buf[4096];
  while (true) {
    const ssize_t n = read(c.fd, buf, sizeof(buf));
    if (n > 0 && (c.drained += size_t(n)) < kMaxDrainBytes) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    Close(c.fd);  // end of input, an error, or enough discarded
    return;
  }
}

void HttpServer::ExpireDeadlines(int64_t now_ms) {
  std::vector<int> expired;
  // Under pressure, idle connections (and ones that never sent a byte) get
  // a short deadline: parked connections make room for real requests.
  const bool pressure =
      double(conns_.size()) >= limits_.pressure_share * limits_.max_connections;
  for (const auto& [fd, c] : conns_) {
    if (now_ms >= c->deadline_ms ||
        (pressure && c->state == Conn::kIdle &&
         now_ms - c->last_active_ms >= limits_.pressure_idle_ms)) {
      expired.push_back(fd);
    }
  }
  for (int fd : expired) {
    timed_out_.fetch_add(1, std::memory_order_relaxed);
    Close(fd);
  }
}

void HttpServer::UpdateInterest(Conn& c) {
  // Nothing is read while a response waits to be written (pipelined
  // requests are answered one by one), nor once the input holds as much as
  // one request may.
  const size_t cap = limits_.max_header_bytes + limits_.max_body_bytes;
  uint32_t want = 0;
  if (c.out_off < c.out.size()) {
    want = EPOLLOUT;
  } else if (c.state == Conn::kDraining ||
             (c.state != Conn::kClosing && c.parser.buffered() < cap)) {
    want = EPOLLIN;
  }
  if (want == c.interest) return;
  c.interest = want;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = c.fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpServer::OnReadable(Conn& c, int64_t now_ms) {
  const int fd = c.fd;
  if (c.state == Conn::kDraining) {
    Drain(c);
    return;
  }
  const size_t cap = limits_.max_header_bytes + limits_.max_body_bytes;
  char buf[4096];
  bool eof = false;
  while (c.parser.buffered() < cap) {
    const ssize_t n =
        read(fd, buf, std::min(sizeof(buf), cap - c.parser.buffered()));
    if (n > 0) {
      c.parser.Feed(absl::string_view(buf, size_t(n)));
      c.last_active_ms = now_ms;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    eof = true;  // end of input (or an error): answer what came, then close
    break;
  }
  Process(c, now_ms);
  if (eof && c.state != Conn::kClosing) {
    c.state = Conn::kClosing;
    c.deadline_ms = now_ms + kCloseLingerMs;
  }
  if (c.state == Conn::kClosing && c.out_off < c.out.size()) TryWrite(c);
  if (c.state == Conn::kClosing && c.out.empty()) {
    if (eof) {
      Close(fd);
    } else {
      Finish(c);
    }
    return;
  }
  UpdateInterest(c);
}

bool HttpServer::TryWrite(Conn& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_off,
                           c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    // The peer is gone: drop what is left and close at the next sweep.
    c.out.clear();
    c.out_off = 0;
    c.state = Conn::kClosing;
    c.deadline_ms = 0;
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  return c.state != Conn::kClosing;
}

void HttpServer::OnWritable(Conn& c) {
  if (!TryWrite(c)) {
    if (c.state == Conn::kClosing && c.out.empty()) {
      Finish(c);
    } else {
      UpdateInterest(c);
    }
    return;
  }
  Resume(c, NowMs());  // pipelined requests already read
}

void HttpServer::Resume(Conn& c, int64_t now_ms) {
  const int fd = c.fd;
  Process(c, now_ms);
  if (!conns_.contains(fd)) return;
  if (c.state == Conn::kClosing && c.out.empty()) {
    Finish(c);
  } else {
    UpdateInterest(c);
  }
}

void HttpServer::Respond(Conn& c, const HttpResponse& r, bool close) {
  absl::StrAppend(&c.out, "HTTP/1.1 ", r.status, " ", Reason(r.status),
                  "\r\nContent-Type: ", r.content_type,
                  "\r\nContent-Length: ", r.body.size(), "\r\n");
  for (const auto& [k, v] : r.headers) absl::StrAppend(&c.out, k, ": ", v, "\r\n");
  if (close) c.out.append("Connection: close\r\n");
  c.out.append("\r\n");
  c.out.append(r.body);
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (close) {
    c.state = Conn::kClosing;
    c.deadline_ms = NowMs() + kCloseLingerMs;
  }
}

void HttpServer::Reject(Conn& c, int status, const std::string& text) {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  Respond(c, {.status = status,
              .content_type = "text/plain",
              .body = absl::StrCat(text, "\n")},
          /*close=*/true);
}

void HttpServer::Process(Conn& c, int64_t now_ms) {
  using Event = HttpRequestParser::Event;
  int answered = 0;
  while (c.out.empty() && c.state != Conn::kClosing &&
         c.state != Conn::kDraining) {
    if (answered == limits_.requests_per_turn) {
      // Its turn is over; the rest of its pipelined requests wait for the
      // next round of the loop, after everyone else's events.
      if (!c.pending && !c.parser.idle()) {
        c.pending = true;
        pending_.push_back(c.fd);
      }
      return;
    }
    if (c.state == Conn::kIdle) {
      if (c.parser.idle()) return;
      c.state = Conn::kRequest;
      c.deadline_ms = now_ms + limits_.request_timeout_ms;
    }
    switch (c.parser.Next()) {
      case Event::kNeedMore:
        return;
      case Event::kError:
        Reject(c, c.parser.error_status(), c.parser.error_text());
        return;
      case Event::kHeadReady:
        // The hook (the token check) before a byte of body is read.
        c.parser.request().peer = c.peer;
        if (std::optional<HttpResponse> early = on_headers_(c.parser.request())) {
          Respond(c, *early, /*close=*/true);
          return;
        }
        continue;
      case Event::kComplete: {
        const bool keep_alive = c.parser.keep_alive();
        const HttpResponse r = handler_(c.parser.request());
        Respond(c, r, !keep_alive);
        ++answered;
        c.last_active_ms = now_ms;
        if (keep_alive) {
          c.state = Conn::kIdle;
          c.deadline_ms = now_ms + limits_.idle_timeout_ms;
        }
        // Written at once when the socket takes it; then the next
        // pipelined request, else OnWritable resumes once the peer reads.
        if (!TryWrite(c)) return;
        continue;
      }
    }
  }
}

}  // namespace peerrelay::control
