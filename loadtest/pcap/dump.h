// One line per datagram, like tcpdump: time, addresses, the Geneve header
// (version, O bit, protocol, VNI) and what follows it: the disco envelope
// (sender key, nonce, box length, and the message type when a secret key
// given opens the box) or the WireGuard message (type, receiver index,
// counter).
//
//   15:11:08.217312 127.0.0.1:40000 > 127.0.0.1:7777 len 122 geneve v0 O
//     disco vni 2: disco sender d:43a9e9260ab22fd1 nonce 5d1c.. box 90
//     [Bind gen 1 remote d:4f26dfd87344fd14]
#ifndef PEERRELAY_LOADTEST_PCAP_DUMP_H_
#define PEERRELAY_LOADTEST_PCAP_DUMP_H_

#include <cstdint>
#include <string>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/socket_address.h"
#include "disco/key.h"

namespace peerrelay::pcap {

class Dumper {
 public:
  // Secret keys that may open boxes: the relay's (every handshake) or a
  // client's (its own disco messages, relayed pings included).
  explicit Dumper(std::vector<disco::KeyPair> secrets = {});

  // Tab-separated fields for comparing with tshark -T fields: VNI, O bit
  // (0/1), protocol (0x7a11), disco sender key (hex), nonce (hex), box
  // length, WireGuard type, transport counter; empty when absent. Empty
  // string when `p` is shorter than a Geneve header.
  static std::string Fields(const uint8_t* p, size_t len);
  // The line for one datagram (no newline).
  std::string Line(int64_t ts_ns, const SocketAddress& src,
                   const SocketAddress& dst, const uint8_t* p, size_t len);
  // Curve25519 computations so far (tests: linear, not quadratic).
  size_t shared_computations() const { return shared_computations_; }

 private:
  // The opened plaintext, or empty when no known key opens it. `hint`: the
  // key that last sent from the datagram's destination, tried first for a
  // box we sealed (the relay answers where the message came from).
  std::vector<uint8_t> TryOpen(const disco::DiscoKey& sender,
                               const uint8_t* sealed, size_t sealed_len,
                               const std::optional<disco::DiscoKey>& hint);
  std::string Message(const std::vector<uint8_t>& plain);
  // One Curve25519 per (own key, peer), ever: a hostile capture of N keys
  // must cost N, not N x N. Bounded (cleared when full).
  const std::optional<disco::SharedKey>& Shared(const disco::DiscoKey& peer,
                                                const disco::KeyPair& own);
  void NotePeer(const disco::DiscoKey& key, const SocketAddress& from);

  // At most this many peers are tried for a box we sealed whose
  // destination gave no hint, and this many shared keys and addresses kept.
  static constexpr size_t kMaxPeers = 256;
  static constexpr size_t kMaxCached = 1 << 16;

  std::vector<disco::KeyPair> secrets_;
  // Public keys seen as senders, most recent last: a box from a key we hold
  // the secret of was sealed to one of them.
  std::deque<disco::DiscoKey> peers_;
  absl::flat_hash_set<disco::DiscoKey> peer_set_;
  absl::flat_hash_map<std::pair<disco::DiscoKey, disco::DiscoKey>,
                      std::optional<disco::SharedKey>>
      shared_;
  // The key that last sent from each address.
  absl::flat_hash_map<SocketAddress, disco::DiscoKey> key_at_;
  size_t shared_computations_ = 0;
};

// "Ping", "Bind", ...; "type N" for others.
std::string DiscoTypeName(uint8_t type);

}  // namespace peerrelay::pcap

#endif  // PEERRELAY_LOADTEST_PCAP_DUMP_H_
