#include "engine/port_guard.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/small_file.h"
#include "common/socket_address.h"

namespace peerrelay::engine {
namespace {

// listen(2) for the guard (a name taken, so that a second claimant can
// connect and learn who holds it).
int listen_unix(int fd) { return ::listen(fd, 8); }

// What Holder says when no process holds the sockets.
constexpr char kNoHolder[] = "another process";

std::string LockName(uint16_t port) {
  return absl::StrCat("peerrelay-relayd-udp-", port);
}

// The local address of a /proc/net/udp(6) line ("0100007F" or 32 hex
// digits, each 32-bit group printed in host order).
std::optional<SocketAddress> ProcAddress(absl::string_view hex) {
  if (hex.size() != 8 && hex.size() != 32) return std::nullopt;
  std::array<uint8_t, 16> b{};
  for (size_t g = 0; g < hex.size() / 8; ++g) {
    uint32_t v = 0;
    if (!absl::SimpleHexAtoi(hex.substr(g * 8, 8), &v)) return std::nullopt;
    for (int i = 0; i < 4; ++i) b[g * 4 + i] = uint8_t(v >> (8 * i));
  }
  if (hex.size() == 8) return SocketAddress::FromIpv4({b[0], b[1], b[2], b[3]}, 0);
  return SocketAddress::FromIpv6(b, 0);
}

// Whether a socket bound to `bound` and relayd listening on `listen` (same
// port) collide: either is a wildcard, or they are the same address. Two
// different specific addresses do not. (SocketAddress holds IPv4 in its
// IPv4-mapped form, so a udp6 line's mapped address equals the IPv4 one.)
bool Overlaps(const SocketAddress& bound, const SocketAddress& listen) {
  return bound.is_unspecified() || listen.is_unspecified() ||
         bound.bytes() == listen.bytes();
}

// Socket inodes in /proc/net/udp or udp6 bound to local port `port` on an
// address that collides with `listen`.
void UdpInodes(const char* table, uint16_t port, const SocketAddress& listen,
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
    std::optional<SocketAddress> bound = ProcAddress(f[1].substr(0, colon));
    if (bound && !Overlaps(*bound, listen)) continue;
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
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
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
    note_ = std::move(o.note_);
  }
  return *this;
}

PortGuard::~PortGuard() {
  if (fd_ >= 0) close(fd_);
}

namespace {

// The process behind a listening abstract socket: connect to it and read
// its credentials (SO_PEERCRED), which no holder can forge.
struct GuardHolder {
  pid_t pid = 0;
  uid_t uid = 0;
  std::string comm;
  bool same_binary = false;  // runs the same executable as this process
};

std::optional<GuardHolder> HolderOf(const sockaddr_un& addr, socklen_t len) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  std::optional<GuardHolder> out;
  ucred cred{};
  socklen_t cl = sizeof(cred);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid > 0) {
    GuardHolder h;
    h.pid = cred.pid;
    h.uid = cred.uid;
    absl::StatusOr<std::string> comm =
        ReadSmallFile(absl::StrCat("/proc/", cred.pid, "/comm"), 256);
    h.comm = comm.ok() ? std::string(absl::StripAsciiWhitespace(*comm)) : "?";
    char mine[4096], theirs[4096];
    const ssize_t a = readlink("/proc/self/exe", mine, sizeof(mine));
    const ssize_t b = readlink(absl::StrCat("/proc/", cred.pid, "/exe").c_str(),
                               theirs, sizeof(theirs));
    h.same_binary = a > 0 && a == b && std::memcmp(mine, theirs, size_t(a)) == 0;
    out = h;
  }
  close(fd);
  return out;
}

}  // namespace

absl::StatusOr<PortGuard> PortGuard::Claim(uint16_t port,
                                           const SocketAddress& listen,
                                           bool already_bound) {
  const std::string name = LockName(port);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_UNIX)");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract namespace: a leading NUL, no file, gone with the process.
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len =
      socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  PortGuard guard(-1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      listen_unix(fd) == 0) {
    guard = PortGuard(fd);
  } else {
    const int err = errno;
    close(fd);
    if (err != EADDRINUSE) return absl::ErrnoToStatus(err, "claiming the relay port");
    // Any local user can take an abstract name. Only a relayd of this user
    // (or root's) could share the port's SO_REUSEPORT group: that one is
    // refused; anyone else squatting the name is named and ignored, and
    // the socket check below still protects the port.
    std::optional<GuardHolder> h = HolderOf(addr, len);
    const bool relayd = h && (h->same_binary || h->comm == "relayd") &&
                        (h->uid == geteuid() || h->uid == 0);
    if (!h || relayd) {
      return absl::FailedPreconditionError(absl::StrCat(
          "UDP port ", port, " is already served by another relayd: ",
          h ? absl::StrCat("pid ", h->pid, " (", h->comm, ")")
            : Holder({UnixInode(name)})));
    }
    guard.note_ = absl::StrCat(
        "the guard name of UDP port ", port, " (@", name, ") is held by pid ",
        h->pid, " (", h->comm, ", uid ", h->uid,
        "), which is not a relayd of this user: ignored");
  }
  if (already_bound) return guard;
  // Sockets that no process holds are on their way out: an exited relayd's
  // io_uring releases its registered sockets in deferred kernel work after
  // the process is gone, so a restart right behind it (systemctl restart)
  // can still see them for a moment. Wait up to 3 s for those; a port that
  // a live process holds is refused at once.
  for (int attempt = 0;; ++attempt) {
    absl::flat_hash_set<uint64_t> inodes;
    UdpInodes("/proc/net/udp", port, listen, &inodes);
    UdpInodes("/proc/net/udp6", port, listen, &inodes);
    if (inodes.empty()) return guard;
    const std::string holder = Holder(inodes);
    if (holder != kNoHolder || attempt == 30) {
      return absl::FailedPreconditionError(absl::StrCat(
          "UDP port ", port, " on ", listen.IpString(), " is already in use by ",
          holder));
    }
    usleep(100'000);
  }
}

}  // namespace peerrelay::engine
