#include "engine/relay.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "engine/engines.h"
#include "engine/worker.h"

namespace peerrelay::engine {

absl::StatusOr<std::unique_ptr<Relay>> Relay::Start(relay::Server* server,
                                                    RelayOptions options) {
  std::unique_ptr<Relay> r(new Relay());
  r->server_ = server;
  r->options_ = options;
  int workers = options.workers;
  if (workers <= 0) workers = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (workers <= 0) workers = 1;
  if (workers > 256) {
    return absl::InvalidArgumentError("at most 256 workers");
  }
  if (options.rx_buffers == 0 || options.rx_buffers > 32768 ||
      (options.rx_buffers & (options.rx_buffers - 1)) != 0) {
    return absl::InvalidArgumentError(
        "rx_buffers must be a power of two from 1 to 32768");
  }

  absl::Status chosen = r->ChooseEngine();
  if (!chosen.ok()) return chosen;

  // Sockets: the first one fixes the port (when asked for port 0), the
  // others join it with SO_REUSEPORT.
  SocketAddress bind = options.bind;
  for (int i = 0; i < workers; ++i) {
    auto s = OpenRelaySocket(bind, /*reuseport=*/true);
    if (!s.ok()) {
      for (const SocketInfo& open : r->sockets_) close(open.fd);
      return s.status();
    }
    if (i == 0) {
      bind.set_port(s->port);
      r->port_ = s->port;
    }
    r->sockets_.push_back(*s);
  }

  r->capture_ = Capture{.writer = options.capture, .bound = bind};
  const Capture* capture = options.capture != nullptr ? &r->capture_ : nullptr;
  r->worker_counters_ = std::make_unique<relay::Counters[]>(workers);
  r->queue_ = std::make_unique<SlowPathQueue>(options.slow_path_queue,
                                              options.waiting_data_queue);
  for (int i = 0; i < workers; ++i) {
    r->writers_.push_back(std::make_unique<GsoBatcher>(
        r->sockets_[i].fd, r->sockets_[i].ipv6, kMaxBatchDatagrams));
    r->paths_.push_back(std::make_unique<WorkerPath>(
        server, r->queue_.get(), r->writers_[i].get(),
        &r->worker_counters_[i],
        HandshakeLimiter(options.handshake_rate_per_source,
                         options.handshake_burst_per_source,
                         options.handshake_rate_total / workers,
                         std::max(1.0, options.handshake_burst_total / workers),
                         // A side's forgeries spread over the workers; its
                         // client's own datagrams reach one of them.
                         options.handshake_rate_per_side / workers,
                         std::max(1.0, options.handshake_burst_per_side / workers))));
    r->paths_.back()->set_capture(capture);
  }
  r->slow_ = std::make_unique<SlowPathWorker>(server, r->queue_.get(),
                                              &r->slow_counters_,
                                              options.clock,
                                              /*start_thread=*/true, capture);

  // The kernel tier mirrors the bound pairs from here on (those bound
  // already, too).
  if (options.xdp != nullptr) server->SetPairObserver(options.xdp);
  r->StartThreads(workers);
  return r;
}

absl::Status Relay::ChooseEngine() {
  if (options_.engine != "auto") {
    engine_ = FindEngine(options_.engine);
    if (engine_ == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown engine '", options_.engine, "' (", EngineChoices(), ")"));
    }
    absl::Status probe = engine_->probe();
    if (!probe.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          engine_->name, " engine requested but unavailable: ",
          probe.ToString()));
    }
    return absl::OkStatus();
  }
  // The first row the kernel allows; each one passed over is named.
  for (const Engine& e : Engines()) {
    absl::Status probe = e.probe();
    if (probe.ok()) {
      engine_ = &e;
      if (!engine_note_.empty()) {
        absl::StrAppend(&engine_note_, ": using the ", e.name, " engine");
      }
      return absl::OkStatus();
    }
    absl::StrAppend(&engine_note_, engine_note_.empty() ? "" : "; ", e.name,
                    " unavailable (", probe.ToString(),
                    e.unavailable_hint.empty() ? "" : "; ", e.unavailable_hint,
                    ")");
  }
  return absl::FailedPreconditionError(
      absl::StrCat("no packet engine can run here: ", engine_note_));
}

void Relay::StartThreads(int workers) {
  Relay* self = this;
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  for (int i = 0; i < workers; ++i) {
    self->threads_.emplace_back([self, i, ncpu] {
      if (self->options_.pin_cpus && ncpu > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((self->options_.cpu_offset + i) % ncpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      }
      const SocketInfo& sock = self->sockets_[i];
      WorkerPath* path = self->paths_[i].get();
      relay::Counters* c = &self->worker_counters_[i];
      const WorkerParts parts{.socket = sock,
                              .path = path,
                              .writer = self->writers_[i].get(),
                              .counters = c,
                              .clock = self->options_.clock,
                              .rx_buffers = self->options_.rx_buffers,
                              .uring = self->options_.uring};
      std::unique_ptr<Worker> w;
      auto made = self->engine_->make(parts);
      if (made.ok()) {
        w = std::move(*made);
      } else {
        // The last row is the fallback every kernel runs.
        const Engine& fallback = Engines().back();
        PEERRELAY_LOG(kWarning, "worker ", i, ": ", self->engine_->name,
                      " failed (", made.status().message(), "), this worker uses ",
                      fallback.name);
        auto f = fallback.make(parts);
        if (!f.ok()) {
          PEERRELAY_LOG(kError, "worker ", i, ": ", fallback.name, " failed too (",
                        f.status().message(), "): this worker does not run");
          return;
        }
        w = std::move(*f);
      }
      w->Run(&self->stop_);
    });
  }
  self->expiry_ = std::thread([self] {
    const Clock* clock = self->options_.clock;
    int64_t next = clock->NowNs();
    while (!self->stop_.load()) {
      usleep(50'000);
      const int64_t now = clock->NowNs();
      if (now >= next) {
        // Kernel-forwarded traffic first: it refreshes last-seen times, so
        // the sweep does not take busy pairs for idle ones.
        if (self->options_.xdp != nullptr) {
          self->options_.xdp->Harvest(self->server_, now);
        }
        self->server_->Expire(now);
        next = now + self->options_.expire_interval_ns;
      }
    }
  });
}

Relay::~Relay() { Stop(); }

void Relay::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true);
  for (std::thread& t : threads_) t.join();
  if (expiry_.joinable()) expiry_.join();
  if (slow_) slow_->Stop();  // after the workers: nothing more is queued
  if (options_.xdp != nullptr) {
    server_->SetPairObserver(nullptr);
    options_.xdp->Harvest(server_, options_.clock->NowNs(), /*last=*/true);
  }
  for (const SocketInfo& s : sockets_) close(s.fd);
}

relay::CountersSnapshot Relay::WorkerCounters(int i) const {
  relay::CountersSnapshot s;
  s.Add(worker_counters_[i]);
  return s;
}

relay::CountersSnapshot Relay::SlowPathCounters() const {
  relay::CountersSnapshot s;
  s.Add(slow_counters_);
  return s;
}

relay::CountersSnapshot Relay::XdpCounters() const {
  return options_.xdp != nullptr ? options_.xdp->Counters()
                                 : relay::CountersSnapshot{};
}

relay::CountersSnapshot Relay::DataPlaneCounters() const {
  relay::CountersSnapshot s;
  for (size_t i = 0; i < sockets_.size(); ++i) s.Add(worker_counters_[i]);
  s.Add(XdpCounters());
  return s;
}

relay::CountersSnapshot Relay::Counters() const {
  relay::CountersSnapshot s = DataPlaneCounters();
  s.Add(slow_counters_);
  return s;
}

}  // namespace peerrelay::engine
