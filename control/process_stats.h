// The process_* basics every Prometheus exporter offers (client libraries
// name them the same way), read from /proc/self at scrape time.
#ifndef PEERRELAY_CONTROL_PROCESS_STATS_H_
#define PEERRELAY_CONTROL_PROCESS_STATS_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace peerrelay::control {

struct ProcessStats {
  double start_time_seconds = 0;  // Unix time the process started
  double cpu_seconds = 0;         // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t threads = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;
};

// Parses the fields of /proc/<pid>/stat that ProcessStats needs (the rest
// of the struct stays as given). `boot_time` is /proc/stat's btime,
// `ticks_per_second` sysconf(_SC_CLK_TCK), `page_size` in bytes. nullopt
// when the text is not a stat line.
std::optional<ProcessStats> ParseProcStat(absl::string_view stat,
                                          uint64_t boot_time,
                                          long ticks_per_second,
                                          long page_size);

// This process, now; nullopt when /proc cannot be read.
std::optional<ProcessStats> ReadProcessStats();

}  // namespace peerrelay::control

#endif  // PEERRELAY_CONTROL_PROCESS_STATS_H_
