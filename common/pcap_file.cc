#include "common/pcap_file.h"

#include <pcap/pcap.h>
#include <pcap/dlt.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace peerrelay {
namespace {

constexpr int kSnapLen = 262144;
constexpr uint64_t kFileHeaderBytes = 24;
constexpr uint64_t kRecordHeaderBytes = 16;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86DD;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88A8;
constexpr uint16_t kEtherVlanOld = 0x9100;
constexpr uint8_t kIpProtoUdp = 17;
constexpr size_t kUdpHeader = 8;
// The largest UDP payload one IP packet carries.
constexpr size_t kMaxPayload4 = 65535 - 20 - kUdpHeader;
constexpr size_t kMaxPayload6 = 65535 - kUdpHeader;
// Locally administered MACs: "client side" and "relay side" of a wire.
constexpr uint8_t kMacA[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};
constexpr uint8_t kMacB[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x02};

void Put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void Put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
uint16_t Get16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

// One's-complement sum of `len` bytes, big-endian 16-bit words.
uint32_t SumWords(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += Get16(p + i);
  if (len % 2 == 1) sum += uint32_t(p[len - 1]) << 8;
  return sum;
}
uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(~sum);
}

void PutLinkHeader(const PcapWriterOptions& o, uint16_t ethertype,
                   std::vector<uint8_t>* f) {
  switch (o.link) {
    case LinkType::kEthernet: {
      f->insert(f->end(), kMacB, kMacB + 6);  // destination
      f->insert(f->end(), kMacA, kMacA + 6);  // source
      for (uint16_t id : o.vlan_ids) {
        uint8_t tag[4];
        Put16(tag, kEtherVlan);
        Put16(tag + 2, uint16_t(id & 0x0FFF));
        f->insert(f->end(), tag, tag + 4);
      }
      uint8_t t[2];
      Put16(t, ethertype);
      f->insert(f->end(), t, t + 2);
      break;
    }
    case LinkType::kLinuxSll: {
      uint8_t h[16] = {};
      Put16(h + 0, 0);       // packet type: to us
      Put16(h + 2, 1);       // ARPHRD_ETHER
      Put16(h + 4, 6);       // address length
      std::memcpy(h + 6, kMacA, 6);
      Put16(h + 14, ethertype);
      f->insert(f->end(), h, h + 16);
      break;
    }
    case LinkType::kLinuxSll2: {
      uint8_t h[20] = {};
      Put16(h + 0, ethertype);
      Put32(h + 4, 1);       // interface index
      Put16(h + 8, 1);       // ARPHRD_ETHER
      h[10] = 0;             // packet type: to us
      h[11] = 6;             // address length
      std::memcpy(h + 12, kMacA, 6);
      f->insert(f->end(), h, h + 20);
      break;
    }
    case LinkType::kRaw:
      break;
  }
}

int DltOf(LinkType l) {
  switch (l) {
    case LinkType::kEthernet: return DLT_EN10MB;
    case LinkType::kLinuxSll: return DLT_LINUX_SLL;
    case LinkType::kLinuxSll2: return DLT_LINUX_SLL2;
    case LinkType::kRaw: return DLT_RAW;
  }
  return DLT_EN10MB;
}

}  // namespace

std::vector<uint8_t> BuildUdpFrame(const PcapWriterOptions& o,
                                   const SocketAddress& src,
                                   const SocketAddress& dst,
                                   const uint8_t* payload, size_t len) {
  const bool v4 = src.is_ipv4() && dst.is_ipv4();
  len = std::min(len, v4 ? kMaxPayload4 : kMaxPayload6);
  std::vector<uint8_t> f;
  f.reserve(64 + len);
  PutLinkHeader(o, v4 ? kEtherIpv4 : kEtherIpv6, &f);
  const size_t ip_at = f.size();
  const uint16_t udp_len = uint16_t(kUdpHeader + len);
  uint32_t pseudo = 0;
  if (v4) {
    uint8_t h[20] = {};
    h[0] = 0x45;
    Put16(h + 2, uint16_t(20 + udp_len));
    Put16(h + 6, 0x4000);  // don't fragment
    h[8] = 64;
    h[9] = kIpProtoUdp;
    std::memcpy(h + 12, src.bytes().data() + 12, 4);
    std::memcpy(h + 16, dst.bytes().data() + 12, 4);
    Put16(h + 10, Fold(SumWords(h, 20, 0)));
    f.insert(f.end(), h, h + 20);
    pseudo = SumWords(h + 12, 8, pseudo);
  } else {
    uint8_t h[40] = {};
    h[0] = 0x60;
    Put16(h + 4, udp_len);
    h[6] = kIpProtoUdp;
    h[7] = 64;
    std::memcpy(h + 8, src.bytes().data(), 16);
    std::memcpy(h + 24, dst.bytes().data(), 16);
    f.insert(f.end(), h, h + 40);
    pseudo = SumWords(h + 8, 32, pseudo);
  }
  (void)ip_at;
  pseudo += kIpProtoUdp;
  pseudo += udp_len;
  uint8_t u[kUdpHeader] = {};
  Put16(u + 0, src.port());
  Put16(u + 2, dst.port());
  Put16(u + 4, udp_len);
  uint16_t sum = Fold(SumWords(payload, len, SumWords(u, kUdpHeader, pseudo)));
  if (sum == 0) sum = 0xFFFF;  // 0 means "no checksum" in UDP
  Put16(u + 6, sum);
  f.insert(f.end(), u, u + kUdpHeader);
  f.insert(f.end(), payload, payload + len);
  return f;
}

absl::StatusOr<std::unique_ptr<PcapWriter>> PcapWriter::Open(
    const std::string& path, PcapWriterOptions options) {
  if (!options.vlan_ids.empty() && options.link != LinkType::kEthernet) {
    return absl::InvalidArgumentError("VLAN tags need the Ethernet link type");
  }
  std::unique_ptr<PcapWriter> w(new PcapWriter());
  w->options_ = std::move(options);
  w->dead_ = pcap_open_dead_with_tstamp_precision(
      DltOf(w->options_.link), kSnapLen, PCAP_TSTAMP_PRECISION_NANO);
  if (w->dead_ == nullptr) return absl::InternalError("pcap_open_dead failed");
  w->dumper_ = pcap_dump_open(w->dead_, path.c_str());
  if (w->dumper_ == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write capture ", path, ": ",
                     pcap_geterr(w->dead_)));
  }
  w->bytes_ = kFileHeaderBytes;
  return w;
}

PcapWriter::~PcapWriter() {
  if (dumper_ != nullptr) pcap_dump_close(dumper_);
  if (dead_ != nullptr) pcap_close(dead_);
}

bool PcapWriter::WriteLocked(int64_t realtime_ns, const uint8_t* frame,
                             size_t caplen, size_t len) {
  const uint64_t need = kRecordHeaderBytes + caplen;
  if (options_.max_bytes > 0 && bytes_ + need > options_.max_bytes) {
    ++dropped_;
    return false;
  }
  pcap_pkthdr h{};
  h.ts.tv_sec = realtime_ns / 1'000'000'000;
  h.ts.tv_usec = realtime_ns % 1'000'000'000;  // nanoseconds: NANO dumper
  h.caplen = uint32_t(caplen);
  h.len = uint32_t(len);
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, frame);
  bytes_ += need;
  ++packets_;
  return true;
}

bool PcapWriter::Write(int64_t realtime_ns, const SocketAddress& src,
                       const SocketAddress& dst, const uint8_t* payload,
                       size_t len) {
  std::lock_guard<std::mutex> l(mu_);
  if (options_.max_bytes > 0 &&
      bytes_ + kRecordHeaderBytes + len > options_.max_bytes) {
    ++dropped_;  // before building the frame: a full file costs nothing
    return false;
  }
  frame_ = BuildUdpFrame(options_, src, dst, payload, len);
  return WriteLocked(realtime_ns, frame_.data(),
                     std::min(frame_.size(), size_t(kSnapLen)), frame_.size());
}

void PcapWriter::WriteSegments(int64_t realtime_ns, const SocketAddress& src,
                               const SocketAddress& dst, const uint8_t* p,
                               size_t len, size_t seg) {
  if (seg == 0) seg = len;
  for (size_t off = 0; off < len; off += seg) {
    Write(realtime_ns, src, dst, p + off, std::min(seg, len - off));
  }
}

bool PcapWriter::WriteFrame(int64_t realtime_ns, const uint8_t* frame,
                            size_t len) {
  std::lock_guard<std::mutex> l(mu_);
  return WriteLocked(realtime_ns, frame, std::min(len, size_t(kSnapLen)), len);
}

void PcapWriter::Flush() {
  std::lock_guard<std::mutex> l(mu_);
  pcap_dump_flush(dumper_);
}

uint64_t PcapWriter::packets() const {
  std::lock_guard<std::mutex> l(mu_);
  return packets_;
}
uint64_t PcapWriter::bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return bytes_;
}
uint64_t PcapWriter::dropped() const {
  std::lock_guard<std::mutex> l(mu_);
  return dropped_;
}

absl::StatusOr<std::unique_ptr<PcapReader>> PcapReader::Open(
    const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(
      path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (p == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", err));
  }
  std::unique_ptr<PcapReader> r(new PcapReader());
  r->pcap_ = p;
  return Checked(std::move(r), path);
}

absl::StatusOr<std::unique_ptr<PcapReader>> PcapReader::OpenBytes(
    std::string bytes) {
  std::unique_ptr<PcapReader> r(new PcapReader());
  r->bytes_ = std::move(bytes);
  // fmemopen refuses a zero-length buffer; an empty file has no header.
  if (r->bytes_.empty()) {
    return absl::InvalidArgumentError("(memory): empty capture");
  }
  FILE* f = fmemopen(r->bytes_.data(), r->bytes_.size(), "rb");
  if (f == nullptr) {
    return absl::InternalError(absl::StrCat("fmemopen: ", std::strerror(errno)));
  }
  char err[PCAP_ERRBUF_SIZE] = {};
  // On success libpcap owns `f` (pcap_close closes it).
  r->pcap_ = pcap_fopen_offline_with_tstamp_precision(
      f, PCAP_TSTAMP_PRECISION_NANO, err);
  if (r->pcap_ == nullptr) {
    fclose(f);
    return absl::InvalidArgumentError(absl::StrCat("(memory): ", err));
  }
  return Checked(std::move(r), "(memory)");
}

absl::StatusOr<std::unique_ptr<PcapReader>> PcapReader::Checked(
    std::unique_ptr<PcapReader> r, const std::string& name) {
  r->dlt_ = pcap_datalink(r->pcap_);
  switch (r->dlt_) {
    case DLT_EN10MB:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_NULL:
    case DLT_LOOP:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": link type ", r->link_name(),
          " is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP, "
          "BSD loopback are)"));
  }
  return r;
}

PcapReader::~PcapReader() {
  if (pcap_ != nullptr) pcap_close(pcap_);
}

std::string PcapReader::link_name() const {
  const char* n = pcap_datalink_val_to_name(dlt_);
  return n != nullptr ? n : absl::StrCat("DLT ", dlt_);
}

bool PcapReader::Next(CapturedDatagram* out) {
  while (true) {
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(pcap_, &h, &data);
    if (rc == PCAP_ERROR_BREAK) return false;  // end of file
    if (rc != 1) {
      error_ = pcap_geterr(pcap_);
      return false;
    }
    ++stats_.packets;
    out->ts_ns = int64_t(h->ts.tv_sec) * 1'000'000'000 + h->ts.tv_usec;
    if (Decode(data, h->caplen, h->len, out)) {
      ++stats_.udp;
      if (out->truncated) ++stats_.truncated;
      return true;
    }
  }
}

bool PcapReader::Decode(const uint8_t* p, size_t caplen, size_t wirelen,
                        CapturedDatagram* out) {
  size_t off = 0;
  uint16_t proto = 0;  // an ethertype; 0: look at the IP version nibble
  switch (dlt_) {
    case DLT_EN10MB:
      if (caplen < 14) break;
      proto = Get16(p + 12);
      off = 14;
      while ((proto == kEtherVlan || proto == kEtherQinQ ||
              proto == kEtherVlanOld) &&
             caplen >= off + 4) {
        proto = Get16(p + off + 2);
        off += 4;
      }
      if (proto == kEtherVlan || proto == kEtherQinQ ||
          proto == kEtherVlanOld) {
        ++stats_.malformed;
        return false;
      }
      break;
    case DLT_LINUX_SLL:
      if (caplen < 16) break;
      proto = Get16(p + 14);
      off = 16;
      break;
    case DLT_LINUX_SLL2:
      if (caplen < 20) break;
      proto = Get16(p);
      off = 20;
      break;
    case DLT_NULL:
    case DLT_LOOP:
      if (caplen < 4) break;
      off = 4;
      break;
    default:  // raw IP
      break;
  }
  if (off > caplen || (off == 0 && dlt_ != DLT_RAW && dlt_ != DLT_IPV4 &&
                       dlt_ != DLT_IPV6)) {
    ++stats_.malformed;
    return false;
  }
  if (proto != 0 && proto != kEtherIpv4 && proto != kEtherIpv6) {
    ++stats_.non_ip;
    return false;
  }
  return DecodeIp(p + off, caplen - off, wirelen - std::min(wirelen, off),
                  out);
}

bool PcapReader::DecodeIp(const uint8_t* p, size_t caplen, size_t wirelen,
                          CapturedDatagram* out) {
  if (caplen < 1) {
    ++stats_.malformed;
    return false;
  }
  const int version = p[0] >> 4;
  size_t l4 = 0;
  uint8_t next = 0;
  size_t ip_len = 0;  // the IP packet's length by its own header
  if (version == 4) {
    const size_t ihl = size_t(p[0] & 0x0F) * 4;
    if (caplen < 20 || ihl < 20 || caplen < ihl) {
      ++stats_.malformed;
      return false;
    }
    ip_len = Get16(p + 2);
    const uint16_t frag = Get16(p + 6);
    if ((frag & 0x2000) != 0 || (frag & 0x1FFF) != 0) {
      ++stats_.fragments;
      return false;
    }
    next = p[9];
    l4 = ihl;
    std::array<uint8_t, 4> s, d;
    std::memcpy(s.data(), p + 12, 4);
    std::memcpy(d.data(), p + 16, 4);
    out->src = SocketAddress::FromIpv4(s, 0);
    out->dst = SocketAddress::FromIpv4(d, 0);
  } else if (version == 6) {
    if (caplen < 40) {
      ++stats_.malformed;
      return false;
    }
    ip_len = 40 + size_t(Get16(p + 4));
    next = p[6];
    l4 = 40;
    // Extension headers before the transport header.
    while (next == 0 || next == 43 || next == 60 || next == 44) {
      if (next == 44) {
        ++stats_.fragments;
        return false;
      }
      if (caplen < l4 + 8) {
        ++stats_.malformed;
        return false;
      }
      const size_t ext = (size_t(p[l4 + 1]) + 1) * 8;
      next = p[l4];
      l4 += ext;
    }
    std::array<uint8_t, 16> s, d;
    std::memcpy(s.data(), p + 8, 16);
    std::memcpy(d.data(), p + 24, 16);
    out->src = SocketAddress::FromIpv6(s, 0);
    out->dst = SocketAddress::FromIpv6(d, 0);
  } else {
    ++stats_.non_ip;
    return false;
  }
  if (next != kIpProtoUdp) {
    ++stats_.non_udp;
    return false;
  }
  if (caplen < l4 + kUdpHeader) {
    ++stats_.malformed;
    return false;
  }
  const uint8_t* u = p + l4;
  const size_t udp_len = Get16(u + 4);
  if (udp_len < kUdpHeader || (ip_len > 0 && l4 + udp_len > ip_len &&
                               !(version == 6 && ip_len == 40))) {
    ++stats_.malformed;
    return false;
  }
  out->src.set_port(Get16(u));
  out->dst.set_port(Get16(u + 2));
  const size_t payload_len = udp_len - kUdpHeader;
  const size_t have = caplen - l4 - kUdpHeader;
  out->payload = u + kUdpHeader;
  out->len = std::min(payload_len, have);
  out->truncated = have < payload_len;
  (void)wirelen;
  return true;
}

}  // namespace peerrelay
