// The per-datagram path relayd runs: WorkerPath::OnReceive (GRO run split,
// precheck, handshake budget, per-client order wait, slow-path hand-off)
// and the slow-path thread's SlowPathWorker::HandleOne (HandleControl and
// the replies, waiting data judged again), against a server holding a
// bound endpoint, with a writer that records every send.
//
// Input: byte 0 picks the dialect (bit 0) and a tight handshake budget
// (bit 1); then records of
//   op (1) | arg (1) | len (2, LE) | len bytes
//   op % 6 == 0: a raw datagram from address arg % 3 (A, B, stranger)
//   op % 6 == 1: the bytes as a disco plaintext sealed by client (arg % 2),
//                for the endpoint's VNI, sent from address arg % 3: this is
//                how fuzz input reaches the message parsers and handshakes
//   op % 6 == 2: end of batch (Flush), then the slow path handles arg % 8
//                items; then the clock moves arg / 8 seconds and Expire runs
//   op % 6 == 3: a data datagram for the endpoint from address arg % 3
//   op % 6 == 4: a GRO buffer from address arg % 3: the bytes as a data
//                datagram repeated 1 + (arg / 3) % 8 times, segment size the
//                datagram's (the last one cut by arg / 24 bytes)
//   op % 6 == 5: the bytes as a control datagram's tail (Geneve control
//                header for the endpoint's VNI + the bytes) from arg % 3
// Invariants:
//   - a batched forward goes only to a bound address, carries a data
//     datagram (control bit clear) for the endpoint's VNI, unchanged from
//     what was received;
//   - a reply goes back to the source of its request, no larger than the
//     request (seed dialect: + 32, docs/protocol.md), no larger than
//     kMaxControlReply; waiting data sent by the slow path goes to a bound
//     address;
//   - every datagram is accounted for on both paths:
//       worker: received = relayed + to_slow_path + dropped
//       slow:   to_slow_path = challenges + handshakes + UDP allocations +
//               relayed + dropped
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <vector>

#include "client/disco_client.h"
#include "common/fake_clock.h"
#include "engine/fake_writer_testing.h"
#include "engine/handshake_limiter.h"
#include "engine/slow_path_queue.h"
#include "engine/slow_path_worker.h"
#include "engine/worker_path.h"
#include "geneve/geneve.h"
#include "relay/disco_client_testing.h"
#include "relay/server.h"

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

// What the fuzzer handed the slow path, in queue order.
struct Handed {
  bool control;
  size_t len;
  SocketAddress from;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size < 1) return 0;
  const disco::Dialect dialect =
      data[0] & 1 ? disco::Dialect::kCurrent : disco::Dialect::kSeed;
  const bool tight_budget = data[0] & 2;
  FakeClock clock(1000 * relay::kSecond);
  auto server = relay::Server::Create({.key_pair = f.server_key,
                                       .addresses = {f.addr[2]},
                                       .dialect = dialect,
                                       .vni_limit = 64},
                                      clock.NowNs())
                    .value();
  client::DiscoClient a(dialect, f.server_key.public_key(), f.addr[0], f.key_a);
  client::DiscoClient b(dialect, f.server_key.public_key(), f.addr[1], f.key_b);
  relay::EndpointInfo ep =
      server->Allocate(a.key(), b.key(), clock.NowNs()).value();
  a.SetEndpoint(ep.vni, b.key());
  b.SetEndpoint(ep.vni, a.key());
  relay::Counters setup;
  if (!relay::DriveHandshake(a, *server, clock.NowNs(), &setup) ||
      !relay::DriveHandshake(b, *server, clock.NowNs(), &setup)) {
    __builtin_trap();
  }

  // The worker and the slow path count in their own blocks, as relayd's
  // worker threads and slow-path thread do.
  relay::Counters c, slow_c;
  engine::FakeWriter writer;
  engine::SlowPathQueue queue(8, 8);
  engine::WorkerPath path(
      server.get(), &queue, &writer, &c,
      tight_budget ? engine::HandshakeLimiter(2, 2, 4, 4, 1, 2)
                   : engine::HandshakeLimiter(0, 0, 0, 0));
  engine::SlowPathWorker slow(server.get(), &queue, &slow_c, &clock,
                              /*start_thread=*/false);
  std::deque<Handed> handed;
  // Every datagram received, by content: a forward must be one of them.
  std::set<Bytes> received;

  auto bound = [&]() {
    std::vector<relay::SessionInfo> s = server->Sessions();
    std::vector<SocketAddress> out;
    for (const relay::SessionInfo& si : s) {
      for (int side = 0; side < 2; ++side) {
        if (si.bound[side]) out.push_back(*si.bound[side]);
      }
    }
    return out;
  };
  auto is_bound = [&](const SocketAddress& x) {
    for (const SocketAddress& y : bound()) {
      if (x == y) return true;
    }
    return false;
  };
  // End of batch: what the writer sent is checked against the table as
  // it stands (nothing changes it between the verdicts and here).
  size_t checked = 0;
  // This batch's receive buffers: the writer points into them until Flush
  // (packet_writer.h), so they live until then, as an engine's do.
  std::deque<Bytes> batch;
  auto flush = [&]() {
    path.Flush();
    batch.clear();
    for (; checked < writer.sent.size(); ++checked) {
      const engine::FakeWriter::Sent& s = writer.sent[checked];
      if (s.now) __builtin_trap();  // workers never SendNow
      geneve::Header h;
      if (!geneve::Decode(s.bytes.data(), s.bytes.size(), &h) || h.control ||
          h.vni != ep.vni || !is_bound(s.dest) || !received.count(s.bytes)) {
        __builtin_trap();
      }
    }
  };
  auto handle_slow = [&](int n) {
    for (int i = 0; i < n && !handed.empty(); ++i) {
      const Handed h = handed.front();
      handed.pop_front();
      const size_t before = writer.sent.size();
      if (!slow.HandleOne(0)) __builtin_trap();  // queue and list agree
      if (writer.sent.size() > before + 1) __builtin_trap();
      if (writer.sent.size() == before) continue;
      const engine::FakeWriter::Sent& s = writer.sent.back();
      if (!s.now) __builtin_trap();
      if (h.control) {
        const size_t allowed =
            h.len + (dialect == disco::Dialect::kSeed ? 32 : 0);
        if (s.dest != h.from || s.bytes.size() > allowed ||
            s.bytes.size() > relay::kMaxControlReply) {
          __builtin_trap();
        }
      } else if (!is_bound(s.dest) || !received.count(s.bytes)) {
        __builtin_trap();
      }
      checked = writer.sent.size();
    }
  };

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
    engine::RxMeta meta;
    switch (op % 6) {
      case 0: d = body; break;
      case 1: d = (arg & 1 ? b : a).SealRaw(body, ep.vni); break;
      case 2:
        flush();
        handle_slow(arg % 8);
        clock.Advance(int64_t(arg / 8) * relay::kSecond);
        server->Expire(clock.NowNs());
        continue;
      case 3: d = a.Data(body); break;
      case 4: {
        const Bytes one = a.Data(body);
        // At most 64 KiB in all, as the kernel coalesces.
        const int n = std::max<int>(
            1, std::min<int>(1 + (arg / 3) % 8, int(65535 / one.size())));
        for (int i = 0; i < n; ++i) d.insert(d.end(), one.begin(), one.end());
        const size_t cut = std::min<size_t>(arg / 24, one.size() - 1);
        d.resize(d.size() - cut);
        if (n > 1 && one.size() <= 0xFFFF) meta.gro_size = uint16_t(one.size());
        // Every segment as the receiver sees it.
        for (size_t off = 0; off < d.size(); off += one.size()) {
          received.insert(Bytes(d.begin() + off,
                                d.begin() + std::min(d.size(), off + one.size())));
        }
        break;
      }
      case 5:
        d.resize(geneve::kHeaderSize);
        geneve::Encode({.control = true, .protocol = geneve::kProtocolDisco,
                        .vni = ep.vni},
                       d.data());
        d.insert(d.end(), body.begin(), body.end());
        break;
    }
    if (meta.gro_size == 0) received.insert(d);
    const uint64_t to_slow = c.to_slow_path.Get();
    const uint64_t waited = c.waited_for_control.Get();
    batch.push_back(std::move(d));
    const Bytes& buf = batch.back();
    path.OnReceive(buf.data(), buf.size(), meta, from, clock.NowNs());
    // Handed on: one control datagram, or data segments that wait (a GRO
    // buffer's segments may each wait), never both at once.
    const uint64_t n_new = c.to_slow_path.Get() - to_slow;
    const uint64_t n_wait = c.waited_for_control.Get() - waited;
    if (n_wait != 0 && n_wait != n_new) __builtin_trap();
    if (n_wait == 0 && n_new > 1) __builtin_trap();
    for (uint64_t i = 0; i < n_new; ++i) {
      handed.push_back({n_wait == 0, buf.size(), from});
    }
    if (handed.size() > 16) __builtin_trap();  // the queue holds 8 + 8
  }
  flush();
  handle_slow(1 << 30);
  if (slow.HandleOne(0)) __builtin_trap();  // nothing left behind

  // Every datagram is accounted for, on both paths.
  const uint64_t worker_received = c.received.Get();
  if (worker_received !=
      c.relayed.Get() + c.to_slow_path.Get() + c.DroppedTotal()) {
    __builtin_trap();
  }
  if (c.to_slow_path.Get() !=
      slow_c.challenges_sent.Get() + slow_c.handshakes_completed.Get() +
          slow_c.allocations_udp.Get() + slow_c.relayed.Get() +
          slow_c.DroppedTotal()) {
    __builtin_trap();
  }
  return 0;
}
