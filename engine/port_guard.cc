#include "engine/port_guard.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/small_file.h"

namespace peerrelay::engine {
namespace {

// What Holder says when no process holds the sockets.
constexpr char kNoHolder[] = "another process";

std::string LockName(uint16_t port) {
  return absl::StrCat("peerrelay-relayd-udp-", port);
}

// Socket inodes in /proc/net/udp or udp6 bound to local port `port`.
void UdpInodes(const char* table, uint16_t port,
               absl::flat_hash_set<uint64_t>* out) {
  absl::StatusOr<std::string> text = ReadSmallFile(table, 16 << 20);
  if (!text.ok()) return;
  bool header = true;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (header) {
      header = false;
      continue;
    }
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 10) continue;
    const size_t colon = f[1].rfind(':');
    uint32_t p = 0;
    uint64_t inode = 0;
    if (colon == absl::string_view::npos ||
        !absl::SimpleHexAtoi(f[1].substr(colon + 1), &p) || p != port ||
        !absl::SimpleAtoi(f[9], &inode)) {
      continue;
    }
    out->insert(inode);
  }
}

// The inode of the abstract Unix socket `name`, from /proc/net/unix.
uint64_t UnixInode(const std::string& name) {
  absl::StatusOr<std::string> text = ReadSmallFile("/proc/net/unix", 16 << 20);
  if (!text.ok()) return 0;
  const std::string want = "@" + name;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t inode = 0;
    if (f.size() >= 8 && f[7] == want && absl::SimpleAtoi(f[6], &inode)) {
      return inode;
    }
  }
  return 0;
}

// "pid 1234 (relayd)" for the first process holding one of `inodes`, or
// "another process" when /proc does not show it (another user, another
// PID namespace).
std::string Holder(const absl::flat_hash_set<uint64_t>& inodes) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return "another process";
  std::string found;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid == getpid()) continue;
    const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    while (dirent* f = readdir(fds)) {
      char link[64];
      const std::string path = absl::StrCat(fd_dir, "/", f->d_name);
      const ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
      if (n <= 0) continue;
      absl::string_view l(link, size_t(n));
      uint64_t inode = 0;
      if (absl::ConsumePrefix(&l, "socket:[") && absl::ConsumeSuffix(&l, "]") &&
          absl::SimpleAtoi(l, &inode) && inodes.contains(inode)) {
        absl::StatusOr<std::string> comm =
            ReadSmallFile(absl::StrCat("/proc/", pid, "/comm"), 256);
        found = absl::StrCat(
            "pid ", pid, " (",
            comm.ok() ? absl::StripAsciiWhitespace(*comm) : "?", ")");
        break;
      }
    }
    closedir(fds);
    if (!found.empty()) break;
  }
  closedir(proc);
  return found.empty() ? std::string(kNoHolder) : found;
}

}  // namespace

PortGuard& PortGuard::operator=(PortGuard&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

PortGuard::~PortGuard() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<PortGuard> PortGuard::Claim(uint16_t port, bool already_bound) {
  const std::string name = LockName(port);
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_UNIX)");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract namespace: a leading NUL, no file, gone with the process.
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len =
      socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    close(fd);
    if (err == EADDRINUSE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "UDP port ", port, " is already served by another relayd: ",
          Holder({UnixInode(name)})));
    }
    return absl::ErrnoToStatus(err, "claiming the relay port");
  }
  PortGuard guard(fd);
  if (already_bound) return guard;
  // Sockets that no process holds are on their way out: an exited relayd's
  // io_uring releases its registered sockets in deferred kernel work after
  // the process is gone, so a restart right behind it (systemctl restart)
  // can still see them for a moment. Wait up to 3 s for those; a port that
  // a live process holds is refused at once.
  for (int attempt = 0;; ++attempt) {
    absl::flat_hash_set<uint64_t> inodes;
    UdpInodes("/proc/net/udp", port, &inodes);
    UdpInodes("/proc/net/udp6", port, &inodes);
    if (inodes.empty()) return guard;
    const std::string holder = Holder(inodes);
    if (holder != kNoHolder || attempt == 30) {
      return absl::FailedPreconditionError(
          absl::StrCat("UDP port ", port, " is already in use by ", holder));
    }
    usleep(100'000);
  }
}

}  // namespace peerrelay::engine
