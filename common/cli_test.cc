#include "common/cli.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, cli_port, 7777, "a port");
ABSL_FLAG(absl::Duration, cli_lifetime, absl::Seconds(30), "a lifetime");
ABSL_FLAG(bool, cli_switch, false, "a switch");
ABSL_FLAG(std::string, cli_level, "info", "a level");

namespace peerrelay::cli {
namespace {

absl::StatusOr<CommandLine> Check(std::vector<std::string> args) {
  args.insert(args.begin(), "relayd");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return CheckCommandLine(int(argv.size()), argv.data());
}

std::string Error(std::vector<std::string> args) {
  absl::StatusOr<CommandLine> r = Check(std::move(args));
  return r.ok() ? "ok" : std::string(r.status().message());
}

std::string TempFile(const std::string& text) {
  std::string path = ::testing::TempDir() + "/cli_test_" +
                     std::to_string(getpid()) + "_" +
                     std::to_string(text.size()) + ".flags";
  std::ofstream(path) << text;
  return path;
}

TEST(CheckCommandLineTest, AcceptsWhatAbseilAccepts) {
  EXPECT_EQ(Error({"--cli_port=1", "--cli_lifetime=5s", "--cli_switch",
                   "--nocli_switch", "--cli_switch=false", "-cli_port=2",
                   "--cli_level", "debug", "positional", "--", "--bogus"}),
            "ok");
  EXPECT_EQ(Error({"--cli_lifetime=0"}), "ok");
  EXPECT_EQ(Error({"--version"}), "ok");  // abseil's own
}

TEST(CheckCommandLineTest, NamesEveryMistake) {
  EXPECT_EQ(Error({"--bogus=1"}), "unknown flag --bogus (see --help)");
  EXPECT_EQ(Error({"--nocli_port"}), "unknown flag --nocli_port (see --help)");
  EXPECT_EQ(Error({"--cli_port"}), "--cli_port needs a value");
  EXPECT_EQ(Error({"--cli_port", "--cli_switch"}), "--cli_port needs a value");
  EXPECT_NE(Error({"--cli_port=abc"}).find("--cli_port=abc: "),
            std::string::npos);
  EXPECT_NE(Error({"--cli_switch=maybe"}).find("--cli_switch=maybe: "),
            std::string::npos);
  EXPECT_EQ(Error({"--cli_lifetime=5"}),
            "--cli_lifetime=5: a duration needs a unit, e.g. 5s, 5ms or 5m");
  EXPECT_NE(Error({"--cli_lifetime=5 parsecs"}).find("--cli_lifetime="),
            std::string::npos);
}

TEST(CheckCommandLineTest, HelpInEveryForm) {
  for (const char* h : {"-h", "--help", "-help"}) {
    absl::StatusOr<CommandLine> r = Check({h});
    ASSERT_TRUE(r.ok()) << h;
    EXPECT_TRUE(r->help) << h;
  }
  EXPECT_FALSE(Check({"--cli_port=1"})->help);
}

TEST(CheckCommandLineTest, FlagFilesAreCheckedLineByLine) {
  const std::string good =
      TempFile("# a comment\n\n  --cli_port=9\n--cli_level=debug\n");
  absl::StatusOr<CommandLine> r = Check({"--flagfile=" + good});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->flagfiles, std::vector<std::string>{good});
  EXPECT_EQ(Check({"--flagfile", good})->flagfiles.size(), 1u);

  const std::string bad = TempFile("--cli_port=9\n--cli_lifetime=30\n");
  EXPECT_EQ(Error({"--flagfile=" + bad}),
            bad + ":2: --cli_lifetime=30: a duration needs a unit, e.g. 30s, "
                  "30ms or 30m");
  const std::string stray = TempFile("--cli_port=9\nport=7\n");
  EXPECT_EQ(Error({"--flagfile=" + stray}),
            stray + ":2: expected --flag=value, got 'port=7'");
  EXPECT_EQ(Error({"--flagfile=/nonexistent/relayd.flags"}),
            "--flagfile: cannot read /nonexistent/relayd.flags: no such file");
}

TEST(FlagValueInFilesTest, LastValueWins) {
  const std::string a = TempFile("--cli_level=debug\n");
  const std::string b = TempFile("--cli_port=1\n  --cli_level=warning  \n#x\n");
  auto v = FlagValueInFiles({a, b}, "cli_level");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or("none"), "warning");
  EXPECT_FALSE(FlagValueInFiles({a}, "cli_port")->has_value());
  EXPECT_FALSE(FlagValueInFiles({"/nonexistent"}, "cli_port").ok());
}

TEST(FlagsHelpTest, ListsOnlyTheNamedFilesFlagsWithDefaults) {
  const std::string help = FlagsHelp({"common/cli_test.cc"});
  EXPECT_NE(help.find("  --cli_port=7777\n      a port\n"), std::string::npos)
      << help;
  EXPECT_NE(help.find("--cli_lifetime=30s"), std::string::npos);
  EXPECT_LT(help.find("--cli_level"), help.find("--cli_port"));  // sorted
  EXPECT_EQ(help.find("--flagfile"), std::string::npos);
}

}  // namespace
}  // namespace peerrelay::cli
