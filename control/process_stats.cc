#include "control/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/small_file.h"

namespace peerrelay::control {

std::optional<ProcessStats> ParseProcStat(absl::string_view stat,
                                          uint64_t boot_time,
                                          long ticks_per_second,
                                          long page_size) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  // the fields start after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos || ticks_per_second <= 0) {
    return std::nullopt;
  }
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::StripAsciiWhitespace(stat.substr(close + 1)), ' ',
                     absl::SkipEmpty());
  // f[0] is field 3 (state): field n is f[n - 3].
  auto field = [&](int n, uint64_t* out) {
    return size_t(n - 3) < f.size() && absl::SimpleAtoi(f[n - 3], out);
  };
  uint64_t utime, stime, threads, start_ticks, vsize, rss_pages;
  if (!field(14, &utime) || !field(15, &stime) || !field(20, &threads) ||
      !field(22, &start_ticks) || !field(23, &vsize) ||
      !field(24, &rss_pages)) {
    return std::nullopt;
  }
  ProcessStats s;
  s.cpu_seconds = double(utime + stime) / double(ticks_per_second);
  s.threads = threads;
  s.start_time_seconds =
      double(boot_time) + double(start_ticks) / double(ticks_per_second);
  s.virtual_bytes = vsize;
  s.resident_bytes = rss_pages * uint64_t(page_size);
  return s;
}

std::optional<ProcessStats> ReadProcessStats() {
  absl::StatusOr<std::string> stat = ReadSmallFile("/proc/self/stat", 4096);
  absl::StatusOr<std::string> sys = ReadSmallFile("/proc/stat", 1 << 20);
  if (!stat.ok() || !sys.ok()) return std::nullopt;
  uint64_t btime = 0;
  for (absl::string_view line : absl::StrSplit(*sys, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      (void)absl::SimpleAtoi(line, &btime);
      break;
    }
  }
  std::optional<ProcessStats> s = ParseProcStat(
      *stat, btime, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE));
  if (!s) return s;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++s->open_fds;
    }
    closedir(d);
    if (s->open_fds > 0) --s->open_fds;  // the directory's own fd
  }
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) s->max_fds = rl.rlim_cur;
  return s;
}

}  // namespace peerrelay::control
