// Command-line checks shared by relayd and relayctl, on top of abseil's
// flags (which stay the parser).
//
// abseil reports a bad flag as "ERROR: ..." and exits 1; relayd's own
// checks say "relayd: ..." and exit 2. CheckCommandLine walks argv (and the
// files --flagfile names) first, with abseil's own flag registry and value
// parsers, so every mistake it can see is reported relayd's way; what it
// does not understand it leaves to abseil.
#ifndef PEERRELAY_TOOLS_CLI_H_
#define PEERRELAY_TOOLS_CLI_H_

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

// Help text for the flags defined in source files whose path ends with
// one of `files`: "--name=DEFAULT  help", sorted by name.
std::string FlagsHelp(const std::vector<std::string>& files);

}  // namespace peerrelay::cli

#endif  // PEERRELAY_TOOLS_CLI_H_
