#include "client/http_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace peerrelay::client {
namespace {

std::string Errno(int err) {
  return absl::AsciiStrToLower(std::strerror(err));
}

int MillisLeft(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return int(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

bool IsTchar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// A field value may hold visible characters, spaces and tabs (and
// obs-text), never other control characters.
bool ValueClean(absl::string_view v) {
  for (char ch : v) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// 1*DIGIT, no sign, no spaces, overflow checked.
std::optional<uint64_t> ParseDecimal(absl::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
  }
  return v;
}

// 1*HEXDIG (RFC 9112 chunk-size), overflow checked: no "0x", no sign.
std::optional<uint64_t> ParseHex(absl::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (v > (UINT64_MAX >> 4)) return std::nullopt;
    v = (v << 4) | uint64_t(d);
  }
  return v;
}

// Reads from a socket into a buffer under one deadline.
class Reader {
 public:
  Reader(int fd, absl::Time deadline) : fd_(fd), deadline_(deadline) {}
  // Appends what arrives; OK(false) at EOF.
  absl::StatusOr<bool> Fill() {
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, MillisLeft(deadline_));
      if (r == 0) return absl::DeadlineExceededError("");
      if (r < 0) {
        if (errno == EINTR) continue;
        return absl::UnavailableError(Errno(errno));
      }
      char tmp[16384];
      const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return absl::UnavailableError(Errno(errno));
      }
      if (n == 0) return false;
      buf_.append(tmp, size_t(n));
      got_any_ = true;
      return true;
    }
  }
  std::string& buf() { return buf_; }
  bool got_any() const { return got_any_; }

 private:
  int fd_;
  absl::Time deadline_;
  std::string buf_;
  bool got_any_ = false;
};

}  // namespace

absl::string_view HttpResponse::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

absl::StatusOr<HttpClient> HttpClient::Create(absl::string_view server,
                                              Options options) {
  absl::StatusOr<SocketAddress> a = SocketAddress::Parse(server);
  if (!a.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", server, "' is not ip:port or [ip6]:port: ", a.status().message()));
  }
  return HttpClient(*a, std::string(server), options);
}

HttpClient::HttpClient(HttpClient&& o) noexcept
    : address_(o.address_),
      name_(std::move(o.name_)),
      options_(o.options_),
      fd_(std::exchange(o.fd_, -1)),
      opened_(o.opened_) {}

HttpClient& HttpClient::operator=(HttpClient&& o) noexcept {
  if (this != &o) {
    Close();
    address_ = o.address_;
    name_ = std::move(o.name_);
    options_ = o.options_;
    fd_ = std::exchange(o.fd_, -1);
    opened_ = o.opened_;
  }
  return *this;
}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::Status HttpClient::Connect() {
  sockaddr_storage ss;
  const socklen_t len = address_.ToSockaddr(&ss);
  const int fd =
      socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("socket: ", Errno(errno)));
  }
  int err = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const absl::Time deadline = absl::Now() + options_.connect_timeout;
      int r;
      do {
        r = poll(&p, 1, MillisLeft(deadline));
      } while (r < 0 && errno == EINTR);
      if (r == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t l = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
      }
    }
  }
  if (err != 0) {
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect ", name_, ": ", Errno(err)));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fd_ = fd;
  ++opened_;
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> HttpClient::PostJson(absl::string_view target,
                                                  absl::string_view body,
                                                  HttpHeaders headers) {
  headers.emplace_back("Content-Type", "application/json");
  return Send("POST", target, headers, body);
}

absl::StatusOr<HttpResponse> HttpClient::Send(absl::string_view method,
                                              absl::string_view target,
                                              const HttpHeaders& headers,
                                              absl::string_view body) {
  if (method.empty() || !std::all_of(method.begin(), method.end(), IsTchar) ||
      !absl::StartsWith(target, "/") || !ValueClean(target) ||
      absl::StrContains(target, ' ')) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad request line: ", method, " ", target));
  }
  std::string request = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: ",
                                     name_, "\r\n");
  for (const auto& [k, v] : headers) {
    if (k.empty() || !std::all_of(k.begin(), k.end(), IsTchar) ||
        !ValueClean(v)) {
      return absl::InvalidArgumentError(absl::StrCat("bad header field ", k));
    }
    absl::StrAppend(&request, k, ": ", v, "\r\n");
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);

  for (int attempt = 0;; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused) {
      absl::Status c = Connect();
      if (!c.ok()) return c;
    }
    bool got_any = false;
    bool keep = false;
    absl::StatusOr<HttpResponse> r =
        Exchange(method, request, absl::Now() + options_.timeout, &got_any,
                 &keep);
    if (!r.ok() || !keep) Close();
    // A kept connection the server closed while idle: the request was not
    // read, so sending it again on a new connection is safe.
    if (!r.ok() && reused && !got_any && attempt == 0 &&
        absl::IsUnavailable(r.status())) {
      continue;
    }
    return r;
  }
}

absl::StatusOr<HttpResponse> HttpClient::Exchange(absl::string_view method,
                                                  const std::string& request,
                                                  absl::Time deadline,
                                                  bool* got_any, bool* keep) {
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("bad reply from ", name_, ": ", what));
  };
  auto io_error = [&](const absl::Status& s) {
    if (absl::IsDeadlineExceeded(s)) {
      return absl::DeadlineExceededError(absl::StrCat(
          name_, ": no reply within ", absl::FormatDuration(options_.timeout)));
    }
    return absl::UnavailableError(
        absl::StrCat("request to ", name_, ": ", s.message()));
  };

  // Send the whole request.
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent,
                             MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, MillisLeft(deadline)) == 0) {
        return io_error(absl::DeadlineExceededError(""));
      }
      continue;
    }
    return io_error(absl::UnavailableError(Errno(errno)));
  }

  Reader in(fd_, deadline);
  std::string& buf = in.buf();
  auto closed_early = [&]() {
    *got_any = in.got_any();
    return in.got_any() ? bad("connection closed in the middle of the reply")
                        : absl::UnavailableError(absl::StrCat(
                              name_, " closed the connection without a reply"));
  };

  HttpResponse resp;
  size_t head_end;
  bool http10 = false;
  while (true) {  // 1xx interim replies are skipped
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > kMaxHead) return bad("head larger than 64 KiB");
      absl::StatusOr<bool> more = in.Fill();
      *got_any = in.got_any();
      if (!more.ok()) return io_error(more.status());
      if (!*more) return closed_early();
    }
    if (head_end > kMaxHead) return bad("head larger than 64 KiB");
    absl::string_view head(buf.data(), head_end);
    const size_t line_end = head.find("\r\n");
    absl::string_view status_line = head.substr(0, line_end);
    // "HTTP/1.x DDD[ reason]"
    if (status_line.size() < 12 || !absl::StartsWith(status_line, "HTTP/1.") ||
        (status_line[7] != '0' && status_line[7] != '1') ||
        status_line[8] != ' ' ||
        (status_line.size() > 12 && status_line[12] != ' ') ||
        !ValueClean(status_line)) {
      return bad("no HTTP/1.x status line");
    }
    http10 = status_line[7] == '0';
    std::optional<uint64_t> code = ParseDecimal(status_line.substr(9, 3));
    if (!code || *code < 100 || *code > 599) return bad("bad status code");
    resp = HttpResponse();
    resp.status = int(*code);
    absl::string_view rest =
        line_end == absl::string_view::npos ? "" : head.substr(line_end + 2);
    while (!rest.empty()) {
      const size_t e = rest.find("\r\n");
      absl::string_view line = rest.substr(0, e);
      rest = e == absl::string_view::npos ? "" : rest.substr(e + 2);
      const size_t colon = line.find(':');
      if (colon == 0 || colon == absl::string_view::npos) {
        return bad("header line without a field name");
      }
      absl::string_view name = line.substr(0, colon);
      if (!std::all_of(name.begin(), name.end(), IsTchar)) {
        return bad("bad header field name");
      }
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (!ValueClean(value) || absl::StrContains(value, '\r') ||
          absl::StrContains(value, '\n')) {
        return bad("control character in a header field");
      }
      resp.headers.emplace_back(absl::AsciiStrToLower(name), std::string(value));
    }
    buf.erase(0, head_end + 4);
    if (resp.status >= 100 && resp.status < 200 && resp.status != 101) continue;
    break;
  }

  // How the body is framed.
  std::optional<uint64_t> length;
  bool chunked = false;
  for (const auto& [k, v] : resp.headers) {
    if (k == "content-length") {
      std::optional<uint64_t> l = ParseDecimal(v);
      if (!l) return bad("bad Content-Length");
      if (length && *length != *l) return bad("conflicting Content-Length");
      length = l;
    } else if (k == "transfer-encoding") {
      if (chunked || !absl::EqualsIgnoreCase(v, "chunked")) {
        return bad(absl::StrCat("unsupported Transfer-Encoding '", v, "'"));
      }
      chunked = true;
    }
  }
  if (chunked && length) return bad("both Content-Length and chunked");
  const absl::string_view connection = resp.Header("connection");
  *keep = http10 ? absl::EqualsIgnoreCase(connection, "keep-alive")
                 : !absl::EqualsIgnoreCase(connection, "close");
  const bool no_body = method == "HEAD" || resp.status == 204 ||
                       resp.status == 304 || resp.status == 101;
  auto too_large = [&]() {
    return bad(absl::StrCat("larger than ",
                            options_.max_body >= (1 << 20)
                                ? absl::StrCat(options_.max_body >> 20, " MiB")
                                : absl::StrCat(options_.max_body, " bytes")));
  };
  // More bytes of a reply that is not over yet: the server closing now
  // cut it short.
  auto more = [&]() -> absl::Status {
    absl::StatusOr<bool> got = in.Fill();
    if (!got.ok()) return io_error(got.status());
    if (!*got) return closed_early();
    return absl::OkStatus();
  };
  auto need = [&](size_t n) -> absl::Status {
    while (buf.size() < n) {
      absl::Status s = more();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  };
  // The end of the CRLF-terminated line starting at `pos`, read within
  // `limit` bytes.
  auto line_end = [&](size_t pos, size_t limit,
                      absl::string_view too_long) -> absl::StatusOr<size_t> {
    size_t eol;
    while ((eol = buf.find("\r\n", pos)) == std::string::npos) {
      if (buf.size() - pos > limit) return bad(too_long);
      absl::Status s = more();
      if (!s.ok()) return s;
    }
    return eol;
  };

  if (no_body) {
    // nothing
  } else if (chunked) {
    size_t pos = 0;
    while (true) {
      absl::StatusOr<size_t> end = line_end(pos, 1024, "chunk size line too long");
      if (!end.ok()) return end.status();
      const size_t eol = *end;
      absl::string_view line(buf.data() + pos, eol - pos);
      absl::string_view size_text = line.substr(0, line.find(';'));
      std::optional<uint64_t> size = ParseHex(size_text);
      if (!size) return bad("bad chunk size");
      pos = eol + 2;
      if (*size == 0) break;
      if (*size > options_.max_body - resp.body.size()) return too_large();
      absl::Status s = need(pos + *size + 2);
      if (!s.ok()) return s;
      resp.body.append(buf, pos, *size);
      if (buf.compare(pos + *size, 2, "\r\n") != 0) {
        return bad("chunk not followed by CRLF");
      }
      pos += *size + 2;
      buf.erase(0, pos);
      pos = 0;
    }
    // Trailer fields up to the empty line; ignored.
    while (true) {
      absl::StatusOr<size_t> end = line_end(pos, kMaxHead, "trailer too long");
      if (!end.ok()) return end.status();
      const size_t eol = *end;
      const bool empty = eol == pos;
      pos = eol + 2;
      if (empty) break;
    }
    buf.erase(0, pos);
  } else if (length) {
    if (*length > options_.max_body) return too_large();
    absl::Status s = need(size_t(*length));
    if (!s.ok()) return s;
    resp.body = buf.substr(0, size_t(*length));
    buf.erase(0, size_t(*length));
  } else {
    // Until the server closes.
    *keep = false;
    while (true) {
      if (buf.size() > options_.max_body) return too_large();
      absl::StatusOr<bool> more = in.Fill();
      if (!more.ok()) return io_error(more.status());
      if (!*more) break;
    }
    resp.body = std::move(buf);
    buf.clear();
  }
  // Bytes past the reply: the server answered something not asked for.
  if (!buf.empty()) *keep = false;
  return resp;
}

std::string QueryEscape(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

HttpHeaders BearerAuth(absl::string_view token) {
  if (token.empty()) return {};
  return {{"Authorization", absl::StrCat("Bearer ", token)}};
}

}  // namespace peerrelay::client
