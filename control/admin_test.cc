// The admin HTTP API against a running relay: every status code of the
// allocation endpoint, and the sessions and metrics views after a real
// handshake and relayed traffic.
#include "control/admin.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "client/disco_client.h"
#include "tests/relay_harness.h"
#include "common/udp_socket.h"

namespace peerrelay::control {
namespace {

using nlohmann::json;
using client::Bytes;
using ::peerrelay::UdpSocket;

constexpr char kToken[] = "s3cret-token";

TEST(FormatGoDurationTest, MatchesGo) {
  struct {
    int64_t ns;
    const char* want;
  } cases[] = {
      {0, "0s"},
      {1, "1ns"},
      {1'500, "1.5µs"},
      {250'000'000, "250ms"},
      {1'000'000'000, "1s"},
      {1'500'000'000, "1.5s"},
      {30'000'000'000, "30s"},
      {60'000'000'000, "1m0s"},
      {300'000'000'000, "5m0s"},
      {3'600'000'000'000, "1h0m0s"},
      {3'723'000'000'000, "1h2m3s"},
      {-30'000'000'000, "-30s"},
  };
  for (const auto& c : cases) EXPECT_EQ(FormatGoDuration(c.ns), c.want) << c.ns;
}

// Sums the values of every series of `name` whose labels contain `match`.
double Sum(const std::string& text, const std::string& name,
           const std::string& match = "") {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || line[name.size()] == '_') continue;
    if (!match.empty() && line.find(match) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(SocketAddress::Parse("127.0.0.1:0").value()); }

  void Start(SocketAddress admin_listen, AdminOptions opts = {}) {
    h_ = testing::RelayHarness::Start(
             SocketAddress::Parse("127.0.0.1:0").value(), {},
             {.workers = 2, .engine = "mmsg"})
             .value();
    server_ = &h_->server();
    relay_ = &h_->relay();
    relay_addr_ = h_->relay_addr();
    opts.listen = admin_listen;
    if (opts.token.empty()) opts.token = kToken;
    admin_ = Admin::Start(server_, relay_, opts).value();
    const std::string host = admin_listen.is_ipv4()
                                 ? admin_listen.IpString()
                                 : absl::StrCat("[", admin_listen.IpString(), "]");
    client_ = std::make_unique<httplib::Client>(
        absl::StrCat("http://", host, ":", admin_->port()));
    client_->set_read_timeout(5, 0);
  }

  httplib::Result Post(const std::string& body, const char* token = kToken) {
    httplib::Headers h;
    if (token) h.emplace("Authorization", absl::StrCat("Bearer ", token));
    return client_->Post("/v0/relay/endpoint", h, body, "application/json");
  }

  // A new Admin with `opts` (on 127.0.0.1, any port; the admin token unless
  // `opts` names one) over the same relay, and a client for it.
  void RestartAdmin(AdminOptions opts) {
    admin_.reset();
    opts.listen = SocketAddress::Parse("127.0.0.1:0").value();
    if (opts.token.empty()) opts.token = kToken;
    admin_ = Admin::Start(server_, relay_, std::move(opts)).value();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", admin_->port());
  }

  // GET with the admin token (or `token`; nullptr: none).
  httplib::Result Get(const std::string& path, const char* token = kToken) {
    httplib::Headers h;
    if (token) h.emplace("Authorization", absl::StrCat("Bearer ", token));
    return client_->Get(path, h);
  }

  std::string KeysBody(const disco::DiscoKey& a, const disco::DiscoKey& b) {
    return json{{"DiscoKeys", {a.ToText(), b.ToText()}}}.dump();
  }

  std::unique_ptr<testing::RelayHarness> h_;
  relay::Server* server_ = nullptr;
  engine::Relay* relay_ = nullptr;
  std::unique_ptr<Admin> admin_;
  std::unique_ptr<httplib::Client> client_;
  SocketAddress relay_addr_;
  disco::DiscoKey ka_ = disco::KeyPair::Generate().public_key();
  disco::DiscoKey kb_ = disco::KeyPair::Generate().public_key();
};

TEST_F(AdminTest, AllocationReturnsTheEndpointJson) {
  auto r = Post(KeysBody(ka_, kb_));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["ServerDisco"], server_->server_key().ToText());
  disco::DiscoKey lo = std::min(ka_, kb_), hi = std::max(ka_, kb_);
  EXPECT_EQ(j["ClientDisco"], json({lo.ToText(), hi.ToText()}));
  EXPECT_EQ(j["LamportID"], 1);
  EXPECT_EQ(j["AddrPorts"], json({relay_addr_.ToString()}));
  EXPECT_EQ(j["VNI"], 1);
  EXPECT_EQ(j["BindLifetime"], "30s");
  EXPECT_EQ(j["SteadyStateLifetime"], "5m0s");
  EXPECT_EQ(j.size(), 7u);
  // Same pair, unbound: the same endpoint.
  auto again = Post(KeysBody(kb_, ka_));
  ASSERT_TRUE(again);
  EXPECT_EQ(json::parse(again->body)["VNI"], 1);
  EXPECT_EQ(json::parse(again->body)["LamportID"], 1);
}

TEST_F(AdminTest, PermissionIsCheckedFirst) {
  auto none = Post(KeysBody(ka_, kb_), nullptr);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 403);
  EXPECT_EQ(Post(KeysBody(ka_, kb_), "wrong")->status, 403);
  EXPECT_EQ(Post(KeysBody(ka_, kb_), "s3cret-tokeX")->status, 403);
  // Even a bad method or body is 403 without the token.
  EXPECT_EQ(client_->Get("/v0/relay/endpoint")->status, 403);
  EXPECT_EQ(Post("not json", nullptr)->status, 403);
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

TEST_F(AdminTest, OtherMethodsAre405) {
  httplib::Headers h = {{"Authorization", absl::StrCat("Bearer ", kToken)}};
  EXPECT_EQ(client_->Get("/v0/relay/endpoint", h)->status, 405);
  EXPECT_EQ(client_->Put("/v0/relay/endpoint", h, "{}", "application/json")->status, 405);
  EXPECT_EQ(client_->Delete("/v0/relay/endpoint", h)->status, 405);
}

TEST_F(AdminTest, BadBodiesAre400) {
  const std::string k = ka_.ToText();
  for (const std::string& body :
       {std::string(""), std::string("not json"), std::string("[]"),
        std::string("{}"), std::string("{\"DiscoKeys\":\"x\"}"),
        json{{"DiscoKeys", {k}}}.dump(),
        json{{"DiscoKeys", {k, kb_.ToText(), k}}}.dump(),
        json{{"DiscoKeys", {k, 7}}}.dump(),
        json{{"DiscoKeys", {k, "discokey:zz"}}}.dump(),
        json{{"DiscoKeys", {k, "nodekey:" + std::string(64, 'a')}}}.dump(),
        // Low-order points: no shared key, no handshake, ever.
        json{{"DiscoKeys", {k, "discokey:" + std::string(64, '0')}}}.dump(),
        json{{"DiscoKeys",
              {k, "discokey:ecffffffffffffffffffffffffffffffffffffffffffffff"
                  "ffffffffffffff7f"}}}
            .dump(),
        // Valid JSON, but over 512 bytes.
        json{{"DiscoKeys", {k, kb_.ToText()}},
             {"Pad", std::string(600, 'x')}}
            .dump()}) {
    auto r = Post(body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
  }
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

TEST_F(AdminTest, UnauthenticatedBodyIsNeverRead) {
  // A chunked body without the token: 403 as soon as the head is in, with
  // the body unread, and the relay keeps serving.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss;
  const socklen_t len =
      SocketAddress::Parse(absl::StrCat("127.0.0.1:", admin_->port()))
          .value()
          .ToSockaddr(&ss, false);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
  const std::string head =
      "POST /v0/relay/endpoint HTTP/1.1\r\nHost: x\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL),
            ssize_t(head.size()));
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 12);
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 403");
  close(fd);
  auto health = client_->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

TEST_F(AdminTest, AllocationErrorsAre400And503) {
  // The caller's mistakes: 400.
  auto same = Post(KeysBody(ka_, ka_));
  EXPECT_EQ(same->status, 400);
  auto server_key = Post(KeysBody(server_->server_key(), ka_));
  EXPECT_EQ(server_key->status, 400);
  EXPECT_NE(server_key->body.find("server"), std::string::npos);
  // The relay cannot take it now: 503 with Retry-After.
  server_->SetAddresses({});
  auto not_ready = Post(KeysBody(ka_, kb_));
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_EQ(not_ready->get_header_value("Retry-After"), "3");
  EXPECT_EQ(Get("/readyz", nullptr)->status, 503);
  EXPECT_EQ(Get("/livez", nullptr)->status, 200);
  server_->SetAddresses({relay_addr_});
  server_->Close();
  auto closed = Post(KeysBody(ka_, kb_));
  EXPECT_EQ(closed->status, 503);
  EXPECT_EQ(closed->get_header_value("Retry-After"), "30");
  EXPECT_EQ(closed->body, "draining: this relay takes no new allocations\n");
  const std::string m = Get("/metrics", nullptr)->body;
  EXPECT_NE(m.find("peerrelay_allocation_errors_total{status=\"400\"} 2"),
            std::string::npos);
  EXPECT_NE(m.find("peerrelay_allocation_errors_total{status=\"503\"} 2"),
            std::string::npos);
  EXPECT_NE(m.find("peerrelay_allocation_errors_total{status=\"500\"} 0"),
            std::string::npos);
}

TEST_F(AdminTest, EndpointCapIs503) {
  h_.reset();
  admin_.reset();
  h_ = testing::RelayHarness::Start(SocketAddress::Parse("127.0.0.1:0").value(),
                                    {.max_endpoints = 1},
                                    {.workers = 1,
                                     .engine = "mmsg"})
           .value();
  server_ = &h_->server();
  relay_ = &h_->relay();
  RestartAdmin({});
  EXPECT_EQ(Post(KeysBody(ka_, kb_))->status, 200);
  auto full = Post(KeysBody(ka_, disco::KeyPair::Generate().public_key()));
  EXPECT_EQ(full->status, 503);
  EXPECT_EQ(full->get_header_value("Retry-After"), "3");
  EXPECT_NE(full->body.find("endpoint limit reached (1)"), std::string::npos)
      << full->body;
}

TEST_F(AdminTest, DrainCallIsAuthenticatedAndRefusesAllocations) {
  int drains = 0, restarts = 0;
  RestartAdmin({.read_token = "reader", .on_drain = [&](bool restart) {
                  ++drains;
                  restarts += restart;
                }});
  EXPECT_EQ(client_->Post("/v0/relay/drain", "", "text/plain")->status, 403);
  httplib::Headers reader = {{"Authorization", "Bearer reader"}};
  EXPECT_EQ(client_->Post("/v0/relay/drain", reader, "", "text/plain")->status,
            403);
  httplib::Headers admin = {{"Authorization", absl::StrCat("Bearer ", kToken)}};
  EXPECT_EQ(client_->Get("/v0/relay/drain", admin)->status, 405);
  EXPECT_EQ(drains, 0);
  auto r = client_->Post("/v0/relay/drain", admin, "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "draining: 0 endpoints left; then exit\n");
  EXPECT_EQ(drains, 1);
  EXPECT_EQ(restarts, 0);
  admin_->SetDraining(true);  // what relayd's drain does next
  EXPECT_EQ(client_->Post("/v0/relay/drain", admin, "", "text/plain")->status,
            200);
  EXPECT_EQ(drains, 1);
  // A drain under way can still be told to end in a restart; nothing else.
  EXPECT_EQ(client_->Post("/v0/relay/drain?then=reboot", admin, "", "text/plain")
                ->status,
            400);
  auto again = client_->Post("/v0/relay/drain?then=restart", admin, "", "text/plain");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(again->body, "already draining; it ends in a restart\n");
  EXPECT_EQ(drains, 2);
  EXPECT_EQ(restarts, 1);
  auto refused = Post(KeysBody(ka_, kb_));
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "30");
  EXPECT_EQ(Get("/readyz", nullptr)->status, 503);
  EXPECT_EQ(Get("/healthz", nullptr)->status, 503);
  EXPECT_EQ(Get("/livez", nullptr)->status, 200);
  const std::string m = Get("/metrics", nullptr)->body;
  EXPECT_NE(m.find("peerrelay_draining 1"), std::string::npos);
  EXPECT_NE(m.find("peerrelay_ready 0"), std::string::npos);
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

TEST_F(AdminTest, SessionListNeedsATokenAndTheReadTokenOnlyReads) {
  RestartAdmin({.read_token = "reader"});
  EXPECT_EQ(Get("/v0/relay/sessions", nullptr)->status, 403);
  EXPECT_EQ(Get("/v0/relay/sessions", "wrong")->status, 403);
  EXPECT_EQ(Get("/v0/relay/sessions", "reader")->status, 200);
  EXPECT_EQ(Get("/v0/relay/sessions", kToken)->status, 200);
  // The read token cannot allocate.
  EXPECT_EQ(Post(KeysBody(ka_, kb_), "reader")->status, 403);
  admin_->SetReadToken("");
  EXPECT_EQ(Get("/v0/relay/sessions", "reader")->status, 403);
  // Probes and metrics need none.
  EXPECT_EQ(Get("/metrics", nullptr)->status, 200);
  EXPECT_EQ(Get("/livez", nullptr)->status, 200);
  EXPECT_EQ(Get("/readyz", nullptr)->status, 200);
}

TEST_F(AdminTest, MetricsListenerServesNoSecrets) {
  RestartAdmin({.metrics_listen = SocketAddress::Parse("127.0.0.1:0").value()});
  ASSERT_NE(admin_->metrics_port(), 0);
  ASSERT_NE(admin_->metrics_port(), admin_->port());
  httplib::Client m("127.0.0.1", admin_->metrics_port());
  httplib::Headers auth = {{"Authorization", absl::StrCat("Bearer ", kToken)}};
  EXPECT_EQ(m.Get("/metrics")->status, 200);
  EXPECT_NE(m.Get("/metrics")->body.find("peerrelay_received_datagrams_total"),
            std::string::npos);
  EXPECT_EQ(m.Get("/livez")->status, 200);
  EXPECT_EQ(m.Get("/readyz")->status, 200);
  EXPECT_EQ(m.Get("/healthz")->status, 200);
  // Not even the admin token opens the rest there.
  EXPECT_EQ(m.Get("/v0/relay/sessions", auth)->status, 404);
  EXPECT_EQ(m.Post("/v0/relay/endpoint", auth, KeysBody(ka_, kb_),
                   "application/json")
                ->status,
            404);
  EXPECT_EQ(m.Post("/v0/relay/drain", auth, "", "text/plain")->status, 404);
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

TEST_F(AdminTest, SessionFiltersByKeyAndAddress) {
  testing::Client client_a = h_->NewClient(), client_b = h_->NewClient();
  client::DiscoClient& a = *client_a.disco;
  client::DiscoClient& b = *client_b.disco;
  auto r = Post(KeysBody(a.key(), b.key()));
  ASSERT_EQ(r->status, 200);
  const uint32_t vni = json::parse(r->body)["VNI"];
  a.SetEndpoint(vni, b.key());
  ASSERT_TRUE(h_->Handshake(client_a));
  // Two more endpoints for other keys.
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(Post(KeysBody(disco::KeyPair::Generate().public_key(),
                            disco::KeyPair::Generate().public_key()))
                  ->status,
              200);
  }
  auto count = [&](const std::string& query) {
    auto res = Get("/v0/relay/sessions?" + query);
    EXPECT_EQ(res->status, 200) << query << ": " << res->body;
    json j = json::parse(res->body);
    EXPECT_EQ(j["Count"], j["Sessions"].size());
    return j["Count"].get<int>();
  };
  const std::string hex = a.key().ToText().substr(9);
  EXPECT_EQ(count(""), 3);
  EXPECT_EQ(count("key=" + a.key().ToText()), 1);
  EXPECT_EQ(count("key=" + hex.substr(0, 12)), 1);
  EXPECT_EQ(count("key=d:" + absl::AsciiStrToUpper(hex.substr(0, 8))), 1);
  EXPECT_EQ(count("addr=" + client_a.sock.local().ToString()), 1);
  EXPECT_EQ(count("addr=127.0.0.1"), 1);  // any port
  EXPECT_EQ(count("addr=127.0.0.1:1"), 0);
  // b never bound: its address matches nothing, its key does.
  EXPECT_EQ(count("addr=" + client_b.sock.local().ToString()), 0);
  EXPECT_EQ(count("key=" + b.key().ToText().substr(9, 16)), 1);
  EXPECT_EQ(count("key=" + hex.substr(0, 12) +
                  "&addr=" + client_a.sock.local().ToString()),
            1);
  EXPECT_EQ(Get("/v0/relay/sessions?key=xyz")->status, 400);
  EXPECT_EQ(Get("/v0/relay/sessions?key=")->status, 400);
  EXPECT_EQ(Get("/v0/relay/sessions?addr=host.example")->status, 400);
}

TEST_F(AdminTest, EndpointStatesAndExpiriesAreCounted) {
  testing::Client client_a = h_->NewClient(), client_b = h_->NewClient();
  client::DiscoClient& a = *client_a.disco;
  client::DiscoClient& b = *client_b.disco;
  auto r = Post(KeysBody(a.key(), b.key()));
  const uint32_t vni = json::parse(r->body)["VNI"];
  a.SetEndpoint(vni, b.key());
  b.SetEndpoint(vni, a.key());
  ASSERT_EQ(Post(KeysBody(ka_, kb_))->status, 200);
  auto states = [&] {
    const std::string m = Get("/metrics", nullptr)->body;
    return std::vector<double>{
        Sum(m, "peerrelay_endpoints", "state=\"open\""),
        Sum(m, "peerrelay_endpoints", "state=\"semi_bound\""),
        Sum(m, "peerrelay_endpoints", "state=\"bound\"")};
  };
  EXPECT_EQ(states(), (std::vector<double>{2, 0, 0}));
  ASSERT_TRUE(h_->Handshake(client_a));
  EXPECT_EQ(states(), (std::vector<double>{1, 1, 0}));
  ASSERT_TRUE(h_->Handshake(client_b));
  EXPECT_EQ(states(), (std::vector<double>{1, 0, 1}));
  // The unbound one outlives its 30 s bind lifetime.
  EXPECT_EQ(server_->Expire(MonotonicNowNs() + 31'000'000'000), 1u);
  const std::string m = Get("/metrics", nullptr)->body;
  EXPECT_EQ(Sum(m, "peerrelay_endpoints_expired_total"), 1);
  EXPECT_EQ(states(), (std::vector<double>{0, 0, 1}));
}

TEST_F(AdminTest, CallersOverTheRateLimitGet429) {
  RestartAdmin({.alloc_rate = 0.01, .alloc_burst = 2});
  EXPECT_EQ(Post(KeysBody(ka_, kb_))->status, 200);
  EXPECT_EQ(Post(KeysBody(ka_, kb_))->status, 200);
  auto limited = Post(KeysBody(ka_, kb_));
  EXPECT_EQ(limited->status, 429);
  EXPECT_GE(std::stoi(limited->get_header_value("Retry-After")), 1);
  auto metrics = client_->Get("/metrics");
  EXPECT_NE(metrics->body.find("peerrelay_allocation_errors_total{status=\"429\"} 1"),
            std::string::npos);
}

// The tailnet bridge: one caller for a whole tailnet, which names the node
// it allocates for.
constexpr char kBridgeToken[] = "bridge-token";

std::string RequesterBody(const disco::DiscoKey& a, const disco::DiscoKey& b,
                          const std::string& requester) {
  return json{{"DiscoKeys", {a.ToText(), b.ToText()}},
              {"Requester", requester}}
      .dump();
}

std::string NodeKey(char c) { return "nodekey:" + std::string(64, c); }

TEST_F(AdminTest, BridgeTokenAllocatesAndNothingElse) {
  RestartAdmin({.bridge_token = kBridgeToken});
  EXPECT_EQ(Post(KeysBody(ka_, kb_), kBridgeToken)->status, 200);
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, NodeKey('a')), kBridgeToken)->status,
            200);
  EXPECT_EQ(Get("/v0/relay/sessions", kBridgeToken)->status, 403);
  httplib::Headers bridge = {
      {"Authorization", absl::StrCat("Bearer ", kBridgeToken)}};
  EXPECT_EQ(client_->Post("/v0/relay/drain", bridge, "", "text/plain")->status,
            403);
  EXPECT_EQ(admin_->Health().status, 200);
}

TEST_F(AdminTest, OnlyTheBridgeNamesAWellFormedRequester) {
  RestartAdmin({.bridge_token = kBridgeToken});
  auto admin = Post(RequesterBody(ka_, kb_, NodeKey('a')), kToken);
  EXPECT_EQ(admin->status, 403);
  EXPECT_NE(admin->body.find("only the bridge token"), std::string::npos);
  for (const std::string& bad :
       {std::string("nodekey:abc"), NodeKey('A'), NodeKey('g'),
        "discokey:" + std::string(64, 'a'), std::string(72, 'a')}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(Post(RequesterBody(ka_, kb_, bad), kBridgeToken)->status, 400);
  }
  EXPECT_EQ(Post(R"({"DiscoKeys":[")" + ka_.ToText() + R"(",")" +
                     kb_.ToText() + R"("],"Requester":7})",
                 kBridgeToken)
                ->status,
            400);
  EXPECT_EQ(server_->endpoint_count(), 0u);
}

TEST_F(AdminTest, RateLimitAppliesPerRequesterBehindTheBridge) {
  RestartAdmin({.alloc_rate = 0.01, .alloc_burst = 2,
                .bridge_token = kBridgeToken});
  const std::string a = NodeKey('a'), b = NodeKey('b');
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, a), kBridgeToken)->status, 200);
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, a), kBridgeToken)->status, 200);
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, a), kBridgeToken)->status, 429);
  // Another node behind the same bridge (same address) is not held back.
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, b), kBridgeToken)->status, 200);
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, b), kBridgeToken)->status, 200);
  EXPECT_EQ(Post(RequesterBody(ka_, kb_, b), kBridgeToken)->status, 429);
}

TEST_F(AdminTest, EndpointCapAppliesPerRequesterBehindTheBridge) {
  h_.reset();
  admin_.reset();
  h_ = testing::RelayHarness::Start(SocketAddress::Parse("127.0.0.1:0").value(),
                                    {.max_endpoints_per_caller = 1},
                                    {.workers = 1,
                                     .engine = "mmsg"})
           .value();
  server_ = &h_->server();
  relay_ = &h_->relay();
  RestartAdmin({.bridge_token = kBridgeToken});
  const std::string a = NodeKey('a'), b = NodeKey('b');
  auto k = [] { return disco::KeyPair::Generate().public_key(); };
  EXPECT_EQ(Post(RequesterBody(k(), k(), a), kBridgeToken)->status, 200);
  auto capped = Post(RequesterBody(k(), k(), a), kBridgeToken);
  EXPECT_EQ(capped->status, 503);
  EXPECT_NE(capped->body.find("per caller"), std::string::npos) << capped->body;
  EXPECT_EQ(Post(RequesterBody(k(), k(), b), kBridgeToken)->status, 200);
  // Without a Requester the bridge is one caller (its address).
  EXPECT_EQ(Post(KeysBody(k(), k()), kBridgeToken)->status, 200);
  EXPECT_EQ(Post(KeysBody(k(), k()), kBridgeToken)->status, 503);
  EXPECT_EQ(server_->endpoint_count(), 3u);
}

// Hardening 3, attack 3b: connections that pipeline /metrics and read the
// answers as fast as they come cannot hold up anyone's /healthz.
TEST_F(AdminTest, PipelinedScrapesCannotStarveHealthChecks) {
  std::atomic<bool> stop{false};
  std::atomic<int> too_many{0};
  std::vector<std::thread> streams;
  for (int i = 0; i < 4; ++i) {
    streams.emplace_back([&] {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(admin_->port());
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return;
      std::string burst;
      for (int k = 0; k < 50; ++k) burst += "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
      char buf[65536];
      std::string seen;
      while (!stop.load()) {
        if (send(fd, burst.data(), burst.size(), MSG_NOSIGNAL) <= 0) break;
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
        while (std::chrono::steady_clock::now() < until) {
          const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
          if (n > 0) {
            seen.append(buf, size_t(n));
            if (seen.size() > 1 << 20) seen.erase(0, seen.size() - 4096);
            if (seen.find("429") != std::string::npos) too_many = 1;
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
        }
      }
      close(fd);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = client_->Get("/healthz");
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
    ASSERT_TRUE(r) << "no answer";
    EXPECT_EQ(r->status, 200);
    worst = std::max(worst, ms);
  }
  stop = true;
  for (auto& t : streams) t.join();
  std::printf("/healthz under 4 pipelining scrapers: worst %.1f ms\n", worst);
  EXPECT_LT(worst, 100);
  EXPECT_EQ(too_many.load(), 1) << "pipelined scrapes were never limited";
  // A scrape on a fresh connection is still answered.
  EXPECT_EQ(client_->Get("/metrics")->status, 200);
}

TEST_F(AdminTest, SessionsLimitHasAnUpperBound) {
  EXPECT_EQ(Get("/v0/relay/sessions?limit=10000")->status, 200);
  auto r = Get("/v0/relay/sessions?limit=10001");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("at most 10000"), std::string::npos);
  EXPECT_EQ(Get("/v0/relay/sessions?limit=18446744073709551616")->status, 400);
}

TEST_F(AdminTest, TokenCanBeReplaced) {
  admin_->SetToken("new-token");
  EXPECT_EQ(Post(KeysBody(ka_, kb_))->status, 403);
  EXPECT_EQ(Post(KeysBody(ka_, kb_), "new-token")->status, 200);
}

TEST_F(AdminTest, SessionsViewIsLimited) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(server_->Allocate(disco::KeyPair::Generate().public_key(),
                                  disco::KeyPair::Generate().public_key(),
                                  MonotonicNowNs())
                    .ok());
  }
  json all = json::parse(Get("/v0/relay/sessions")->body);
  EXPECT_EQ(all["Count"], 5);
  EXPECT_EQ(all["Sessions"].size(), 5u);
  EXPECT_EQ(all["Truncated"], false);
  json two = json::parse(Get("/v0/relay/sessions?limit=2")->body);
  EXPECT_EQ(two["Count"], 5);
  ASSERT_EQ(two["Sessions"].size(), 2u);
  EXPECT_EQ(two["Truncated"], true);
  EXPECT_EQ(two["Sessions"][0]["VNI"], 1);  // lowest VNIs first
  EXPECT_EQ(Get("/v0/relay/sessions?limit=x")->status, 400);
  EXPECT_EQ(Get("/v0/relay/sessions?limit=-1")->status, 400);
}

TEST_F(AdminTest, HealthzFollowsDraining) {
  auto ok = client_->Get("/healthz");
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "ok\n");
  admin_->SetDraining(true);
  EXPECT_EQ(client_->Get("/healthz")->status, 503);
  EXPECT_NE(client_->Get("/metrics")->body.find("peerrelay_ready 0"),
            std::string::npos);
}

TEST_F(AdminTest, SessionsAndMetricsMatchWhatWasSent) {
  testing::Client client_a = h_->NewClient(), client_b = h_->NewClient();
  UdpSocket& sa = client_a.sock;
  UdpSocket& sb = client_b.sock;
  client::DiscoClient& a = *client_a.disco;
  client::DiscoClient& b = *client_b.disco;
  auto r = Post(KeysBody(a.key(), b.key()));
  ASSERT_EQ(r->status, 200);
  const uint32_t vni = json::parse(r->body)["VNI"];
  a.SetEndpoint(vni, b.key());
  b.SetEndpoint(vni, a.key());
  ASSERT_TRUE(h_->Handshake(client_a));
  ASSERT_TRUE(h_->Handshake(client_b));
  ASSERT_EQ(server_->bound_count(), 1u);
  // 7 datagrams A->B of 100 bytes, 3 B->A of 50, one from a stranger.
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(sa.SendTo(a.Data(Bytes(92, 1)), relay_addr_));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sb.SendTo(b.Data(Bytes(42, 2)), relay_addr_));
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(sb.Recv(2000));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sa.Recv(2000));
  UdpSocket stranger = UdpSocket::Open(SocketAddress::Parse("127.0.0.1:0").value()).value();
  ASSERT_TRUE(stranger.SendTo(a.Data({1}), relay_addr_));
  ASSERT_TRUE(h_->WaitDropped(relay::DropReason::kUnknownSource, 1));

  json s = json::parse(Get("/v0/relay/sessions")->body);
  EXPECT_EQ(s["ServerPort"], relay_->port());
  EXPECT_EQ(s["Count"], 1);
  const json& sess = s["Sessions"][0];
  EXPECT_EQ(sess["VNI"], vni);
  int ia = sess["Clients"][0]["Disco"] == a.key().ToText() ? 0 : 1;
  const json& ca = sess["Clients"][ia];
  const json& cb = sess["Clients"][1 - ia];
  EXPECT_EQ(ca["Endpoint"], sa.local().ToString());
  EXPECT_EQ(cb["Endpoint"], sb.local().ToString());
  EXPECT_EQ(ca["PacketsFromClient"], 7);
  EXPECT_EQ(ca["BytesFromClient"], 700);
  EXPECT_EQ(cb["PacketsFromClient"], 3);
  EXPECT_EQ(cb["BytesFromClient"], 150);
  EXPECT_EQ(ca["ShortDisco"], a.key().ShortString());

  const std::string m = client_->Get("/metrics")->body;
  EXPECT_EQ(Sum(m, "peerrelay_relayed_datagrams_total"), 10);
  EXPECT_EQ(Sum(m, "peerrelay_relayed_bytes_total"), 850);
  EXPECT_EQ(Sum(m, "peerrelay_handshakes_completed_total"), 2);
  EXPECT_EQ(Sum(m, "peerrelay_challenges_sent_total"), 2);
  EXPECT_EQ(Sum(m, "peerrelay_slow_path_datagrams_total"), 4);
  EXPECT_EQ(Sum(m, "peerrelay_dropped_datagrams_total", "unknown_source"), 1);
  EXPECT_EQ(Sum(m, "peerrelay_dropped_datagrams_total"), 1);
  // received = relayed + slow path + dropped, checkable from the scrape:
  // the workers' stage alone.
  EXPECT_EQ(Sum(m, "peerrelay_received_datagrams_total"), 15);
  const std::string w = "stage=\"worker\"";
  EXPECT_EQ(Sum(m, "peerrelay_received_datagrams_total", w),
            Sum(m, "peerrelay_relayed_datagrams_total", w) +
                Sum(m, "peerrelay_slow_path_datagrams_total", w) +
                Sum(m, "peerrelay_dropped_datagrams_total", w));
  EXPECT_EQ(Sum(m, "peerrelay_received_datagrams_total", w), 15);
  EXPECT_EQ(Sum(m, "peerrelay_endpoints", "state=\"bound\""), 1);
  EXPECT_EQ(Sum(m, "peerrelay_endpoints"), 1);
  // Tailscale's forwarded counters: all IPv4 here, and they add up to the
  // relayed totals.
  EXPECT_EQ(Sum(m, "peerrelay_forwarded_packets_total",
                "transport_in=\"udp4\",transport_out=\"udp4\""),
            10);
  EXPECT_EQ(Sum(m, "peerrelay_forwarded_packets_total"), 10);
  EXPECT_EQ(Sum(m, "peerrelay_forwarded_bytes_total",
                "transport_in=\"udp4\",transport_out=\"udp4\""),
            850);
  EXPECT_EQ(Sum(m, "peerrelay_forwarded_bytes_total", "udp6"), 0);
  EXPECT_GE(Sum(m, "process_threads"), 4);  // 2 workers, slow path, expiry
  EXPECT_GT(Sum(m, "process_resident_memory_bytes"), 0);
  EXPECT_GT(Sum(m, "process_start_time_seconds"), 1.5e9);
  EXPECT_GE(Sum(m, "process_open_fds"), 3);
  EXPECT_EQ(Sum(m, "peerrelay_allocations_total", "http"), 1);
  EXPECT_NE(m.find("# TYPE peerrelay_relayed_datagrams_total counter"),
            std::string::npos);
  EXPECT_NE(m.find("peerrelay_build_info{"), std::string::npos);
  EXPECT_NE(m.find("worker=\"slow_path\""), std::string::npos);
}

TEST(AdminIpv6Test, ListensOnIpv6) {
  auto server = relay::Server::Create({}, 0).value();
  auto relay = engine::Relay::Start(
                   server.get(), {.bind = SocketAddress::Parse("[::1]:0").value(),
                                  .workers = 1})
                   .value();
  auto admin = Admin::Start(server.get(), relay.get(),
                            {.listen = SocketAddress::Parse("[::1]:0").value(),
                             .token = kToken})
                   .value();
  httplib::Client c(absl::StrCat("http://[::1]:", admin->port()));
  auto r = c.Get("/livez");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // Not ready until it has an address to hand out.
  EXPECT_EQ(c.Get("/readyz")->status, 503);
  server->SetAddresses({SocketAddress::Parse("[::1]:7777").value()});
  EXPECT_EQ(c.Get("/readyz")->status, 200);
}

TEST(AdminStartTest, BusyPortIsAClearError) {
  auto server = relay::Server::Create({}, 0).value();
  auto relay = engine::Relay::Start(
                   server.get(),
                   {.bind = SocketAddress::Parse("127.0.0.1:0").value(),
                    .workers = 1})
                   .value();
  auto first = Admin::Start(server.get(), relay.get(),
                            {.listen = SocketAddress::Parse("127.0.0.1:0").value()})
                   .value();
  auto second = Admin::Start(
      server.get(), relay.get(),
      {.listen = SocketAddress::Parse(absl::StrCat("127.0.0.1:", first->port())).value()});
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace peerrelay::control
