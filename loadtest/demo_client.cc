// demo_client: two clients through a running relayd. Client A (whose key
// is on relayd's allocate allowlist) allocates an endpoint for itself and B
// over UDP, both run the bind handshake, then they exchange WireGuard-framed
// datagrams for a few seconds and check every byte that comes back.
//
//   demo_client --relay=127.0.0.1:7777 --server_key=discokey:...
//               --key_file=client-a.key --seconds=3
//   demo_client --key_file=client-a.key --print_public_key
#include <poll.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/cli.h"
#include "absl/strings/str_cat.h"
#include "disco/key_file.h"
#include "geneve/geneve.h"
#include "client/disco_client.h"
#include "common/udp_socket.h"

ABSL_FLAG(std::string, relay, "127.0.0.1:7777", "relayd address:port");
ABSL_FLAG(std::string, server_key, "", "relayd's disco key (discokey:...)");
ABSL_FLAG(std::string, key_file, "", "client A's secret key file (created if missing)");
ABSL_FLAG(bool, print_public_key, false, "print client A's public key and exit");
ABSL_FLAG(double, seconds, 3, "how long to exchange data");
ABSL_FLAG(int, size, 1200, "payload bytes per datagram");

namespace peerrelay {
namespace {

using client::Bytes;
using client::DiscoClient;
using ::peerrelay::UdpSocket;

int Fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "demo_client: %s\n", msg.c_str());
  return code;
}

// One round as Tailscale's client runs it: one Bind, one Answer, and right
// behind the Answer a disco Ping to the peer through the relay. Nothing is
// re-sent: a correct Answer gets no reply, and the relay must apply it
// before it judges the Ping. Returns the Ping sent.
std::optional<Bytes> Handshake(UdpSocket& s, DiscoClient& c,
                               const SocketAddress& relay) {
  if (!s.SendTo(c.Bind(1), relay)) return std::nullopt;
  auto got = s.Recv(2000);
  if (!got) return std::nullopt;
  auto ch = c.OpenChallenge(got->first);
  if (!ch) return std::nullopt;
  Bytes ping = c.Data({'p', 'i', 'n', 'g'}, geneve::kProtocolDisco);
  if (!s.SendTo(c.Answer(*ch), relay) || !s.SendTo(ping, relay)) {
    return std::nullopt;
  }
  return ping;
}

int Main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "two clients through a running relayd: UDP allocation, the bind "
      "handshake, a few seconds of WireGuard-framed data checked byte for "
      "byte\n"
      "  demo_client --relay=IP:PORT --server_key=discokey:... "
      "--key_file=F [--seconds=3]\n"
      "  demo_client --key_file=F --print_public_key";
  const cli::Parsed parsed = cli::ParseFlags(
      argc, argv,
      {.name = "demo_client",
       .usage = kUsage,
       .flag_sources = {"loadtest/demo_client.cc"}});
  if (parsed.done()) return parsed.exit_code;
  if (parsed.args.size() > 1) {
    return Fail(absl::StrCat("unexpected argument '", parsed.args[1], "'"), 2);
  }
  auto key = disco::LoadOrCreateKeyFile(absl::GetFlag(FLAGS_key_file));
  if (!key.ok()) return Fail(std::string(key.status().message()));
  if (absl::GetFlag(FLAGS_print_public_key)) {
    std::printf("%s\n", key->public_key().ToText().c_str());
    return 0;
  }
  auto relay = SocketAddress::Parse(absl::GetFlag(FLAGS_relay));
  if (!relay.ok()) return Fail(std::string(relay.status().message()));
  auto server_key = disco::DiscoKey::ParseText(absl::GetFlag(FLAGS_server_key));
  if (!server_key.ok()) return Fail(std::string(server_key.status().message()));
  SocketAddress any = SocketAddress::Parse(
      relay->is_ipv4() ? "127.0.0.1:0" : "[::1]:0").value();
  UdpSocket sa = UdpSocket::Open(any).value();
  UdpSocket sb = UdpSocket::Open(any).value();
  DiscoClient a(disco::Dialect::kCurrent, *server_key, sa.local(), *key);
  DiscoClient b(disco::Dialect::kCurrent, *server_key, sb.local());

  // One allocate request; UDP may lose it, so a lost one is an error here
  // rather than retried.
  std::optional<disco::AllocateResponse> resp;
  sa.SendTo(a.AllocateRequest(b.key(), 1), *relay);
  if (auto got = sa.Recv(2000)) resp = a.OpenAllocateResponse(got->first);
  if (!resp) return Fail("no allocation (is A's key on relayd's allowlist?)");
  std::printf("allocated: vni=%u lamport=%lu advertised=%s\n", resp->vni,
              resp->lamport_id, resp->addresses[0].ToString().c_str());
  a.SetEndpoint(resp->vni, b.key());
  b.SetEndpoint(resp->vni, a.key());
  // Both run one round, A (the allocating peer) first. A correct Answer
  // gets no reply, so a client knows it is bound only when its peer's Ping
  // arrives through the relay. Usually A's Answer is applied first, its Ping
  // finds B unbound and is dropped (as with Tailscale's own server), and
  // B's Ping, right behind B's Answer, reaches A. If the relay applied B's
  // Answer before A's, the roles swap. Whoever receives a Ping pings back,
  // as Tailscale's client does, and that Ping must arrive.
  std::optional<Bytes> ping_a = Handshake(sa, a, *relay);
  if (!ping_a) return Fail("A: no Challenge for its Bind");
  std::optional<Bytes> ping_b = Handshake(sb, b, *relay);
  if (!ping_b) return Fail("B: no Challenge for its Bind");
  pollfd fds[2] = {{sa.fd(), POLLIN, 0}, {sb.fd(), POLLIN, 0}};
  if (poll(fds, 2, 2000) <= 0) {
    return Fail("neither client's Ping was relayed after its Answer");
  }
  const bool a_got = (fds[0].revents & POLLIN) != 0;
  UdpSocket& rx_sock = a_got ? sa : sb;
  UdpSocket& tx_sock = a_got ? sb : sa;
  DiscoClient& rx = a_got ? a : b;
  auto first = rx_sock.Recv(0);
  if (!first || first->first != (a_got ? *ping_b : *ping_a)) {
    return Fail("a relayed Ping arrived changed");
  }
  Bytes again = rx.Data({'p', 'o', 'n', 'g'}, geneve::kProtocolDisco);
  rx_sock.SendTo(again, *relay);
  bool back = false;
  for (int k = 0; k < 2 && !back; ++k) {  // the other first Ping may come too
    auto got = tx_sock.Recv(2000);
    if (!got) break;
    back = got->first == again;
  }
  if (!back) return Fail("the ping back was not relayed");
  std::printf("bound: A=%s B=%s (one Bind and one Answer each; %s's Ping "
              "relayed right behind its Answer, then the ping back)\n",
              sa.local().ToString().c_str(), sb.local().ToString().c_str(),
              a_got ? "B" : "A");

  const int size = absl::GetFlag(FLAGS_size);
  uint64_t sent = 0, received = 0, bad = 0, late_pings = 0;
  // The next data datagram on `s`. When both first Pings were relayed, the
  // second can arrive after the ping back was read: a relayed disco
  // datagram (Geneve protocol Disco) still queued from the bind phase is
  // skipped and counted, not taken for the data it would shift.
  auto RecvData = [&](UdpSocket& s) {
    while (true) {
      auto g = s.Recv(200);
      geneve::Header h;
      if (g && geneve::Decode(g->first.data(), g->first.size(), &h) &&
          h.protocol == geneve::kProtocolDisco) {
        ++late_pings;
        continue;
      }
      return g;
    }
  };
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  uint32_t seq = 0;
  while (std::chrono::steady_clock::now() < end) {
    // A window of 32 each way, then collect them.
    std::vector<Bytes> from_a, from_b;
    for (int i = 0; i < 32; ++i, ++seq) {
      Bytes p(static_cast<size_t>(size), static_cast<uint8_t>(seq));
      std::memcpy(p.data(), &seq, sizeof(seq));
      from_a.push_back(a.Data(p));
      p[4] ^= 0xff;
      from_b.push_back(b.Data(p));
      sa.SendTo(from_a.back(), *relay);
      sb.SendTo(from_b.back(), *relay);
      sent += 2;
    }
    for (int i = 0; i < 32; ++i) {
      if (auto g = RecvData(sb)) {
        ++received;
        if (g->first != from_a[i] || g->second != *relay) ++bad;
      }
      if (auto g = RecvData(sa)) {
        ++received;
        if (g->first != from_b[i] || g->second != *relay) ++bad;
      }
    }
  }
  std::printf("exchanged: sent=%lu received=%lu mismatched=%lu (%d-byte "
              "payloads, both directions)%s\n",
              sent, received, bad, size,
              late_pings > 0
                  ? absl::StrCat("; ", late_pings,
                                 " late Ping(s) of the bind phase skipped")
                        .c_str()
                  : "");
  return received == sent && bad == 0 ? 0 : 1;
}

}  // namespace
}  // namespace peerrelay

int main(int argc, char** argv) { return peerrelay::Main(argc, argv); }
