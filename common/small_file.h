// ReadSmallFile: reads a configuration file (a token, an allowlist) without
// ever blocking: the open is non-blocking (a FIFO planted at the path
// returns at once instead of waiting for a writer), only regular files are
// read, and never more than `max_bytes`. Errors name the path and the
// cause.
#ifndef PEERRELAY_COMMON_SMALL_FILE_H_
#define PEERRELAY_COMMON_SMALL_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace peerrelay {

// NotFound when the file does not exist.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes = 1 << 20);

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_SMALL_FILE_H_
