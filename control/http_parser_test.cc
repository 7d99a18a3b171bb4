// HttpRequestParser without sockets: a table of inputs and the events and
// requests they must give, fed whole and byte by byte.
#include "control/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace peerrelay::control {
namespace {

using Event = HttpRequestParser::Event;

struct Outcome {
  std::vector<std::string> events;  // "head", "complete:BODY", "error:STATUS"
};

// Feeds `in` in pieces of `step` bytes (0: whole) and records every event
// other than kNeedMore until the input is used up or an error.
Outcome Parse(const std::string& in, size_t step,
            HttpParserLimits limits = {.max_header_bytes = 256,
                                       .max_body_bytes = 64}) {
  HttpRequestParser p(limits);
  Outcome o;
  size_t fed = 0;
  while (true) {
    Event e = p.Next();
    if (e == Event::kNeedMore) {
      if (fed == in.size()) return o;
      const size_t n = step == 0 ? in.size() - fed : std::min(step, in.size() - fed);
      p.Feed(absl::string_view(in).substr(fed, n));
      fed += n;
      continue;
    }
    if (e == Event::kHeadReady) {
      o.events.push_back(absl::StrCat("head:", p.request().method, " ",
                                      p.request().path));
    } else if (e == Event::kComplete) {
      o.events.push_back(absl::StrCat("complete:", p.request().body));
    } else {
      o.events.push_back(absl::StrCat("error:", p.error_status()));
      return o;
    }
  }
}

struct Case {
  const char* name;
  std::string in;
  std::vector<std::string> want;
};

const std::string kGet = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";

std::vector<Case> Cases() {
  const std::string post = "POST /v0/relay/endpoint HTTP/1.1\r\nHost: x\r\n";
  return {
      {"get", kGet, {"head:GET /livez", "complete:"}},
      {"pipelined", kGet + kGet,
       {"head:GET /livez", "complete:", "head:GET /livez", "complete:"}},
      {"content length", post + "Content-Length: 5\r\n\r\nhello",
       {"head:POST /v0/relay/endpoint", "complete:hello"}},
      {"chunked", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "complete:hello"}},
      {"chunk size in capitals", post + "Transfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "complete:0123456789"}},
      {"tab in a value", "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n", {"head:GET /", "complete:"}},
      // Request smuggling vectors and other leniencies: all 400.
      {"two content lengths", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       {"error:400"}},
      {"two equal content lengths", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
       {"error:400"}},
      {"content length list", post + "Content-Length: 5, 5\r\n\r\nhello", {"error:400"}},
      {"empty content length", post + "Content-Length:\r\n\r\n", {"error:400"}},
      {"signed content length", post + "Content-Length: +5\r\n\r\nhello", {"error:400"}},
      {"te and cl", post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
       {"error:400"}},
      {"chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
       {"error:400"}},
      {"two transfer encodings", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       {"error:400"}},
      {"chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       {"error:400"}},
      {"chunk size 0x5", post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "error:400"}},
      {"chunk size +5", post + "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "error:400"}},
      {"chunk size with a leading space", post + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "error:400"}},
      {"chunk size overflow", post + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n",
       {"head:POST /v0/relay/endpoint", "error:413"}},
      {"chunk without CRLF", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nhelXX0\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "error:400"}},
      {"trailer", post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "error:400"}},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27), {"error:400"}},
      {"bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", {"error:400"}},
      {"bare LF in a value", "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", {"error:400"}},
      {"bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n\r\n\r\n", {"error:400"}},
      {"obsolete folding", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", {"error:400"}},
      {"space before colon", "GET / HTTP/1.1\r\nX : a\r\n\r\n", {"error:400"}},
      {"absolute target", "GET http://x/ HTTP/1.1\r\n\r\n", {"error:400"}},
      {"two spaces", "GET  / HTTP/1.1\r\n\r\n", {"error:400"}},
      {"HTTP/2", "GET / HTTP/2.0\r\n\r\n", {"error:505"}},
      // Bounds.
      {"head too large", "GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n",
       {"error:431"}},
      {"body too large", post + "Content-Length: 65\r\n\r\n",
       {"head:POST /v0/relay/endpoint", "error:413"}},
      {"chunked body too large", post + "Transfer-Encoding: chunked\r\n\r\n40\r\n" +
                                      std::string(64, 'a') + "\r\n1\r\n",
       {"head:POST /v0/relay/endpoint", "error:413"}},
      {"body at the limit", post + "Content-Length: 64\r\n\r\n" + std::string(64, 'b'),
       {"head:POST /v0/relay/endpoint", "complete:" + std::string(64, 'b')}},
  };
}

TEST(HttpParserTest, TableWholeAndByteByByte) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Parse(c.in, 0).events, c.want);
    EXPECT_EQ(Parse(c.in, 1).events, c.want);
    EXPECT_EQ(Parse(c.in, 7).events, c.want);
  }
}

TEST(HttpParserTest, HeadersQueryAndKeepAlive) {
  HttpRequestParser p({});
  p.Feed("GET /v0/relay/sessions?limit=5&key=d%3Aab HTTP/1.1\r\nX-A:  one \r\n"
         "Connection: close\r\n\r\n");
  ASSERT_EQ(p.Next(), Event::kHeadReady);
  EXPECT_EQ(p.request().path, "/v0/relay/sessions");
  EXPECT_EQ(p.request().QueryParam("limit"), "5");
  EXPECT_EQ(p.request().QueryParam("key"), "d:ab");
  EXPECT_EQ(p.request().Header("x-a"), "one");
  EXPECT_FALSE(p.keep_alive());
  ASSERT_EQ(p.Next(), Event::kComplete);
  EXPECT_TRUE(p.idle());
  HttpRequestParser p10({});
  p10.Feed("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p10.Next(), Event::kHeadReady);
  EXPECT_FALSE(p10.keep_alive());
}

TEST(HttpParserTest, QueryValuesArePercentDecoded) {
  HttpRequestParser p({});
  p.Feed("GET /s?addr=%5B%3A%3A1%5D%3A7777&k%65y=a+b&bad=%zz&cut=%4 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.Next(), Event::kHeadReady);
  EXPECT_EQ(p.request().QueryParam("addr"), "[::1]:7777");
  EXPECT_EQ(p.request().QueryParam("key"), "a+b");
  EXPECT_EQ(p.request().QueryParam("bad"), "%zz");
  EXPECT_EQ(p.request().QueryParam("cut"), "%4");
  EXPECT_EQ(p.request().QueryParam("none"), std::nullopt);
}

TEST(HttpParserTest, ErrorIsFinal) {
  HttpRequestParser p({});
  p.Feed("BAD\r\n\r\n");
  EXPECT_EQ(p.Next(), Event::kError);
  p.Feed(kGet);
  EXPECT_EQ(p.Next(), Event::kError);
}

}  // namespace
}  // namespace peerrelay::control
