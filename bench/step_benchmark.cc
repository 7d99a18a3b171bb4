// One Google Benchmark per per-datagram step that the relay (and the load
// generator that measures it) runs in user space, so a change to any one
// shows in isolation. The kernel's share (system calls, copies) is measured
// end to end by bench/compare.sh and //bench:engine_benchmark.
//
//   bazel run -c opt //bench:step_benchmark
//
// Steps (per datagram unless said otherwise):
//   WorkerPathGroRun     a 44-segment GRO buffer of a bound pair through
//                        WorkerPath::OnReceive to the writer (per segment)
//   WorkerPathSingle     one datagram through WorkerPath::OnReceive
//   GsoBatcherAdd        grouping into GSO sends, 1 / 8 / 64 destinations
//                        per batch (Flush is not timed)
//   HandshakeLimiter     the per-source and total token buckets
//   HandleBind           a Bind on the slow path: open, check, seal the
//                        Challenge (per control datagram)
//   LoadgenWriteHeader / LoadgenParse / SeqTrackerAdd / LatencyHistogramAdd
//                        the load generator's own per-datagram work
// (Geneve decode, envelope peek, seal/open and the fast-path verdict are in
// codec_benchmark and relay_benchmark.)
#include <benchmark/benchmark.h>

#include <vector>

#include "common/socket_address.h"
#include "engine/gso_batcher.h"
#include "engine/handshake_limiter.h"
#include "engine/packet_writer.h"
#include "engine/slow_path_queue.h"
#include "engine/worker_path.h"
#include "client/disco_client.h"
#include "common/log.h"
#include "relay/server.h"
#include "loadtest/loadgen/stats.h"
#include "client/wire.h"

namespace peerrelay {
namespace {

// The server logs allocations at info; a benchmark wants none of that.
const bool kQuiet = [] {
  log::SetLevel(log::Level::kWarning);
  return true;
}();

SocketAddress Addr(int i) {
  return SocketAddress::Parse("10.0.0." + std::to_string(i % 250 + 1) + ":" +
                              std::to_string(40000 + i))
      .value();
}

// A writer that only counts what it is handed.
class CountingWriter final : public engine::PacketWriter {
 public:
  void Add(const uint8_t*, size_t len, const SocketAddress&,
           relay::Counters*) override {
    bytes += len;
  }
  void AddRun(const uint8_t*, size_t, size_t total, const SocketAddress&,
              relay::Counters*) override {
    bytes += total;
  }
  void Flush(relay::Counters*) override {}
  bool SendNow(const uint8_t*, size_t, const SocketAddress&,
               const engine::LocalAddress&) override {
    return true;
  }
  uint64_t bytes = 0;
};

// A server with one bound pair (VNI of the pair: `vni`).
struct BoundPair {
  std::unique_ptr<relay::Server> server;
  uint32_t vni = 0;
  BoundPair() {
    server = relay::Server::Create({.addresses = {Addr(0)}}, 0).value();
    auto ep = server->Allocate(disco::KeyPair::Generate().public_key(),
                               disco::KeyPair::Generate().public_key(), 0)
                  .value();
    vni = ep.vni;
    server->BindForTesting(vni, Addr(1), Addr(2), 0);
  }
};

std::vector<uint8_t> Datagrams(uint32_t vni, size_t size, int n) {
  std::vector<uint8_t> buf(size * size_t(n));
  for (int i = 0; i < n; ++i) {
    client::wire::WriteDatagram(buf.data() + size * size_t(i), size,
                           {.vni = vni, .seq = uint64_t(i)});
  }
  return buf;
}

// A worker's per-datagram path over a bound pair, writing to a counter.
struct PathUnderTest {
  BoundPair p;
  engine::SlowPathQueue q{64, 64};
  CountingWriter w;
  relay::Counters c;
  engine::WorkerPath path{p.server.get(), &q, &w, &c,
                          engine::HandshakeLimiter(50, 20, 20000, 2000)};
};

void BM_WorkerPathGroRun(benchmark::State& state) {
  PathUnderTest t;
  engine::WorkerPath& path = t.path;
  const size_t size = size_t(state.range(0));
  const std::vector<uint8_t> buf = Datagrams(t.p.vni, size, 44);
  engine::RxMeta meta;
  meta.gro_size = uint16_t(size);
  const SocketAddress from = Addr(1);
  for (auto _ : state) {
    path.OnReceive(buf.data(), buf.size(), meta, from, 1);
    path.Flush();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 44);
  benchmark::DoNotOptimize(t.w.bytes);
}
BENCHMARK(BM_WorkerPathGroRun)->Arg(64)->Arg(1400);

void BM_WorkerPathSingle(benchmark::State& state) {
  PathUnderTest t;
  const std::vector<uint8_t> buf = Datagrams(t.p.vni, 64, 1);
  const SocketAddress from = Addr(1);
  for (auto _ : state) t.path.OnReceive(buf.data(), buf.size(), {}, from, 1);
  state.SetItemsProcessed(int64_t(state.iterations()));
  benchmark::DoNotOptimize(t.w.bytes);
}
BENCHMARK(BM_WorkerPathSingle);

void BM_GsoBatcherAdd(benchmark::State& state) {
  // Only the grouping is timed: Flush (on fd -1, so its sends fail at once
  // and empty the batch) runs with the clock paused.
  engine::GsoBatcher b(-1, false, 64);
  relay::Counters c;
  const std::vector<uint8_t> buf = Datagrams(1, 64, 64);
  const int dests = int(state.range(0));
  std::vector<SocketAddress> to;
  for (int i = 0; i < dests; ++i) to.push_back(Addr(i));
  for (auto _ : state) {
    for (int i = 0; i < 64; ++i) b.Add(buf.data() + 64 * i, 64, to[size_t(i % dests)], &c);
    state.PauseTiming();
    b.Flush(&c);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 64);
}
BENCHMARK(BM_GsoBatcherAdd)->Arg(1)->Arg(8)->Arg(64);

void BM_HandshakeLimiter(benchmark::State& state) {
  // The defaults: per source, per endpoint side, in total.
  engine::HandshakeLimiter l(50, 20, 20000, 2000, 20, 40);
  std::vector<SocketAddress> from;
  std::vector<relay::ControlSide> sides;
  for (int i = 0; i < 1024; ++i) {
    from.push_back(Addr(i));
    sides.push_back({uint32_t(1 + i % 256), disco::KeyPair::Generate().public_key()});
  }
  int64_t now = 0;
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = i++ % from.size();
    benchmark::DoNotOptimize(l.Allow(from[k], sides[k], now));
    now += 1000;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_HandshakeLimiter);

void BM_HandleBind(benchmark::State& state) {
  auto server = relay::Server::Create({.addresses = {Addr(0)}}, 0).value();
  client::DiscoClient a(disco::Dialect::kCurrent, server->server_key(), Addr(1));
  client::DiscoClient b(disco::Dialect::kCurrent, server->server_key(), Addr(2));
  auto ep = server->Allocate(a.key(), b.key(), 0).value();
  a.SetEndpoint(ep.vni, b.key());
  const client::Bytes bind = a.Bind(1);
  relay::Counters c;
  relay::ControlReply reply;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        server->HandleControl(bind.data(), bind.size(), Addr(1), 1, &c, &reply));
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_HandleBind);

void BM_LoadgenWriteHeader(benchmark::State& state) {
  std::vector<uint8_t> buf(64);
  uint64_t seq = 0;
  for (auto _ : state) {
    client::wire::WriteHeader(buf.data(), {.vni = 7, .pair = 1, .seq = seq++, .sent_ns = 5});
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_LoadgenWriteHeader);

void BM_LoadgenParse(benchmark::State& state) {
  const std::vector<uint8_t> buf = Datagrams(7, 64, 1);
  client::wire::DatagramInfo d;
  for (auto _ : state) {
    benchmark::DoNotOptimize(client::wire::ParseDatagram(buf.data(), buf.size(), &d));
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_LoadgenParse);

void BM_SeqTrackerAdd(benchmark::State& state) {
  loadgen::SeqTracker t;
  uint64_t seq = 0;
  for (auto _ : state) t.Add(seq++);
  state.SetItemsProcessed(int64_t(state.iterations()));
  benchmark::DoNotOptimize(t.unique());
}
BENCHMARK(BM_SeqTrackerAdd);

void BM_LatencyHistogramAdd(benchmark::State& state) {
  loadgen::LatencyHistogram h;
  int64_t v = 1;
  for (auto _ : state) {
    h.Add(v);
    v = (v * 7 + 13) % 10'000'000;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_LatencyHistogramAdd);

}  // namespace
}  // namespace peerrelay
