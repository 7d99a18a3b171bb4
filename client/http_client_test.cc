#include "client/http_client.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace peerrelay::client {
namespace {

// What the scripted server does with one request.
struct Step {
  std::string reply;           // bytes written back
  bool close_after = false;    // then closes the connection
  bool hang = false;           // reads the request, never answers
  bool close_silently = false;  // closes without answering
};

// A one-thread TCP server on 127.0.0.1 that reads each request (head and
// Content-Length body) and follows the script, recording the requests.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<Step> steps)
      : steps_(steps.begin(), steps.end()) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &l);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] { Run(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int accepts() const { return accepts_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

 private:
  bool Wait(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }
  void Run() {
    while (!stop_ && !steps_.empty()) {
      if (!Wait(fd_)) return;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepts_;
      Serve(c);
      close(c);
    }
  }
  void Serve(int c) {
    std::string buf;
    while (!steps_.empty()) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!Wait(c)) return;
        char tmp[4096];
        const ssize_t n = recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) return;
        buf.append(tmp, size_t(n));
      }
      size_t body = 0;
      const size_t cl = buf.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) {
        const size_t e = buf.find("\r\n", cl);
        EXPECT_TRUE(absl::SimpleAtoi(buf.substr(cl + 16, e - cl - 16), &body));
      }
      while (buf.size() < end + 4 + body) {
        if (!Wait(c)) return;
        char tmp[4096];
        const ssize_t n = recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) return;
        buf.append(tmp, size_t(n));
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(buf.substr(0, end + 4 + body));
      }
      buf.erase(0, end + 4 + body);
      const Step s = steps_.front();
      steps_.pop_front();
      if (s.hang) {
        while (!stop_) Wait(c);
        return;
      }
      if (s.close_silently) return;
      send(c, s.reply.data(), s.reply.size(), MSG_NOSIGNAL);
      if (s.close_after) return;
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::deque<Step> steps_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepts_{0};
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

HttpClient Client(const ScriptedServer& s,
                  HttpClient::Options o = HttpClient::Options()) {
  return HttpClient::Create(s.address(), o).value();
}

TEST(HttpClient, SendsExactRequestsAndReadsContentLength) {
  ScriptedServer s({{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
                    {"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
                     "X-A: b\r\n\r\n{}"}});
  HttpClient c = Client(s);
  absl::StatusOr<HttpResponse> r = c.Get("/metrics", BearerAuth("tok"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  r = c.PostJson("/v0/relay/endpoint", R"({"DiscoKeys":[]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "{}");
  EXPECT_EQ(r->Header("x-a"), "b");
  EXPECT_EQ(r->Header("X-A"), "b");
  EXPECT_EQ(r->Header("missing"), "");
  const std::string host = s.address();
  ASSERT_EQ(s.requests().size(), 2u);
  EXPECT_EQ(s.requests()[0], absl::StrCat("GET /metrics HTTP/1.1\r\nHost: ", host,
                                          "\r\nAuthorization: Bearer tok\r\n\r\n"));
  EXPECT_EQ(s.requests()[1],
            absl::StrCat("POST /v0/relay/endpoint HTTP/1.1\r\nHost: ", host,
                         "\r\nContent-Type: application/json\r\n"
                         "Content-Length: 16\r\n\r\n{\"DiscoKeys\":[]}"));
  // Kept alive: one connection for both.
  EXPECT_EQ(s.accepts(), 1);
  EXPECT_EQ(c.connections_opened(), 1);
}

TEST(HttpClient, ChunkedBodyWithExtensionsAndTrailers) {
  ScriptedServer s({{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\nA\r\n, chunked!\r\n0\r\nX-T: 1\r\n\r\n"},
                    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"}});
  HttpClient c = Client(s);
  absl::StatusOr<HttpResponse> r = c.Get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "hello, chunked!");
  // The connection is still in step after the trailer.
  r = c.Get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "z");
  EXPECT_EQ(s.accepts(), 1);
}

TEST(HttpClient, RefusesWhatRelaydNeverSends) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"0x5 chunk size", "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"},
      {"+5 chunk size", "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n"},
      {"spaced chunk size", "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n"},
      {"overflowing chunk size",
       "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"},
      {"chunk without CRLF", "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n"},
      {"conflicting lengths", "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"signed length", "Content-Length: +5\r\n\r\nhello"},
      {"length and chunked", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"gzip coding", "Transfer-Encoding: gzip\r\n\r\n"},
      {"control character", "X-A: a\x01b\r\nContent-Length: 0\r\n\r\n"},
      {"no colon", "Content-Length 0\r\n\r\n"},
  };
  for (const auto& [name, rest] : cases) {
    ScriptedServer s({{absl::StrCat("HTTP/1.1 200 OK\r\n", rest), true}});
    HttpClient c = Client(s);
    absl::StatusOr<HttpResponse> r = c.Get("/");
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << name << ": " << r.status();
    EXPECT_TRUE(absl::StartsWith(r.status().message(),
                                 absl::StrCat("bad reply from ", s.address(), ": ")))
        << name << ": " << r.status();
  }
  for (const char* line :
       {"HTTP/2 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 999 X", "ICY 200 OK",
        "HTTP/1.1 200OK"}) {
    ScriptedServer s({{absl::StrCat(line, "\r\nContent-Length: 0\r\n\r\n"), true}});
    HttpClient c = Client(s);
    EXPECT_TRUE(absl::IsDataLoss(c.Get("/").status())) << line;
  }
}

TEST(HttpClient, DuplicateEqualLengthsAndInterimRepliesAreFine) {
  ScriptedServer s({{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                     "Content-Length: 2\r\ncontent-length: 2\r\n\r\nok"}});
  HttpClient c = Client(s);
  absl::StatusOr<HttpResponse> r = c.Get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
}

TEST(HttpClient, BodiesAreCapped) {
  HttpClient::Options o;
  o.max_body = 1 << 20;
  const std::string big(size_t(1 << 20) + 1, 'x');
  {
    ScriptedServer s({{absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ",
                                    big.size(), "\r\n\r\n"), true}});
    HttpClient c = Client(s, o);
    absl::StatusOr<HttpResponse> r = c.Get("/");
    EXPECT_EQ(r.status().message(),
              absl::StrCat("bad reply from ", s.address(), ": larger than 1 MiB"));
  }
  {
    ScriptedServer s({{absl::StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                                    "\r\n\r\n80000\r\n", big.substr(0, 0x80000),
                                    "\r\n80001\r\n", big.substr(0, 0x80001),
                                    "\r\n0\r\n\r\n"), true}});
    HttpClient c = Client(s, o);
    EXPECT_TRUE(absl::StrContains(c.Get("/").status().message(), "larger than 1 MiB"));
  }
  {
    ScriptedServer s({{absl::StrCat("HTTP/1.1 200 OK\r\n\r\n", big), true}});
    HttpClient c = Client(s, o);
    EXPECT_TRUE(absl::StrContains(c.Get("/").status().message(), "larger than 1 MiB"));
  }
  {
    ScriptedServer s({{absl::StrCat("HTTP/1.1 200 OK\r\nX: ",
                                    std::string(HttpClient::kMaxHead, 'h'),
                                    "\r\n\r\n"), true}});
    HttpClient c = Client(s, o);
    EXPECT_TRUE(absl::StrContains(c.Get("/").status().message(), "head larger"));
  }
}

TEST(HttpClient, ReadUntilCloseAndNoBodyStatuses) {
  ScriptedServer s({{"HTTP/1.1 204 No Content\r\n\r\n"},
                    {"HTTP/1.0 200 OK\r\n\r\nuntil close", true},
                    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"}});
  HttpClient c = Client(s);
  absl::StatusOr<HttpResponse> r = c.Get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->body, "");
  r = c.Get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "until close");
  // HEAD: the Content-Length describes a body that is not sent.
  r = c.Send("HEAD", "/", {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(s.accepts(), 2);
}

TEST(HttpClient, ConnectionCloseAndStaleKeepAlive) {
  ScriptedServer s({{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1"
                     "\r\n\r\na"},
                    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"},
                    // The server drops the idle connection without saying.
                    {"", false, false, true},
                    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"}});
  HttpClient c = Client(s);
  EXPECT_EQ(c.Get("/").value().body, "a");
  EXPECT_EQ(c.Get("/").value().body, "b");  // a new connection
  // The third step closes it unanswered: reopened once, answered by the
  // fourth.
  absl::StatusOr<HttpResponse> r = c.Get("/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "c");
  EXPECT_EQ(s.accepts(), 3);
  EXPECT_EQ(s.requests().size(), 4u);
}

TEST(HttpClient, AFreshConnectionClosedUnansweredIsNotRetried) {
  // A POST allocates: sent once on a new connection, never again.
  ScriptedServer s({{"", false, false, true},
                    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}});
  HttpClient c = Client(s);
  absl::StatusOr<HttpResponse> r = c.PostJson("/v0/relay/endpoint", "{}");
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(r.status().message(),
            absl::StrCat(s.address(), " closed the connection without a reply"));
  EXPECT_EQ(s.requests().size(), 1u);
}

TEST(HttpClient, HalfAReplyIsDataLoss) {
  ScriptedServer s({{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true}});
  HttpClient c = Client(s);
  absl::StatusOr<HttpResponse> r = c.Get("/");
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "in the middle"));
}

TEST(HttpClient, DeadlinesAndRefusals) {
  HttpClient::Options o;
  o.timeout = absl::Milliseconds(200);
  ScriptedServer s({{"", false, /*hang=*/true}});
  HttpClient c = Client(s, o);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> r = c.Get("/");
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_EQ(r.status().message(),
            absl::StrCat(s.address(), ": no reply within 200ms"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // A port nobody listens on: the kernel's reason, named.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t l = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
  const std::string addr = absl::StrCat("127.0.0.1:", ntohs(a.sin_port));
  HttpClient refused = HttpClient::Create(addr).value();
  r = refused.Get("/");
  close(fd);
  EXPECT_EQ(r.status().message(), absl::StrCat("connect ", addr, ": connection refused"));
  EXPECT_TRUE(absl::IsUnavailable(r.status()));
}

TEST(HttpClient, BadArguments) {
  EXPECT_FALSE(HttpClient::Create("localhost:80").ok());
  EXPECT_FALSE(HttpClient::Create("127.0.0.1").ok());
  ScriptedServer s({});
  HttpClient c = Client(s);
  EXPECT_TRUE(absl::IsInvalidArgument(c.Get("no-slash").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(c.Get("/a b").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(c.Get("/", {{"X", "a\r\nInjected: 1"}}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(c.Get("/", {{"Bad Name", "v"}}).status()));
  EXPECT_EQ(c.connections_opened(), 0);
}

TEST(HttpClient, QueryEscape) {
  EXPECT_EQ(QueryEscape("discokey:ab12"), "discokey%3Aab12");
  EXPECT_EQ(QueryEscape("[::1]:5 &x=/"), "%5B%3A%3A1%5D%3A5%20%26x%3D%2F");
  EXPECT_EQ(QueryEscape("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(QueryEscape(std::string("\xff\x00", 2)), "%FF%00");
}

}  // namespace
}  // namespace peerrelay::client
