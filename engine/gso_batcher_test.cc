// GsoBatcher against real loopback sockets: which datagrams leave together
// (one GSO send per run of same-destination, same-size datagrams, a shorter
// one closing the run), in what order they arrive, and what a failing send
// costs.
#include "engine/gso_batcher.h"

#include <gtest/gtest.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/udp_socket.h"

namespace peerrelay::engine {
namespace {

using ::peerrelay::UdpSocket;
using Bytes = std::vector<uint8_t>;

struct Datagram {
  int dest;     // receiver index
  size_t size;  // bytes
};

struct Case {
  const char* name;
  std::vector<Datagram> datagrams;
  uint64_t want_gso_sends;
  uint64_t want_gso_segments;
};

// Each case: the datagrams in the order Add() sees them, and how many GSO
// sends (and segments in them) Flush() must make.
const Case kCases[] = {
    // name                         datagrams                      gso  segs
    {"single datagram",            {{0, 100}},                     0,   0},
    {"equal run",                  {{0, 100}, {0, 100}, {0, 100}}, 1,   3},
    {"interleaved destinations",   {{0, 100}, {1, 100}, {0, 100}, {1, 100}}, 2, 4},
    {"shorter tail closes",        {{0, 100}, {0, 100}, {0, 50}, {0, 100}}, 1, 3},
    {"larger one starts anew",     {{0, 100}, {0, 200}, {0, 200}}, 1,   2},
};

Bytes Payload(size_t size, int seq) {
  Bytes b(size);
  for (size_t i = 0; i < size; ++i) b[i] = uint8_t(seq * 31 + i);
  return b;
}

class GsoBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const SocketAddress lo = SocketAddress::Parse("127.0.0.1:0").value();
    sender_ = std::make_unique<UdpSocket>(UdpSocket::Open(lo).value());
    for (int i = 0; i < 2; ++i) {
      receivers_.push_back(std::make_unique<UdpSocket>(UdpSocket::Open(lo).value()));
    }
  }

  // Adds `ds`, flushes, and checks every receiver gets its datagrams
  // byte for byte and in order.
  void RunAndCheck(const std::vector<Datagram>& ds, relay::Counters* c) {
    std::vector<Bytes> payloads;
    GsoBatcher batcher(sender_->fd(), /*socket_ipv6=*/false, 1024);
    for (size_t i = 0; i < ds.size(); ++i) {
      payloads.push_back(Payload(ds[i].size, int(i)));
    }
    for (size_t i = 0; i < ds.size(); ++i) {
      batcher.Add(payloads[i].data(), payloads[i].size(),
                  receivers_[ds[i].dest]->local(), c);
    }
    batcher.Flush(c);
    EXPECT_EQ(batcher.pending(), 0u);
    for (int r = 0; r < 2; ++r) {
      for (size_t i = 0; i < ds.size(); ++i) {
        if (ds[i].dest != r) continue;
        auto got = receivers_[r]->Recv(2000);
        ASSERT_TRUE(got) << "receiver " << r << " datagram " << i;
        EXPECT_EQ(got->first, payloads[i]) << "receiver " << r << " datagram " << i;
      }
      EXPECT_FALSE(receivers_[r]->Recv(20)) << "extra datagram at " << r;
    }
  }

  std::unique_ptr<UdpSocket> sender_;
  std::vector<std::unique_ptr<UdpSocket>> receivers_;
};

TEST_F(GsoBatcherTest, GroupsAsTheTableSays) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    relay::Counters counters;
    RunAndCheck(c.datagrams, &counters);
    EXPECT_EQ(counters.gso_sends.Get(), c.want_gso_sends);
    EXPECT_EQ(counters.gso_segments.Get(), c.want_gso_segments);
    EXPECT_EQ(counters.send_failed.Get(), 0u);
  }
}

TEST_F(GsoBatcherTest, SegmentCountIsCapped) {
  std::vector<Datagram> ds(GsoBatcher::kMaxSegments + 6, Datagram{0, 64});
  relay::Counters c;
  RunAndCheck(ds, &c);
  EXPECT_EQ(c.gso_sends.Get(), 2u);
  EXPECT_EQ(c.gso_segments.Get(), ds.size());
}

TEST_F(GsoBatcherTest, BytesPerSendAreCapped) {
  // 47 x 1400 B is over 65507: the run splits after 46.
  std::vector<Datagram> ds(47, Datagram{0, 1400});
  relay::Counters c;
  RunAndCheck(ds, &c);
  EXPECT_EQ(c.gso_sends.Get(), 1u);
  EXPECT_EQ(c.gso_segments.Get(), 46u);
}

// A GRO run (one buffer, cut every `seg` bytes) added in one call leaves
// exactly like the same datagrams added one by one.
TEST_F(GsoBatcherTest, RunsSplitLikeSingleAdds) {
  struct RunCase {
    const char* name;
    size_t seg, total;
    uint64_t want_gso_sends, want_gso_segments;
  };
  const RunCase cases[] = {
      // name                         seg   total      gso  segs
      {"over the segment cap",        64,   70 * 64,   2,   70},
      {"short tail",                  100,  5 * 100 + 30, 1, 6},
      {"over the byte cap",           1400, 47 * 1400, 1,   46},
      {"one segment",                 500,  500,       0,   0},
  };
  for (const RunCase& rc : cases) {
    SCOPED_TRACE(rc.name);
    Bytes buf(rc.total);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 7 + i / rc.seg);
    GsoBatcher batcher(sender_->fd(), false, 1024);
    relay::Counters c;
    // A single datagram to the other receiver in between: groups per
    // destination stay apart.
    Bytes other(64, 0x42);
    batcher.AddRun(buf.data(), rc.seg, rc.total / 2 / rc.seg * rc.seg,
                   receivers_[0]->local(), &c);
    batcher.Add(other.data(), other.size(), receivers_[1]->local(), &c);
    const size_t first = rc.total / 2 / rc.seg * rc.seg;
    batcher.AddRun(buf.data() + first, rc.seg, rc.total - first,
                   receivers_[0]->local(), &c);
    batcher.Flush(&c);
    for (size_t off = 0; off < rc.total; off += rc.seg) {
      const size_t len = std::min(rc.seg, rc.total - off);
      auto got = receivers_[0]->Recv(2000);
      ASSERT_TRUE(got) << "segment at " << off;
      EXPECT_EQ(got->first, Bytes(buf.begin() + off, buf.begin() + off + len));
    }
    EXPECT_FALSE(receivers_[0]->Recv(20));
    auto got_other = receivers_[1]->Recv(2000);
    ASSERT_TRUE(got_other);
    EXPECT_EQ(got_other->first, other);
    EXPECT_EQ(c.gso_sends.Get(), rc.want_gso_sends);
    EXPECT_EQ(c.gso_segments.Get(), rc.want_gso_segments);
  }
}

TEST_F(GsoBatcherTest, FailedSendsAreCountedAndNothingWedges) {
  // A socket that cannot send (closed) stands in for any send error.
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  close(fd);
  GsoBatcher batcher(fd, false, 16);
  relay::Counters c;
  Bytes p(100, 1);
  for (int i = 0; i < 40; ++i) {  // more than one batch: Add flushes early
    batcher.Add(p.data(), p.size(), receivers_[i % 2]->local(), &c);
  }
  batcher.Flush(&c);
  EXPECT_EQ(c.send_failed.Get(), 40u);
  EXPECT_EQ(batcher.pending(), 0u);
}

}  // namespace
}  // namespace peerrelay::engine
