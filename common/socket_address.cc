#include "common/socket_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace peerrelay {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0xff, 0xff};

}  // namespace

SocketAddress SocketAddress::FromIpv4(std::array<uint8_t, 4> ip,
                                      uint16_t port) {
  SocketAddress a;
  std::memcpy(a.ip_.data(), kV4MappedPrefix.data(), 12);
  std::memcpy(a.ip_.data() + 12, ip.data(), 4);
  a.port_ = port;
  return a;
}

SocketAddress SocketAddress::FromIpv6(const std::array<uint8_t, 16>& ip,
                                      uint16_t port) {
  SocketAddress a;
  a.ip_ = ip;
  a.port_ = port;
  return a;
}

std::optional<SocketAddress> SocketAddress::FromSockaddr(const sockaddr* sa,
                                                         socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) {
    return std::nullopt;
  }
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::array<uint8_t, 4> ip;
    std::memcpy(ip.data(), &in->sin_addr, 4);
    return FromIpv4(ip, ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::array<uint8_t, 16> ip;
    std::memcpy(ip.data(), &in6->sin6_addr, 16);
    return FromIpv6(ip, ntohs(in6->sin6_port));
  }
  return std::nullopt;
}

absl::StatusOr<SocketAddress> SocketAddress::ParseWithDefaultPort(
    absl::string_view text, uint16_t port) {
  auto full = Parse(text);
  if (full.ok()) return full;
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("bad address '", text, "'"));
  };
  absl::string_view host = text;
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return bad();
  }
  auto bare = Parse(host.find(':') != absl::string_view::npos
                        ? absl::StrCat("[", host, "]:", port)
                        : absl::StrCat(host, ":", port));
  if (!bare.ok()) return bad();
  return bare;
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text) {
  std::string host;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address \"", text, "\": want [ipv6]:port"));
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos ||
        text.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address \"", text, "\": want ipv4:port or [ipv6]:port"));
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad port in \"", text, "\""));
  }
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    std::array<uint8_t, 4> ip;
    std::memcpy(ip.data(), &v4, 4);
    return FromIpv4(ip, static_cast<uint16_t>(port));
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    std::array<uint8_t, 16> ip;
    std::memcpy(ip.data(), &v6, 16);
    return FromIpv6(ip, static_cast<uint16_t>(port));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("bad IP address \"", host, "\" in \"", text, "\""));
}

bool SocketAddress::is_ipv4() const {
  return std::memcmp(ip_.data(), kV4MappedPrefix.data(), 12) == 0;
}

bool SocketAddress::is_unspecified() const {
  if (is_ipv4()) {
    return ip_[12] == 0 && ip_[13] == 0 && ip_[14] == 0 && ip_[15] == 0;
  }
  for (uint8_t b : ip_) {
    if (b != 0) return false;
  }
  return true;
}

socklen_t SocketAddress::ToSockaddr(sockaddr_storage* out,
                                    bool force_ipv6) const {
  std::memset(out, 0, sizeof(*out));
  if (is_ipv4() && !force_ipv6) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port_);
    std::memcpy(&in->sin_addr, ip_.data() + 12, 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port_);
  std::memcpy(&in6->sin6_addr, ip_.data(), 16);
  return sizeof(sockaddr_in6);
}

std::string SocketAddress::IpString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_ipv4()) {
    inet_ntop(AF_INET, ip_.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, ip_.data(), buf, sizeof(buf));
  }
  return buf;
}

std::string SocketAddress::ToString() const {
  if (is_ipv4()) return absl::StrCat(IpString(), ":", port_);
  return absl::StrCat("[", IpString(), "]:", port_);
}

}  // namespace peerrelay
