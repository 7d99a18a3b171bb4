#include "disco/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
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

}  // namespace
}  // namespace peerrelay::disco
