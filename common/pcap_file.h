// Packet capture files (libpcap): a writer that frames UDP datagrams as
// whole packets (link header + IPv4/IPv6 + UDP, checksums filled in) so that
// tcpdump, Wireshark and loadtest/pcap_replay read them like a capture taken on
// a wire, and a reader that takes any classic pcap or pcapng file back to
// UDP datagrams, skipping (and counting) what is not one.
//
//   auto w = PcapWriter::Open("/tmp/x.pcap", {.max_bytes = 1 << 20});
//   (*w)->Write(RealtimeNowNs(), from, to, payload, len);   // thread-safe
//
//   auto r = PcapReader::Open("/tmp/x.pcap");
//   CapturedDatagram d;
//   while ((*r)->Next(&d)) { ... d.src, d.dst, d.payload ... }
//   (*r)->stats();   // packets, udp, fragments, non_udp, ...
#ifndef PEERRELAY_COMMON_PCAP_FILE_H_
#define PEERRELAY_COMMON_PCAP_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/socket_address.h"

typedef struct pcap pcap_t;
typedef struct pcap_dumper pcap_dumper_t;

namespace peerrelay {

// The link layers the writer frames packets in and the reader understands.
enum class LinkType {
  kEthernet,  // DLT_EN10MB (optionally with 802.1Q VLAN tags)
  kLinuxSll,  // DLT_LINUX_SLL: "any" interface captures, 16-byte header
  kLinuxSll2, // DLT_LINUX_SLL2: newer "any" captures, 20-byte header
  kRaw,       // DLT_RAW: IP packets with no link header
};

struct PcapWriterOptions {
  LinkType link = LinkType::kEthernet;
  // Ethernet only: 802.1Q tags in front of the IP header (outermost first).
  std::vector<uint16_t> vlan_ids;
  // Stop writing once the file would grow past this (0: no limit). Packets
  // refused for it are counted in dropped().
  uint64_t max_bytes = 0;
};

// Writes a nanosecond-resolution classic pcap file. Every method may be
// called from any thread (one lock around the file).
class PcapWriter {
 public:
  static absl::StatusOr<std::unique_ptr<PcapWriter>> Open(
      const std::string& path, PcapWriterOptions options = {});
  ~PcapWriter();

  // One UDP datagram from `src` to `dst` (same family; an IPv4 address
  // paired with an IPv6 one is written as IPv6 with the mapped form)
  // seen at `realtime_ns` (ns since the Unix epoch). Payloads longer than
  // an IP packet can carry are cut (the packet's caplen says so). False
  // when the size limit refused it.
  bool Write(int64_t realtime_ns, const SocketAddress& src,
             const SocketAddress& dst, const uint8_t* payload, size_t len);
  // `len` bytes at `p` as the datagrams they were sent or received as: cut
  // every `seg` bytes (the last piece may be shorter; 0: one datagram), as
  // a GSO send or a GRO receive carries them. Each piece is one Write.
  void WriteSegments(int64_t realtime_ns, const SocketAddress& src,
                     const SocketAddress& dst, const uint8_t* p, size_t len,
                     size_t seg);
  // A whole link-layer frame as given (tests: fragments, non-UDP).
  bool WriteFrame(int64_t realtime_ns, const uint8_t* frame, size_t len);
  // Flushes the stdio buffer to the file.
  void Flush();

  uint64_t packets() const;
  uint64_t bytes() const;    // file size so far
  uint64_t dropped() const;  // refused by max_bytes

 private:
  PcapWriter() = default;
  bool WriteLocked(int64_t realtime_ns, const uint8_t* frame, size_t caplen,
                   size_t len);

  PcapWriterOptions options_;
  mutable std::mutex mu_;
  pcap_t* dead_ = nullptr;
  pcap_dumper_t* dumper_ = nullptr;
  uint64_t packets_ = 0;
  uint64_t bytes_ = 0;
  uint64_t dropped_ = 0;
  std::vector<uint8_t> frame_;  // scratch, under mu_
};

// Builds the frame Write() would write (link header, IP, UDP, payload):
// exposed for tests that want to alter one before WriteFrame.
std::vector<uint8_t> BuildUdpFrame(const PcapWriterOptions& o,
                                   const SocketAddress& src,
                                   const SocketAddress& dst,
                                   const uint8_t* payload, size_t len);

struct CapturedDatagram {
  int64_t ts_ns = 0;  // capture time, ns since the Unix epoch
  SocketAddress src, dst;
  const uint8_t* payload = nullptr;  // valid until the next Next()
  size_t len = 0;                    // bytes captured of the payload
  bool truncated = false;            // the capture holds fewer than sent
};

struct PcapReadStats {
  uint64_t packets = 0;        // records in the file
  uint64_t udp = 0;            // returned by Next()
  uint64_t truncated = 0;      // of those, cut short by the snap length
  uint64_t fragments = 0;      // IPv4/IPv6 fragments (skipped)
  uint64_t non_ip = 0;         // ARP, LLDP, ... (skipped)
  uint64_t non_udp = 0;        // TCP, ICMP, ... (skipped)
  uint64_t malformed = 0;      // headers that do not parse (skipped)
};

class PcapReader {
 public:
  // Classic pcap (micro- or nanosecond) and pcapng; the link type must be
  // one of LinkType's, or BSD loopback (DLT_NULL / DLT_LOOP), or
  // DLT_IPV4 / DLT_IPV6.
  static absl::StatusOr<std::unique_ptr<PcapReader>> Open(
      const std::string& path);
  // The same for a capture held in memory (the fuzzer, tests).
  static absl::StatusOr<std::unique_ptr<PcapReader>> OpenBytes(
      std::string bytes);
  ~PcapReader();

  // The next UDP datagram; false at the end of the file (or on a read
  // error: see error()).
  bool Next(CapturedDatagram* out);
  const PcapReadStats& stats() const { return stats_; }
  // Empty, or why reading stopped early.
  const std::string& error() const { return error_; }
  // "EN10MB", "LINUX_SLL", ... as libpcap names it.
  std::string link_name() const;

 private:
  PcapReader() = default;
  // Refuses link types Next() cannot decode.
  static absl::StatusOr<std::unique_ptr<PcapReader>> Checked(
      std::unique_ptr<PcapReader> r, const std::string& name);
  // Decodes one record; true when it was a whole UDP datagram.
  bool Decode(const uint8_t* p, size_t caplen, size_t wirelen,
              CapturedDatagram* out);
  bool DecodeIp(const uint8_t* p, size_t caplen, size_t wirelen,
                CapturedDatagram* out);

  std::string bytes_;  // OpenBytes: the capture libpcap reads from
  pcap_t* pcap_ = nullptr;
  int dlt_ = 0;
  PcapReadStats stats_;
  std::string error_;
};

}  // namespace peerrelay

#endif  // PEERRELAY_COMMON_PCAP_FILE_H_
