// Disco secret keys on disk: one line "privkey:<64 hex>", written mode 0600
// (atomically, via a temporary file and rename) when the file is missing.
// relayd keeps its identity across restarts this way; the demo client keeps
// the key its allowlist entry names.
#ifndef PEERRELAY_DISCO_KEY_FILE_H_
#define PEERRELAY_DISCO_KEY_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "disco/key.h"

namespace peerrelay::disco {

// Reads the key pair from `path`, or creates the file with a new one.
absl::StatusOr<KeyPair> LoadOrCreateKeyFile(const std::string& path);

}  // namespace peerrelay::disco

#endif  // PEERRELAY_DISCO_KEY_FILE_H_
