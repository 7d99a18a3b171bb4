// GsoBatcher against real loopback sockets: which datagrams leave together
// (one GSO send per run of same-destination, same-size datagrams, a shorter
// one closing the run), in what order they arrive, and what a failing send
// costs.
#include "engine/packet_path.h"

#include <gtest/gtest.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/udp_socket.h"

namespace peerrelay::engine {
namespace {

using testing::UdpSocket;
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
