#include "control/http_parser.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace peerrelay::control {
namespace {

// A chunk-size line ("1a2b;ext") longer than this is not one.
constexpr size_t kMaxChunkLine = 64;

// RFC 9110 tchar.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char ch : s) {
    if (ch <= 32 || ch >= 127 || std::strchr("()<>@,;:\\\"/[]?={}", ch)) {
      return false;
    }
  }
  return true;
}

// Control characters other than HTAB (which field values may hold), and
// DEL: NUL, a bare CR or LF among them.
bool HasControl(absl::string_view s) {
  for (unsigned char ch : s) {
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return true;
  }
  return false;
}

// OWS around a field value.
absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

}  // namespace

absl::string_view HttpRequest::Header(absl::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return {};
}

namespace {
// RFC 3986 percent-decoding ("d%3Aab" -> "d:ab"); '+' stays '+'. An
// invalid escape leaves the value as it came, for the caller's own
// validation to refuse.
std::string PercentDecode(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::string(s);
    const int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::string(s);
    out.push_back(char(hi * 16 + lo));
    i += 2;
  }
  return out;
}
}  // namespace

std::optional<std::string> HttpRequest::QueryParam(
    absl::string_view key) const {
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (PercentDecode(kv.first) == key) return PercentDecode(kv.second);
  }
  return std::nullopt;
}

HttpRequestParser::Event HttpRequestParser::Fail(int status, const char* text) {
  state_ = State::kError;
  error_status_ = status;
  error_text_ = text;
  return Event::kError;
}

HttpRequestParser::Event HttpRequestParser::Next() {
  switch (state_) {
    case State::kError:
      return Event::kError;
    case State::kDone:
      req_ = HttpRequest();
      state_ = State::kStart;
      [[fallthrough]];
    case State::kStart:
      if (in_.empty()) return Event::kNeedMore;
      state_ = State::kHead;
      [[fallthrough]];
    case State::kHead:
      return ParseHead();
    default:
      return ParseBody();
  }
}

HttpRequestParser::Event HttpRequestParser::ParseHead() {
  // Only the first max_header_bytes may hold the head.
  const absl::string_view window =
      absl::string_view(in_).substr(0, limits_.max_header_bytes);
  const size_t end = window.find("\r\n\r\n");
  if (end == absl::string_view::npos ||
      end + 4 > limits_.max_header_bytes) {
    if (in_.size() < limits_.max_header_bytes) return Event::kNeedMore;
    return Fail(431, "request head too large");
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(window.substr(0, end), "\r\n");
  // Request line: method SP target SP version, nothing else.
  std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
  if (first.size() != 3 || !IsToken(first[0]) || first[1].empty() ||
      first[1][0] != '/' || HasControl(first[1]) ||
      first[1].find_first_of(" \t") != absl::string_view::npos ||
      HasControl(first[2])) {
    return Fail(400, "malformed request line");
  }
  if (first[2] != "HTTP/1.1" && first[2] != "HTTP/1.0") {
    return Fail(505, "HTTP/1.0 or HTTP/1.1 only");
  }
  if (lines.size() - 1 > kMaxHeaders) return Fail(431, "too many headers");
  req_.method = std::string(first[0]);
  req_.http10 = first[2] == "HTTP/1.0";
  const size_t q = first[1].find('?');
  req_.path = std::string(first[1].substr(0, q));
  if (q != absl::string_view::npos) {
    req_.query = std::string(first[1].substr(q + 1));
  }
  size_t cl_count = 0, te_count = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const absl::string_view line = lines[i];
    // Obsolete line folding (a line starting with SP/HTAB) is refused.
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Fail(400, "malformed header");
    }
    const absl::string_view value = line.substr(colon + 1);
    if (HasControl(value)) {
      return Fail(400, "control character in a header value");
    }
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    cl_count += name == "content-length";
    te_count += name == "transfer-encoding";
    req_.headers.emplace_back(std::move(name), std::string(TrimOws(value)));
  }
  const absl::string_view conn = req_.Header("connection");
  keep_alive_ = req_.http10 ? absl::EqualsIgnoreCase(conn, "keep-alive")
                            : !absl::EqualsIgnoreCase(conn, "close");
  in_.erase(0, end + 4);
  // Framing: one Content-Length of digits, or Transfer-Encoding: chunked
  // alone (HTTP/1.1 only); anything else could be read two ways.
  if (cl_count > 1) return Fail(400, "more than one Content-Length");
  if (te_count > 1) return Fail(400, "more than one Transfer-Encoding");
  const absl::string_view te = req_.Header("transfer-encoding");
  const absl::string_view cl = req_.Header("content-length");
  chunked_ = te_count == 1;
  content_length_ = 0;
  if (chunked_ && (!absl::EqualsIgnoreCase(te, "chunked") || cl_count > 0 ||
                   req_.http10)) {
    return Fail(400, "unsupported transfer encoding");
  }
  if (cl_count == 1) {
    if (cl.empty() || cl.size() > 12) return Fail(400, "bad Content-Length");
    for (char ch : cl) {
      if (!absl::ascii_isdigit(ch)) return Fail(400, "bad Content-Length");
      content_length_ = content_length_ * 10 + size_t(ch - '0');
    }
  }
  state_ = State::kHeadDone;
  return Event::kHeadReady;
}

HttpRequestParser::Event HttpRequestParser::ParseBody() {
  if (state_ == State::kHeadDone) {
    if (!chunked_) {
      if (content_length_ > limits_.max_body_bytes) {
        return Fail(413, "request body too large");
      }
      state_ = State::kBody;
    } else {
      state_ = State::kChunkSize;
    }
  }
  if (state_ == State::kBody) {
    if (in_.size() < content_length_) return Event::kNeedMore;
    req_.body = in_.substr(0, content_length_);
    in_.erase(0, content_length_);
    state_ = State::kDone;
    return Event::kComplete;
  }
  while (true) {
    if (state_ == State::kChunkSize) {
      // The same verdict whether or not the line end has arrived: the size's
      // digits are judged first (an overflow shows in the first digits),
      // then the line's length, over at most kMaxChunkLine + 1 bytes.
      const size_t eol = in_.find("\r\n");
      // (A CR at the end of a partial line may be the start of its CRLF.)
      const size_t line_len =
          eol != std::string::npos ? eol
          : (!in_.empty() && in_.back() == '\r') ? in_.size() - 1
                                                 : in_.size();
      const absl::string_view line = absl::string_view(in_).substr(
          0, std::min(line_len, kMaxChunkLine + 1));
      size_t digits = 0;
      size_t size = 0;
      const size_t room = limits_.max_body_bytes - req_.body.size();
      for (; digits < line.size() && HexValue(line[digits]) >= 0; ++digits) {
        size = size * 16 + size_t(HexValue(line[digits]));
        if (size > room) return Fail(413, "request body too large");
      }
      if (line_len > kMaxChunkLine) return Fail(400, "malformed chunk size");
      // An incomplete line is judged when it is complete (its length and
      // size checks above hold either way), so that where the input is
      // split never changes the verdict.
      if (eol == std::string::npos) return Event::kNeedMore;
      if (digits == 0) return Fail(400, "malformed chunk size");
      absl::string_view ext = TrimOws(line.substr(digits));
      if (!ext.empty() && (ext[0] != ';' || HasControl(ext))) {
        return Fail(400, "malformed chunk size");
      }
      in_.erase(0, eol + 2);
      chunk_left_ = size;
      state_ = size == 0 ? State::kLastChunk : State::kChunkData;
    }
    if (state_ == State::kChunkData) {
      if (in_.size() < chunk_left_ + 2) return Event::kNeedMore;
      if (in_.compare(chunk_left_, 2, "\r\n") != 0) {
        return Fail(400, "malformed chunk");
      }
      req_.body.append(in_, 0, chunk_left_);
      in_.erase(0, chunk_left_ + 2);
      state_ = State::kChunkSize;
      continue;
    }
    // kLastChunk: no trailers, the empty line ends the body.
    if (in_.size() < 2) {
      if (!in_.empty() && in_[0] != '\r') {
        return Fail(400, "trailers are not accepted");
      }
      return Event::kNeedMore;
    }
    if (in_.compare(0, 2, "\r\n") != 0) {
      return Fail(400, "trailers are not accepted");
    }
    in_.erase(0, 2);
    state_ = State::kDone;
    return Event::kComplete;
  }
}

}  // namespace peerrelay::control
