// HttpRequestParser: HTTP/1.1 requests from bytes, with no I/O.
//
// Bytes go in (Feed), events come out (Next): the head of a request is
// ready, the whole request is complete, more input is needed, or the input
// is not a request this server takes (an error with the status to answer).
// No clock, no socket, no counters: HttpServer (http_server.h) keeps the
// connections, deadlines, caps and the token check, and maps these events;
// tests and the fuzzer drive the parser alone.
//
// Strict where RFC 9112 lets a recipient be lenient, because leniency is
// where request smuggling lives once a proxy sits in front:
//   - request line: method token, origin-form target ("/..."), HTTP/1.0 or
//     HTTP/1.1, single spaces; lines end in CRLF (a bare CR or LF is an
//     error, not a line end);
//   - header fields: a token name, a value without control characters (NUL,
//     CR, LF and the rest; HTAB is allowed), no obsolete line folding, at
//     most kMaxHeaders fields;
//   - framing: Content-Length is 1*DIGIT and appears at most once;
//     Transfer-Encoding is exactly "chunked", at most once, never with
//     Content-Length, never in HTTP/1.0; chunk sizes are 1*HEXDIG (no sign,
//     space or "0x") checked for overflow; chunk extensions hold no control
//     characters; trailers are refused;
//   - bounds: the head (request line through the empty line) at most
//     max_header_bytes (else 431), the decoded body at most max_body_bytes
//     (else 413), decided as soon as the bytes in hand show it.
//
// Worked example:
//
//   HttpRequestParser p({.max_header_bytes = 8192, .max_body_bytes = 4096});
//   p.Feed(bytes);
//   for (;;) {
//     switch (p.Next()) {
//       case HttpRequestParser::Event::kNeedMore: return;   // read more
//       case HttpRequestParser::Event::kHeadReady: check(p.request()); break;
//       case HttpRequestParser::Event::kComplete: answer(p.request()); break;
//       case HttpRequestParser::Event::kError: fail(p.error_status()); return;
//     }
//   }
#ifndef PEERRELAY_CONTROL_HTTP_PARSER_H_
#define PEERRELAY_CONTROL_HTTP_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/socket_address.h"

namespace peerrelay::control {

struct HttpRequest {
  std::string method;
  std::string path;   // the target before '?'
  std::string query;  // after '?', undecoded
  // Header names lower-cased, in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  SocketAddress peer;  // set by the server, not the parser
  bool http10 = false;

  // The first header of that (lower-case) name, or "".
  absl::string_view Header(absl::string_view lower_name) const;
  // The value of `key` in the query string ("a=1&b=2"), percent-decoded
  // (RFC 3986; an invalid escape leaves the value undecoded).
  std::optional<std::string> QueryParam(absl::string_view key) const;
};

struct HttpParserLimits {
  // Request line and headers. 8 KiB is what common servers allow.
  size_t max_header_bytes = 8 * 1024;
  // Decoded body. The admin API's largest request is a 512-byte allocation.
  size_t max_body_bytes = 4 * 1024;
};

class HttpRequestParser {
 public:
  // Headers per request, at most.
  static constexpr size_t kMaxHeaders = 100;

  enum class Event {
    kNeedMore,   // Feed more bytes, then call Next again
    kHeadReady,  // request() has method, target and headers; body not read
    kComplete,   // request() is whole; the next Next starts the next request
    kError,      // error_status()/error_text(); the parser stays in error
  };

  explicit HttpRequestParser(HttpParserLimits limits) : limits_(limits) {}

  // Appends input. The caller bounds how much it buffers (buffered()).
  void Feed(absl::string_view bytes) { in_.append(bytes.data(), bytes.size()); }
  // Parses as far as the input allows.
  Event Next();

  // The request being parsed (valid from kHeadReady until the Next after
  // kComplete, which starts a new one).
  const HttpRequest& request() const { return req_; }
  HttpRequest& request() { return req_; }
  // Whether the connection may carry another request after this one
  // (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive).
  bool keep_alive() const { return keep_alive_; }
  int error_status() const { return error_status_; }
  const std::string& error_text() const { return error_text_; }
  // Input not consumed yet.
  size_t buffered() const { return in_.size(); }
  // True between requests with nothing buffered (no request under way).
  bool idle() const {
    return (state_ == State::kStart || state_ == State::kDone) && in_.empty();
  }

 private:
  enum class State { kStart, kHead, kHeadDone, kBody, kChunkSize, kChunkData,
                     kLastChunk, kDone, kError };
  Event ParseHead();
  Event ParseBody();
  Event Fail(int status, const char* text);

  const HttpParserLimits limits_;
  std::string in_;
  State state_ = State::kStart;
  HttpRequest req_;
  bool keep_alive_ = true;
  bool chunked_ = false;
  size_t content_length_ = 0;
  size_t chunk_left_ = 0;
  int error_status_ = 0;
  std::string error_text_;
};

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_HTTP_PARSER_H_
