// Relay: the running data plane. Owns one socket and one worker thread per
// core (SO_REUSEPORT), the slow-path thread and the expiry thread, around a
// relay::Server that the caller owns and that outlives it.
//
//   auto server = relay::Server::Create(config, MonotonicNowNs());
//   auto relay = engine::Relay::Start(server->get(), {.bind = addr});
//   ... (*relay)->Counters() ...
//   (*relay)->Stop();  // also on destruction
#ifndef PEERRELAY_ENGINE_RELAY_H_
#define PEERRELAY_ENGINE_RELAY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/socket_address.h"
#include "engine/capture.h"
#include "engine/engines.h"
#include "engine/gso_batcher.h"
#include "engine/slow_path_queue.h"
#include "engine/slow_path_worker.h"
#include "engine/socket.h"
#include "engine/packet_writer.h"
#include "engine/uring_worker.h"
#include "engine/worker_path.h"
#include "engine/xdp_tier.h"
#include "relay/counters.h"
#include "relay/server.h"

namespace peerrelay::engine {

struct RelayOptions {
  // Address and port the relay listens on. [::] is dual-stack; port 0 picks
  // a free port (tests).
  SocketAddress bind = SocketAddress::Parse("[::]:0").value();
  // Worker threads (one socket each); 0 means one per online CPU.
  int workers = 0;
  // A row of the engine table (engines.h) by name, or "auto": the first
  // row this kernel allows.
  std::string engine = "auto";
  // Pin worker i to CPU (cpu_offset + i) % ncpu.
  bool pin_cpus = false;
  int cpu_offset = 0;
  // Control datagrams waiting for the slow path before new ones are shed.
  size_t slow_path_queue = 4096;
  // Data datagrams waiting behind their source's queued control datagram
  // (per-client order; engine/worker_path.h), on top of the above.
  size_t waiting_data_queue = 1024;
  // Control datagrams handed to the slow path per second, per source
  // address (burst) and in total (burst); 0 disables. See
  // handshake_limiter.h.
  double handshake_rate_per_source = 50;
  double handshake_burst_per_source = 20;
  double handshake_rate_total = 20000;
  double handshake_burst_total = 2000;
  // Per endpoint side (VNI and client key), so that forgeries naming one
  // side spend only its share. A client's round is a few Binds and Answers
  // (one per candidate address) every few seconds at most.
  double handshake_rate_per_side = 20;
  double handshake_burst_per_side = 40;
  // Receive buffers per worker (the provided buffer ring, or the recvmmsg
  // batch); see worker.h for why the default is small.
  size_t rx_buffers = 64;
  // How often expired endpoints are swept.
  int64_t expire_interval_ns = 1'000'000'000;
  // Where the workers, the slow path and the expiry sweep read the time
  // (once per batch); must outlive the relay.
  const Clock* clock = Clock::Monotonic();
  // Opt-in recording of every datagram received and sent (capture.h);
  // null: off. Must outlive the relay.
  PcapWriter* capture = nullptr;
  // How the io_uring workers use their rings (uring_worker.h).
  UringOptions uring;
  // The kernel tier (xdp_tier.h), attached by the caller, or null. While the
  // relay runs it is the server's pair observer; it is harvested before
  // every expiry sweep (and once more on Stop) and counted in Counters()
  // and DataPlaneCounters(). Must outlive the relay.
  XdpTier* xdp = nullptr;
};

class Relay {
 public:
  // Opens the sockets and starts every thread. "auto" picks the first
  // engine the kernel allows and says why it passed others over (see
  // engine_note()). An unknown engine name is InvalidArgument; a named
  // engine the kernel refuses is FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<Relay>> Start(relay::Server* server,
                                                      RelayOptions options);
  ~Relay();

  // Stops receiving, lets the workers finish their batch (in-flight sends
  // complete inside it), joins every thread, closes every socket. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  // The engine's name (a row of engines.h).
  absl::string_view engine() const { return engine_->name; }
  // Why "auto" chose what it chose (empty when the first row was taken).
  const std::string& engine_note() const { return engine_note_; }
  int workers() const { return static_cast<int>(sockets_.size()); }
  // The workers' sockets as opened (buffer sizes the kernel granted, GRO).
  const std::vector<SocketInfo>& sockets() const { return sockets_; }
  // Sums of every worker's and the slow path's counters.
  relay::CountersSnapshot Counters() const;
  // Sums of the workers' counters only. Every datagram received is
  // accounted for here: received = relayed + to_slow_path + dropped (the
  // slow path then accounts for what it was handed in SlowPathCounters).
  relay::CountersSnapshot DataPlaneCounters() const;
  relay::CountersSnapshot WorkerCounters(int i) const;
  relay::CountersSnapshot SlowPathCounters() const;
  // What the kernel tier forwarded (zero without one): received = relayed.
  relay::CountersSnapshot XdpCounters() const;
  XdpTier* xdp() const { return options_.xdp; }

 private:
  Relay() = default;
  // Settles engine_ (and engine_note_) from options_.engine and what the
  // kernel allows.
  absl::Status ChooseEngine();
  // One thread per worker (each builds its Worker on its own thread: the
  // ring is SINGLE_ISSUER), and the expiry thread.
  void StartThreads(int workers);

  relay::Server* server_ = nullptr;
  RelayOptions options_;
  const Engine* engine_ = nullptr;
  std::string engine_note_;
  uint16_t port_ = 0;
  std::vector<SocketInfo> sockets_;
  std::unique_ptr<relay::Counters[]> worker_counters_;
  relay::Counters slow_counters_;
  std::unique_ptr<SlowPathQueue> queue_;
  // Each worker's writer (a GsoBatcher on its socket); the path and the
  // worker know it only as a PacketWriter.
  std::vector<std::unique_ptr<PacketWriter>> writers_;
  std::vector<std::unique_ptr<WorkerPath>> paths_;
  Capture capture_;
  std::unique_ptr<SlowPathWorker> slow_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::thread expiry_;
  bool stopped_ = false;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_RELAY_H_
