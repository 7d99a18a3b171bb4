#include "client/turn.h"

#include <sodium.h>

#include <netinet/in.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace peerrelay::client::turn {
namespace {

constexpr uint32_t kCookie = 0x2112A442;
constexpr uint16_t kAttrChannelNumber = 0x000C;
constexpr uint16_t kAttrLifetime = 0x000D;
constexpr uint16_t kAttrXorPeerAddress = 0x0012;
constexpr uint16_t kAttrXorRelayedAddress = 0x0016;
constexpr uint16_t kAttrRequestedTransport = 0x0019;
constexpr uint16_t kAttrErrorCode = 0x0009;

void Put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(uint8_t(x >> 8));
  v.push_back(uint8_t(x));
}
void Put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int i = 3; i >= 0; --i) v.push_back(uint8_t(x >> (8 * i)));
}
uint16_t Get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

void Attr(std::vector<uint8_t>& v, uint16_t type,
          const std::vector<uint8_t>& value) {
  Put16(v, type);
  Put16(v, uint16_t(value.size()));
  v.insert(v.end(), value.begin(), value.end());
  while (v.size() % 4 != 0) v.push_back(0);
}

SocketAddress FromXor(const uint8_t* p, size_t len, const uint8_t txid[12],
                      bool* ok) {
  *ok = false;
  if (len < 8) return {};
  const uint8_t family = p[1];
  const uint16_t port = Get16(p + 2) ^ uint16_t(kCookie >> 16);
  uint8_t mask[16];
  for (int i = 0; i < 4; ++i) mask[i] = uint8_t(kCookie >> (24 - 8 * i));
  std::memcpy(mask + 4, txid, 12);
  std::string text;
  if (family == 0x01) {
    uint8_t a[4];
    for (int i = 0; i < 4; ++i) a[i] = p[4 + i] ^ mask[i];
    text = absl::StrCat(a[0], ".", a[1], ".", a[2], ".", a[3], ":", port);
  } else if (family == 0x02 && len >= 20) {
    sockaddr_in6 s6{};
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(port);
    for (int i = 0; i < 16; ++i) s6.sin6_addr.s6_addr[i] = p[4 + i] ^ mask[i];
    auto a = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&s6),
                                         sizeof(s6));
    if (!a) return {};
    *ok = true;
    return *a;
  } else {
    return {};
  }
  auto a = SocketAddress::Parse(text);
  if (!a.ok()) return {};
  *ok = true;
  return *a;
}

absl::StatusOr<Response> Transact(UdpSocket& s, const SocketAddress& server,
                                  uint16_t type, const SocketAddress* peer,
                                  uint16_t channel) {
  uint8_t txid[12];
  randombytes_buf(txid, sizeof(txid));
  const std::vector<uint8_t> req = Request(type, txid, peer, channel);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!s.SendTo(req, server)) break;
    const int64_t end = MonotonicNowNs() + 1'000'000'000;
    while (MonotonicNowNs() < end) {
      auto got = s.Recv(int((end - MonotonicNowNs()) / 1'000'000) + 1);
      if (!got) break;
      Response r;
      if (ParseResponse(got->first.data(), got->first.size(), txid, &r)) {
        if (r.type != (type | 0x0100)) {
          return absl::UnavailableError(absl::StrCat(
              "TURN request 0x", absl::Hex(type), " refused: error ", r.error));
        }
        return r;
      }
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "no answer from the TURN server ", server.ToString(), " to request 0x",
      absl::Hex(type)));
}

}  // namespace

std::vector<uint8_t> XorAddress(const SocketAddress& a, const uint8_t txid[12]) {
  std::vector<uint8_t> v;
  v.push_back(0);
  v.push_back(a.is_ipv4() ? 0x01 : 0x02);
  Put16(v, a.port() ^ uint16_t(kCookie >> 16));
  uint8_t mask[16];
  for (int i = 0; i < 4; ++i) mask[i] = uint8_t(kCookie >> (24 - 8 * i));
  std::memcpy(mask + 4, txid, 12);
  const auto& b = a.bytes();
  if (a.is_ipv4()) {
    for (int i = 0; i < 4; ++i) v.push_back(b[12 + i] ^ mask[i]);
  } else {
    for (int i = 0; i < 16; ++i) v.push_back(b[i] ^ mask[i]);
  }
  return v;
}

std::vector<uint8_t> Request(uint16_t type, const uint8_t txid[12],
                             const SocketAddress* peer, uint16_t channel) {
  std::vector<uint8_t> attrs;
  if (type == kAllocate) {
    Attr(attrs, kAttrRequestedTransport, {17, 0, 0, 0});  // UDP
    std::vector<uint8_t> life;
    Put32(life, 600);
    Attr(attrs, kAttrLifetime, life);
  }
  if (type == kChannelBind) {
    std::vector<uint8_t> ch;
    Put16(ch, channel);
    Put16(ch, 0);
    Attr(attrs, kAttrChannelNumber, ch);
  }
  if (peer != nullptr) Attr(attrs, kAttrXorPeerAddress, XorAddress(*peer, txid));
  std::vector<uint8_t> m;
  Put16(m, type);
  Put16(m, uint16_t(attrs.size()));
  Put32(m, kCookie);
  m.insert(m.end(), txid, txid + 12);
  m.insert(m.end(), attrs.begin(), attrs.end());
  return m;
}

bool ParseResponse(const uint8_t* p, size_t len, const uint8_t txid[12],
                   Response* out) {
  if (len < 20 || (p[0] & 0xc0) != 0) return false;
  const uint32_t cookie = uint32_t(p[4]) << 24 | uint32_t(p[5]) << 16 |
                          uint32_t(p[6]) << 8 | p[7];
  if (cookie != kCookie || std::memcmp(p + 8, txid, 12) != 0) return false;
  const size_t body = Get16(p + 2);
  if (20 + body > len) return false;
  out->type = Get16(p);
  for (size_t off = 20; off + 4 <= 20 + body;) {
    const uint16_t t = Get16(p + off);
    const size_t l = Get16(p + off + 2);
    if (off + 4 + l > 20 + body) return false;
    const uint8_t* v = p + off + 4;
    if (t == kAttrXorRelayedAddress) {
      out->relayed = FromXor(v, l, txid, &out->has_relayed);
    } else if (t == kAttrErrorCode && l >= 4) {
      out->error = (v[2] & 0x7) * 100 + v[3];
    }
    off += 4 + (l + 3) / 4 * 4;
  }
  return true;
}

absl::StatusOr<SocketAddress> Allocate(UdpSocket& s,
                                       const SocketAddress& server) {
  absl::StatusOr<Response> r = Transact(s, server, kAllocate, nullptr, 0);
  if (!r.ok()) return r.status();
  if (!r->has_relayed) {
    return absl::UnavailableError("TURN Allocate answer without a relayed address");
  }
  return r->relayed;
}

absl::Status CreatePermission(UdpSocket& s, const SocketAddress& server,
                              const SocketAddress& peer) {
  return Transact(s, server, kCreatePermission, &peer, 0).status();
}

absl::Status ChannelBind(UdpSocket& s, const SocketAddress& server,
                         uint16_t channel, const SocketAddress& peer) {
  return Transact(s, server, kChannelBind, &peer, channel).status();
}

}  // namespace peerrelay::client::turn
