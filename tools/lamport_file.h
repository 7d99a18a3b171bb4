// LamportFile: keeps relayd's Lamport IDs growing across restarts.
//
// Tailscale clients keep, per server disco key, the endpoint with the
// highest LamportID and ignore an answer whose ID is not higher than one they
// already hold (wgengine/magicsock relayManager). relayd with a --key_file
// keeps its disco key across restarts, so a restarted relayd that counted
// from 1 again would hand out IDs that clients holding older endpoints
// ignore. The file beside the key holds a reservation: a decimal high mark
// H. At start relayd continues from H and reserves the next block (H +
// kBlock, written before any ID is handed out); when the block is used up the
// server asks for another (ServerConfig::reserve_lamport). A crash skips at
// most the rest of a block; IDs never repeat while the file is intact.
//
// Writes go to PATH.tmp (O_NOFOLLOW), are synced and renamed into place.
#ifndef PEERRELAY_TOOLS_LAMPORT_FILE_H_
#define PEERRELAY_TOOLS_LAMPORT_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace peerrelay {

class LamportFile {
 public:
  // 2^20 IDs: at the default total allocation rate (500/s) a block lasts
  // about half an hour, so the file is written rarely; a crash wastes at most
  // that many of 2^64.
  static constexpr uint64_t kBlock = uint64_t{1} << 20;

  // Reads PATH (missing: start at 0) and reserves the first block. Errors
  // (unreadable, not a number, cannot write) name the path and the cause.
  static absl::StatusOr<LamportFile> Open(std::string path);

  // The last ID the previous process may have handed out: continue after it.
  uint64_t start() const { return start_; }
  // IDs up to this are reserved on disk.
  uint64_t reserved() const { return reserved_; }

  // Reserves a block that holds `id` and returns the new high mark (>= id).
  // When the file cannot be written the error is returned with the mark.
  absl::StatusOr<uint64_t> Reserve(uint64_t id);

  const std::string& path() const { return path_; }

 private:
  explicit LamportFile(std::string path) : path_(std::move(path)) {}
  absl::Status Write(uint64_t mark);

  std::string path_;
  uint64_t start_ = 0;
  uint64_t reserved_ = 0;
};

}  // namespace peerrelay

#endif  // PEERRELAY_TOOLS_LAMPORT_FILE_H_
