// The capture reader (common/pcap_file.h) on hostile files: classic pcap
// and pcapng headers, every link type it takes, IPv4/IPv6/UDP headers cut
// anywhere. libpcap parses the file format; our code decodes the frames.
// Invariants: no crash or sanitizer report; every datagram returned lies
// within the record it came from (ASan checks the reads), is at most 64 KiB,
// and the reader's statistics add up.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/pcap_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = peerrelay::PcapReader::OpenBytes(
      std::string(reinterpret_cast<const char*>(data), size));
  if (!r.ok()) return 0;
  peerrelay::CapturedDatagram d;
  uint64_t returned = 0, truncated = 0;
  uint64_t sum = 0;
  while ((*r)->Next(&d)) {
    ++returned;
    if (d.truncated) ++truncated;
    if (d.len > 65535) __builtin_trap();
    // Touch every byte: ASan reports a payload pointing past its record.
    for (size_t i = 0; i < d.len; ++i) sum += d.payload[i];
  }
  const peerrelay::PcapReadStats& s = (*r)->stats();
  if (s.udp != returned || s.truncated != truncated) __builtin_trap();
  if (s.udp + s.fragments + s.non_ip + s.non_udp + s.malformed > s.packets) {
    __builtin_trap();
  }
  return sum == 0xFFFFFFFFFFFFFFFFull;  // keeps `sum` alive; never 1
}
