#include "disco/message.h"

#include <cstring>

namespace peerrelay::disco {
namespace {

uint32_t Get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 |
         p[3];
}
uint64_t Get64(const uint8_t* p) {
  return uint64_t{Get32(p)} << 32 | Get32(p + 4);
}
uint8_t* Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
  return p + 2;
}
uint8_t* Put32(uint8_t* p, uint32_t v) {
  return Put16(Put16(p, static_cast<uint16_t>(v >> 16)),
               static_cast<uint16_t>(v));
}
uint8_t* Put64(uint8_t* p, uint64_t v) {
  return Put32(Put32(p, static_cast<uint32_t>(v >> 32)),
               static_cast<uint32_t>(v));
}
uint8_t* PutKey(uint8_t* p, const DiscoKey& k) {
  std::memcpy(p, k.bytes.data(), kKeySize);
  return p + kKeySize;
}

}  // namespace

absl::string_view DialectName(Dialect d) {
  return d == Dialect::kSeed ? "seed" : "current";
}

bool ParseDialect(absl::string_view text, Dialect* out) {
  if (text == "seed") {
    *out = Dialect::kSeed;
    return true;
  }
  if (text == "current") {
    *out = Dialect::kCurrent;
    return true;
  }
  return false;
}

absl::string_view ParseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kOk:
      return "ok";
    case ParseError::kNoHeader:
      return "no_header";
    case ParseError::kWrongType:
      return "wrong_type";
    case ParseError::kBadVersion:
      return "bad_version";
    case ParseError::kBodyTooShort:
      return "body_too_short";
    case ParseError::kBadAddressList:
      return "bad_address_list";
  }
  return "unknown";
}

bool PeekType(const uint8_t* p, size_t len, uint8_t* type) {
  if (len < 1) return false;
  *type = p[0];
  return true;
}

ParseError ParseHandshake(Dialect dialect, const uint8_t* p, size_t len,
                          HandshakeMessage* out) {
  if (len < kMessageHeaderSize) return ParseError::kNoHeader;
  const uint8_t type = p[0];
  if (type != static_cast<uint8_t>(MessageType::kBind) &&
      type != static_cast<uint8_t>(MessageType::kChallenge) &&
      type != static_cast<uint8_t>(MessageType::kAnswer)) {
    return ParseError::kWrongType;
  }
  const uint8_t* body = p + kMessageHeaderSize;
  const size_t body_len = len - kMessageHeaderSize;
  HandshakeMessage m;
  m.type = static_cast<MessageType>(type);
  if (dialect == Dialect::kSeed) {
    if (m.type != MessageType::kBind) {
      if (body_len < kSeedHandshakeBodySize) return ParseError::kBodyTooShort;
      std::memcpy(m.challenge.data(), body, m.challenge.size());
    }
  } else {
    if (body_len < kCurrentHandshakeBodySize) return ParseError::kBodyTooShort;
    m.vni = Get32(body);
    m.generation = Get32(body + 4);
    m.remote_key = DiscoKey::FromBytes(body + 8);
    std::memcpy(m.challenge.data(), body + 40, m.challenge.size());
  }
  *out = m;
  return ParseError::kOk;
}

size_t MarshalHandshake(Dialect dialect, const HandshakeMessage& m,
                        uint8_t* out) {
  out[0] = static_cast<uint8_t>(m.type);
  out[1] = 0;
  uint8_t* body = out + kMessageHeaderSize;
  if (dialect == Dialect::kSeed) {
    if (m.type == MessageType::kBind) {
      std::memset(body, 0, kSeedHandshakeBodySize);
    } else {
      std::memcpy(body, m.challenge.data(), kSeedHandshakeBodySize);
    }
    return kMessageHeaderSize + kSeedHandshakeBodySize;
  }
  uint8_t* q = Put32(body, m.vni);
  q = Put32(q, m.generation);
  q = PutKey(q, m.remote_key);
  std::memcpy(q, m.challenge.data(), m.challenge.size());
  return kMessageHeaderSize + kCurrentHandshakeBodySize;
}

ParseError ParseAllocateRequest(const uint8_t* p, size_t len,
                                AllocateRequest* out) {
  if (len < kMessageHeaderSize) return ParseError::kNoHeader;
  if (p[0] != static_cast<uint8_t>(MessageType::kAllocateRequest)) {
    return ParseError::kWrongType;
  }
  if (p[1] != 0) return ParseError::kBadVersion;
  if (len < kAllocateRequestSize) return ParseError::kBodyTooShort;
  const uint8_t* b = p + kMessageHeaderSize;
  out->client_a = DiscoKey::FromBytes(b);
  out->client_b = DiscoKey::FromBytes(b + kKeySize);
  out->generation = Get32(b + 2 * kKeySize);
  return ParseError::kOk;
}

size_t MarshalAllocateRequest(const AllocateRequest& m, uint8_t* out) {
  out[0] = static_cast<uint8_t>(MessageType::kAllocateRequest);
  out[1] = 0;
  uint8_t* q = PutKey(out + kMessageHeaderSize, m.client_a);
  q = PutKey(q, m.client_b);
  Put32(q, m.generation);
  return kAllocateRequestSize;
}

ParseError ParseAllocateResponse(const uint8_t* p, size_t len,
                                 AllocateResponse* out) {
  if (len < kMessageHeaderSize) return ParseError::kNoHeader;
  if (p[0] != static_cast<uint8_t>(MessageType::kAllocateResponse)) {
    return ParseError::kWrongType;
  }
  if (p[1] != 0) return ParseError::kBadVersion;
  if (len < kAllocateResponseFixedSize) return ParseError::kBodyTooShort;
  // Like Tailscale's decoder: at least one address, and only whole entries.
  const size_t rest = len - kAllocateResponseFixedSize;
  if (rest == 0 || rest % kAddressEntrySize != 0) {
    return ParseError::kBadAddressList;
  }
  const uint8_t* b = p + kMessageHeaderSize;
  AllocateResponse m;
  m.generation = Get32(b);
  b += 4;
  m.server = DiscoKey::FromBytes(b);
  m.client_a = DiscoKey::FromBytes(b + kKeySize);
  m.client_b = DiscoKey::FromBytes(b + 2 * kKeySize);
  b += 3 * kKeySize;
  m.lamport_id = Get64(b);
  m.vni = Get32(b + 8);
  m.bind_lifetime_ns = Get64(b + 12);
  m.steady_state_lifetime_ns = Get64(b + 20);
  b += 28;
  for (size_t i = 0; i < rest / kAddressEntrySize; ++i) {
    std::array<uint8_t, 16> ip;
    std::memcpy(ip.data(), b, 16);
    const uint16_t port = static_cast<uint16_t>(b[16] << 8 | b[17]);
    m.addresses.push_back(SocketAddress::FromIpv6(ip, port));
    b += kAddressEntrySize;
  }
  *out = std::move(m);
  return ParseError::kOk;
}

std::vector<uint8_t> MarshalAllocateResponse(const AllocateResponse& m) {
  std::vector<uint8_t> out(kAllocateResponseFixedSize +
                           kAddressEntrySize * m.addresses.size());
  out[0] = static_cast<uint8_t>(MessageType::kAllocateResponse);
  out[1] = 0;
  uint8_t* q = Put32(out.data() + kMessageHeaderSize, m.generation);
  q = PutKey(q, m.server);
  q = PutKey(q, m.client_a);
  q = PutKey(q, m.client_b);
  q = Put64(q, m.lamport_id);
  q = Put32(q, m.vni);
  q = Put64(q, m.bind_lifetime_ns);
  q = Put64(q, m.steady_state_lifetime_ns);
  for (const SocketAddress& a : m.addresses) {
    std::memcpy(q, a.bytes().data(), 16);
    q = Put16(q + 16, a.port());
  }
  return out;
}

}  // namespace peerrelay::disco
