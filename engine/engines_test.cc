// The engine table (engines.h) and the writer contract's hand-off
// (packet_writer.h): what Relay picks by name, and who says what is still
// in flight.
#include "engine/engines.h"

#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "engine/fake_writer_testing.h"
#include "engine/gso_batcher.h"
#include "engine/relay.h"
#include "gtest/gtest.h"
#include "relay/server.h"

namespace peerrelay::engine {
namespace {

TEST(EnginesTest, TheTable) {
  ASSERT_GE(Engines().size(), 2u);
  std::set<std::string> names;
  for (const Engine& e : Engines()) {
    EXPECT_TRUE(names.insert(std::string(e.name)).second) << e.name;
    EXPECT_EQ(FindEngine(e.name), &e);
    ASSERT_NE(e.probe, nullptr);
    ASSERT_NE(e.make, nullptr);
  }
  EXPECT_EQ(Engines().front().name, "io_uring");
  // The last row is the fallback: it must run everywhere.
  EXPECT_EQ(Engines().back().name, "mmsg");
  EXPECT_TRUE(Engines().back().probe().ok());
  EXPECT_EQ(FindEngine("auto"), nullptr);
  EXPECT_EQ(FindEngine("af_xdp"), nullptr);
  EXPECT_EQ(EngineChoices(), "auto, io_uring, mmsg");
}

TEST(EnginesTest, RelayPicksRowsByName) {
  const SocketAddress bind = SocketAddress::Parse("127.0.0.1:0").value();
  auto server = relay::Server::Create({}, 0).value();

  auto bogus = Relay::Start(server.get(), {.bind = bind, .workers = 1,
                                           .engine = "bogus"});
  ASSERT_FALSE(bogus.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(bogus.status()));
  EXPECT_EQ(bogus.status().message(),
            "unknown engine 'bogus' (auto, io_uring, mmsg)");

  // auto: the first row whose probe passes; a note only when one was
  // passed over.
  const Engine* first = nullptr;
  for (const Engine& e : Engines()) {
    if (e.probe().ok()) {
      first = &e;
      break;
    }
  }
  ASSERT_NE(first, nullptr);
  auto a = Relay::Start(server.get(), {.bind = bind, .workers = 1});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->engine(), first->name);
  EXPECT_EQ((*a)->engine_note().empty(), first == &Engines().front());
  (*a)->Stop();

  for (const Engine& e : Engines()) {
    SCOPED_TRACE(std::string(e.name));
    auto r = Relay::Start(server.get(), {.bind = bind, .workers = 1,
                                         .engine = std::string(e.name)});
    if (!e.probe().ok()) {
      ASSERT_FALSE(r.ok());
      EXPECT_TRUE(absl::IsFailedPrecondition(r.status()));
      EXPECT_TRUE(absl::StrContains(r.status().message(), "requested but unavailable"));
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*r)->engine(), e.name);
    EXPECT_TRUE((*r)->engine_note().empty());
  }
}

// A sender that takes batches and completes them when told.
class HoldingSender : public BatchSender {
 public:
  bool Submit(mmsghdr*, size_t n) override {
    if (refuse) return false;
    in_flight += n;
    return true;
  }
  size_t InFlight() const override { return in_flight; }
  bool refuse = false;
  size_t in_flight = 0;
};

TEST(WriterContractTest, InFlightIsWhatTheSenderHasNotCompleted) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  GsoBatcher w(fd, /*socket_ipv6=*/false, 64);
  relay::Counters c;
  const SocketAddress dest = SocketAddress::Parse("127.0.0.1:9").value();
  uint8_t buf[100] = {};

  // No sender: synchronous, nothing ever in flight.
  w.Add(buf, sizeof(buf), dest, &c);
  w.Flush(&c);
  EXPECT_EQ(w.InFlight(), 0u);

  HoldingSender s;
  ASSERT_TRUE(w.AttachSender(&s));
  w.Add(buf, sizeof(buf), dest, &c);
  w.Add(buf, 50, dest, &c);  // closes the GSO run: still one message
  w.Flush(&c);
  EXPECT_EQ(w.InFlight(), 1u);  // one message handed off, not completed
  s.in_flight = 0;              // the sender completed it
  EXPECT_EQ(w.InFlight(), 0u);

  // A sender that refuses: the writer sends itself, nothing in flight.
  s.refuse = true;
  w.Add(buf, sizeof(buf), dest, &c);
  w.Flush(&c);
  EXPECT_EQ(w.InFlight(), 0u);

  ASSERT_TRUE(w.AttachSender(nullptr));
  EXPECT_EQ(w.InFlight(), 0u);
  close(fd);

  // A writer that cannot hand off says so and is never in flight.
  FakeWriter fake;
  EXPECT_FALSE(fake.AttachSender(&s));
  EXPECT_EQ(fake.InFlight(), 0u);
}

}  // namespace
}  // namespace peerrelay::engine
