// Relay engine throughput over loopback: the relay pinned to CPU 0 with one
// worker, a load generator pinned to CPU 1, for each of
//   engine (io_uring, mmsg) x size (64 B, 1400 B) x sender (plain, GSO)
// Reports relayed Mpps and Gbit/s from the relay's own counters, and how
// busy CPU 0 was (/proc/stat): a round where the relay core is well under
// 95% busy measured the load generator, not the relay. The flood:20 rounds
// repeat the GSO rounds while 16 attacker sockets (also on CPU 1) send
// 20k forged Binds per second for the endpoint; compare with flood:0.
//
// Compare ratios within one run only; interleave the rounds:
//   bazel run -c opt //bench:engine_benchmark --
//     --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
// (one command line)
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <netinet/udp.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "engine/relay.h"
#include "engine/uring_worker.h"
#include "client/disco_client.h"
#include "tests/relay_harness.h"
#include "common/udp_socket.h"

namespace peerrelay::engine {
namespace {

using client::Bytes;
using ::peerrelay::UdpSocket;

constexpr double kSeconds = 1.0;
// WireGuard clients send GSO bursts of up to 44 datagrams here.
constexpr size_t kBurst = 44;

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// busy and total jiffies of one CPU.
std::pair<uint64_t, uint64_t> CpuTimes(int cpu) {
  std::ifstream f("/proc/stat");
  std::string name = "cpu" + std::to_string(cpu);
  std::string tok;
  while (f >> tok) {
    if (tok != name) continue;
    uint64_t v[10] = {};
    for (uint64_t& x : v) f >> x;
    uint64_t idle = v[3] + v[4];
    uint64_t total = 0;
    for (int i = 0; i < 8; ++i) total += v[i];
    return {total - idle, total};
  }
  return {0, 0};
}

void BM_Relay(benchmark::State& state) {
  const std::string kind =
      state.range(0) == 0 ? "io_uring" : "mmsg";
  const size_t size = size_t(state.range(1));
  const bool gso = state.range(2) != 0;
  // Handshake flood rate, thousands of datagrams per second (0: none).
  const int64_t flood_kpps = state.range(3);
  const bool flood = flood_kpps > 0;
  if (kind == "io_uring" && !ProbeIoUring().ok()) {
    state.SkipWithError("io_uring unavailable");
    return;
  }
  const SocketAddress lo = SocketAddress::Parse("127.0.0.1:0").value();
  auto harness = testing::RelayHarness::Start(lo, {},
                                              {.workers = 1,
                                               .engine = kind,
                                               .pin_cpus = true,
                                               .cpu_offset = 0});
  if (!harness.ok()) {
    state.SkipWithError(harness.status().ToString().c_str());
    return;
  }
  testing::RelayHarness& h = **harness;
  Relay* r = &h.relay();
  const SocketAddress relay_addr = h.relay_addr();
  testing::Client ca = h.NewClient(), cb = h.NewClient();
  // The receiving client takes GRO like a WireGuard client does; without it
  // the kernel splits every GSO send back into datagrams inside the relay's
  // send call, and the bench measures that split instead of the relay.
  const int one = 1;
  setsockopt(cb.sock.fd(), IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
  if (!h.BindPair(ca, cb)) {
    state.SkipWithError("handshake failed");
    return;
  }
  UdpSocket& sa = ca.sock;
  client::DiscoClient& a = *ca.disco;
  client::DiscoClient& b = *cb.disco;
  const Bytes d = a.Data(Bytes(size - geneve::kHeaderSize, 0x5a));
  // Flood: forged Binds naming A's key (the attacker knows the public key
  // and the VNI, not the secret) from 16 source ports, as fast as they go.
  std::vector<UdpSocket> attackers;
  Bytes forged;
  if (flood) {
    for (int i = 0; i < 16; ++i) attackers.push_back(UdpSocket::Open(lo).value());
    client::DiscoClient evil(disco::Dialect::kCurrent, h.server().server_key(),
                           attackers[0].local());
    evil.SetEndpoint(a.vni(), b.key());
    forged = evil.Bind(1);
    std::copy(a.key().bytes.begin(), a.key().bytes.end(), forged.begin() + 14);
  }
  std::vector<Bytes> burst(kBurst, d);

  for (auto _ : state) {
    relay::CountersSnapshot before = r->Counters();
    auto [busy0, total0] = CpuTimes(0);
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration<double>(kSeconds);
    uint64_t offered = 0;
    uint64_t flood_sent = 0;
    std::thread gen([&] {
      PinTo(1);
      std::vector<mmsghdr> msgs(64);
      std::vector<iovec> iov(64);
      sockaddr_storage ss;
      socklen_t sl = relay_addr.ToSockaddr(&ss);
      for (size_t i = 0; i < msgs.size(); ++i) {
        iov[i] = {const_cast<uint8_t*>(d.data()), d.size()};
        msgs[i].msg_hdr = {};
        msgs[i].msg_hdr.msg_name = &ss;
        msgs[i].msg_hdr.msg_namelen = sl;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      // The flood is sent from this thread, interleaved by time: a second
      // thread on this core would preempt the generator and the round would
      // measure the generator.
      const auto flood_period = std::chrono::nanoseconds(
          flood ? 1'000'000 / flood_kpps : 0);
      auto flood_next = std::chrono::steady_clock::now();
      size_t fk = 0;
      while (true) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= end) break;
        while (flood && flood_next <= now) {
          flood_sent += attackers[fk++ % attackers.size()].SendTo(forged,
                                                                  relay_addr);
          flood_next += flood_period;
        }
        for (int k = 0; k < 4; ++k) {
          if (gso) {
            if (sa.SendGso(burst, relay_addr)) offered += kBurst;
          } else {
            int n = sendmmsg(sa.fd(), msgs.data(), msgs.size(), 0);
            if (n > 0) offered += n;
          }
        }
      }
    });
    gen.join();
    // Let the relay drain what is queued in its socket.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    auto [busy1, total1] = CpuTimes(0);
    relay::CountersSnapshot after = r->Counters();
    state.SetIterationTime(secs);
    const double relayed = double(after.relayed - before.relayed);
    state.counters["Mpps"] = relayed / secs / 1e6;
    state.counters["Gbps"] = relayed * double(size) * 8 / secs / 1e9;
    state.counters["offered_Mpps"] = double(offered) / secs / 1e6;
    state.counters["relay_cpu_busy"] =
        total1 > total0 ? double(busy1 - busy0) / double(total1 - total0) : 0;
    state.counters["kernel_drops"] =
        double(after.kernel_drops - before.kernel_drops);
    state.counters["dropped"] =
        double(after.DroppedTotal() - before.DroppedTotal());
    state.counters["flood_Mpps"] = double(flood_sent) / secs / 1e6;
    state.counters["rate_limited"] =
        double(after.Dropped(relay::DropReason::kRateLimited) -
               before.Dropped(relay::DropReason::kRateLimited));
    state.counters["gso_segs_per_send"] =
        after.gso_sends > before.gso_sends
            ? double(after.gso_segments - before.gso_segments) /
                  double(after.gso_sends - before.gso_sends)
            : 0;
  }
  state.SetLabel(std::string(kind) +
                (gso ? " gso-sender" : " plain-sender") +
                (flood ? " +handshake-flood" : ""));
}

BENCHMARK(BM_Relay)
    ->ArgNames({"uring0_mmsg1", "bytes", "gso", "flood"})
    ->ArgsProduct({{0, 1}, {64, 1400}, {0, 1}, {0}})
    // The same GSO runs under a paced handshake flood (flood = kpps).
    // 20k forged handshakes per second from 16 ports: thousands of times
    // what real clients send.
    ->Args({0, 1400, 1, 20})
    ->Args({1, 1400, 1, 20})
    ->Args({0, 64, 1, 20})
    ->Args({1, 64, 1, 20})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace peerrelay::engine
