#include "disco/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace peerrelay::disco {
namespace {

// A key file is one short line; anything bigger is not one.
constexpr off_t kMaxKeyFileBytes = 4096;

absl::Status Errno(int err, const std::string& what, const std::string& path) {
  std::string why = std::strerror(err);
  if (err == EACCES || err == EPERM) {
    absl::StrAppend(&why, " (running as uid ", getuid(), ")");
  }
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path, ": ", why));
}

}  // namespace

absl::StatusOr<KeyPair> LoadKeyFile(const std::string& path,
                                    std::string* warning) {
  // O_NONBLOCK: a FIFO planted at the path must not hang start-up.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no key file at ", path));
    }
    return Errno(err, "cannot read key file", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " is not a regular file"));
  }
  if (st.st_size > kMaxKeyFileBytes) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("key file ", path, " is too large to be a key"));
  }
  char buf[kMaxKeyFileBytes + 1];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  const int err = errno;
  close(fd);
  if (n < 0) return Errno(err, "cannot read key file", path);
  absl::string_view text(buf, size_t(n));
  text = text.substr(0, text.find('\n'));
  absl::string_view hex = absl::StripAsciiWhitespace(text);
  std::array<uint8_t, kKeySize> secret;
  if (!absl::ConsumePrefix(&hex, "privkey:") ||
      !HexDecode(hex, secret.data(), secret.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": want one line 'privkey:<64 hex digits>'"));
  }
  if (warning != nullptr && (st.st_mode & 077) != 0) {
    *warning = absl::StrFormat(
        "key file %s is readable by group or others (mode %04o): chmod 600 "
        "it",
        path, st.st_mode & 07777);
  }
  return KeyPair::FromSecret(secret);
}

absl::StatusOr<KeyPair> LoadOrCreateKeyFile(const std::string& path,
                                            std::string* warning) {
  absl::StatusOr<KeyPair> existing = LoadKeyFile(path, warning);
  if (existing.ok() || !absl::IsNotFound(existing.status())) return existing;
  KeyPair kp = KeyPair::Generate();
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(
          "cannot create key file: ", tmp,
          " already exists (left by a crash, or planted): remove it"));
    }
    return Errno(err, "cannot create key file", tmp);
  }
  fchmod(fd, 0600);
  const std::string line = absl::StrCat(
      "privkey:", HexEncode(kp.secret().data(), kp.secret().size()), "\n");
  const bool written =
      write(fd, line.data(), line.size()) == ssize_t(line.size()) &&
      fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!written || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = written ? errno : err;
    unlink(tmp.c_str());
    return Errno(e, "cannot write key file", path);
  }
  return kp;
}

}  // namespace peerrelay::disco
