// The receive path without sockets: a fake writer records what would be
// sent, a fake clock drives time, and the slow path runs only when the test
// says so. Each row is one received buffer and what must come of it.
#include "engine/worker_path.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/fake_clock.h"
#include "engine/fake_writer_testing.h"
#include "engine/slow_path_worker.h"
#include "engine/uring_worker.h"
#include "engine/worker.h"
#include "client/disco_client.h"
#include "relay/disco_client_testing.h"

namespace peerrelay::engine {
namespace {

using client::Bytes;
using relay::DropReason;
using client::DiscoClient;

SocketAddress Addr(const char* s) { return SocketAddress::Parse(s).value(); }

// A server with one endpoint bound to A and B, one unbound endpoint (U),
// and the worker path in front of it.
class Fixture {
 public:
  explicit Fixture(disco::Dialect dialect) {
    server_ = relay::Server::Create({.addresses = {Addr("192.0.2.1:7777")},
                                     .dialect = dialect},
                                    clock.NowNs())
                  .value();
    a = std::make_unique<DiscoClient>(dialect, server_->server_key(),
                                     Addr("198.51.100.1:1000"));
    b = std::make_unique<DiscoClient>(dialect, server_->server_key(),
                                     Addr("198.51.100.2:2000"));
    u = std::make_unique<DiscoClient>(dialect, server_->server_key(),
                                     Addr("198.51.100.3:3000"));
    DiscoClient other(dialect, server_->server_key(), Addr("198.51.100.4:4"));
    const auto ep = server_->Allocate(a->key(), b->key(), clock.NowNs()).value();
    a->SetEndpoint(ep.vni, b->key());
    b->SetEndpoint(ep.vni, a->key());
    const auto ue =
        server_->Allocate(u->key(), other.key(), clock.NowNs()).value();
    u->SetEndpoint(ue.vni, other.key());
    relay::Counters setup;
    EXPECT_TRUE(relay::DriveHandshake(*a, *server_, clock.NowNs(), &setup));
    EXPECT_TRUE(relay::DriveHandshake(*b, *server_, clock.NowNs(), &setup));
    path = std::make_unique<WorkerPath>(server_.get(), &queue, &writer,
                                        &counters,
                                        HandshakeLimiter(0, 0, 0, 0));
    slow = std::make_unique<SlowPathWorker>(server_.get(), &queue,
                                            &slow_counters, &clock,
                                            /*start_thread=*/false);
  }

  relay::Server& server() { return *server_; }

  FakeClock clock;
  FakeWriter writer;
  SlowPathQueue queue{16, 16};
  relay::Counters counters, slow_counters;
  std::unique_ptr<DiscoClient> a, b, u;
  std::unique_ptr<WorkerPath> path;
  std::unique_ptr<SlowPathWorker> slow;

 private:
  std::unique_ptr<relay::Server> server_;
};

struct Row {
  const char* name;
  // The buffer received, its source, and its GRO segment size (0: none).
  std::function<Bytes(Fixture&)> buffer;
  std::function<SocketAddress(Fixture&)> from;
  uint16_t gro;
  // Expected: datagrams relayed by the worker and to whom (by client), the
  // number of writer runs, items queued for the slow path, and a drop.
  uint64_t relayed;
  std::function<SocketAddress(Fixture&)> to;
  int runs;
  uint64_t queued;
  DropReason drop;  // kCount: no drop
  uint64_t dropped;
};

Bytes Repeat(const Bytes& d, int n) {
  Bytes out;
  for (int i = 0; i < n; ++i) out.insert(out.end(), d.begin(), d.end());
  return out;
}

auto FromA = [](Fixture& f) { return f.a->address(); };
auto FromB = [](Fixture& f) { return f.b->address(); };
auto FromStranger = [](Fixture&) { return Addr("203.0.113.9:9"); };
auto ToB = [](Fixture& f) { return f.b->address(); };
auto ToA = [](Fixture& f) { return f.a->address(); };
auto Nobody = [](Fixture&) { return SocketAddress(); };

// name                          buffer / from / gro                 relayed to runs queued drop
const Row kRows[] = {
    {"bound data A to B", [](Fixture& f) { return f.a->Data({1, 2, 3}); },
     FromA, 0, 1, ToB, 0, 0, DropReason::kCount, 0},
    {"bound data B to A", [](Fixture& f) { return f.b->Data(Bytes(1400, 7)); },
     FromB, 0, 1, ToA, 0, 0, DropReason::kCount, 0},
    {"client disco ping is data too",
     [](Fixture& f) { return f.a->Data({9}, geneve::kProtocolDisco); }, FromA,
     0, 1, ToB, 0, 0, DropReason::kCount, 0},
    {"GRO run of 5 is one run", [](Fixture& f) { return Repeat(f.a->Data(Bytes(100, 1)), 5); },
     FromA, 108, 5, ToB, 1, 0, DropReason::kCount, 0},
    {"GRO run with a short tail",
     [](Fixture& f) {
       Bytes d = Repeat(f.a->Data(Bytes(100, 1)), 3);
       Bytes t = f.a->Data(Bytes(10, 2));
       d.insert(d.end(), t.begin(), t.end());
       return d;
     },
     FromA, 108, 4, ToB, 1, 0, DropReason::kCount, 0},
    {"stranger with A's VNI", [](Fixture& f) { return f.a->Data({1}); },
     FromStranger, 0, 0, Nobody, 0, 0, DropReason::kUnknownSource, 1},
    {"unbound endpoint", [](Fixture& f) { return f.u->Data({1}); },
     [](Fixture& f) { return f.u->address(); }, 0, 0, Nobody, 0, 0,
     DropReason::kNotBound, 1},
    {"unknown VNI",
     [](Fixture& f) {
       Bytes d = f.a->Data({1});
       d[6] ^= 0x55;
       return d;
     },
     FromA, 0, 0, Nobody, 0, 0, DropReason::kUnknownVni, 1},
    {"7 bytes", [](Fixture&) { return Bytes(7, 0); }, FromA, 0, 0, Nobody, 0,
     0, DropReason::kShortDatagram, 1},
    {"control, not disco",
     [](Fixture& f) {
       Bytes d = f.a->Data({1});
       d[1] = 0x80;
       return d;
     },
     FromA, 0, 0, Nobody, 0, 0, DropReason::kBadControlProtocol, 1},
    {"Bind is queued", [](Fixture& f) { return f.a->Bind(2); }, FromA, 0, 0,
     Nobody, 0, 1, DropReason::kCount, 0},
    {"oversized control",
     [](Fixture& f) {
       Bytes d = f.a->Bind(2);
       d.resize(SlowPathQueue::kMaxControlBytes + 1);
       return d;
     },
     FromA, 0, 0, Nobody, 0, 0, DropReason::kOversizedControl, 1},
};

class WorkerPathTableTest : public ::testing::TestWithParam<disco::Dialect> {};

TEST_P(WorkerPathTableTest, EachBufferEndsAsTheTableSays) {
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.name);
    Fixture f(GetParam());
    const Bytes buf = row.buffer(f);
    RxMeta meta;
    meta.gro_size = row.gro;
    f.path->OnReceive(buf.data(), buf.size(), meta, row.from(f),
                      f.clock.NowNs());
    EXPECT_EQ(f.writer.queued(), row.relayed) << "held until Flush";
    f.path->Flush();
    EXPECT_EQ(f.writer.queued(), 0u);
    EXPECT_EQ(f.counters.relayed.Get(), row.relayed);
    EXPECT_EQ(f.writer.sent.size(), row.relayed);
    size_t off = 0;
    for (const FakeWriter::Sent& s : f.writer.sent) {
      EXPECT_EQ(s.dest, row.to(f));
      EXPECT_FALSE(s.now);
      // Unchanged, in order: the received bytes, cut as they came.
      ASSERT_LE(off + s.bytes.size(), buf.size());
      EXPECT_EQ(s.bytes, Bytes(buf.begin() + off, buf.begin() + off + s.bytes.size()));
      off += s.bytes.size();
    }
    EXPECT_EQ(f.writer.runs, row.runs);
    EXPECT_EQ(f.counters.to_slow_path.Get(), row.queued);
    EXPECT_EQ(f.queue.size(), row.queued);
    EXPECT_EQ(f.counters.DroppedTotal(), row.dropped);
    if (row.drop != DropReason::kCount) {
      EXPECT_EQ(f.counters.Dropped(row.drop), row.dropped);
    }
    EXPECT_EQ(f.counters.received.Get(),
              f.counters.relayed.Get() + f.counters.to_slow_path.Get() +
                  f.counters.DroppedTotal());
    EXPECT_EQ(f.counters.received_bytes.Get(), buf.size());
  }
}

TEST_P(WorkerPathTableTest, QueuedBindIsAnsweredThroughItsWorkersWriter) {
  Fixture f(GetParam());
  const Bytes bind = f.a->Bind(2);
  f.path->OnReceive(bind.data(), bind.size(), RxMeta{}, f.a->address(),
                    f.clock.NowNs());
  f.path->Flush();
  ASSERT_TRUE(f.slow->HandleOne(0));
  if (GetParam() == disco::Dialect::kSeed) {
    // The seed dialect ignores handshakes on a bound side.
    EXPECT_EQ(f.slow_counters.Dropped(DropReason::kAlreadyBound), 1u);
    EXPECT_TRUE(f.writer.sent.empty());
    return;
  }
  ASSERT_EQ(f.writer.sent.size(), 1u);
  EXPECT_TRUE(f.writer.sent[0].now);
  EXPECT_EQ(f.writer.sent[0].dest, f.a->address());
  EXPECT_TRUE(f.a->OpenChallenge(f.writer.sent[0].bytes).has_value());
  EXPECT_EQ(f.slow_counters.challenges_sent.Get(), 1u);
}

TEST_P(WorkerPathTableTest, LastSeenFollowsTheFakeClock) {
  Fixture f(GetParam());
  f.clock.Advance(42 * relay::kSecond);
  const Bytes d = f.a->Data({1});
  f.path->OnReceive(d.data(), d.size(), RxMeta{}, f.a->address(),
                    f.clock.NowNs());
  f.path->Flush();
  std::vector<relay::SessionInfo> s = f.server().Sessions();
  ASSERT_EQ(s.size(), 2u);
  const int side = s[0].client_keys[0] == f.a->key() ? 0 : 1;
  EXPECT_EQ(s[0].last_seen_ns[side], f.clock.NowNs());
  EXPECT_LT(s[0].last_seen_ns[1 - side], f.clock.NowNs());
}

INSTANTIATE_TEST_SUITE_P(Dialects, WorkerPathTableTest,
                         ::testing::Values(disco::Dialect::kCurrent,
                                           disco::Dialect::kSeed),
                         [](const auto& info) {
                           return std::string(disco::DialectName(info.param));
                         });

// Receive loop leftovers: what both engines do before the path sees a
// datagram. Each is counted as received and dropped by name.
class DeliveryTest : public ::testing::Test {
 protected:
  Fixture f{disco::Dialect::kCurrent};
  // Hands `d` to the path as received from A's address.
  void DeliverFromA(const Bytes& d, size_t full_len, bool truncated) {
    sockaddr_storage name;
    const socklen_t len = f.a->address().ToSockaddr(&name, false);
    msghdr h{};
    DeliverReceived(f.path.get(), &f.counters,
                    reinterpret_cast<const sockaddr*>(&name), len, &h,
                    d.data(), d.size(), full_len, truncated, f.clock.NowNs());
  }
  void ExpectOneDrop(DropReason r) {
    EXPECT_EQ(f.counters.received.Get(), 1u);
    EXPECT_EQ(f.counters.Dropped(r), 1u);
    EXPECT_EQ(f.counters.DroppedTotal(), 1u);
    EXPECT_TRUE(f.writer.sent.empty());
  }
};

TEST_F(DeliveryTest, UnreadableSourceAddressIsCountedAndDropped) {
  const Bytes d = f.a->Data({1});
  sockaddr_storage name{};
  name.ss_family = AF_UNIX;  // not an IP address
  msghdr h{};
  DeliverReceived(f.path.get(), &f.counters,
                  reinterpret_cast<const sockaddr*>(&name), sizeof(name), &h,
                  d.data(), d.size(), d.size(), false, f.clock.NowNs());
  ExpectOneDrop(DropReason::kBadSourceAddress);
  EXPECT_EQ(f.counters.received_bytes.Get(), d.size());
}

TEST_F(DeliveryTest, EmptySourceAddressIsCountedAndDropped) {
  const Bytes d = f.a->Data({1});
  msghdr h{};
  DeliverReceived(f.path.get(), &f.counters, nullptr, 0, &h, d.data(),
                  d.size(), d.size(), false, f.clock.NowNs());
  ExpectOneDrop(DropReason::kBadSourceAddress);
}

TEST_F(DeliveryTest, TruncatedDatagramIsCountedAtItsFullSize) {
  DeliverFromA(f.a->Data({1}), 70000, /*truncated=*/true);
  ExpectOneDrop(DropReason::kTruncated);
  EXPECT_EQ(f.counters.received_bytes.Get(), 70000u);
}

TEST_F(DeliveryTest, ReadableDatagramReachesThePath) {
  const Bytes d = f.a->Data({1});
  DeliverFromA(d, d.size(), false);
  f.path->Flush();
  EXPECT_EQ(f.counters.relayed.Get(), 1u);
  ASSERT_EQ(f.writer.sent.size(), 1u);
}

TEST_F(DeliveryTest, UnparseableUringCompletionIsCountedAndDropped) {
  // A completion shorter than the recvmsg header the template asks for.
  msghdr tmpl{};
  tmpl.msg_namelen = 32;
  tmpl.msg_controllen = kRxControlSpace;
  std::vector<uint8_t> buf(256);
  DeliverUringBuffer(f.path.get(), &f.counters, buf.data(), 8, &tmpl,
                     f.clock.NowNs());
  ExpectOneDrop(DropReason::kBadCompletion);
}

TEST_F(DeliveryTest, TruncatedUringCompletionCountsTheRealSize) {
  // The layout a multishot recvmsg armed with MSG_TRUNC writes for a
  // datagram larger than its buffer: payloadlen is the datagram's size,
  // the completion holds only what fit.
  msghdr tmpl{};
  tmpl.msg_namelen = 32;
  tmpl.msg_controllen = kRxControlSpace;
  const Bytes d = f.a->Data(Bytes(100, 7));
  std::vector<uint8_t> buf(sizeof(io_uring_recvmsg_out) + 32 +
                           kRxControlSpace + d.size());
  io_uring_recvmsg_out out{};
  sockaddr_storage name;
  out.namelen = f.a->address().ToSockaddr(&name, false);
  out.controllen = 0;
  out.payloadlen = 70000;
  out.flags = MSG_TRUNC;
  std::memcpy(buf.data(), &out, sizeof(out));
  std::memcpy(buf.data() + sizeof(out), &name, out.namelen);
  std::memcpy(buf.data() + sizeof(out) + 32 + kRxControlSpace, d.data(),
              d.size());
  DeliverUringBuffer(f.path.get(), &f.counters, buf.data(), int(buf.size()),
                     &tmpl, f.clock.NowNs());
  ExpectOneDrop(DropReason::kTruncated);
  EXPECT_EQ(f.counters.received_bytes.Get(), 70000u);
}

}  // namespace
}  // namespace peerrelay::engine
