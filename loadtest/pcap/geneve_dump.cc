// geneve_dump: prints each datagram of a capture decoded, one line each
// (loadtest/pcap/dump.h), like tcpdump; a summary of what was skipped at the
// end on stderr.
//
//   geneve_dump [--keys=relay.key,client.key] [--port=7777] FILE
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/pcap_file.h"
#include "disco/key_file.h"
#include "common/cli.h"
#include "loadtest/pcap/dump.h"

ABSL_FLAG(std::vector<std::string>, keys, {},
          "key files (relayd --key_file format) whose secrets open disco "
          "boxes: the relay's opens every handshake");
ABSL_FLAG(int, port, 0, "only datagrams to or from this UDP port (0: all)");
ABSL_FLAG(uint64_t, count, 0, "stop after this many lines (0: all)");
ABSL_FLAG(std::string, format, "line",
          "line (one readable line per datagram) or fields (tab-separated "
          "VNI, O bit, protocol, sender key, nonce, box length, WireGuard "
          "type, counter: the columns tshark -T fields gives)");

namespace peerrelay::pcap {
namespace {

int Fail(const std::string& msg, int code) {
  std::fprintf(stderr, "geneve_dump: %s\n", msg.c_str());
  return code;
}

int Main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "prints each datagram of a pcap/pcapng capture decoded: Geneve header, "
      "disco envelope (message type with --keys), WireGuard type and "
      "counter\n  geneve_dump [--keys=F,...] [--port=N] FILE";
  const cli::Parsed parsed = cli::ParseFlags(
      argc, argv,
      {.name = "geneve_dump",
       .usage = kUsage,
       .flag_sources = {"loadtest/pcap/geneve_dump.cc"}});
  if (parsed.done()) return parsed.exit_code;
  const std::vector<char*>& rest = parsed.args;
  if (rest.size() != 2) return Fail("give one capture file", 2);
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "line" && format != "fields") {
    return Fail("--format must be line or fields", 2);
  }
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) return Fail("--port must be 0..65535", 2);
  std::vector<disco::KeyPair> secrets;
  for (const std::string& f : absl::GetFlag(FLAGS_keys)) {
    auto kp = disco::LoadKeyFile(f);
    if (!kp.ok()) return Fail(std::string(kp.status().message()), 2);
    secrets.push_back(*kp);
  }
  auto reader = PcapReader::Open(rest[1]);
  if (!reader.ok()) return Fail(std::string(reader.status().message()), 1);
  Dumper dumper(std::move(secrets));
  CapturedDatagram d;
  uint64_t lines = 0;
  const uint64_t max = absl::GetFlag(FLAGS_count);
  while ((max == 0 || lines < max) && (*reader)->Next(&d)) {
    if (port != 0 && d.src.port() != port && d.dst.port() != port) continue;
    std::string line;
    if (format == "fields") {
      line = Dumper::Fields(d.payload, d.len);
    } else {
      line = dumper.Line(d.ts_ns, d.src, d.dst, d.payload, d.len);
      if (d.truncated) line += " (truncated in the capture)";
    }
    std::printf("%s\n", line.c_str());
    ++lines;
  }
  std::fflush(stdout);
  const PcapReadStats& s = (*reader)->stats();
  std::fprintf(stderr,
               "geneve_dump: %s (%s): %lu packets, %lu UDP datagrams, %lu "
               "printed; skipped %lu fragments, %lu non-IP, %lu non-UDP, %lu "
               "malformed\n",
               rest[1], (*reader)->link_name().c_str(), s.packets, s.udp,
               lines, s.fragments, s.non_ip, s.non_udp, s.malformed);
  if (!(*reader)->error().empty()) return Fail((*reader)->error(), 1);
  return 0;
}

}  // namespace
}  // namespace peerrelay::pcap

int main(int argc, char** argv) { return peerrelay::pcap::Main(argc, argv); }
