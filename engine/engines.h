// The packet engines as rows of a table: a name, a probe (can this kernel
// and process run it, and if not, why), and a factory for one worker. The
// relay picks a row by name ("auto": the first row whose probe passes) and
// knows nothing else about engines; a third engine adds its files and one
// row in engines.cc.
#ifndef PEERRELAY_ENGINE_ENGINES_H_
#define PEERRELAY_ENGINE_ENGINES_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "engine/packet_writer.h"
#include "engine/socket.h"
#include "engine/uring_worker.h"
#include "engine/worker.h"
#include "engine/worker_path.h"
#include "relay/counters.h"

namespace peerrelay::engine {

// What a worker is built from. Everything must outlive the worker; `path`
// already holds `writer` (its Flush goes there).
struct WorkerParts {
  SocketInfo socket;
  WorkerPath* path = nullptr;
  PacketWriter* writer = nullptr;
  relay::Counters* counters = nullptr;
  const Clock* clock = nullptr;
  size_t rx_buffers = kRxBuffers;
  UringOptions uring;
};

struct Engine {
  absl::string_view name;
  // OK when this process can run the engine; else the kernel's reason.
  absl::Status (*probe)();
  // What to suspect when the probe fails (said in the log), or "".
  absl::string_view unavailable_hint;
  // Builds one worker on the thread that will Run it (an io_uring ring is
  // SINGLE_ISSUER).
  absl::StatusOr<std::unique_ptr<Worker>> (*make)(const WorkerParts& parts);
};

// The rows, in the order "auto" tries them (fastest first; the last one
// must always probe OK: it is the fallback).
absl::Span<const Engine> Engines();
// The row named `name`, or null. "auto" is not a row.
const Engine* FindEngine(absl::string_view name);
// "auto, io_uring, mmsg": for flag help and error messages.
std::string EngineChoices();

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_ENGINES_H_
