#include "relay/disco_client_testing.h"

namespace peerrelay::relay {

using client::Bytes;

bool DriveHandshake(client::DiscoClient& client, Server& server, int64_t now_ns,
                    Counters* c, uint32_t generation) {
  Bytes bind = client.Bind(generation);
  ControlReply reply;
  if (!server.HandleControl(bind.data(), bind.size(), client.address(), now_ns, c,
                            &reply)) {
    return false;
  }
  if (reply.destination != client.address()) return false;
  auto ch = client.OpenChallenge(Bytes(reply.bytes.begin(),
                                reply.bytes.begin() + reply.len));
  if (!ch) return false;
  Bytes answer = client.Answer(*ch);
  const uint64_t drops_before = c->DroppedTotal();
  const uint64_t done_before = c->handshakes_completed.Get();
  ControlReply none;
  bool replied = server.HandleControl(answer.data(), answer.size(), client.address(),
                                      now_ns, c, &none);
  return !replied && c->DroppedTotal() == drops_before &&
         c->handshakes_completed.Get() == done_before + 1;
}

}  // namespace peerrelay::relay
