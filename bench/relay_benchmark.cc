// The relay core's fast-path verdict for a bound endpoint (Server::Classify)
// with 1, 10 000 and 1 000 000 endpoints allocated, from 1 and 2 threads,
// plus the memory each endpoint costs.
//
//   bazel run -c opt //bench:relay_benchmark
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "geneve/geneve.h"
#include "relay/server.h"
#include "relay/vni_allocator.h"

namespace peerrelay::relay {
namespace {

int64_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long size = 0, rss = 0;
  if (std::fscanf(f, "%ld %ld", &size, &rss) != 2) rss = 0;
  std::fclose(f);
  return rss * sysconf(_SC_PAGESIZE);
}

disco::DiscoKey SyntheticKey(uint32_t i, uint8_t tag) {
  disco::DiscoKey k;
  k.bytes[0] = tag;
  k.bytes[1] = uint8_t(i >> 24);
  k.bytes[2] = uint8_t(i >> 16);
  k.bytes[3] = uint8_t(i >> 8);
  k.bytes[4] = uint8_t(i);
  return k;
}

SocketAddress ClientAddr(uint32_t i, bool side_b) {
  return SocketAddress::FromIpv4(
      {side_b ? uint8_t(11) : uint8_t(10), uint8_t(i >> 16), uint8_t(i >> 8),
       uint8_t(i)},
      side_b ? 2000 : 1000);
}

struct Fixture {
  std::unique_ptr<Server> server;
  std::vector<uint32_t> vnis;
  double bytes_per_endpoint = 0;
};

// Built once per endpoint count and shared by the thread runs.
Fixture& GetFixture(int endpoints) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<Fixture>> cache;
  std::lock_guard<std::mutex> l(mu);
  auto& f = cache[endpoints];
  if (f) return *f;
  f = std::make_unique<Fixture>();
  const int64_t now = kSecond;
  f->server = Server::Create({.addresses = {ClientAddr(0, false)}}, now).value();
  const int64_t rss_before = RssBytes();
  for (int i = 0; i < endpoints; ++i) {
    EndpointInfo ep = f->server
                          ->Allocate(SyntheticKey(i, 1), SyntheticKey(i, 2),
                                     now)
                          .value();
    f->server->BindForTesting(ep.vni, ClientAddr(i, false),
                              ClientAddr(i, true), now);
    f->vnis.push_back(ep.vni);
  }
  f->bytes_per_endpoint =
      double(RssBytes() - rss_before) / std::max(endpoints, 1);
  return *f;
}

// Each thread relays for its own slice of endpoints, walking them so that a
// large table is not all in cache.
void BM_ProcessBound(benchmark::State& state) {
  Fixture& f = GetFixture(int(state.range(0)));
  Counters c;
  const size_t n = f.vnis.size();
  // 256 datagrams, each for a different endpoint (strided over the table).
  std::vector<std::vector<uint8_t>> pkts;
  std::vector<SocketAddress> from;
  const size_t stride = n > 256 ? n / 256 : 1;
  for (size_t k = 0; k < 256; ++k) {
    size_t i = (k * stride + state.thread_index()) % n;
    std::vector<uint8_t> p(1400 + geneve::kHeaderSize, 0xab);
    geneve::Encode(
        {.protocol = geneve::kProtocolWireGuard, .vni = f.vnis[i]}, p.data());
    pkts.push_back(std::move(p));
    from.push_back(ClientAddr(uint32_t(i), false));
  }
  int64_t now = 2 * kSecond;
  size_t k = 0;
  for (auto _ : state) {
    Verdict v = f.server->Classify(pkts[k].data(), pkts[k].size(), 1,
                                   pkts[k].size(), from[k], now);
    benchmark::DoNotOptimize(v);
    c.received.Add();
    if (v.kind == Verdict::kForward) c.relayed.Add();
    if (++k == pkts.size()) {
      k = 0;
      ++now;  // a new batch: the clock moves
    }
  }
  if (c.relayed.Get() != c.received.Get()) state.SkipWithError("not relayed");
  state.SetItemsProcessed(state.iterations());
  state.counters["endpoints"] =
      benchmark::Counter(double(n), benchmark::Counter::kAvgThreads);
  state.counters["rss_bytes_per_endpoint"] = benchmark::Counter(
      f.bytes_per_endpoint, benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_ProcessBound)
    ->Arg(1)
    ->Arg(10'000)
    ->Arg(1'000'000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// The cost of a miss: unknown VNI.
void BM_ProcessUnknownVni(benchmark::State& state) {
  Fixture& f = GetFixture(10'000);
  std::vector<uint8_t> p(64, 0);
  geneve::Encode({.protocol = geneve::kProtocolWireGuard,
                        .vni = 0xFFFFF0},
                       p.data());
  const SocketAddress from = ClientAddr(1, false);
  for (auto _ : state) {
    Verdict v = f.server->Classify(p.data(), p.size(), 1, p.size(), from, 1);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProcessUnknownVni);

// A VNI when nearly the whole 24-bit space is in use: each iteration frees
// one VNI far from the allocator's cursor and allocates again, so every
// allocation has to find the one free VNI left.
void BM_VniAllocateNearlyFull(benchmark::State& state) {
  static VniAllocator* full = [] {
    auto* a = new VniAllocator();
    while (a->Allocate()) {
    }
    return a;
  }();
  uint32_t v = 1;
  for (auto _ : state) {
    full->Free(v);
    auto got = full->Allocate();
    benchmark::DoNotOptimize(got);
    v = (v + 7'654'321) % VniAllocator::kMaxVni + 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["in_use"] = double(full->in_use());
}
BENCHMARK(BM_VniAllocateNearlyFull);

void BM_Allocate(benchmark::State& state) {
  auto server = Server::Create({.addresses = {ClientAddr(0, false)}}, 0).value();
  uint32_t i = 0;
  for (auto _ : state) {
    auto ep = server->Allocate(SyntheticKey(i, 1), SyntheticKey(i, 2), 0);
    benchmark::DoNotOptimize(ep);
    if (++i == 1'000'000) {
      state.PauseTiming();
      server = Server::Create({.addresses = {ClientAddr(0, false)}}, 0).value();
      i = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Allocate);

}  // namespace
}  // namespace peerrelay::relay
