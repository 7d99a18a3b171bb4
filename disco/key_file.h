// Disco secret keys on disk: one line "privkey:<64 hex>", mode 0600.
// relayd keeps its identity across restarts this way; the demo client keeps
// the key its allowlist entry names.
//
// A key is created only when the file does not exist (ENOENT). Any other
// failure to read it (permissions, a directory, a FIFO, bad content) is an
// error that names the cause: a relay must never quietly replace the key
// its clients know. Creation writes a temporary file opened with
// O_CREAT|O_EXCL|O_NOFOLLOW (a planted symlink is refused), syncs it and
// renames it into place.
#ifndef PEERRELAY_DISCO_KEY_FILE_H_
#define PEERRELAY_DISCO_KEY_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "disco/key.h"

namespace peerrelay::disco {

// Reads the key pair from `path`. NotFound when the file does not exist;
// other errors say why. When the file is readable by group or others,
// `*warning` (if given) says so.
absl::StatusOr<KeyPair> LoadKeyFile(const std::string& path,
                                    std::string* warning = nullptr);

// LoadKeyFile, or, only when the file does not exist, a new key written to
// it.
absl::StatusOr<KeyPair> LoadOrCreateKeyFile(const std::string& path,
                                            std::string* warning = nullptr);

}  // namespace peerrelay::disco

#endif  // PEERRELAY_DISCO_KEY_FILE_H_
