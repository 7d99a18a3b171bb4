#include "disco/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <fstream>

namespace peerrelay::disco {
namespace {

std::string TempPath(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

TEST(KeyFileTest, CreatedOnceWithMode0600ThenReloaded) {
  const std::string path = TempPath("key-created");
  unlink(path.c_str());
  auto first = LoadOrCreateKeyFile(path);
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = LoadOrCreateKeyFile(path);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->public_key(), first->public_key());
  EXPECT_EQ(second->secret(), first->secret());
}

TEST(KeyFileTest, BadContentIsAClearError) {
  for (const char* content : {"", "privkey:00", "pubkey:" , "privkey:zz"}) {
    const std::string path = TempPath("key-bad");
    std::ofstream(path) << content << "\n";
    auto k = LoadOrCreateKeyFile(path);
    EXPECT_FALSE(k.ok()) << content;
    EXPECT_NE(k.status().message().find("privkey:"), std::string::npos);
  }
}

TEST(KeyFileTest, UnwritableDirectoryIsAnError) {
  EXPECT_FALSE(LoadOrCreateKeyFile("/nonexistent-dir/key").ok());
}

TEST(KeyFileTest, AnUnreadableKeyIsNeverReplaced) {
  // Something that exists but cannot be read as a key: a directory, a FIFO
  // (which must not hang the open either). Each is an error naming the
  // path; nothing is created in its place.
  const std::string dir = TempPath("key-is-a-dir");
  mkdir(dir.c_str(), 0700);
  const std::string fifo = TempPath("key-is-a-fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {dir, fifo}) {
    SCOPED_TRACE(path);
    auto k = LoadOrCreateKeyFile(path);
    ASSERT_FALSE(k.ok());
    EXPECT_FALSE(absl::IsNotFound(k.status()));
    EXPECT_NE(k.status().message().find(path), std::string::npos);
    EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0) << "a key was written";
  }
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST(KeyFileTest, LoadNeverCreates) {
  const std::string path = TempPath("key-load-only");
  unlink(path.c_str());
  auto k = LoadKeyFile(path);
  EXPECT_TRUE(absl::IsNotFound(k.status()));
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST(KeyFileTest, APlantedSymlinkIsNotFollowed) {
  const std::string path = TempPath("key-symlinked");
  const std::string victim = TempPath("victim-file");
  unlink(path.c_str());
  unlink((path + ".tmp").c_str());
  std::ofstream(victim) << "precious\n";
  ASSERT_EQ(symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  auto k = LoadOrCreateKeyFile(path);
  EXPECT_FALSE(k.ok());
  std::ifstream in(victim);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "precious");
  unlink((path + ".tmp").c_str());
}

TEST(KeyFileTest, GroupReadableKeyWarns) {
  const std::string path = TempPath("key-readable");
  unlink(path.c_str());
  ASSERT_TRUE(LoadOrCreateKeyFile(path).ok());
  std::string warning;
  ASSERT_TRUE(LoadKeyFile(path, &warning).ok());
  EXPECT_EQ(warning, "");
  chmod(path.c_str(), 0644);
  ASSERT_TRUE(LoadKeyFile(path, &warning).ok());
  EXPECT_NE(warning.find("mode 0644"), std::string::npos) << warning;
}

}  // namespace
}  // namespace peerrelay::disco
