// The shipped Grafana dashboard (tools/grafana/relayd-dashboard.json)
// against a live /metrics scrape of a relay that has bound a pair and
// relayed data both ways over IPv4 and IPv6: every metric a panel queries
// exists, and every label it groups by or names in a legend is one those
// metrics carry.
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "control/admin.h"
#include "gtest/gtest.h"
#include "tests/relay_harness.h"

namespace peerrelay {
namespace {

using nlohmann::json;

std::string DashboardPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") +
         "/peerrelay/tools/grafana/relayd-dashboard.json";
}

// Every "expr" and templating query, with the legend that goes with it.
void CollectQueries(const json& j,
                    std::vector<std::pair<std::string, std::string>>* out) {
  if (j.is_object()) {
    if (j.contains("expr") && j["expr"].is_string()) {
      out->emplace_back(j["expr"], j.value("legendFormat", ""));
    }
    if (j.contains("query") && j["query"].is_object() &&
        j["query"].contains("query")) {
      out->emplace_back(j["query"]["query"], "");
    }
    for (const auto& [k, v] : j.items()) CollectQueries(v, out);
  } else if (j.is_array()) {
    for (const json& v : j) CollectQueries(v, out);
  }
}

// metric name -> label names seen on it in the exposition text.
std::map<std::string, std::set<std::string>> Scrape(const std::string& text) {
  std::map<std::string, std::set<std::string>> out;
  std::istringstream in(text);
  std::string line;
  const std::regex label(R"(([a-z_]+)=")");
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t end = line.find_first_of("{ ");
    std::set<std::string>& labels = out[line.substr(0, end)];
    if (line[end] != '{') continue;
    const std::string ls = line.substr(end, line.find('}') - end);
    for (auto it = std::sregex_iterator(ls.begin(), ls.end(), label);
         it != std::sregex_iterator(); ++it) {
      labels.insert((*it)[1]);
    }
  }
  return out;
}


TEST(DashboardTest, EveryQueriedMetricAndLabelExistsInALiveScrape) {
  auto h = testing::RelayHarness::Start(SocketAddress::Parse("127.0.0.1:0").value(),
                                        {}, {.workers = 1})
               .value();
  auto admin = control::Admin::Start(
                   &h->server(), &h->relay(),
                   {.listen = SocketAddress::Parse("127.0.0.1:0").value(),
                    .token = "t"})
                   .value();
  // Traffic, so that the counters a panel shows are not all zero.
  testing::Client a = h->NewClient(), b = h->NewClient();
  ASSERT_TRUE(h->BindPair(a, b));
  ASSERT_TRUE(a.sock.SendTo(a.disco->Data(client::Bytes(100, 1)), h->relay_addr()));
  ASSERT_TRUE(b.sock.Recv(2000));
  const std::string text = admin->Metrics().body;
  const auto metrics = Scrape(text);
  ASSERT_GT(metrics.count("peerrelay_forwarded_packets_total"), 0u) << text;

  std::ifstream f(DashboardPath());
  ASSERT_TRUE(f) << DashboardPath();
  const json dash = json::parse(f);
  ASSERT_TRUE(dash.contains("panels"));
  std::set<int> ids;
  for (const json& p : dash["panels"]) {
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate panel id";
    EXPECT_FALSE(p["title"].get<std::string>().empty());
  }
  std::vector<std::pair<std::string, std::string>> queries;
  CollectQueries(dash, &queries);
  ASSERT_GE(queries.size(), 15u);

  const std::regex name(R"(\b((?:peerrelay|process)_[a-z0-9_]+))");
  const std::regex by(R"(by \(([a-z_, ]+)\))");
  const std::regex legend(R"(\{\{([a-z_]+)\}\})");
  // Labels Prometheus adds to every series it scrapes.
  const std::set<std::string> target_labels = {"instance", "job"};
  std::set<std::string> seen;
  for (const auto& [expr, leg] : queries) {
    std::set<std::string> labels = target_labels;
    bool any = false;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name);
         it != std::sregex_iterator(); ++it) {
      const std::string m = (*it)[1];
      any = true;
      seen.insert(m);
      auto found = metrics.find(m);
      ASSERT_NE(found, metrics.end()) << m << " (in " << expr << ") is not in the scrape";
      labels.insert(found->second.begin(), found->second.end());
    }
    EXPECT_TRUE(any) << "a query names no relayd metric: " << expr;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), by);
         it != std::sregex_iterator(); ++it) {
      std::stringstream list((*it)[1].str());
      std::string l;
      while (std::getline(list, l, ',')) {
        l.erase(0, l.find_first_not_of(' '));
        EXPECT_TRUE(labels.count(l)) << "groups by '" << l << "', which " << expr
                                     << " does not carry";
      }
    }
    for (auto it = std::sregex_iterator(leg.begin(), leg.end(), legend);
         it != std::sregex_iterator(); ++it) {
      EXPECT_TRUE(labels.count((*it)[1].str()))
          << "legend names '" << (*it)[1] << "', which " << expr << " does not carry";
    }
  }
  // What the issue asks the dashboard to show.
  for (const char* m :
       {"peerrelay_forwarded_packets_total", "peerrelay_forwarded_bytes_total",
        "peerrelay_dropped_datagrams_total", "peerrelay_endpoints",
        "peerrelay_handshakes_completed_total",
        "peerrelay_kernel_socket_drops_total"}) {
    EXPECT_TRUE(seen.count(m)) << "the dashboard does not show " << m;
  }
}

}  // namespace
}  // namespace peerrelay
