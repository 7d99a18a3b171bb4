#include "loadtest/pcap/dump.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "disco/box.h"
#include "disco/envelope.h"
#include "disco/message.h"
#include "geneve/geneve.h"

namespace peerrelay::pcap {

std::string DiscoTypeName(uint8_t type) {
  switch (type) {
    case 1: return "Ping";
    case 2: return "Pong";
    case 3: return "CallMeMaybe";
    case 4: return "Bind";
    case 5: return "Challenge";
    case 6: return "Answer";
    case 7: return "CallMeMaybeVia";
    case 8: return "AllocateRequest";
    case 9: return "AllocateResponse";
  }
  return absl::StrCat("type ", type);
}

Dumper::Dumper(std::vector<disco::KeyPair> secrets)
    : secrets_(std::move(secrets)) {}

const std::optional<disco::SharedKey>& Dumper::Shared(
    const disco::DiscoKey& peer, const disco::KeyPair& own) {
  auto key = std::make_pair(own.public_key(), peer);
  auto it = shared_.find(key);
  if (it != shared_.end()) return it->second;
  if (shared_.size() >= kMaxCached) shared_.clear();
  ++shared_computations_;
  return shared_.emplace(key, disco::SharedKey::Compute(peer, own))
      .first->second;
}

void Dumper::NotePeer(const disco::DiscoKey& key, const SocketAddress& from) {
  if (key_at_.size() >= kMaxCached) key_at_.clear();
  key_at_[from] = key;
  if (!peer_set_.insert(key).second) return;
  peers_.push_back(key);
  if (peers_.size() > kMaxPeers) {
    peer_set_.erase(peers_.front());
    peers_.pop_front();
  }
}

std::vector<uint8_t> Dumper::TryOpen(const disco::DiscoKey& sender,
                                     const uint8_t* sealed, size_t sealed_len,
                                     const std::optional<disco::DiscoKey>& hint) {
  if (sealed_len < disco::kBoxOverhead) return {};
  std::vector<uint8_t> out(sealed_len - disco::kBoxOverhead);
  auto attempt = [&](const disco::DiscoKey& peer, const disco::KeyPair& own) {
    const std::optional<disco::SharedKey>& shared = Shared(peer, own);
    size_t n = 0;
    disco::EnvelopeView v{sender.bytes.data(), sealed, sealed_len};
    if (shared && disco::OpenEnvelope(*shared, v, out.data(), &n)) {
      out.resize(n);
      return true;
    }
    return false;
  };
  for (const disco::KeyPair& own : secrets_) {
    if (own.public_key() != sender) {
      // Sealed to us by `sender`.
      if (attempt(sender, own)) return out;
      continue;
    }
    // Sealed by us: to whoever last sent from where it goes, else to one of
    // the recent peers.
    if (hint && attempt(*hint, own)) return out;
    for (const disco::DiscoKey& peer : peers_) {
      if (attempt(peer, own)) return out;
    }
  }
  return {};
}

std::string Dumper::Message(const std::vector<uint8_t>& plain) {
  uint8_t type = 0;
  if (!disco::PeekType(plain.data(), plain.size(), &type)) return "[empty]";
  std::string s = absl::StrCat("[", DiscoTypeName(type));
  if (type >= 4 && type <= 6) {
    disco::HandshakeMessage m;
    const disco::Dialect d = plain.size() >= disco::kMaxHandshakeSize
                                 ? disco::Dialect::kCurrent
                                 : disco::Dialect::kSeed;
    if (disco::ParseHandshake(d, plain.data(), plain.size(), &m) ==
        disco::ParseError::kOk) {
      if (d == disco::Dialect::kCurrent) {
        absl::StrAppend(&s, " vni ", m.vni, " gen ", m.generation, " remote ",
                        m.remote_key.ShortString());
      } else {
        absl::StrAppend(&s, " (seed)");
      }
    }
  } else if (type == 9) {
    disco::AllocateResponse r;
    if (disco::ParseAllocateResponse(plain.data(), plain.size(), &r) ==
        disco::ParseError::kOk) {
      absl::StrAppend(&s, " vni ", r.vni, " gen ", r.generation);
    }
  }
  absl::StrAppend(&s, " ", plain.size(), " B]");
  return s;
}

namespace {

// What follows a Geneve header and its options (empty when the options run
// past the datagram).
struct GeneveBody {
  size_t opt_len = 0;
  const uint8_t* p = nullptr;
  size_t len = 0;
};
GeneveBody BodyOf(const uint8_t* p, size_t len) {
  GeneveBody b;
  b.opt_len = size_t(p[0] & 0x3F) * 4;
  b.p = p + geneve::kHeaderSize + b.opt_len;
  b.len = len >= geneve::kHeaderSize + b.opt_len
              ? len - geneve::kHeaderSize - b.opt_len
              : 0;
  return b;
}

// `n` little-endian bytes (WireGuard's indexes and counter).
uint64_t LittleEndian(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

std::string Dumper::Fields(const uint8_t* p, size_t len) {
  geneve::Header h;
  if (!geneve::Decode(p, len, &h)) return "";
  std::string sender, nonce, box, type, counter;
  const GeneveBody b = BodyOf(p, len);
  const uint8_t* body = b.p;
  const size_t body_len = b.len;
  disco::EnvelopeView env;
  if (h.protocol == geneve::kProtocolDisco &&
      disco::PeekEnvelope(body, body_len, &env)) {
    sender = disco::HexEncode(env.sender_key, disco::kKeySize);
    nonce = disco::HexEncode(env.sealed, disco::kNonceSize);
    box = absl::StrCat(env.sealed_len - disco::kNonceSize);
  } else if (h.protocol == geneve::kProtocolWireGuard && body_len >= 4) {
    type = absl::StrCat(body[0]);
    if (body[0] == 4 && body_len >= 16) {
      counter = absl::StrCat(LittleEndian(body + 8, 8));
    }
  }
  return absl::StrCat(h.vni, "\t", h.control ? 1 : 0, "\t",
                      absl::StrFormat("0x%04x", h.protocol), "\t", sender,
                      "\t", nonce, "\t", box, "\t", type, "\t", counter);
}

std::string Dumper::Line(int64_t ts_ns, const SocketAddress& src,
                         const SocketAddress& dst, const uint8_t* p,
                         size_t len) {
  const time_t secs = time_t(ts_ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::string line = absl::StrFormat(
      "%02d:%02d:%02d.%06d %s > %s len %d", tm.tm_hour, tm.tm_min, tm.tm_sec,
      int(ts_ns % 1'000'000'000 / 1000), src.ToString(), dst.ToString(), len);
  geneve::Header h;
  if (!geneve::Decode(p, len, &h)) {
    absl::StrAppend(&line, ": not geneve (shorter than 8 bytes)");
    return line;
  }
  const GeneveBody b = BodyOf(p, len);
  absl::StrAppend(&line, " geneve v", h.version, h.control ? " O" : "",
                  b.opt_len > 0 ? absl::StrCat(" opt ", b.opt_len) : "",
                  h.protocol == geneve::kProtocolDisco       ? " disco"
                  : h.protocol == geneve::kProtocolWireGuard ? " wireguard"
                  : absl::StrFormat(" proto 0x%04x", h.protocol),
                  " vni ", h.vni, ":");
  const uint8_t* body = b.p;
  const size_t body_len = b.len;
  if (h.protocol == geneve::kProtocolDisco) {
    disco::EnvelopeView env;
    if (!disco::PeekEnvelope(body, body_len, &env)) {
      absl::StrAppend(&line, " not a disco envelope (", body_len, " B)");
      return line;
    }
    const disco::DiscoKey sender = disco::DiscoKey::FromBytes(env.sender_key);
    std::optional<disco::DiscoKey> hint;
    if (auto it = key_at_.find(dst); it != key_at_.end()) hint = it->second;
    NotePeer(sender, src);
    absl::StrAppend(&line, " disco sender ", sender.ShortString(), " nonce ",
                    disco::HexEncode(env.sealed, 6), ".. box ",
                    env.sealed_len - disco::kNonceSize);
    if (!secrets_.empty()) {
      std::vector<uint8_t> plain =
          TryOpen(sender, env.sealed, env.sealed_len, hint);
      absl::StrAppend(&line, " ", plain.empty() ? "[sealed]" : Message(plain));
    }
  } else if (h.protocol == geneve::kProtocolWireGuard) {
    if (body_len < 4) {
      absl::StrAppend(&line, " wireguard, ", body_len, " B");
      return line;
    }
    static const char* const kTypes[] = {"?", "initiation", "response",
                                         "cookie", "transport"};
    const uint8_t t = body[0];
    absl::StrAppend(&line, " wg ", t <= 4 ? kTypes[t] : "?", " (", t, ")");
    if (t == 4 && body_len >= 16) {
      absl::StrAppend(&line, " receiver ", LittleEndian(body + 4, 4),
                      " counter ", LittleEndian(body + 8, 8),
                      " data ", body_len - 16);
    } else if ((t == 1 || t == 2 || t == 3) && body_len >= 8) {
      absl::StrAppend(&line, " sender ", LittleEndian(body + 4, 4), " ",
                      body_len, " B");
    }
  } else {
    absl::StrAppend(&line, " ", body_len, " B");
  }
  return line;
}

}  // namespace peerrelay::pcap
