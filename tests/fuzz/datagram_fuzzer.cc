// The whole per-datagram path: Server::Process and, for control datagrams,
// Server::HandleControl, against a server holding a bound endpoint, with a
// fake writer that checks every reply.
//
// Input: byte 0 picks the dialect; then records of
//   op (1) | arg (1) | len (2, LE) | len bytes
//   op % 4 == 0: a raw datagram from address arg % 3 (A, B, stranger)
//   op % 4 == 1: the bytes as a disco plaintext sealed by client (arg % 2),
//                for the endpoint's VNI, sent from address arg % 3: this is
//                how fuzz input reaches the message parsers and handshakes
//   op % 4 == 2: advance the clock by arg seconds, then Expire
//   op % 4 == 3: a data datagram for the endpoint from address arg % 3
// Invariants: a Forward goes only between the two bound addresses; a reply
// goes back to the datagram's source, no larger than allowed (no
// amplification); every datagram is accounted for.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "relay/server.h"
#include "client/disco_client.h"
#include "relay/disco_client_testing.h"

namespace {

using namespace peerrelay;
using client::Bytes;

struct Fixture {
  // Secrets differ above the low 3 bits, which Curve25519 clamps away.
  disco::KeyPair server_key = disco::KeyPair::FromSecret({0x70});
  disco::KeyPair key_a = disco::KeyPair::FromSecret({0x80});
  disco::KeyPair key_b = disco::KeyPair::FromSecret({0x90});
  SocketAddress addr[3] = {SocketAddress::Parse("10.0.0.1:1000").value(),
                           SocketAddress::Parse("[2001:db8::2]:2000").value(),
                           SocketAddress::Parse("10.0.0.3:3000").value()};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size < 1) return 0;
  const disco::Dialect dialect =
      data[0] & 1 ? disco::Dialect::kCurrent : disco::Dialect::kSeed;
  int64_t now = 1000 * relay::kSecond;
  auto server = relay::Server::Create({.key_pair = f.server_key,
                                       .addresses = {f.addr[2]},
                                       .dialect = dialect,
                                       .vni_limit = 64},
                                      now)
                    .value();
  client::DiscoClient a(dialect, f.server_key.public_key(), f.addr[0], f.key_a);
  client::DiscoClient b(dialect, f.server_key.public_key(), f.addr[1], f.key_b);
  relay::EndpointInfo ep = server->Allocate(a.key(), b.key(), now).value();
  a.SetEndpoint(ep.vni, b.key());
  b.SetEndpoint(ep.vni, a.key());
  relay::Counters setup;
  if (!relay::DriveHandshake(a, *server, now, &setup) || !relay::DriveHandshake(b, *server, now, &setup)) {
    __builtin_trap();
  }

  // The fast path and the slow path count in their own blocks, as the
  // engine's workers and slow-path thread do.
  relay::Counters c, slow_c;
  uint64_t slow = 0;
  size_t pos = 1;
  while (pos + 4 <= size) {
    const uint8_t op = data[pos], arg = data[pos + 1];
    size_t len = data[pos + 2] | size_t(data[pos + 3]) << 8;
    pos += 4;
    if (len > size - pos) len = size - pos;
    Bytes body(data + pos, data + pos + len);
    pos += len;
    const SocketAddress& from = f.addr[arg % 3];
    Bytes d;
    switch (op % 4) {
      case 0: d = body; break;
      case 1: d = (arg & 1 ? b : a).SealRaw(body, ep.vni); break;
      case 2:
        now += int64_t(arg) * relay::kSecond;
        server->Expire(now);
        continue;
      case 3: d = a.Data(body); break;
    }
    relay::Verdict v = server->Process(d.data(), d.size(), from, now, &c);
    if (v.kind == relay::Verdict::kForward) {
      std::vector<relay::SessionInfo> s = server->Sessions();
      if (s.size() != 1 || !s[0].bound[0] || !s[0].bound[1]) __builtin_trap();
      const bool ok = (from == *s[0].bound[0] && v.destination == *s[0].bound[1]) ||
                      (from == *s[0].bound[1] && v.destination == *s[0].bound[0]);
      if (!ok) __builtin_trap();
    } else if (v.kind == relay::Verdict::kSlowPath) {
      ++slow;
      // What the workers' precheck drops could never have done anything on
      // the slow path: no reply, no handshake, no allocation.
      const bool prechecked_out =
          server->PrecheckControl(d.data(), d.size()) != relay::DropReason::kCount;
      const uint64_t done_before = slow_c.handshakes_completed.Get() +
                                   slow_c.allocations_udp.Get();
      relay::ControlReply reply;
      const bool replied = server->HandleControl(d.data(), d.size(), from, now,
                                                 &slow_c, &reply);
      if (prechecked_out &&
          (replied || slow_c.handshakes_completed.Get() +
                              slow_c.allocations_udp.Get() != done_before)) {
        __builtin_trap();
      }
      if (replied) {
        if (reply.destination != from || reply.len > relay::kMaxControlReply) {
          __builtin_trap();
        }
        // No amplification: a Challenge is never larger than the Bind that
        // asked for it, except that the seed dialect must accept a Bind
        // without its 32 bytes of padding (docs/protocol.md), and only from a
        // sender that holds a client's key.
        const size_t allowed = d.size() + (dialect == disco::Dialect::kSeed ? 32 : 0);
        if (reply.len > allowed) __builtin_trap();
      }
    }
  }
  // Every datagram is accounted for, on both paths.
  if (c.received.Get() != c.relayed.Get() + slow + c.DroppedTotal()) {
    __builtin_trap();
  }
  if (slow != slow_c.challenges_sent.Get() + slow_c.handshakes_completed.Get() +
                  slow_c.allocations_udp.Get() + slow_c.DroppedTotal()) {
    __builtin_trap();
  }
  return 0;
}
