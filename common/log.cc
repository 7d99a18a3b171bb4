#include "common/log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace peerrelay::log {
namespace internal {
std::atomic<int> g_level{int(Level::kInfo)};
}  // namespace internal

namespace {

std::mutex g_init_mu;
std::string g_program = "relayd";  // guarded by g_init_mu for writes
std::atomic<bool> g_journald{false};

// systemd.exec(5): JOURNAL_STREAM is "<device>:<inode>" of the stream the
// service's stderr was connected to; compare it with stderr's own, since a
// child of the service with a redirected stderr inherits the variable.
bool DetectJournald() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  std::pair<std::string, std::string> parts = absl::StrSplit(env, ':');
  uint64_t dev = 0, ino = 0;
  if (!absl::SimpleAtoi(parts.first, &dev) ||
      !absl::SimpleAtoi(parts.second, &ino)) {
    return false;
  }
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return uint64_t(st.st_dev) == dev && uint64_t(st.st_ino) == ino;
}

void WriteAll(const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report a failing stderr
    }
    p += n;
    left -= size_t(n);
  }
}

}  // namespace

absl::string_view LevelName(Level l) {
  switch (l) {
    case Level::kError: return "error";
    case Level::kWarning: return "warning";
    case Level::kNotice: return "notice";
    case Level::kInfo: return "info";
    case Level::kDebug: return "debug";
  }
  return "info";
}

bool ParseLevel(absl::string_view text, Level* out) {
  for (Level l : {Level::kError, Level::kWarning, Level::kNotice, Level::kInfo,
                  Level::kDebug}) {
    if (text == LevelName(l)) {
      *out = l;
      return true;
    }
  }
  if (text == "warn") {
    *out = Level::kWarning;
    return true;
  }
  return false;
}

void Init(absl::string_view program) {
  std::lock_guard<std::mutex> l(g_init_mu);
  g_program = std::string(program);
  g_journald.store(DetectJournald());
}

bool UnderJournald() { return g_journald.load(); }

void SetLevel(Level l) { internal::g_level.store(int(l)); }
Level GetLevel() { return Level(internal::g_level.load()); }

std::string FormatLine(Level l, absl::string_view message,
                       int64_t now_unix_ns) {
  if (g_journald.load()) {
    return absl::StrCat("<", int(l), ">", LevelName(l), ": ", message);
  }
  std::string program;
  {
    std::lock_guard<std::mutex> lock(g_init_mu);
    program = g_program;
  }
  return absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                       absl::FromUnixNanos(now_unix_ns), absl::UTCTimeZone()),
      " ", program, ": ", LevelName(l), ": ", message);
}

void Write(Level l, absl::string_view message) {
  if (!Enabled(l)) return;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  std::string line =
      FormatLine(l, message, int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
  line.push_back('\n');
  WriteAll(line);
}

void UsageError(absl::string_view message) {
  std::string program;
  {
    std::lock_guard<std::mutex> lock(g_init_mu);
    program = g_program;
  }
  WriteAll(absl::StrCat(g_journald.load() ? "<3>" : "", program, ": ",
                        message, "\n"));
}

bool RateLimitedLog::Write(Level l, absl::string_view message,
                           int64_t now_ns) {
  if (!Enabled(l)) return false;
  uint64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) {
      bucket_ = TokenBucket(burst_, now_ns);
      started_ = true;
    }
    if (!bucket_.Take(rate_, burst_, now_ns)) {
      ++suppressed_since_last_;
      suppressed_total_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    suppressed = suppressed_since_last_;
    suppressed_since_last_ = 0;
  }
  if (suppressed == 0) {
    log::Write(l, message);
  } else {
    log::Write(l, absl::StrCat(message, " (", suppressed,
                               " similar lines suppressed)"));
  }
  return true;
}

}  // namespace peerrelay::log
