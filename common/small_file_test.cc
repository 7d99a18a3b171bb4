#include "common/small_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace peerrelay {
namespace {

std::string TempPath(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

TEST(SmallFileTest, ReadsARegularFile) {
  const std::string p = TempPath("small-ok");
  std::ofstream(p) << "token\n";
  auto r = ReadSmallFile(p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "token\n");
}

TEST(SmallFileTest, MissingIsNotFound) {
  auto r = ReadSmallFile(TempPath("small-missing"));
  EXPECT_TRUE(absl::IsNotFound(r.status()));
}

TEST(SmallFileTest, AFifoIsRefusedWithoutWaiting) {
  const std::string p = TempPath("small-fifo");
  unlink(p.c_str());
  ASSERT_EQ(mkfifo(p.c_str(), 0600), 0);
  auto r = ReadSmallFile(p);  // would block forever with a blocking open
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos);
}

TEST(SmallFileTest, DirectoriesAndLargeFilesAreRefused) {
  const std::string d = TempPath("small-dir");
  mkdir(d.c_str(), 0700);
  EXPECT_FALSE(ReadSmallFile(d).ok());
  const std::string big = TempPath("small-big");
  std::ofstream(big) << std::string(100, 'x');
  auto r = ReadSmallFile(big, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("larger than 10"), std::string::npos);
}

}  // namespace
}  // namespace peerrelay
