#include "common/pcap_file.h"

#include <pcap/dlt.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace peerrelay {
namespace {

using Bytes = std::vector<uint8_t>;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name + "." +
         std::to_string(getpid());
}

SocketAddress Addr(const char* text) {
  return SocketAddress::Parse(text).value();
}

Bytes Payload(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(seed + i * 7);
  return b;
}

// Every datagram read from `path`.
struct Read {
  struct D {
    int64_t ts;
    SocketAddress src, dst;
    Bytes payload;
    bool truncated;
  };
  std::vector<D> datagrams;
  PcapReadStats stats;
};
Read ReadAll(const std::string& path) {
  auto r = PcapReader::Open(path);
  EXPECT_TRUE(r.ok()) << r.status();
  Read out;
  if (!r.ok()) return out;
  CapturedDatagram d;
  while ((*r)->Next(&d)) {
    out.datagrams.push_back({d.ts_ns, d.src, d.dst,
                             Bytes(d.payload, d.payload + d.len),
                             d.truncated});
  }
  EXPECT_EQ((*r)->error(), "");
  out.stats = (*r)->stats();
  return out;
}

uint16_t Get16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

// RFC 1071: summing a header with its checksum in place gives 0xFFFF.
uint16_t OnesSum(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += Get16(p + i);
  if (len % 2) sum += uint32_t(p[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(sum);
}

struct LinkCase {
  const char* name;
  PcapWriterOptions options;
  int dlt;
};

class PcapRoundTrip : public ::testing::TestWithParam<LinkCase> {};

TEST_P(PcapRoundTrip, EveryLinkTypeAndFamilyReadsBackExactly) {
  const LinkCase& c = GetParam();
  const std::string path = TempPath(std::string("rt_") + c.name);
  const std::vector<std::pair<SocketAddress, SocketAddress>> flows = {
      {Addr("127.0.0.1:40000"), Addr("127.0.0.1:7777")},
      {Addr("[::1]:40001"), Addr("[2001:db8::7]:7777")},
      {Addr("10.1.2.3:5"), Addr("192.168.0.9:65535")},
  };
  {
    auto w = PcapWriter::Open(path, c.options);
    ASSERT_TRUE(w.ok()) << w.status();
    for (size_t i = 0; i < flows.size(); ++i) {
      const Bytes p = Payload(10 + i * 500, uint8_t(i));
      ASSERT_TRUE((*w)->Write(1'700'000'000'123'456'789 + int64_t(i),
                              flows[i].first, flows[i].second, p.data(),
                              p.size()));
    }
    EXPECT_EQ((*w)->packets(), 3u);
  }
  EXPECT_EQ(std::filesystem::file_size(path), [&] {
    // 24-byte file header, 16 per record, the frames.
    uint64_t n = 24;
    for (size_t i = 0; i < flows.size(); ++i) {
      const Bytes p = Payload(10 + i * 500, uint8_t(i));
      n += 16 + BuildUdpFrame(c.options, flows[i].first, flows[i].second,
                              p.data(), p.size())
                    .size();
    }
    return n;
  }());
  const Read r = ReadAll(path);
  ASSERT_EQ(r.datagrams.size(), 3u);
  EXPECT_EQ(r.stats.packets, 3u);
  EXPECT_EQ(r.stats.udp, 3u);
  for (size_t i = 0; i < flows.size(); ++i) {
    EXPECT_EQ(r.datagrams[i].ts, 1'700'000'000'123'456'789 + int64_t(i));
    EXPECT_EQ(r.datagrams[i].src, flows[i].first);
    EXPECT_EQ(r.datagrams[i].dst, flows[i].second);
    EXPECT_EQ(r.datagrams[i].payload, Payload(10 + i * 500, uint8_t(i)));
    EXPECT_FALSE(r.datagrams[i].truncated);
  }
  auto pr = PcapReader::Open(path);
  ASSERT_TRUE(pr.ok());
  EXPECT_EQ(pcap_datalink_name_to_val((*pr)->link_name().c_str()), c.dlt);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Links, PcapRoundTrip,
    ::testing::Values(
        LinkCase{"ethernet", {.link = LinkType::kEthernet}, DLT_EN10MB},
        LinkCase{"vlan",
                 {.link = LinkType::kEthernet, .vlan_ids = {100, 200}},
                 DLT_EN10MB},
        LinkCase{"sll", {.link = LinkType::kLinuxSll}, DLT_LINUX_SLL},
        LinkCase{"sll2", {.link = LinkType::kLinuxSll2}, DLT_LINUX_SLL2},
        LinkCase{"raw", {.link = LinkType::kRaw}, DLT_RAW}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(PcapFrame, ChecksumsAreValid) {
  const Bytes p = Payload(33, 9);  // odd length: the padded last word
  for (const auto& [src, dst] :
       {std::pair{Addr("127.0.0.1:1234"), Addr("127.0.0.2:7777")},
        std::pair{Addr("[fe80::1]:1234"), Addr("[2001:db8::2]:7777")}}) {
    const Bytes f =
        BuildUdpFrame({.link = LinkType::kRaw}, src, dst, p.data(), p.size());
    if (src.is_ipv4()) {
      ASSERT_EQ(f.size(), 20u + 8 + 33);
      EXPECT_EQ(OnesSum(f.data(), 20), 0xFFFF);
      // Pseudo-header: addresses, protocol, UDP length.
      uint32_t pseudo = OnesSum(f.data() + 12, 8);
      pseudo += 17 + 8 + 33;
      EXPECT_EQ(OnesSum(f.data() + 20, 8 + 33, pseudo), 0xFFFF);
    } else {
      ASSERT_EQ(f.size(), 40u + 8 + 33);
      uint32_t pseudo = OnesSum(f.data() + 8, 32);
      pseudo += 17 + 8 + 33;
      EXPECT_EQ(OnesSum(f.data() + 40, 8 + 33, pseudo), 0xFFFF);
    }
  }
}

TEST(PcapReader, SkipsAndCountsWhatIsNotAWholeUdpDatagram) {
  const std::string path = TempPath("skip");
  const PcapWriterOptions eth{.link = LinkType::kEthernet};
  const Bytes p = Payload(100, 1);
  const SocketAddress a4 = Addr("127.0.0.1:1000"), b4 = Addr("127.0.0.1:2000");
  const SocketAddress a6 = Addr("[::1]:1000"), b6 = Addr("[::1]:2000");
  {
    auto w = PcapWriter::Open(path, eth);
    ASSERT_TRUE(w.ok());
    PcapWriter& pw = **w;
    auto frame = [&](Bytes f) { ASSERT_TRUE(pw.WriteFrame(1, f.data(), f.size())); };
    // 1: fine.
    Bytes ok = BuildUdpFrame(eth, a4, b4, p.data(), p.size());
    frame(ok);
    // 2: first IPv4 fragment (MF set); 3: a later one (offset != 0).
    Bytes mf = ok;
    mf[14 + 6] = 0x20;
    frame(mf);
    Bytes off = ok;
    off[14 + 6] = 0x00;
    off[14 + 7] = 0x10;
    frame(off);
    // 4: TCP.
    Bytes tcp = ok;
    tcp[14 + 9] = 6;
    frame(tcp);
    // 5: ARP.
    Bytes arp = ok;
    arp[12] = 0x08;
    arp[13] = 0x06;
    frame(arp);
    // 6: cut inside the IP header.
    frame(Bytes(ok.begin(), ok.begin() + 14 + 10));
    // 7: IPv6 with a fragment header in front of UDP.
    Bytes v6 = BuildUdpFrame(eth, a6, b6, p.data(), p.size());
    Bytes frag6(v6.begin(), v6.begin() + 14 + 40);
    frag6[14 + 6] = 44;  // next header: fragment
    const uint8_t fh[8] = {17, 0, 0, 1, 0, 0, 0, 1};
    frag6.insert(frag6.end(), fh, fh + 8);
    frag6.insert(frag6.end(), v6.begin() + 14 + 40, v6.end());
    frame(frag6);
    // 8: IPv6 with a hop-by-hop header, then UDP: a datagram.
    Bytes hop(v6.begin(), v6.begin() + 14 + 40);
    hop[14 + 6] = 0;
    const uint8_t hh[8] = {17, 0, 1, 4, 0, 0, 0, 0};  // PadN
    hop.insert(hop.end(), hh, hh + 8);
    hop.insert(hop.end(), v6.begin() + 14 + 40, v6.end());
    hop[14 + 5] = uint8_t(hop[14 + 5] + 8);  // payload length
    frame(hop);
    // 9: a datagram the capture cut short (snap length).
    Bytes cut(ok.begin(), ok.end() - 40);
    frame(cut);
    // 10: UDP length claiming more than the IP packet holds.
    Bytes lie = ok;
    lie[14 + 20 + 4] = 0x7F;
    frame(lie);
  }
  const Read r = ReadAll(path);
  EXPECT_EQ(r.stats.packets, 10u);
  EXPECT_EQ(r.stats.fragments, 3u);
  EXPECT_EQ(r.stats.non_udp, 1u);
  EXPECT_EQ(r.stats.non_ip, 1u);
  EXPECT_EQ(r.stats.malformed, 2u);
  EXPECT_EQ(r.stats.udp, 3u);
  EXPECT_EQ(r.stats.truncated, 1u);
  ASSERT_EQ(r.datagrams.size(), 3u);
  EXPECT_EQ(r.datagrams[0].payload, p);
  EXPECT_EQ(r.datagrams[1].src, a6);
  EXPECT_EQ(r.datagrams[1].payload, p);
  EXPECT_TRUE(r.datagrams[2].truncated);
  EXPECT_EQ(r.datagrams[2].payload, Bytes(p.begin(), p.end() - 40));
  std::remove(path.c_str());
}

void Le32(Bytes* b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b->push_back(uint8_t(v >> (8 * i)));
}
void Le16(Bytes* b, uint16_t v) {
  b->push_back(uint8_t(v));
  b->push_back(uint8_t(v >> 8));
}

TEST(PcapReader, ReadsPcapng) {
  // Section header, an Ethernet interface with nanosecond timestamps
  // (if_tsresol = 9), two enhanced packet blocks.
  const SocketAddress a = Addr("[2001:db8::1]:41641"), b = Addr("[2001:db8::2]:7777");
  const Bytes p1 = Payload(64, 3), p2 = Payload(7, 4);
  Bytes f;
  Le32(&f, 0x0A0D0D0A);
  Le32(&f, 28);
  Le32(&f, 0x1A2B3C4D);
  Le16(&f, 1);
  Le16(&f, 0);
  Le32(&f, 0xFFFFFFFF);
  Le32(&f, 0xFFFFFFFF);
  Le32(&f, 28);
  Le32(&f, 1);  // IDB
  Le32(&f, 32);
  Le16(&f, 1);  // LINKTYPE_ETHERNET
  Le16(&f, 0);
  Le32(&f, 262144);
  Le16(&f, 9);  // if_tsresol
  Le16(&f, 1);
  f.push_back(9);
  f.insert(f.end(), 3, 0);
  Le16(&f, 0);  // opt_endofopt
  Le16(&f, 0);
  Le32(&f, 32);
  const int64_t ts[2] = {1'700'000'000'000'000'001, 1'700'000'000'500'000'000};
  for (int i = 0; i < 2; ++i) {
    const Bytes& p = i == 0 ? p1 : p2;
    const Bytes frame = BuildUdpFrame({}, a, b, p.data(), p.size());
    const uint32_t padded = uint32_t((frame.size() + 3) & ~size_t(3));
    const uint32_t len = 32 + padded;
    Le32(&f, 6);
    Le32(&f, len);
    Le32(&f, 0);
    Le32(&f, uint32_t(uint64_t(ts[i]) >> 32));
    Le32(&f, uint32_t(uint64_t(ts[i])));
    Le32(&f, uint32_t(frame.size()));
    Le32(&f, uint32_t(frame.size()));
    f.insert(f.end(), frame.begin(), frame.end());
    f.insert(f.end(), padded - frame.size(), 0);
    Le32(&f, len);
  }
  const std::string path = TempPath("ng");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
  const Read r = ReadAll(path);
  ASSERT_EQ(r.datagrams.size(), 2u);
  EXPECT_EQ(r.datagrams[0].ts, ts[0]);
  EXPECT_EQ(r.datagrams[1].ts, ts[1]);
  EXPECT_EQ(r.datagrams[0].src, a);
  EXPECT_EQ(r.datagrams[0].dst, b);
  EXPECT_EQ(r.datagrams[0].payload, p1);
  EXPECT_EQ(r.datagrams[1].payload, p2);
  std::remove(path.c_str());
}

TEST(PcapWriter, StopsAtTheSizeLimitAndCountsTheRest) {
  const std::string path = TempPath("limit");
  const Bytes p = Payload(200, 5);
  const SocketAddress a = Addr("127.0.0.1:1"), b = Addr("127.0.0.1:2");
  const uint64_t record = 16 + 14 + 20 + 8 + 200;
  {
    auto w = PcapWriter::Open(path, {.max_bytes = 24 + 3 * record + 10});
    ASSERT_TRUE(w.ok());
    int written = 0;
    for (int i = 0; i < 10; ++i) written += (*w)->Write(i, a, b, p.data(), p.size());
    EXPECT_EQ(written, 3);
    EXPECT_EQ((*w)->dropped(), 7u);
    EXPECT_EQ((*w)->bytes(), 24 + 3 * record);
  }
  EXPECT_EQ(std::filesystem::file_size(path), 24 + 3 * record);
  EXPECT_EQ(ReadAll(path).datagrams.size(), 3u);
  std::remove(path.c_str());
}

TEST(PcapWriter, ConcurrentWritersLoseNothing) {
  const std::string path = TempPath("threads");
  {
    auto w = PcapWriter::Open(path);
    ASSERT_TRUE(w.ok());
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        const Bytes p = Payload(50, uint8_t(t));
        for (int i = 0; i < 500; ++i) {
          (*w)->Write(i, Addr("127.0.0.1:1"), Addr("127.0.0.1:2"), p.data(),
                      p.size());
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  const Read r = ReadAll(path);
  ASSERT_EQ(r.datagrams.size(), 2000u);
  int per_seed[4] = {};
  for (const auto& d : r.datagrams) {
    ASSERT_EQ(d.payload.size(), 50u);
    ASSERT_LT(d.payload[0], 4);
    EXPECT_EQ(d.payload, Payload(50, d.payload[0]));
    ++per_seed[d.payload[0]];
  }
  for (int n : per_seed) EXPECT_EQ(n, 500);
  std::remove(path.c_str());
}

TEST(PcapReader, ClearErrors) {
  const std::string path = TempPath("notpcap");
  std::ofstream(path) << "this is not a capture file at all\n";
  auto r = PcapReader::Open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_FALSE(PcapReader::Open(path + ".missing").ok());
  // A link type we do not decode (802.11): refused with its name.
  pcap_t* dead = pcap_open_dead(DLT_IEEE802_11, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  ASSERT_NE(d, nullptr);
  pcap_dump_close(d);
  pcap_close(dead);
  r = PcapReader::Open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("IEEE802_11"), std::string::npos)
      << r.status();
  EXPECT_FALSE(PcapWriter::Open("/nonexistent-dir/x.pcap").ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace peerrelay
