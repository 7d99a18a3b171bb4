// pcap_replay: replays the relay sessions of a capture against a running
// relayd (loadtest/pcap/replayer.h) and reports, per session and in total,
// what arrived: loss, duplication, reordering, corruption, misdelivery,
// latency. Exit 0 when nothing went wrong, 1 otherwise, 2 for bad flags.
//
//   pcap_replay --relay=127.0.0.1:7777 --admin=127.0.0.1:9780
//     --token_file=token --speed=10 --duration=60s capture.pcap
//   pcap_replay --list capture.pcap     # what is in it, no relay needed
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "disco/key.h"
#include "disco/message.h"
#include "common/cli.h"
#include "loadtest/loadgen/setup.h"
#include "loadtest/pcap/replayer.h"
#include "loadtest/pcap/sessions.h"

ABSL_FLAG(std::string, relay, "", "relayd's UDP address, ip:port or [ip6]:port");
ABSL_FLAG(std::string, admin, "127.0.0.1:9780",
          "relayd's admin API: HTTP allocation and the drop counters");
ABSL_FLAG(std::string, token_file, "", "bearer token file for the admin API");
ABSL_FLAG(std::string, server_key, "",
          "relayd's disco key (discokey:...); fetched from --admin when empty");
ABSL_FLAG(std::string, client_key_file, "",
          "allocate over UDP (disco) with this allowlisted key instead of HTTP");
ABSL_FLAG(std::string, profile, "current", "protocol profile: current or seed");
ABSL_FLAG(bool, reference, false,
          "replay against bench/reference_relay: no allocation or handshake; "
          "session i uses VNI i + 1");
ABSL_FLAG(double, speed, 1,
          "replay at this multiple of the captured pace; 0: as fast as possible");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "loop the capture for this long (0: one pass)");
ABSL_FLAG(absl::Duration, drain, absl::Seconds(1),
          "keep receiving this long after the last send");
ABSL_FLAG(bool, hostile, false,
          "also replay the datagrams that are not valid relay traffic, as "
          "they are, and check relayd answered none and dropped each");
ABSL_FLAG(bool, hostile_all, false,
          "replay every datagram sent to the relay as it is, with no session "
          "set up (all must be dropped, none answered)");
ABSL_FLAG(bool, exclusive, true,
          "nothing else runs against this relayd: its drop counter must grow "
          "by exactly the hostile datagrams sent (false: at least)");
ABSL_FLAG(std::string, capture_relay, "",
          "the relay's address in the capture (default: inferred)");
ABSL_FLAG(uint64_t, max_datagrams, 0, "read at most this many datagrams (0: all)");
ABSL_FLAG(bool, list, false, "print the sessions found and exit");
ABSL_FLAG(std::string, json, "", "write the results as JSON to this file ('-': stdout)");
ABSL_FLAG(bool, quiet, false, "no progress lines");

namespace peerrelay::pcap {
namespace {

int Fail(const std::string& msg, int code) {
  std::fprintf(stderr, "pcap_replay: %s\n", msg.c_str());
  return code;
}

std::string Us(int64_t ns) { return absl::StrCat(ns / 1000, "us"); }

void PrintCapture(const Capture& c) {
  std::printf(
      "capture %s (%s): %lu packets, %lu UDP datagrams (%lu Geneve); skipped "
      "%lu fragments, %lu non-IP, %lu non-UDP, %lu malformed, %lu truncated\n"
      "relay %s: %zu sessions, %zu datagrams not valid relay traffic, %lu "
      "not to or from the relay\n",
      c.path.c_str(), c.link.c_str(), c.read.packets, c.read.udp, c.geneve,
      c.read.fragments, c.read.non_ip, c.read.non_udp, c.read.malformed,
      c.read.truncated, c.relay ? c.relay->ToString().c_str() : "?",
      c.sessions.size(), c.hostile.size(), c.not_relay);
  for (size_t i = 0; i < c.sessions.size(); ++i) {
    const Session& s = c.sessions[i];
    uint64_t from[2] = {0, 0};
    for (const Item& it : s.items) ++from[it.side];
    std::printf(
        "  session %zu: VNI %u, A %s%s, B %s%s; handshake %lu datagrams, data "
        "%lu captured (%.3fs); replay %lu from A, %lu from B\n",
        i, s.vni, s.has_client[0] ? s.client[0].ToString().c_str() : "?",
        s.from_relay_leg[0] ? " (relay leg)" : "",
        s.has_client[1] ? s.client[1].ToString().c_str() : "?",
        s.from_relay_leg[1] ? " (relay leg)" : "", s.control, s.data,
        double(s.last_ns - s.first_ns) / 1e9, from[0], from[1]);
  }
}

nlohmann::json FlowJson(const FlowStats& f) {
  return {{"sent", f.sent},           {"received", f.received},
          {"lost", f.lost},           {"duplicates", f.duplicates},
          {"reordered", f.reordered}, {"corrupted", f.corrupted},
          {"misdelivered", f.misdelivered},
          {"p50_us", f.p50_ns / 1000}, {"p99_us", f.p99_ns / 1000},
          {"p999_us", f.p999_ns / 1000}, {"max_us", f.max_ns / 1000}};
}

int Main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "replays the relay sessions of a pcap/pcapng capture against relayd: "
      "fresh endpoints and handshakes, the captured data with new VNIs, "
      "every datagram checked on arrival\n"
      "  pcap_replay --relay=IP:PORT --admin=IP:PORT --token_file=F "
      "[--speed=1] [--duration=0] [--hostile] FILE\n"
      "  pcap_replay --list FILE";
  const cli::Parsed parsed = cli::ParseFlags(
      argc, argv,
      {.name = "pcap_replay",
       .usage = kUsage,
       .flag_sources = {"loadtest/pcap/pcap_replay.cc"}});
  if (parsed.done()) return parsed.exit_code;
  const std::vector<char*>& rest = parsed.args;
  if (rest.size() != 2) return Fail("give one capture file", 2);

  ReplayOptions o;
  o.speed = absl::GetFlag(FLAGS_speed);
  o.duration_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration));
  o.drain_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_drain));
  if (o.speed < 0 || o.duration_s < 0 || o.duration_s > 7 * 86400 ||
      o.drain_s < 0 || o.drain_s > 60) {
    return Fail("--speed and --duration must be >= 0 (--duration at most 7 "
                "days, --drain at most 60s)", 2);
  }
  o.hostile = absl::GetFlag(FLAGS_hostile);
  o.hostile_all = absl::GetFlag(FLAGS_hostile_all);
  o.exclusive = absl::GetFlag(FLAGS_exclusive);
  FindOptions fo;
  if (const std::string r = absl::GetFlag(FLAGS_capture_relay); !r.empty()) {
    auto a = SocketAddress::Parse(r);
    if (!a.ok()) return Fail("--capture_relay must be ip:port or [ip6]:port", 2);
    fo.relay = *a;
  }
  absl::StatusOr<Capture> c =
      LoadCapture(rest[1], absl::GetFlag(FLAGS_max_datagrams));
  if (!c.ok()) return Fail(std::string(c.status().message()), 1);
  if (absl::Status s = FindSessions(&*c, fo); !s.ok()) {
    return Fail(std::string(s.message()), 1);
  }
  if (absl::GetFlag(FLAGS_list)) {
    PrintCapture(*c);
    return 0;
  }

  auto relay = SocketAddress::Parse(absl::GetFlag(FLAGS_relay));
  if (!relay.ok()) return Fail("--relay must be ip:port or [ip6]:port", 2);
  o.setup.relay = *relay;
  if (!disco::ParseDialect(absl::GetFlag(FLAGS_profile), &o.setup.dialect)) {
    return Fail("--profile must be current or seed", 2);
  }
  o.setup.rate = 0;
  o.setup.reference = absl::GetFlag(FLAGS_reference);
  if (o.setup.reference) {
    o.setup.server_key = disco::KeyPair::Generate().public_key();  // unused
    if (o.hostile || o.hostile_all) {
      return Fail("--hostile needs relayd (its drop counters)", 2);
    }
  } else if (!o.hostile_all) {
    absl::Status a = loadgen::ConfigureAllocation(
        {.admin = absl::GetFlag(FLAGS_admin),
         .token_file = absl::GetFlag(FLAGS_token_file),
         .server_key = absl::GetFlag(FLAGS_server_key),
         .client_key_file = absl::GetFlag(FLAGS_client_key_file)},
        &o.setup);
    if (!a.ok()) return Fail(std::string(a.message()), absl::IsUnavailable(a) ? 1 : 2);
  }
  if (o.hostile || o.hostile_all) {
    // The drop check reads /metrics.
    o.metrics_admin = absl::GetFlag(FLAGS_admin);
    o.metrics_token = o.setup.token;
  }
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  if (!quiet) PrintCapture(*c);
  absl::StatusOr<ReplayResult> r = Replay(*c, o, quiet ? nullptr : stderr);
  if (!r.ok()) return Fail(std::string(r.status().message()), 1);

  for (size_t i = 0; i < r->sessions.size(); ++i) {
    const SessionResult& s = r->sessions[i];
    const FlowStats& f = s.stats;
    if (s.vni == 0) {
      std::printf("session %zu (captured VNI %u): not replayed: %s\n", i,
                  s.captured_vni, s.failure.c_str());
      continue;
    }
    std::printf(
        "session %zu (captured VNI %u -> %u): sent %lu received %lu lost %lu "
        "dup %lu reordered %lu corrupted %lu misdelivered %lu; latency p50 %s "
        "p99 %s max %s\n",
        i, s.captured_vni, s.vni, f.sent, f.received, f.lost, f.duplicates,
        f.reordered, f.corrupted, f.misdelivered, Us(f.p50_ns).c_str(),
        Us(f.p99_ns).c_str(), Us(f.max_ns).c_str());
  }
  const FlowStats& t = r->total;
  std::printf(
      "total: %zu sessions, %lu loops in %.2fs: sent %lu received %lu lost %lu "
      "dup %lu reordered %lu corrupted %lu misdelivered %lu send errors %lu; "
      "latency p50 %s p99 %s p99.9 %s max %s; %lu datagrams to the relay in "
      "all\n",
      r->sessions.size(), r->loops, r->seconds, t.sent, t.received, t.lost,
      t.duplicates, t.reordered, t.corrupted, t.misdelivered, r->send_errors,
      Us(t.p50_ns).c_str(), Us(t.p99_ns).c_str(), Us(t.p999_ns).c_str(),
      Us(t.max_ns).c_str(), r->datagrams_to_relay);
  if (o.hostile || o.hostile_all) {
    std::printf("hostile: sent %lu, answered %lu, relayd counted %s drops: %s\n",
                r->hostile_sent, r->hostile_answered,
                r->drops_counted < 0 ? "?" : std::to_string(r->drops_counted).c_str(),
                r->hostile_ok ? "ok" : "FAILED");
  }
  std::printf("verdict: %s\n", r->ok() ? "PASS" : "FAIL");
  std::fflush(stdout);

  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    nlohmann::json j = {{"capture", c->path},
                        {"sessions_found", c->sessions.size()},
                        {"loops", r->loops},
                        {"seconds", r->seconds},
                        {"total", FlowJson(t)},
                        {"send_errors", r->send_errors},
                        {"datagrams_to_relay", r->datagrams_to_relay},
                        {"hostile_sent", r->hostile_sent},
                        {"hostile_answered", r->hostile_answered},
                        {"drops_counted", r->drops_counted},
                        {"hostile_ok", r->hostile_ok},
                        {"ok", r->ok()}};
    nlohmann::json sessions = nlohmann::json::array();
    for (const SessionResult& s : r->sessions) {
      nlohmann::json js = FlowJson(s.stats);
      js["captured_vni"] = s.captured_vni;
      js["vni"] = s.vni;
      if (!s.failure.empty()) js["failure"] = s.failure;
      sessions.push_back(js);
    }
    j["sessions"] = sessions;
    if (path == "-") {
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::ofstream out(path);
      out << j.dump(2) << "\n";
      if (!out) return Fail(absl::StrCat("cannot write ", path), 1);
    }
  }
  return r->ok() ? 0 : 1;
}

}  // namespace
}  // namespace peerrelay::pcap

int main(int argc, char** argv) { return peerrelay::pcap::Main(argc, argv); }
