// relayctl: talks to a running relayd's admin API.
//
//   relayctl [--admin=127.0.0.1:9780] [--token_file=F] allocate KEY KEY
//   relayctl sessions      endpoints, both legs, packets/bytes each way
//   relayctl metrics       counters in human form (non-zero series)
//   relayctl health        exit 0 when relayd is ready
#include <httplib.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

ABSL_FLAG(std::string, admin, "127.0.0.1:9780", "relayd admin address");
ABSL_FLAG(std::string, token_file, "", "bearer token file (for allocate)");

namespace {

using nlohmann::json;

int Fail(const std::string& msg) {
  std::fprintf(stderr, "relayctl: %s\n", msg.c_str());
  return 1;
}

std::string Human(double v) {
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (v >= 10000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrCat(int64_t(v)) : absl::StrFormat("%.1f%s", v, units[u]);
}

int Sessions(httplib::Client& c) {
  auto r = c.Get("/v0/relay/sessions");
  if (!r) return Fail("cannot reach relayd: " + httplib::to_string(r.error()));
  if (r->status != 200) return Fail(absl::StrCat("HTTP ", r->status, ": ", r->body));
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return Fail("bad JSON from relayd");
  std::printf("Server port: %d\n", j["ServerPort"].get<int>());
  std::printf("Sessions: %zu%s\n", j["Count"].get<size_t>(),
              j.value("Truncated", false)
                  ? absl::StrCat(" (first ", j["Sessions"].size(), " shown)").c_str()
                  : "");
  for (const json& s : j["Sessions"]) {
    std::string legs[2];
    for (int i = 0; i < 2; ++i) {
      const json& cl = s["Clients"][i];
      std::string where = cl["Endpoint"].is_null()
                              ? "<no handshake>"
                              : cl["Endpoint"].get<std::string>();
      legs[i] = absl::StrCat(where, "(", cl["ShortDisco"].get<std::string>(), ")");
    }
    const json& a = s["Clients"][0];
    const json& b = s["Clients"][1];
    std::printf(
        "  VNI %u (lamport %lu, age %.0fs): %s <-> %s  -> %s pkts / %s B, "
        "<- %s pkts / %s B\n",
        s["VNI"].get<uint32_t>(), s["LamportID"].get<uint64_t>(),
        s["AgeSeconds"].get<double>(), legs[0].c_str(), legs[1].c_str(),
        Human(a["PacketsFromClient"].get<double>()).c_str(),
        Human(a["BytesFromClient"].get<double>()).c_str(),
        Human(b["PacketsFromClient"].get<double>()).c_str(),
        Human(b["BytesFromClient"].get<double>()).c_str());
  }
  return 0;
}

int Metrics(httplib::Client& c) {
  auto r = c.Get("/metrics");
  if (!r) return Fail("cannot reach relayd: " + httplib::to_string(r.error()));
  // name -> sum over series, plus the labelled series of drops and states.
  std::map<std::string, double> totals;
  std::map<std::string, double> labelled;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    const std::string series = line.substr(0, sp);
    const double v = std::stod(line.substr(sp + 1));
    absl::string_view name_view(series);
    name_view = name_view.substr(0, name_view.find('{'));
    absl::ConsumePrefix(&name_view, "peerrelay_");
    const std::string name(name_view);
    if (name == "dropped_datagrams_total" || name == "endpoints" ||
        name == "allocation_errors_total" || name == "allocations_total") {
      if (v != 0) labelled[series.substr(std::string("peerrelay_").size())] = v;
    } else if (name != "build_info") {
      totals[name] += v;
    }
  }
  for (const auto& [k, v] : totals) {
    if (v != 0) std::printf("%-34s %s\n", k.c_str(), Human(v).c_str());
  }
  for (const auto& [k, v] : labelled) {
    std::printf("%-34s %s\n", k.c_str(), Human(v).c_str());
  }
  return 0;
}

int Allocate(httplib::Client& c, const std::string& a, const std::string& b) {
  std::string token;
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    std::ifstream f(absl::GetFlag(FLAGS_token_file));
    if (!f) return Fail("cannot read --token_file");
    std::getline(f, token);
    token = std::string(absl::StripAsciiWhitespace(token));
  }
  httplib::Headers h = {{"Authorization", "Bearer " + token}};
  auto r = c.Post("/v0/relay/endpoint", h,
                  json{{"DiscoKeys", {a, b}}}.dump(), "application/json");
  if (!r) return Fail("cannot reach relayd: " + httplib::to_string(r.error()));
  if (r->status != 200) {
    return Fail(absl::StrCat("HTTP ", r->status, ": ",
                             absl::StripTrailingAsciiWhitespace(r->body)));
  }
  std::printf("%s\n", json::parse(r->body).dump(2).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "relayctl [--admin=host:port] [--token_file=F] "
      "allocate KEY KEY | sessions | metrics | health");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Fail("need a command: allocate, sessions, metrics, health");
  std::string admin = absl::GetFlag(FLAGS_admin);
  httplib::Client c(absl::StrCat("http://", admin));
  c.set_connection_timeout(3, 0);
  c.set_read_timeout(10, 0);
  const std::string cmd = args[1];
  if (cmd == "sessions") return Sessions(c);
  if (cmd == "metrics") return Metrics(c);
  if (cmd == "health") {
    auto r = c.Get("/healthz");
    if (!r) return Fail("cannot reach relayd");
    std::printf("%s", r->body.c_str());
    return r->status == 200 ? 0 : 1;
  }
  if (cmd == "allocate") {
    if (args.size() != 4) return Fail("allocate needs two disco keys");
    return Allocate(c, args[2], args[3]);
  }
  return Fail("unknown command '" + cmd + "'");
}
