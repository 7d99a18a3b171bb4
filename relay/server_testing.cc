#include "relay/server_testing.h"

namespace peerrelay::relay {

Verdict ProcessCounted(Server& server, const uint8_t* pkt, size_t len,
                       const SocketAddress& from, int64_t now_ns, Counters* c) {
  return ProcessRunCounted(server, pkt, len, 1, len, from, now_ns, c);
}

Verdict ProcessRunCounted(Server& server, const uint8_t* pkt, size_t len,
                          uint32_t count, size_t total_bytes,
                          const SocketAddress& from, int64_t now_ns,
                          Counters* c) {
  c->received.Add(count);
  c->received_bytes.Add(total_bytes);
  Verdict v = server.Classify(pkt, len, count, total_bytes, from, now_ns);
  if (v.kind == Verdict::kForward) {
    c->Relayed(!from.is_ipv4(), !v.destination.is_ipv4(), count, total_bytes);
  } else if (v.kind == Verdict::kDrop) {
    c->Drop(v.reason, count);
  }
  return v;
}

}  // namespace peerrelay::relay
