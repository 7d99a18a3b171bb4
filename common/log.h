// Logging for relayd and the libraries under it: one line per event on
// stderr, with a level, never per packet.
//
//   log::Init("relayd");                    // once, at start
//   log::SetLevel(log::Level::kDebug);      // --log_level (reloadable)
//   PEERRELAY_LOG(kWarning, "key file ", path, " is group-readable");
//
// Line format:
//   on a terminal or file:  2026-11-29T12:04:09.123Z relayd: warning: text
//   under systemd-journald: <4>warning: text
// journald is recognised the way systemd documents it: $JOURNAL_STREAM
// names the device and inode of the stream stderr is connected to. The
// "<N>" prefix (syslog priority, 3 = error .. 7 = debug) lets journald
// record the priority, so `journalctl -p warning` works; journald adds the
// timestamp and the program name itself.
//
// Events that an attacker can cause at will (allocations, handshakes,
// expiries) go through a RateLimitedLog, so a flood cannot fill the disk:
// past its budget lines are counted, not written, and the next line written
// says how many were suppressed.
#ifndef PEERRELAY_COMMON_LOG_H_
#define PEERRELAY_COMMON_LOG_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/token_bucket.h"

namespace peerrelay::log {

// Syslog priorities.
enum class Level : int {
  kError = 3,
  kWarning = 4,
  kNotice = 5,
  kInfo = 6,
  kDebug = 7,
};

// "error", "warning", "notice", "info", "debug".
absl::string_view LevelName(Level l);
// Accepts the names above (and "warn"); false for anything else.
bool ParseLevel(absl::string_view text, Level* out);

// Sets the program name and detects journald. Safe to call again (tests).
void Init(absl::string_view program);
// True when lines carry journald's "<N>" prefix instead of a timestamp.
bool UnderJournald();

void SetLevel(Level l);
Level GetLevel();
inline bool Enabled(Level l);

// Writes one line (a trailing newline is added) if `l` is enabled. One
// write(2) per line, so lines from several threads never interleave.
void Write(Level l, absl::string_view message);

// The line Write would produce at `now_unix_ns` (no trailing newline).
std::string FormatLine(Level l, absl::string_view message,
                       int64_t now_unix_ns);

// A usage or configuration error before serving starts: "relayd: text"
// (with "<3>" under journald), no timestamp, like other command-line tools.
void UsageError(absl::string_view message);

// Lines for one kind of event, at most `per_second` with a burst. Thread
// safe. The clock is passed in (monotonic ns) so tests can drive it.
class RateLimitedLog {
 public:
  RateLimitedLog(double per_second, double burst)
      : rate_(per_second), burst_(burst) {}
  // Writes the line unless over budget (then counts it as suppressed).
  // Returns whether it was written.
  bool Write(Level l, absl::string_view message, int64_t now_ns);
  uint64_t suppressed_total() const {
    return suppressed_total_.load(std::memory_order_relaxed);
  }

 private:
  const double rate_, burst_;
  std::mutex mu_;
  bool started_ = false;
  TokenBucket bucket_;
  uint64_t suppressed_since_last_ = 0;
  std::atomic<uint64_t> suppressed_total_{0};
};

namespace internal {
extern std::atomic<int> g_level;
}  // namespace internal

inline bool Enabled(Level l) {
  return int(l) <= internal::g_level.load(std::memory_order_relaxed);
}

}  // namespace peerrelay::log

// Builds the message only when the level is enabled.
#define PEERRELAY_LOG(level, ...)                                        \
  do {                                                                   \
    if (::peerrelay::log::Enabled(::peerrelay::log::Level::level)) {     \
      ::peerrelay::log::Write(::peerrelay::log::Level::level,            \
                              ::absl::StrCat(__VA_ARGS__));              \
    }                                                                    \
  } while (0)

#endif  // PEERRELAY_COMMON_LOG_H_
