#include "engine/worker.h"

namespace peerrelay::engine {

void DeliverReceived(WorkerPath* path, relay::Counters* c,
                     const sockaddr* name, socklen_t namelen, msghdr* h,
                     const uint8_t* data, size_t len, size_t full_len,
                     bool truncated, int64_t now_ns) {
  auto from = SocketAddress::FromSockaddr(name, namelen);
  if (!from || truncated) {
    c->received.Add();
    c->received_bytes.Add(full_len);
    c->Drop(!from ? relay::DropReason::kBadSourceAddress
                  : relay::DropReason::kTruncated);
    return;
  }
  RxMeta meta;
  if (h->msg_controllen > 0) ParseRxControl(h, &meta);
  path->OnReceive(data, len, meta, *from, now_ns);
}

}  // namespace peerrelay::engine
