#include "client/allocation.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace peerrelay::client {

absl::StatusOr<uint32_t> AllocateHttp(HttpClient& http,
                                      const std::string& token,
                                      const disco::DiscoKey& a,
                                      const disco::DiscoKey& b) {
  const std::string body =
      nlohmann::json{{"DiscoKeys", {a.ToText(), b.ToText()}}}.dump();
  absl::StatusOr<HttpResponse> r =
      http.PostJson("/v0/relay/endpoint", body, BearerAuth(token));
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("HTTP allocation: ", r.status().message()));
  }
  if (r->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("HTTP allocation: ", r->status, " ", r->body));
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("VNI") ||
      !j["VNI"].is_number_unsigned()) {
    return absl::UnavailableError("HTTP allocation: bad JSON");
  }
  return j["VNI"].get<uint32_t>();
}

bool RecvMatching(UdpSocket& s, int timeout_ms,
                  const std::function<bool(const Bytes&)>& accept) {
  const int64_t end = MonotonicNowNs() + int64_t(timeout_ms) * 1'000'000;
  while (true) {
    const int64_t left = (end - MonotonicNowNs()) / 1'000'000;
    if (left < 0) return false;
    auto got = s.Recv(int(left));
    if (!got) return false;
    if (accept(got->first)) return true;
  }
}

absl::StatusOr<uint32_t> AllocateUdp(UdpSocket& s, const DiscoClient& a,
                                     const disco::DiscoKey& b,
                                     const SocketAddress& relay,
                                     uint32_t generation) {
  if (!s.SendTo(a.AllocateRequest(b, generation), relay)) {
    return absl::UnavailableError("UDP allocation: send failed");
  }
  std::optional<disco::AllocateResponse> resp;
  if (!RecvMatching(s, kReplyTimeoutMs, [&](const Bytes& d) {
        resp = a.OpenAllocateResponse(d);
        return resp.has_value();
      })) {
    return absl::UnavailableError(
        "UDP allocation: no answer (is the key on relayd's allowlist?)");
  }
  return resp->vni;
}

absl::StatusOr<std::string> AdminGet(const std::string& admin,
                                     const std::string& token,
                                     const std::string& path) {
  absl::StatusOr<HttpClient> c = HttpClient::Create(admin);
  if (!c.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin API: ", c.status().message()));
  }
  absl::StatusOr<HttpResponse> r = c->Get(path, BearerAuth(token));
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("admin API: ", r.status().message()));
  }
  if (r->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("admin API ", admin, path, ": HTTP ", r->status));
  }
  return std::move(r->body);
}

absl::StatusOr<disco::DiscoKey> FetchServerKey(const std::string& admin,
                                               const std::string& token) {
  auto body = AdminGet(admin, token, "/v0/relay/sessions?limit=0");
  if (!body.ok()) return body.status();
  auto j = nlohmann::json::parse(*body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ServerDisco") ||
      !j["ServerDisco"].is_string()) {
    return absl::UnavailableError("admin API: bad JSON");
  }
  auto k = disco::DiscoKey::ParseText(j["ServerDisco"].get<std::string>());
  if (!k.ok()) return absl::UnavailableError(k.status().message());
  return k;
}

bool HandshakeRound(UdpSocket& s, DiscoClient& c, const SocketAddress& relay,
                    uint32_t generation) {
  if (!s.SendTo(c.Bind(generation), relay)) return false;
  std::optional<disco::HandshakeMessage> ch;
  if (!RecvMatching(s, kReplyTimeoutMs, [&](const Bytes& d) {
        ch = c.OpenChallenge(d);
        return ch.has_value();
      })) {
    return false;
  }
  return s.SendTo(c.Answer(*ch), relay);
}

}  // namespace peerrelay::client
