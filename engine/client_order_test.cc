// Per-client order in the worker path, without a receive loop: the test
// hands WorkerPath the datagrams a worker would have received in one batch
// (an Answer and the client's data right behind it, as Tailscale's client
// sends them), before the slow-path thread has run, and then lets the slow
// path run. The data must wait behind the Answer and reach the peer; data
// from anyone else must not wait. Sends go to real loopback sockets.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/gso_batcher.h"
#include "engine/slow_path_queue.h"
#include "engine/slow_path_worker.h"
#include "engine/worker_path.h"
#include "client/disco_client.h"
#include "relay/disco_client_testing.h"
#include "common/udp_socket.h"

namespace peerrelay::engine {
namespace {

using client::Bytes;
using relay::DropReason;
using client::DiscoClient;
using ::peerrelay::UdpSocket;

constexpr int kTimeoutMs = 2000;

class ClientOrderTest : public ::testing::TestWithParam<disco::Dialect> {
 protected:
  void SetUp() override {
    const SocketAddress lo = SocketAddress::Parse("127.0.0.1:0").value();
    relay_sock_ = std::make_unique<UdpSocket>(UdpSocket::Open(lo).value());
    sock_a_ = std::make_unique<UdpSocket>(UdpSocket::Open(lo).value());
    sock_b_ = std::make_unique<UdpSocket>(UdpSocket::Open(lo).value());
    stranger_ = std::make_unique<UdpSocket>(UdpSocket::Open(lo).value());
    server_ = relay::Server::Create({.addresses = {relay_sock_->local()},
                                     .dialect = GetParam()},
                                    now_)
                  .value();
    a_ = std::make_unique<DiscoClient>(GetParam(), server_->server_key(),
                                      sock_a_->local());
    b_ = std::make_unique<DiscoClient>(GetParam(), server_->server_key(),
                                      sock_b_->local());
    relay::EndpointInfo ep =
        server_->Allocate(a_->key(), b_->key(), now_).value();
    a_->SetEndpoint(ep.vni, b_->key());
    b_->SetEndpoint(ep.vni, a_->key());
    writer_ = std::make_unique<GsoBatcher>(relay_sock_->fd(),
                                           /*socket_ipv6=*/false, 1024);
    queue_ = std::make_unique<SlowPathQueue>(64, 64);
    path_ = std::make_unique<WorkerPath>(server_.get(), queue_.get(),
                                         writer_.get(), &worker_,
                                         HandshakeLimiter(0, 0, 0, 0));
  }

  // B bound (the usual timing: the allocating peer binds first), A past its
  // Bind: returns A's Answer, not yet sent.
  Bytes PeerBoundAndAnswer() {
    EXPECT_TRUE(relay::DriveHandshake(*b_, *server_, now_, &direct_));
    Bytes bind = a_->Bind(1);
    relay::ControlReply reply;
    EXPECT_TRUE(server_->HandleControl(bind.data(), bind.size(),
                                       a_->address(), now_, &direct_, &reply));
    auto ch = a_->OpenChallenge(
        Bytes(reply.bytes.begin(), reply.bytes.begin() + reply.len));
    EXPECT_TRUE(ch.has_value());
    return ch ? a_->Answer(*ch) : Bytes();
  }

  void Receive(const Bytes& d, const SocketAddress& from, uint16_t gro = 0) {
    RxMeta meta;
    meta.gro_size = gro;
    path_->OnReceive(d.data(), d.size(), meta, from, now_);
  }

  void RunSlowPath() {
    SlowPathWorker slow(server_.get(), queue_.get(), &slow_counters_,
                        Clock::Monotonic());
    for (int i = 0; i < kTimeoutMs && queue_->size() > 0; ++i) {
      usleep(1000);
    }
    slow.Stop();
  }

  void ExpectAtB(const Bytes& want) {
    auto got = sock_b_->Recv(kTimeoutMs);
    ASSERT_TRUE(got.has_value()) << "nothing relayed to B";
    EXPECT_EQ(got->first, want);
    EXPECT_EQ(got->second, relay_sock_->local());
  }

  // Every datagram the worker received is relayed, queued or dropped.
  void ExpectWorkerAccounting() {
    relay::CountersSnapshot c;
    c.Add(worker_);
    EXPECT_EQ(c.received, c.relayed + c.to_slow_path + c.DroppedTotal());
  }

  int64_t now_ = 1'000'000'000;
  std::unique_ptr<UdpSocket> relay_sock_, sock_a_, sock_b_, stranger_;
  std::unique_ptr<relay::Server> server_;
  std::unique_ptr<DiscoClient> a_, b_;
  std::unique_ptr<GsoBatcher> writer_;
  std::unique_ptr<SlowPathQueue> queue_;
  std::unique_ptr<WorkerPath> path_;
  relay::Counters worker_, slow_counters_, direct_;
};

TEST_P(ClientOrderTest, DataInTheAnswersBatchWaitsAndIsRelayed) {
  Bytes answer = PeerBoundAndAnswer();
  Bytes ping = a_->Data({1, 2, 3}, geneve::kProtocolDisco);
  Receive(answer, a_->address());
  Receive(ping, a_->address());
  path_->Flush();
  EXPECT_EQ(worker_.to_slow_path.Get(), 2u);
  EXPECT_EQ(worker_.waited_for_control.Get(), 1u);
  EXPECT_EQ(worker_.DroppedTotal(), 0u);
  ExpectWorkerAccounting();
  RunSlowPath();
  ExpectAtB(ping);
  EXPECT_EQ(slow_counters_.handshakes_completed.Get(), 1u);
  EXPECT_EQ(slow_counters_.relayed.Get(), 1u);
  EXPECT_EQ(slow_counters_.DroppedTotal(), 0u);
  // Once applied, the next datagram takes the fast path again.
  Bytes next = a_->Data({4});
  Receive(next, a_->address());
  path_->Flush();
  ExpectAtB(next);
  EXPECT_EQ(worker_.relayed.Get(), 1u);
  EXPECT_EQ(worker_.waited_for_control.Get(), 1u);
}

TEST_P(ClientOrderTest, GroRunBehindTheAnswerWaitsInOrder) {
  Bytes answer = PeerBoundAndAnswer();
  // The Answer and three data datagrams of its size in one GRO buffer.
  std::vector<Bytes> pings;
  Bytes buf = answer;
  for (int i = 0; i < 3; ++i) {
    Bytes payload(answer.size() - geneve::kHeaderSize, uint8_t(0x40 + i));
    pings.push_back(a_->Data(payload, geneve::kProtocolDisco));
    buf.insert(buf.end(), pings.back().begin(), pings.back().end());
  }
  Receive(buf, a_->address(), static_cast<uint16_t>(answer.size()));
  path_->Flush();
  EXPECT_EQ(worker_.received.Get(), 4u);
  EXPECT_EQ(worker_.waited_for_control.Get(), 3u);
  ExpectWorkerAccounting();
  RunSlowPath();
  for (const Bytes& p : pings) ExpectAtB(p);
  EXPECT_EQ(slow_counters_.relayed.Get(), 3u);
}

TEST_P(ClientOrderTest, StrangerDataDoesNotWait) {
  Bytes answer = PeerBoundAndAnswer();
  Receive(answer, a_->address());
  Receive(a_->Data({9}), stranger_->local());
  path_->Flush();
  EXPECT_EQ(worker_.waited_for_control.Get(), 0u);
  EXPECT_EQ(worker_.Dropped(DropReason::kNotBound), 1u);
  ExpectWorkerAccounting();
}

TEST_P(ClientOrderTest, WaitIsBoundedPerControlDatagram) {
  Bytes answer = PeerBoundAndAnswer();
  Receive(answer, a_->address());
  const uint32_t extra = 3;
  for (uint32_t i = 0; i < WorkerPath::kMaxWaitPerControl + extra; ++i) {
    Receive(a_->Data({uint8_t(i)}), a_->address());
  }
  path_->Flush();
  EXPECT_EQ(worker_.waited_for_control.Get(), WorkerPath::kMaxWaitPerControl);
  EXPECT_EQ(worker_.Dropped(DropReason::kControlWaitFull), extra);
  ExpectWorkerAccounting();
  RunSlowPath();
  for (uint32_t i = 0; i < WorkerPath::kMaxWaitPerControl; ++i) {
    ExpectAtB(a_->Data({uint8_t(i)}));
  }
}

TEST_P(ClientOrderTest, WaitingDataIsDroppedWhenTheAnswerFails) {
  Bytes answer = PeerBoundAndAnswer();
  answer.back() ^= 1;  // the box no longer opens
  Receive(answer, a_->address());
  Receive(a_->Data({5}), a_->address());
  path_->Flush();
  EXPECT_EQ(worker_.waited_for_control.Get(), 1u);
  RunSlowPath();
  EXPECT_EQ(slow_counters_.Dropped(DropReason::kBoxOpenFailed), 1u);
  EXPECT_EQ(slow_counters_.Dropped(DropReason::kNotBound), 1u);
  EXPECT_EQ(slow_counters_.relayed.Get(), 0u);
  EXPECT_FALSE(sock_b_->Recv(50).has_value());
}

TEST_P(ClientOrderTest, FullDataShareDropsWithoutCrowdingControl) {
  queue_ = std::make_unique<SlowPathQueue>(4, 1);
  path_ = std::make_unique<WorkerPath>(server_.get(), queue_.get(),
                                       writer_.get(), &worker_,
                                       HandshakeLimiter(0, 0, 0, 0));
  Bytes answer = PeerBoundAndAnswer();
  Receive(answer, a_->address());
  Receive(a_->Data({1}), a_->address());
  Receive(a_->Data({2}), a_->address());  // the data share (1) is full
  Receive(a_->Bind(2), a_->address());    // control still has room
  path_->Flush();
  EXPECT_EQ(worker_.waited_for_control.Get(), 1u);
  EXPECT_EQ(worker_.Dropped(DropReason::kControlWaitFull), 1u);
  EXPECT_EQ(worker_.to_slow_path.Get(), 3u);
  ExpectWorkerAccounting();
}

INSTANTIATE_TEST_SUITE_P(Dialects, ClientOrderTest,
                         ::testing::Values(disco::Dialect::kCurrent,
                                           disco::Dialect::kSeed),
                         [](const auto& info) {
                           return std::string(
                               disco::DialectName(info.param));
                         });

}  // namespace
}  // namespace peerrelay::engine
