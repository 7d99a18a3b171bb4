#include "loadtest/pcap/sessions.h"

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "disco/envelope.h"
#include "disco/key.h"
#include "geneve/geneve.h"

namespace peerrelay::pcap {

bool LooksLikeRelayTraffic(const uint8_t* p, size_t len) {
  geneve::Header h;
  if (!geneve::Decode(p, len, &h)) return false;
  return h.version == 0 && (h.protocol == geneve::kProtocolDisco ||
                            h.protocol == geneve::kProtocolWireGuard);
}

absl::StatusOr<Capture> LoadCapture(const std::string& path,
                                    uint64_t max_datagrams) {
  auto r = PcapReader::Open(path);
  if (!r.ok()) return r.status();
  Capture c;
  c.path = path;
  c.link = (*r)->link_name();
  CapturedDatagram d;
  while ((max_datagrams == 0 || c.datagrams.size() < max_datagrams) &&
         (*r)->Next(&d)) {
    if (d.truncated) continue;  // counted in stats; cannot be replayed as is
    c.datagrams.push_back(
        {d.ts_ns, d.src, d.dst, Bytes(d.payload, d.payload + d.len)});
  }
  if (!(*r)->error().empty()) {
    return absl::DataLossError(absl::StrCat(path, ": ", (*r)->error()));
  }
  c.read = (*r)->stats();
  return c;
}

namespace {

// The address in datagrams of the most VNIs; ties go to the destination of
// the first control datagram (a client's Bind goes to the relay), then of
// the first datagram.
std::optional<SocketAddress> InferRelay(const Capture& c) {
  absl::flat_hash_map<SocketAddress, absl::flat_hash_set<uint32_t>> vnis;
  std::optional<SocketAddress> first_control_dst, first_dst;
  for (const Datagram& d : c.datagrams) {
    geneve::Header h;
    if (!LooksLikeRelayTraffic(d.payload.data(), d.payload.size())) continue;
    geneve::Decode(d.payload.data(), d.payload.size(), &h);
    vnis[d.src].insert(h.vni);
    vnis[d.dst].insert(h.vni);
    if (!first_dst) first_dst = d.dst;
    if (h.control && !first_control_dst) first_control_dst = d.dst;
  }
  if (vnis.empty()) return std::nullopt;
  size_t best = 0;
  for (const auto& [a, v] : vnis) best = std::max(best, v.size());
  std::vector<SocketAddress> top;
  for (const auto& [a, v] : vnis) {
    if (v.size() == best) top.push_back(a);
  }
  if (top.size() == 1) return top[0];
  for (const std::optional<SocketAddress>& pick : {first_control_dst, first_dst}) {
    if (pick && std::find(top.begin(), top.end(), *pick) != top.end()) {
      return pick;
    }
  }
  std::sort(top.begin(), top.end());
  return top[0];
}

struct SessionBuild {
  Session s;
  absl::flat_hash_map<SocketAddress, int> side_of;
  absl::flat_hash_map<std::string, int> side_of_key;
  bool sent_seen[2] = {false, false};
  std::vector<Item> relay_leg[2];

  int SideFor(const SocketAddress& a) {
    auto it = side_of.find(a);
    if (it != side_of.end()) return it->second;
    // A new address: the first free side, else side A's (a re-bind from
    // a new address cannot be told apart without keys).
    const int side = !s.has_client[0] ? 0 : !s.has_client[1] ? 1 : 0;
    Claim(a, side);
    return side;
  }
  void Claim(const SocketAddress& a, int side) {
    side_of[a] = side;
    if (!s.has_client[side]) {
      s.client[side] = a;
      s.has_client[side] = true;
    }
  }
};

}  // namespace

absl::Status FindSessions(Capture* c, const FindOptions& o) {
  c->relay = o.relay ? o.relay : InferRelay(*c);
  if (!c->relay) {
    return absl::NotFoundError(absl::StrCat(
        c->path, ": no Geneve datagram (protocol 0x7A11/0x7A12) in ",
        c->datagrams.size(), " UDP datagrams: nothing to replay"));
  }
  const SocketAddress relay = *c->relay;
  // Pass 1: who the relay answered, per VNI.
  absl::flat_hash_set<std::pair<uint32_t, SocketAddress>> answered;
  for (const Datagram& d : c->datagrams) {
    geneve::Header h;
    if (d.src == relay && LooksLikeRelayTraffic(d.payload.data(), d.payload.size())) {
      geneve::Decode(d.payload.data(), d.payload.size(), &h);
      answered.insert({h.vni, d.dst});
    }
  }
  // Pass 2: sessions, items and hostile datagrams.
  std::map<uint32_t, SessionBuild> builds;
  for (const Datagram& d : c->datagrams) {
    const bool looks = LooksLikeRelayTraffic(d.payload.data(), d.payload.size());
    c->geneve += looks;
    if (d.src != relay && d.dst != relay) {
      ++c->not_relay;
      continue;
    }
    if (!looks) {
      if (d.dst == relay) c->hostile.push_back(d);
      continue;
    }
    geneve::Header h;
    geneve::Decode(d.payload.data(), d.payload.size(), &h);
    if (h.vni == 0) continue;  // allocation over disco: no session yet
    if (d.dst == relay && !answered.contains({h.vni, d.src})) {
      c->hostile.push_back(d);  // the relay never answered this address
      continue;
    }
    SessionBuild& b = builds[h.vni];
    Session& s = b.s;
    if (s.first_ns == 0) {
      s.vni = h.vni;
      s.first_ns = d.ts_ns;
    }
    s.last_ns = d.ts_ns;
    if (h.control) {
      ++s.control;
      disco::EnvelopeView env;
      if (d.dst == relay && disco::PeekEnvelope(d.payload.data() + geneve::kHeaderSize,
                                                d.payload.size() - geneve::kHeaderSize,
                                                &env)) {
        // The sender key of a client's handshake names its side.
        const std::string key =
            disco::DiscoKey::FromBytes(env.sender_key).ToText();
        auto it = b.side_of_key.find(key);
        int side;
        if (it != b.side_of_key.end()) {
          side = it->second;
        } else {
          side = b.side_of_key.size() < 2 ? int(b.side_of_key.size()) : 0;
          b.side_of_key[key] = side;
          if (s.key[side].empty()) s.key[side] = key;
        }
        if (!b.side_of.contains(d.src)) b.Claim(d.src, side);
      }
      continue;
    }
    ++s.data;
    if (s.first_data_ns == 0) s.first_data_ns = d.ts_ns;
    if (d.dst == relay) {
      const int side = b.SideFor(d.src);
      b.sent_seen[side] = true;
      s.items.push_back({d.ts_ns, side, d.payload});
    } else {
      // The relay's leg to X: sent by X's peer.
      const int sender = 1 - b.SideFor(d.dst);
      b.relay_leg[sender].push_back({d.ts_ns, sender, d.payload});
    }
  }
  for (auto& [vni, b] : builds) {
    for (int side = 0; side < 2; ++side) {
      if (!b.sent_seen[side] && !b.relay_leg[side].empty()) {
        b.s.from_relay_leg[side] = true;
        for (Item& it : b.relay_leg[side]) b.s.items.push_back(std::move(it));
      }
    }
    std::stable_sort(b.s.items.begin(), b.s.items.end(),
                     [](const Item& x, const Item& y) { return x.ts_ns < y.ts_ns; });
    c->sessions.push_back(std::move(b.s));
  }
  std::sort(c->sessions.begin(), c->sessions.end(),
            [](const Session& x, const Session& y) { return x.first_ns < y.first_ns; });
  return absl::OkStatus();
}

}  // namespace peerrelay::pcap
