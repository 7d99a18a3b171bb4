// loadgen: drives a relayd from outside with client pairs that behave like
// real ones, and measures what comes out the other side.
//
//   loadgen --relay=127.0.0.1:7777 --admin=127.0.0.1:9780 --token_file=T
//           --pairs=10 --size=1400 --burst=gso --duration=10s
//   loadgen --relay=... --server_key=discokey:... --client_key_file=K ...
//
// Each pair allocates (HTTP with the bearer token, or the disco allocation
// over UDP with an allowlisted key), binds with real handshakes, then sends.
// It sends only to the relay address given.
#include <sys/resource.h>


#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/pcap_file.h"
#include "common/cli.h"
#include "loadtest/loadgen/setup.h"
#include "loadtest/loadgen/traffic.h"
#include "client/wire.h"

ABSL_FLAG(std::string, relay, "", "relay address, ip:port or [ip6]:port (required)");
ABSL_FLAG(std::string, local, "",
          "the clients' IP address (their sockets bind to it, a port each); "
          "empty: loopback of the relay's family (127.0.0.1 or ::1)");
ABSL_FLAG(std::string, server_key, "",
          "relayd's discokey: (required for UDP allocation; with HTTP "
          "allocation it is read from the admin API)");
ABSL_FLAG(std::string, profile, "current", "protocol profile: current or seed");
ABSL_FLAG(std::string, admin, "127.0.0.1:9780", "relayd admin API for HTTP allocation");
ABSL_FLAG(std::string, token_file, "", "bearer token file for HTTP allocation");
ABSL_FLAG(std::string, client_key_file, "",
          "allocate over UDP with this allowlisted disco key (every pair's "
          "A client uses it) instead of HTTP");
ABSL_FLAG(int, pairs, 1, "client pairs, 1 to 10000");
ABSL_FLAG(bool, turn, false,
          "--relay is a TURN server (coturn, no authentication): each pair "
          "allocates, creates permissions and binds a channel, then sends "
          "ChannelData frames of --size bytes (at most 1000 pairs)");
ABSL_FLAG(bool, reference, false,
          "the relay is a reference relay (bench/reference_relay): no "
          "allocation, no handshake; VNIs 1..pairs");
ABSL_FLAG(int, sockets, 0, "client sockets shared by the pairs (0: two per pair, at most 2000)");
ABSL_FLAG(double, setup_rate, 500, "pairs set up per second (0: as fast as the relay answers)");
ABSL_FLAG(int, setup_threads, 1,
          "pairs set up at once, 1 to 64 (needs a socket per client: "
          "pairs <= 1000 or --sockets >= 2 x pairs)");
ABSL_FLAG(int, size, 64, "UDP payload bytes per datagram, Geneve header included (>= 40)");
ABSL_FLAG(double, rate, 0, "datagrams per second in all, paced; 0 = as fast as possible");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "how long to send");
ABSL_FLAG(uint64_t, max_datagrams, 0, "stop after sending this many (0: no cap)");
ABSL_FLAG(std::string, direction, "a2b", "a2b (one way) or both");
ABSL_FLAG(std::string, burst, "plain",
          "plain (separate datagrams, sendmmsg) or gso (one UDP_SEGMENT send per burst)");
ABSL_FLAG(int, burst_size, 44, "datagrams per send, 1 to 64 (WireGuard sends GSO bursts of up to 44)");
ABSL_FLAG(bool, check_payload, false, "check every byte of every datagram received");
ABSL_FLAG(std::string, rx, "headers",
          "headers: read every datagram's header (exact order and latency); "
          "count: read only the first header of each GRO-coalesced message "
          "and count the rest (MSG_TRUNC), so one core can outrun the relay");
ABSL_FLAG(absl::Duration, drain, absl::Milliseconds(500), "keep receiving this long after the last send");
ABSL_FLAG(double, forge_rate, 0,
          "forged handshakes per second during the run (Binds naming a real "
          "client key with a box that cannot open), to measure relaying "
          "under a handshake flood");
ABSL_FLAG(int, forge_sockets, 256, "source ports the forged handshakes come from");
ABSL_FLAG(int, cpu, -1, "pin the generator to this CPU (-1: not pinned)");
ABSL_FLAG(int, relay_cpu, -1, "the relay's CPU on this host, for its busy share (-1: unknown)");
ABSL_FLAG(std::string, json, "", "write the results as JSON to this file ('-': stdout)");
ABSL_FLAG(bool, quiet, false, "no progress lines");
ABSL_FLAG(std::string, pcap_out, "",
          "record every datagram sent and received (setup and traffic) to this "
          "pcap file (Ethernet + IP/UDP framing, ns timestamps); needs --rx=headers");
ABSL_FLAG(uint64_t, pcap_max_bytes, 256ull << 20,
          "stop recording once the capture reaches this size");
ABSL_FLAG(int, setup_rounds, 3,
          "handshake rounds per client (and per re-bind) before a pair "
          "counts as failed, 1 to 100; more for a lossy path");
ABSL_FLAG(int, rebinds, 0,
          "after binding, re-bind every pair this many times with new "
          "generations (current profile only; churn)");

namespace peerrelay::loadgen {
namespace {

int Fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "loadgen: %s\n", msg.c_str());
  return code;
}

std::string Us(int64_t ns) { return absl::StrCat(ns / 1000, "us"); }

int Main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "load generator for relayd: client pairs with real handshakes, paced "
      "traffic, delivered rate, loss, order and latency\n"
      "  loadgen --relay=IP:PORT --admin=IP:PORT --token_file=F [--pairs=N] "
      "[--size=B] [--rate=PPS] [--burst=plain|gso] [--duration=5s] [--json=F]";
  const cli::Parsed parsed = cli::ParseFlags(
      argc, argv,
      {.name = "loadgen",
       .usage = kUsage,
       .flag_sources = {"loadtest/loadgen/loadgen.cc"}});
  if (parsed.done()) return parsed.exit_code;
  const std::vector<char*>& rest = parsed.args;
  if (rest.size() > 1) return Fail(absl::StrCat("unexpected argument '", rest[1], "'"), 2);

  SetupOptions so;
  auto relay = SocketAddress::Parse(absl::GetFlag(FLAGS_relay));
  if (!relay.ok()) return Fail("--relay must be ip:port or [ip6]:port", 2);
  so.relay = *relay;
  const std::string local = absl::GetFlag(FLAGS_local);
  if (!local.empty()) {
    auto l = SocketAddress::ParseWithDefaultPort(local, 0);
    if (!l.ok() || l->port() != 0 || l->is_ipv4() != so.relay.is_ipv4()) {
      return Fail("--local must be an IP address of the relay's family", 2);
    }
    so.local = *l;
  }
  if (!disco::ParseDialect(absl::GetFlag(FLAGS_profile), &so.dialect)) {
    return Fail("--profile must be current or seed", 2);
  }
  so.pairs = absl::GetFlag(FLAGS_pairs);
  if (so.pairs < 1 || so.pairs > 10000) return Fail("--pairs must be 1..10000", 2);
  so.sockets = absl::GetFlag(FLAGS_sockets);
  so.rate = absl::GetFlag(FLAGS_setup_rate);
  so.threads = absl::GetFlag(FLAGS_setup_threads);
  if (so.threads < 1 || so.threads > 64) return Fail("--setup_threads must be 1..64", 2);
  TrafficOptions to;
  to.size = size_t(absl::GetFlag(FLAGS_size));
  if (absl::GetFlag(FLAGS_size) < int(kMinSize) || to.size > 65000) {
    return Fail(absl::StrCat("--size must be ", kMinSize, "..65000"), 2);
  }
  to.rate = absl::GetFlag(FLAGS_rate);
  to.duration_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration));
  if (to.rate < 0 || to.duration_s <= 0 || to.duration_s > 86400) {
    return Fail("--rate must be >= 0 and --duration 0..24h", 2);
  }
  to.max_datagrams = absl::GetFlag(FLAGS_max_datagrams);
  const std::string dir = absl::GetFlag(FLAGS_direction);
  if (dir != "a2b" && dir != "both") return Fail("--direction must be a2b or both", 2);
  to.both_ways = dir == "both";
  const std::string burst = absl::GetFlag(FLAGS_burst);
  if (burst != "plain" && burst != "gso") return Fail("--burst must be plain or gso", 2);
  to.gso = burst == "gso";
  to.burst = absl::GetFlag(FLAGS_burst_size);
  if (to.burst < 1 || to.burst > 64) return Fail("--burst_size must be 1..64", 2);
  if (to.gso && to.size * size_t(to.burst) > 65000) {
    return Fail("--size x --burst_size must stay under 64 KiB with --burst=gso", 2);
  }
  to.check_payload = absl::GetFlag(FLAGS_check_payload);
  const std::string rx = absl::GetFlag(FLAGS_rx);
  if (rx != "headers" && rx != "count") return Fail("--rx must be headers or count", 2);
  to.count_only = rx == "count";
  if (to.count_only && to.check_payload) {
    return Fail("--check_payload needs --rx=headers", 2);
  }
  to.drain_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_drain));
  to.forge_rate = absl::GetFlag(FLAGS_forge_rate);
  to.forge_sockets = absl::GetFlag(FLAGS_forge_sockets);
  if (to.forge_rate < 0 || to.forge_sockets < 1) {
    return Fail("--forge_rate must be >= 0 and --forge_sockets >= 1", 2);
  }
  to.cpu = absl::GetFlag(FLAGS_cpu);
  to.relay_cpu = absl::GetFlag(FLAGS_relay_cpu);
  std::FILE* progress = absl::GetFlag(FLAGS_quiet) ? nullptr : stderr;

  // Enough descriptors for the sockets.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  so.rounds = absl::GetFlag(FLAGS_setup_rounds);
  if (so.rounds < 1 || so.rounds > 100) return Fail("--setup_rounds must be 1..100", 2);
  so.rebinds = absl::GetFlag(FLAGS_rebinds);
  if (so.rebinds < 0 || so.rebinds > 1000) return Fail("--rebinds must be 0..1000", 2);
  if (so.rebinds > 0 && so.dialect != disco::Dialect::kCurrent) {
    return Fail("--rebinds needs --profile=current (the seed dialect ignores "
                "handshakes on a bound side)", 2);
  }
  std::unique_ptr<PcapWriter> capture;
  if (const std::string pcap = absl::GetFlag(FLAGS_pcap_out); !pcap.empty()) {
    if (to.count_only) return Fail("--pcap_out needs --rx=headers", 2);
    auto w = PcapWriter::Open(
        pcap, {.max_bytes = absl::GetFlag(FLAGS_pcap_max_bytes)});
    if (!w.ok()) return Fail(std::string(w.status().message()), 2);
    capture = std::move(*w);
    so.capture = capture.get();
    to.capture = capture.get();
  }
  so.reference = absl::GetFlag(FLAGS_reference);
  so.turn = absl::GetFlag(FLAGS_turn);
  to.turn = so.turn;
  if (so.reference && so.turn) return Fail("--reference and --turn exclude each other", 2);
  if (so.turn && so.pairs > 1000) return Fail("--turn takes at most 1000 pairs", 2);
  if (so.reference || so.turn) {
    so.server_key = disco::KeyPair::Generate().public_key();  // unused
  } else {
    absl::Status a = ConfigureAllocation(
        {.admin = absl::GetFlag(FLAGS_admin),
         .token_file = absl::GetFlag(FLAGS_token_file),
         .server_key = absl::GetFlag(FLAGS_server_key),
         .client_key_file = absl::GetFlag(FLAGS_client_key_file)},
        &so);
    if (!a.ok()) return Fail(std::string(a.message()), absl::IsUnavailable(a) ? 1 : 2);
  }

  absl::StatusOr<Setup> setup = SetUp(so, progress);
  if (!setup.ok()) return Fail(absl::StrCat("setup: ", setup.status().message()));
  for (const std::string& f : setup->failures) {
    std::fprintf(stderr, "loadgen: setup failed: %s\n", f.c_str());
  }
  if (setup->pairs.empty()) return Fail("no pair could be set up");
  to.capture_peer = so.relay;
  to.local = so.local;
  TrafficResult r = RunTraffic(*setup, so.relay, to, progress);
  uint64_t to_relay = r.sent + r.forged;
  for (const UdpSocket& s : setup->sockets) to_relay += s.sent_datagrams();
  if (capture != nullptr) {
    capture->Flush();
    std::fprintf(stderr, "loadgen: recorded %lu datagrams (%lu bytes) to %s%s\n",
                 capture->packets(), capture->bytes(),
                 absl::GetFlag(FLAGS_pcap_out).c_str(),
                 capture->dropped() > 0
                     ? absl::StrCat("; ", capture->dropped(),
                                    " not recorded (--pcap_max_bytes)").c_str()
                     : "");
  }

  const double loss = r.sent > 0 ? 100.0 * double(r.lost) / double(r.sent) : 0;
  std::printf(
      "loadgen: %zu pairs bound (%zu failed) in %.2fs; sent %lu datagrams of "
      "%zu B in %.2fs (%s%s, %s)\n"
      "delivered %lu: %.3f Mpps, %.3f Gbit/s; lost %lu (%.3f%%), duplicates "
      "%lu, reordered %lu, corrupted %lu, misdelivered %lu, send errors %lu\n"
      "latency p50 %s p99 %s p99.9 %s max %s\n"
      "cpu busy: relay %s, generator %s: %s\n",
      setup->pairs.size(), setup->failures.size(), setup->seconds, r.sent,
      to.size, r.seconds, to.gso ? "gso bursts of " : "plain, batches of ",
      std::to_string(to.burst).c_str(), to.both_ways ? "both ways" : "a2b",
      r.received, r.delivered_pps() / 1e6, r.delivered_gbps(), r.lost, loss,
      r.duplicates, r.reordered, r.corrupted, r.misdelivered, r.send_errors,
      Us(r.p50_ns).c_str(), Us(r.p99_ns).c_str(), Us(r.p999_ns).c_str(),
      Us(r.max_ns).c_str(),
      r.relay_busy < 0 ? "-" : absl::StrCat(int(r.relay_busy * 100 + 0.5), "%").c_str(),
      r.generator_busy < 0 ? "-" : absl::StrCat(int(r.generator_busy * 100 + 0.5), "%").c_str(),
      r.bound.c_str());
  std::fflush(stdout);
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    nlohmann::json j = {
        {"pairs", setup->pairs.size()},
        {"pairs_failed", setup->failures.size()},
        {"setup_seconds", setup->seconds},
        {"size", to.size},
        {"burst", to.gso ? "gso" : "plain"},
        {"burst_size", to.burst},
        {"direction", to.both_ways ? "both" : "a2b"},
        {"rx", to.count_only ? "count" : "headers"},
        {"rate", to.rate},
        {"seconds", r.seconds},
        {"sent", r.sent},
        {"sent_bytes", r.sent_bytes},
        // Every datagram sent to the relay: setup (allocation, handshakes,
        // probes), traffic and forged ones (soak accounting).
        {"datagrams_to_relay", to_relay},
        {"send_errors", r.send_errors},
        {"received", r.received},
        {"received_bytes", r.received_bytes},
        {"delivered_mpps", r.delivered_pps() / 1e6},
        {"delivered_gbps", r.delivered_gbps()},
        {"lost", r.lost},
        {"loss_percent", loss},
        {"duplicates", r.duplicates},
        {"reordered", r.reordered},
        {"corrupted", r.corrupted},
        {"misdelivered", r.misdelivered},
        {"foreign", r.foreign},
        {"forged", r.forged},
        {"handshakes_per_second",
         setup->seconds > 0 ? 2.0 * double(setup->pairs.size()) / setup->seconds : 0},
        {"latency_ns", {{"p50", r.p50_ns}, {"p99", r.p99_ns}, {"p999", r.p999_ns}, {"max", r.max_ns}}},
        {"relay_busy", r.relay_busy},
        {"generator_busy", r.generator_busy},
        {"bound", r.bound},
    };
    if (json_path == "-") {
      std::printf("%s\n", j.dump(2).c_str());
    } else if (std::FILE* f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "%s\n", j.dump(2).c_str());
      std::fclose(f);
    } else {
      return Fail(absl::StrCat("cannot write ", json_path));
    }
  }
  return 0;
}

}  // namespace
}  // namespace peerrelay::loadgen

int main(int argc, char** argv) { return peerrelay::loadgen::Main(argc, argv); }
