#include "common/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace peerrelay::log {
namespace {

constexpr int64_t kSec = 1'000'000'000;

// Sends stderr to a temporary file for the life of the object.
class CapturedStderr {
 public:
  CapturedStderr() {
    char path[] = "/tmp/log_test_XXXXXX";
    fd_ = mkstemp(path);
    unlink(path);
    saved_ = dup(STDERR_FILENO);
    dup2(fd_, STDERR_FILENO);
  }
  ~CapturedStderr() {
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    close(fd_);
  }
  std::string Text() const {
    std::string out;
    char buf[4096];
    off_t off = 0;
    ssize_t n;
    while ((n = pread(fd_, buf, sizeof(buf), off)) > 0) {
      out.append(buf, size_t(n));
      off += n;
    }
    return out;
  }

 private:
  int fd_ = -1, saved_ = -1;
};

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("JOURNAL_STREAM");
    Init("relayd");
    SetLevel(Level::kInfo);
  }
  void TearDown() override {
    unsetenv("JOURNAL_STREAM");
    Init("relayd");
    SetLevel(Level::kInfo);
  }
};

TEST_F(LogTest, TerminalLineHasUtcTimestampProgramAndLevel) {
  // 2026-11-29T12:04:09.123Z
  const int64_t t = 1795953849LL * kSec + 123'456'789;
  EXPECT_EQ(FormatLine(Level::kWarning, "key file is readable", t),
            "2026-11-29T12:04:09.123Z relayd: warning: key file is readable");
  EXPECT_EQ(FormatLine(Level::kDebug, "x", 0),
            "1970-01-01T00:00:00.000Z relayd: debug: x");
}

TEST_F(LogTest, JournaldGetsPriorityPrefixWhenStderrIsTheJournalStream) {
  struct stat st;
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  setenv("JOURNAL_STREAM", absl::StrCat(st.st_dev, ":", st.st_ino).c_str(), 1);
  Init("relayd");
  EXPECT_TRUE(UnderJournald());
  EXPECT_EQ(FormatLine(Level::kError, "cannot bind", 0), "<3>error: cannot bind");
  EXPECT_EQ(FormatLine(Level::kWarning, "w", 0), "<4>warning: w");
  EXPECT_EQ(FormatLine(Level::kNotice, "n", 0), "<5>notice: n");
  EXPECT_EQ(FormatLine(Level::kInfo, "i", 0), "<6>info: i");
  EXPECT_EQ(FormatLine(Level::kDebug, "d", 0), "<7>debug: d");
}

TEST_F(LogTest, InheritedJournalStreamForAnotherStreamIsIgnored) {
  // A child whose stderr was redirected keeps the variable: it must not
  // write journald prefixes into a file.
  setenv("JOURNAL_STREAM", "1:1", 1);
  Init("relayd");
  EXPECT_FALSE(UnderJournald());
  setenv("JOURNAL_STREAM", "garbage", 1);
  Init("relayd");
  EXPECT_FALSE(UnderJournald());
}

TEST_F(LogTest, LevelFiltersLines) {
  CapturedStderr err;
  SetLevel(Level::kWarning);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kError));
  PEERRELAY_LOG(kInfo, "hidden ", 1);
  PEERRELAY_LOG(kWarning, "shown ", 2);
  SetLevel(Level::kDebug);
  PEERRELAY_LOG(kDebug, "debug ", 3);
  const std::string text = err.Text();
  EXPECT_EQ(text.find("hidden"), std::string::npos);
  EXPECT_NE(text.find("relayd: warning: shown 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("relayd: debug: debug 3\n"), std::string::npos) << text;
}

TEST_F(LogTest, ParseLevelNames) {
  Level l;
  for (const char* name : {"error", "warning", "notice", "info", "debug"}) {
    ASSERT_TRUE(ParseLevel(name, &l)) << name;
    EXPECT_EQ(LevelName(l), name);
  }
  ASSERT_TRUE(ParseLevel("warn", &l));
  EXPECT_EQ(l, Level::kWarning);
  EXPECT_FALSE(ParseLevel("verbose", &l));
  EXPECT_FALSE(ParseLevel("INFO", &l));
}

TEST_F(LogTest, RateLimitedLogSuppressesAFloodAndSaysHowMuch) {
  CapturedStderr err;
  RateLimitedLog limited(/*per_second=*/1, /*burst=*/3);
  int written = 0;
  for (int i = 0; i < 1000; ++i) {
    written += limited.Write(Level::kInfo, absl::StrCat("event ", i), 0);
  }
  EXPECT_EQ(written, 3);
  EXPECT_EQ(limited.suppressed_total(), 997u);
  // One second later there is budget for one line, which reports the rest.
  EXPECT_TRUE(limited.Write(Level::kInfo, "event late", kSec));
  EXPECT_FALSE(limited.Write(Level::kInfo, "event later", kSec));
  const std::string text = err.Text();
  EXPECT_NE(text.find("info: event 2\n"), std::string::npos);
  EXPECT_EQ(text.find("info: event 3\n"), std::string::npos);
  EXPECT_NE(text.find("info: event late (997 similar lines suppressed)\n"),
            std::string::npos)
      << text;
}

TEST_F(LogTest, RateLimitedLogBelowLevelCountsNothing) {
  SetLevel(Level::kInfo);
  RateLimitedLog limited(1, 1);
  EXPECT_FALSE(limited.Write(Level::kDebug, "x", 0));
  EXPECT_EQ(limited.suppressed_total(), 0u);
}

TEST_F(LogTest, UsageErrorIsPlain) {
  CapturedStderr err;
  UsageError("--port must be 0..65535");
  EXPECT_EQ(err.Text(), "relayd: --port must be 0..65535\n");
}

}  // namespace
}  // namespace peerrelay::log
