#include "common/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace peerrelay {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string why = err == ENOENT ? "no such file"
                                    : absl::AsciiStrToLower(std::strerror(err));
    if (err == EACCES || err == EPERM) {
      // Say who asked and, when it can be seen, who may read it.
      absl::StrAppend(&why, " (this process runs as uid ", geteuid(),
                      " gid ", getegid());
      struct stat st;
      if (stat(path.c_str(), &st) == 0) {
        absl::StrAppend(&why, "; the file is owned by uid ", st.st_uid,
                        " gid ", st.st_gid, " with mode ",
                        absl::StrFormat("%04o", st.st_mode & 07777));
      }
      absl::StrAppend(&why, ")");
    }
    return absl::Status(absl::ErrnoToStatus(err, "").code(),
                        absl::StrCat("cannot read ", path, ": ", why));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": not a regular file"));
  }
  // Read to the end rather than trusting st_size (procfs reports 0).
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
    if (out.size() > max_bytes) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot read ", path, ": larger than ", max_bytes, " bytes"));
    }
  }
  close(fd);
  return out;
}

}  // namespace peerrelay
