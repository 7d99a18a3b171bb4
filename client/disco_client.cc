#include "client/disco_client.h"

#include <algorithm>

#include "disco/envelope.h"
#include "geneve/geneve.h"

namespace peerrelay::client {

DiscoClient::DiscoClient(disco::Dialect dialect,
                       const disco::DiscoKey& server_key,
                       SocketAddress address,
                       std::optional<disco::KeyPair> key_pair)
    : dialect_(dialect),
      key_pair_(key_pair ? *key_pair : disco::KeyPair::Generate()),
      server_key_(server_key),
      shared_(disco::SharedKey::Compute(server_key, key_pair_).value()),
      address_(address) {}

Bytes DiscoClient::Seal(const disco::HandshakeMessage& msg,
                       uint32_t geneve_vni) const {
  Bytes pt(disco::kMaxHandshakeSize);
  pt.resize(disco::MarshalHandshake(dialect_, msg, pt.data()));
  return SealRaw(pt, geneve_vni);
}

Bytes DiscoClient::SealRaw(const Bytes& pt, uint32_t geneve_vni) const {
  Bytes out(geneve::kHeaderSize + disco::kEnvelopeOverhead + pt.size());
  geneve::Encode({.control = true,
                        .protocol = geneve::kProtocolDisco,
                        .vni = geneve_vni},
                       out.data());
  disco::SealEnvelope(key(), shared_, pt.data(), pt.size(),
                      out.data() + geneve::kHeaderSize);
  return out;
}

Bytes DiscoClient::Bind(uint32_t generation) const {
  return Seal({.type = disco::MessageType::kBind,
               .vni = vni_,
               .generation = generation,
               .remote_key = remote_},
              vni_);
}

std::optional<Bytes> DiscoClient::OpenFromServer(const Bytes& d) const {
  geneve::Header h;
  if (!geneve::Decode(d.data(), d.size(), &h) || !h.control ||
      h.protocol != geneve::kProtocolDisco || h.version != 0) {
    return std::nullopt;
  }
  disco::EnvelopeView env;
  if (!disco::PeekEnvelope(d.data() + geneve::kHeaderSize,
                           d.size() - geneve::kHeaderSize, &env) ||
      disco::DiscoKey::FromBytes(env.sender_key) != server_key_) {
    return std::nullopt;
  }
  Bytes pt(env.sealed_len);
  size_t pt_len = 0;
  if (!disco::OpenEnvelope(shared_, env, pt.data(), &pt_len)) {
    return std::nullopt;
  }
  pt.resize(pt_len);
  return pt;
}

Bytes DiscoClient::AllocateRequest(const disco::DiscoKey& peer,
                                   uint32_t generation,
                                   size_t padded_size) const {
  Bytes pt(std::max(padded_size, disco::kAllocateRequestSize), 0);
  disco::MarshalAllocateRequest(
      {.client_a = key(), .client_b = peer, .generation = generation},
      pt.data());
  return SealRaw(pt, disco::kAllocateVni);
}

std::optional<disco::AllocateResponse> DiscoClient::OpenAllocateResponse(
    const Bytes& d) const {
  std::optional<Bytes> pt = OpenFromServer(d);
  disco::AllocateResponse r;
  if (!pt || disco::ParseAllocateResponse(pt->data(), pt->size(), &r) !=
                 disco::ParseError::kOk) {
    return std::nullopt;
  }
  return r;
}

std::optional<disco::HandshakeMessage> DiscoClient::OpenChallenge(
    const Bytes& d) const {
  std::optional<Bytes> pt = OpenFromServer(d);
  if (!pt) return std::nullopt;
  disco::HandshakeMessage m;
  if (disco::ParseHandshake(dialect_, pt->data(), pt->size(), &m) !=
          disco::ParseError::kOk ||
      m.type != disco::MessageType::kChallenge) {
    return std::nullopt;
  }
  return m;
}

Bytes DiscoClient::Answer(const disco::HandshakeMessage& challenge) const {
  disco::HandshakeMessage a = challenge;
  a.type = disco::MessageType::kAnswer;
  return Seal(a, vni_);
}

Bytes DiscoClient::Data(const Bytes& payload, uint16_t protocol) const {
  Bytes out(geneve::kHeaderSize);
  geneve::Encode({.control = false, .protocol = protocol, .vni = vni_},
                       out.data());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace peerrelay::client
