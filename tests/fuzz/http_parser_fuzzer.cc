// libFuzzer target for control/http_parser.h: any bytes, fed whole, byte by
// byte and in pieces whose sizes the input chooses. Invariants (a violation
// aborts):
//   - the events (and the heads, bodies and error statuses they carry) are
//     the same however the input is split;
//   - a head is never accepted past max_header_bytes, a body never past
//     max_body_bytes;
//   - after an error, nothing more is parsed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/http_parser.h"

namespace {

using peerrelay::control::HttpParserLimits;
using peerrelay::control::HttpRequestParser;
using Event = HttpRequestParser::Event;

constexpr HttpParserLimits kLimits = {.max_header_bytes = 512,
                                      .max_body_bytes = 128};

void Check(bool ok) {
  if (!ok) std::abort();
}

// Feeds `in` in pieces (sizes from `steps`, cycled; 0 means all at once)
// and returns every event but kNeedMore, with what it carries.
std::vector<std::string> Run(const std::string& in,
                             const std::vector<size_t>& steps) {
  HttpRequestParser p(kLimits);
  std::vector<std::string> events;
  size_t fed = 0, step = 0;
  size_t head_start = 0;  // bytes consumed before the current request
  bool in_request = false;
  while (true) {
    if (!in_request && p.idle()) head_start = fed - p.buffered();
    const Event e = p.Next();
    if (e == Event::kNeedMore) {
      in_request = !p.idle();
      if (fed == in.size()) return events;
      size_t n = steps[step++ % steps.size()];
      if (n == 0 || n > in.size() - fed) n = in.size() - fed;
      p.Feed(absl::string_view(in).substr(fed, n));
      fed += n;
      continue;
    }
    in_request = true;
    const auto& r = p.request();
    if (e == Event::kHeadReady) {
      const size_t head_bytes = fed - p.buffered() - head_start;
      Check(head_bytes <= kLimits.max_header_bytes);
      std::vector<std::string> hs;
      for (const auto& [k, v] : r.headers) hs.push_back(absl::StrCat(k, "=", v));
      events.push_back(absl::StrCat("head ", r.method, " ", r.path, "?", r.query,
                                    " ", absl::StrJoin(hs, ";"),
                                    p.keep_alive() ? " ka" : ""));
    } else if (e == Event::kComplete) {
      Check(r.body.size() <= kLimits.max_body_bytes);
      events.push_back(absl::StrCat("complete ", r.body));
      in_request = false;
      head_start = fed - p.buffered();
    } else {
      Check(p.error_status() >= 400);
      events.push_back(absl::StrCat("error ", p.error_status()));
      Check(p.Next() == Event::kError);
      return events;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first two bytes choose two piece sizes; the rest is the input.
  const std::vector<size_t> chosen = {size_t(data[0] % 17), size_t(data[1])};
  const std::string in(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::vector<std::string> whole = Run(in, {0});
  Check(Run(in, {1}) == whole);
  Check(Run(in, chosen) == whole);
  return 0;
}
