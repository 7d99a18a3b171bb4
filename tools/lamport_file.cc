#include "tools/lamport_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/small_file.h"

namespace peerrelay {

absl::StatusOr<LamportFile> LamportFile::Open(std::string path) {
  LamportFile f(std::move(path));
  absl::StatusOr<std::string> text = ReadSmallFile(f.path_, 64);
  if (text.ok()) {
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &f.start_)) {
      return absl::DataLossError(absl::StrCat(
          f.path_, ": not a Lamport ID reservation (one decimal number); "
                   "remove it only together with the key file"));
    }
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  absl::StatusOr<uint64_t> mark = f.Reserve(f.start_ + 1);
  if (!mark.ok()) return mark.status();
  return f;
}

absl::StatusOr<uint64_t> LamportFile::Reserve(uint64_t id) {
  const uint64_t mark = id > UINT64_MAX - kBlock ? UINT64_MAX : id + kBlock;
  absl::Status written = Write(mark);
  if (!written.ok()) return written;
  reserved_ = mark;
  return mark;
}

absl::Status LamportFile::Write(uint64_t mark) {
  const std::string tmp = path_ + ".tmp";
  unlink(tmp.c_str());  // left by a crash: it only ever holds a number
  const int fd = open(tmp.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  }
  const std::string line = absl::StrCat(mark, "\n");
  const bool ok = write(fd, line.data(), line.size()) == ssize_t(line.size()) &&
                  fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!ok || std::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int e = ok ? errno : err;
    unlink(tmp.c_str());
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path_, ": ", std::strerror(e)));
  }
  return absl::OkStatus();
}

}  // namespace peerrelay
