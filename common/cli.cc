#include "common/cli.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/small_file.h"

namespace peerrelay::cli {
namespace {

// Flags abseil handles itself (usage, flag files, environment).
bool Builtin(absl::string_view name) {
  return name == "helpfull" || name == "helpshort" || name == "helppackage" ||
         name == "version" || name == "only_check_args" || name == "fromenv" ||
         name == "tryfromenv" || name == "undefok" || name == "helpon" ||
         name == "helpmatch";
}

absl::Status Bad(absl::string_view msg) {
  return absl::InvalidArgumentError(msg);
}

struct Walker {
  CommandLine out;
  int depth = 0;

  absl::Status File(const std::string& path) {
    if (++depth > 8) return Bad("--flagfile nests too deep");
    absl::StatusOr<std::string> text = ReadSmallFile(path, 1 << 20);
    if (!text.ok()) {
      return Bad(absl::StrCat("--flagfile: ", text.status().message()));
    }
    out.flagfiles.push_back(path);
    int n = 0;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      ++n;
      line = absl::StripAsciiWhitespace(line);
      if (line.empty() || line[0] == '#') continue;
      if (!absl::StartsWith(line, "-")) {
        return Bad(absl::StrCat(path, ":", n, ": expected --flag=value, got '",
                                line, "'"));
      }
      absl::Status s = One(line, std::nullopt, nullptr);
      if (!s.ok()) return Bad(absl::StrCat(path, ":", n, ": ", s.message()));
    }
    --depth;
    return absl::OkStatus();
  }

  // One "--name[=value]"; `next` is the following argv entry (a value for
  // "--name value"), `used_next` says whether it was taken.
  absl::Status One(absl::string_view arg, std::optional<absl::string_view> next,
                   bool* used_next) {
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    const size_t eq = body.find('=');
    const absl::string_view name = body.substr(0, eq);
    std::optional<absl::string_view> value;
    if (eq != absl::string_view::npos) value = body.substr(eq + 1);
    if (name == "help" || name == "h") {
      out.help = true;
      return absl::OkStatus();
    }
    if (Builtin(name)) return absl::OkStatus();
    if (name == "flagfile") {
      if (!value) {
        if (!next) return Bad("--flagfile needs a file name");
        value = *next;
        if (used_next) *used_next = true;
      }
      for (absl::string_view f : absl::StrSplit(*value, ',', absl::SkipEmpty())) {
        absl::Status s = File(std::string(f));
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !value) {
      absl::CommandLineFlag* b = absl::FindCommandLineFlag(name.substr(2));
      if (b != nullptr && b->IsOfType<bool>()) return absl::OkStatus();
    }
    if (flag == nullptr || flag->IsRetired()) {
      return Bad(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!value) {
      if (flag->IsOfType<bool>()) return absl::OkStatus();
      if (!next || absl::StartsWith(*next, "-")) {
        return Bad(absl::StrCat("--", name, " needs a value"));
      }
      value = *next;
      if (used_next) *used_next = true;
    }
    std::string error;
    if (flag->IsOfType<absl::Duration>()) {
      const absl::string_view v = absl::StripAsciiWhitespace(*value);
      if (!v.empty() && v != "0" &&
          v.find_first_not_of("0123456789.+-") == absl::string_view::npos) {
        return Bad(absl::StrCat("--", name, "=", *value,
                                ": a duration needs a unit, e.g. ", v, "s, ",
                                v, "ms or ", v, "m"));
      }
    }
    // Parsed into the flag as abseil will parse it again; only the error
    // matters here.
    if (!flag->ParseFrom(*value, &error)) {
      return Bad(absl::StrCat("--", name, "=", *value, ": ",
                              error.empty() ? "not a valid value" : error));
    }
    return absl::OkStatus();
  }
};

}  // namespace

absl::StatusOr<CommandLine> CheckCommandLine(int argc, char** argv) {
  Walker w;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;  // positional
    bool used_next = false;
    std::optional<absl::string_view> next;
    if (i + 1 < argc) next = argv[i + 1];
    absl::Status s = w.One(arg, next, &used_next);
    if (!s.ok()) return s;
    if (used_next) ++i;
  }
  return w.out;
}

absl::StatusOr<std::optional<std::string>> FlagValueInFiles(
    const std::vector<std::string>& files, absl::string_view name) {
  std::optional<std::string> value;
  const std::string prefix = absl::StrCat("--", name, "=");
  for (const std::string& f : files) {
    absl::StatusOr<std::string> text = ReadSmallFile(f, 1 << 20);
    if (!text.ok()) return text.status();
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (absl::ConsumePrefix(&line, prefix)) value = std::string(line);
    }
  }
  return value;
}

absl::StatusOr<std::string> ResolveSecretPath(const std::string& path) {
  absl::string_view name = path;
  if (!absl::ConsumePrefix(&name, "credential:")) return path;
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == 0) {
    return Bad(absl::StrCat(path, ": $CREDENTIALS_DIRECTORY is not set "
                            "(systemd sets it for LoadCredential=)"));
  }
  if (name.empty() || absl::StrContains(name, "/")) {
    return Bad(absl::StrCat(path, ": a credential name has no '/'"));
  }
  return absl::StrCat(dir, "/", name);
}

std::string FlagsHelp(const std::vector<std::string>& files) {
  std::map<std::string, std::string> lines;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string where = flag->Filename();
    const bool ours = std::any_of(files.begin(), files.end(), [&](auto& f) {
      return absl::EndsWith(where, f);
    });
    if (!ours) continue;
    std::string def = flag->DefaultValue();
    if (def.empty()) def = "\"\"";
    lines[std::string(name)] =
        absl::StrCat("  --", name, "=", def, "\n      ", flag->Help(), "\n");
  }
  std::string out;
  for (const auto& [name, text] : lines) out += text;
  return out;
}

int UsageError(const Program& program, absl::string_view message) {
  if (program.report) {
    program.report(message);
  } else {
    std::fprintf(stderr, "%s: %.*s\n", program.name, int(message.size()),
                 message.data());
  }
  return 2;
}

Parsed ParseFlags(int argc, char** argv, const Program& program) {
  Parsed out;
  absl::SetProgramUsageMessage(program.usage);
  absl::StatusOr<CommandLine> cmdline = CheckCommandLine(argc, argv);
  if (!cmdline.ok()) {
    out.exit_code = UsageError(program, cmdline.status().message());
    return out;
  }
  if (cmdline->help) {
    std::printf("%s\nflags:\n%s%s", program.usage,
                FlagsHelp(program.flag_sources).c_str(),
                program.help_footer.c_str());
    out.exit_code = 0;
    return out;
  }
  out.args = absl::ParseCommandLine(argc, argv);
  out.flagfiles = std::move(cmdline->flagfiles);
  return out;
}

}  // namespace peerrelay::cli
