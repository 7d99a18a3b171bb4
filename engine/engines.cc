#include "engine/engines.h"

#include "absl/strings/str_cat.h"
#include "engine/mmsg_worker.h"
#include "engine/uring_worker.h"

namespace peerrelay::engine {
namespace {

absl::StatusOr<std::unique_ptr<Worker>> MakeUring(const WorkerParts& p) {
  return MakeUringWorker(p.socket, p.path, p.writer, p.counters, p.clock,
                         p.rx_buffers, p.uring);
}

absl::Status MmsgAlways() { return absl::OkStatus(); }

absl::StatusOr<std::unique_ptr<Worker>> MakeMmsg(const WorkerParts& p) {
  return MakeMmsgWorker(p.socket, p.path, p.counters, p.clock, p.rx_buffers);
}

constexpr Engine kEngines[] = {
    {"io_uring", &ProbeIoUring,
     "blocked by seccomp or kernel.io_uring_disabled?", &MakeUring},
    {"mmsg", &MmsgAlways, "", &MakeMmsg},
};

}  // namespace

absl::Span<const Engine> Engines() { return kEngines; }

const Engine* FindEngine(absl::string_view name) {
  for (const Engine& e : kEngines) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string EngineChoices() {
  std::string out = "auto";
  for (const Engine& e : kEngines) absl::StrAppend(&out, ", ", e.name);
  return out;
}

}  // namespace peerrelay::engine
