#include "control/process_stats.h"

#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"

namespace peerrelay::control {
namespace {

// A real /proc/<pid>/stat line, with a command name holding a space and a
// parenthesis (the reason fields are counted from the last ')').
constexpr char kStat[] =
    "4242 (relay d)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 "
    "250 150 0 0 20 0 7 0 123400 104857600 2560 18446744073709551615 "
    "1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ProcessStatsTest, ParsesTheFieldsByPosition) {
  std::optional<ProcessStats> s =
      ParseProcStat(kStat, /*boot_time=*/1'700'000'000, /*ticks=*/100,
                    /*page_size=*/4096);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 4.0);  // (250 + 150) / 100
  EXPECT_EQ(s->threads, 7u);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 1'700'000'000 + 1234.0);
  EXPECT_EQ(s->virtual_bytes, 104857600u);
  EXPECT_EQ(s->resident_bytes, 2560u * 4096);
}

TEST(ProcessStatsTest, RejectsWhatIsNotAStatLine) {
  EXPECT_FALSE(ParseProcStat("", 0, 100, 4096));
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 2 3", 0, 100, 4096));
  EXPECT_FALSE(ParseProcStat(kStat, 0, 0, 4096));
}

TEST(ProcessStatsTest, ReadsThisProcess) {
  std::thread t([] {
    std::optional<ProcessStats> s = ReadProcessStats();
    ASSERT_TRUE(s.has_value());
    EXPECT_GE(s->threads, 2u);  // this thread and the main one
    EXPECT_GE(s->open_fds, 3u);  // stdin, stdout, stderr at least
    EXPECT_GT(s->max_fds, s->open_fds);
    EXPECT_GT(s->resident_bytes, 0u);
    EXPECT_GT(s->start_time_seconds, 1.5e9);
    EXPECT_LE(s->start_time_seconds, double(time(nullptr)) + 1);
  });
  t.join();
}

}  // namespace
}  // namespace peerrelay::control
