// Command-line handling shared by every program here (relayd, relayctl,
// loadgen, pcap_replay, geneve_dump, the demo client, the reference relay),
// on top of abseil's flags (which stay the parser).
//
// abseil reports a bad flag as "ERROR: ..." and exits 1; relayd's own
// checks say "relayd: ..." and exit 2. CheckCommandLine walks argv (and the
// files --flagfile names) first, with abseil's own flag registry and value
// parsers, so every mistake it can see is reported relayd's way; what it
// does not understand it leaves to abseil.
#ifndef PEERRELAY_COMMON_CLI_H_
#define PEERRELAY_COMMON_CLI_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace peerrelay::cli {

struct CommandLine {
  bool help = false;                  // --help, -help or -h
  std::vector<std::string> flagfiles;  // every --flagfile, in order
};

// Checks every --name[=value] in argv and in the flag files against the
// registered flags: unknown names, missing values, values the flag's type
// does not take ("--bind_lifetime=5: a duration needs a unit ..."), flag
// files that cannot be read. Positional arguments are not judged here.
absl::StatusOr<CommandLine> CheckCommandLine(int argc, char** argv);

// The last value a flag file gives `name` (`--name=value` lines), if any.
absl::StatusOr<std::optional<std::string>> FlagValueInFiles(
    const std::vector<std::string>& files, absl::string_view name);

// A secret file's path: "credential:NAME" is NAME in the directory
// systemd's LoadCredential= fills ($CREDENTIALS_DIRECTORY); any other value
// is the path itself.
absl::StatusOr<std::string> ResolveSecretPath(const std::string& path);

// The one entry every main goes through: checks the command line
// (CheckCommandLine), answers --help with the usage and the program's flags
// (exit 0), reports a mistake as "NAME: message" on stderr, or through
// `report`, with exit 2, and else parses with abseil.
struct Program {
  const char* name = "";
  const char* usage = "";                 // abseil's program usage message
  std::vector<std::string> flag_sources;  // whose flags --help lists
  std::string help_footer;                // printed after the flags
  std::function<void(absl::string_view)> report;  // default: stderr
};
struct Parsed {
  int exit_code = -1;        // >= 0: main returns this now
  std::vector<char*> args;   // else the positional arguments, argv[0] first
  std::vector<std::string> flagfiles;  // every --flagfile, in order
  bool done() const { return exit_code >= 0; }
};
Parsed ParseFlags(int argc, char** argv, const Program& program);

// Reports `message` the way `program` does (for the checks a main makes
// after parsing) and returns 2, the usage-error exit code.
int UsageError(const Program& program, absl::string_view message);

// Help text for the flags defined in source files whose path ends with
// one of `files`: "--name=DEFAULT  help", sorted by name.
std::string FlagsHelp(const std::vector<std::string>& files);

}  // namespace peerrelay::cli

#endif  // PEERRELAY_COMMON_CLI_H_
