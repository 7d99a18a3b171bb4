#include "disco/key_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace peerrelay::disco {

absl::StatusOr<KeyPair> LoadOrCreateKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::string line;
    std::getline(in, line);
    absl::string_view hex = absl::StripAsciiWhitespace(line);
    std::array<uint8_t, kKeySize> secret;
    if (!absl::ConsumePrefix(&hex, "privkey:") ||
        !HexDecode(hex, secret.data(), secret.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": want one line 'privkey:<64 hex digits>'"));
    }
    return KeyPair::FromSecret(secret);
  }
  KeyPair kp = KeyPair::Generate();
  const std::string tmp = path + ".tmp";
  const mode_t old_mask = umask(077);
  FILE* f = std::fopen(tmp.c_str(), "w");
  umask(old_mask);
  if (f == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  }
  fchmod(fileno(f), 0600);
  std::fprintf(f, "privkey:%s\n",
               HexEncode(kp.secret().data(), kp.secret().size()).c_str());
  if (std::fclose(f) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("write ", path));
  }
  return kp;
}

}  // namespace peerrelay::disco
