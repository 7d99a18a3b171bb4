#include "tools/lamport_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "relay/server.h"

namespace peerrelay {
namespace {

std::string TempPath(const char* name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

uint64_t OnDisk(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  in >> v;
  return v;
}

TEST(LamportFileTest, MissingFileStartsAtZeroAndReservesABlock) {
  const std::string path = TempPath("missing.lamport");
  auto f = LamportFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->start(), 0u);
  EXPECT_EQ(f->reserved(), 1 + LamportFile::kBlock);
  EXPECT_EQ(OnDisk(path), 1 + LamportFile::kBlock);
}

TEST(LamportFileTest, ReopenContinuesPastEverythingReserved) {
  const std::string path = TempPath("reopen.lamport");
  auto first = LamportFile::Open(path);
  ASSERT_TRUE(first.ok());
  auto more = first->Reserve(first->reserved() + 5);
  ASSERT_TRUE(more.ok());
  auto second = LamportFile::Open(path);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->start(), *more);
  EXPECT_GT(second->reserved(), *more);
}

TEST(LamportFileTest, GarbageIsAnErrorNotAReset) {
  const std::string path = TempPath("garbage.lamport");
  std::ofstream(path) << "twelve\n";
  auto f = LamportFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("garbage.lamport"), std::string::npos);
}

TEST(LamportFileTest, UnwritableDirectoryIsAnError) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes anywhere";
  const std::string dir = TempPath("ro");
  mkdir(dir.c_str(), 0500);
  EXPECT_FALSE(LamportFile::Open(dir + "/x.lamport").ok());
}

// What clients need: a relay restarted with the same key hands out IDs
// higher than any it handed out before, across block boundaries.
TEST(LamportFileTest, ServerIdsKeepGrowingAcrossRestarts) {
  const std::string path = TempPath("server.lamport");
  const disco::KeyPair key = disco::KeyPair::Generate();
  uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    auto f = LamportFile::Open(path);
    ASSERT_TRUE(f.ok());
    relay::ServerConfig config;
    config.key_pair = key;
    config.addresses = {SocketAddress::Parse("127.0.0.1:7777").value()};
    config.lamport_start = f->start();
    config.lamport_reserved = f->reserved();
    int reservations = 0;
    config.reserve_lamport = [&](uint64_t id) {
      ++reservations;
      return f->Reserve(id).value();
    };
    auto server = relay::Server::Create(std::move(config), 0).value();
    for (int i = 0; i < 4; ++i) {
      auto ep = server->Allocate(disco::KeyPair::Generate().public_key(),
                                 disco::KeyPair::Generate().public_key(), 0);
      ASSERT_TRUE(ep.ok()) << ep.status();
      EXPECT_GT(ep->lamport_id, last) << "run " << run;
      last = ep->lamport_id;
    }
    EXPECT_EQ(reservations, 0);
    EXPECT_LE(last, OnDisk(path));
  }
}

TEST(LamportFileTest, ServerReservesWhenTheBlockRunsOut) {
  relay::ServerConfig config;
  config.addresses = {SocketAddress::Parse("127.0.0.1:7777").value()};
  config.lamport_start = 10;
  config.lamport_reserved = 11;
  std::vector<uint64_t> asked;
  config.reserve_lamport = [&](uint64_t id) {
    asked.push_back(id);
    return id + 1;
  };
  auto server = relay::Server::Create(std::move(config), 0).value();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) {
    auto ep = server->Allocate(disco::KeyPair::Generate().public_key(),
                               disco::KeyPair::Generate().public_key(), 0);
    ASSERT_TRUE(ep.ok());
    ids.push_back(ep->lamport_id);
  }
  EXPECT_EQ(ids, (std::vector<uint64_t>{11, 12, 13, 14}));
  // 11 was reserved; 12 needs a block (to 13); 14 needs another.
  EXPECT_EQ(asked, (std::vector<uint64_t>{12, 14}));
}

}  // namespace
}  // namespace peerrelay
