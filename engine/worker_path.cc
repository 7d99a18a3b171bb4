#include "engine/worker_path.h"

#include <algorithm>
#include <cstring>

#include "geneve/geneve.h"

namespace peerrelay::engine {

WorkerPath::WorkerPath(relay::Server* server, SlowPathQueue* slow,
                       PacketWriter* writer, relay::Counters* counters,
                       HandshakeLimiter limiter)
    : server_(server),
      slow_(slow),
      writer_(writer),
      counters_(counters),
      limiter_(std::move(limiter)),
      max_pending_(std::max(kMinPendingSources, 2 * slow->capacity())) {}

void WorkerPath::OnReceive(const uint8_t* data, size_t len, const RxMeta& meta,
                           const SocketAddress& from, int64_t now_ns) {
  if (meta.kernel_drops) counters_->kernel_drops.Set(*meta.kernel_drops);
  const size_t seg = meta.gro_size;
  if (capture_ != nullptr) capture_->Received(data, len, seg, from, meta.local);
  if (seg == 0 || len <= seg) {
    OnDatagram(data, len, meta, from, now_ns);
    return;
  }
  // GRO: equal-size segments, the last possibly shorter; all from `from`.
  // Runs of data segments with identical Geneve headers (one client's
  // WireGuard burst for one endpoint) share one verdict: one table lookup
  // per run instead of per segment.
  size_t off = 0;
  while (off < len) {
    const uint8_t* head = data + off;
    const size_t head_len = std::min(seg, len - off);
    if (head_len < geneve::kHeaderSize || (head[1] & 0x80) != 0) {
      OnDatagram(head, head_len, meta, from, now_ns);  // short or control
      off += head_len;
      continue;
    }
    // The 8-byte Geneve header compared as one 64-bit word.
    static_assert(geneve::kHeaderSize == sizeof(uint64_t));
    uint64_t head_word;
    std::memcpy(&head_word, head, sizeof(head_word));
    uint32_t count = 1;
    size_t bytes = head_len;
    size_t next = off + head_len;
    while (next < len) {
      const size_t l = std::min(seg, len - next);
      uint64_t word;
      if (l < geneve::kHeaderSize) break;
      std::memcpy(&word, data + next, sizeof(word));
      if (word != head_word) break;
      ++count;
      bytes += l;
      next += l;
    }
    counters_->received.Add(count);
    counters_->received_bytes.Add(bytes);
    relay::Verdict v =
        server_->Classify(head, head_len, count, bytes, from, now_ns);
    if (v.kind == relay::Verdict::kForward) {
      Forward(data + off, seg, bytes, count, from, v.destination, meta);
    } else if (!pending_.empty() && MayWait(v.reason) &&
               pending_.contains(from)) {
      // Each segment waits (or not) on its own, in order.
      for (size_t o = off; o < next; o += std::min(seg, len - o)) {
        OnDropped(data + o, std::min(seg, len - o), meta, from, now_ns,
                  v.reason);
      }
    } else {
      counters_->Drop(v.reason, count);
    }
    off = next;
  }
}

void WorkerPath::Forward(const uint8_t* p, size_t seg, size_t total,
                         uint32_t count, const SocketAddress& from,
                         const SocketAddress& dest, const RxMeta& meta) {
  counters_->Relayed(!from.is_ipv4(), !dest.is_ipv4(), count, total);
  if (capture_ != nullptr) {
    capture_->Sent(p, total, count == 1 ? 0 : seg, dest, meta.local);
  }
  if (count == 1) {
    writer_->Add(p, total, dest, counters_);
  } else {
    writer_->AddRun(p, seg, total, dest, counters_);
  }
}

void WorkerPath::OnDatagram(const uint8_t* data, size_t len,
                            const RxMeta& meta, const SocketAddress& from,
                            int64_t now_ns) {
  counters_->received.Add();
  counters_->received_bytes.Add(len);
  relay::Verdict v = server_->Classify(data, len, 1, len, from, now_ns);
  if (v.kind == relay::Verdict::kForward) {
    Forward(data, len, len, 1, from, v.destination, meta);
  } else if (v.kind == relay::Verdict::kSlowPath) {
    OnControl(data, len, meta, from, now_ns);
  } else if (!pending_.empty() && MayWait(v.reason)) {
    OnDropped(data, len, meta, from, now_ns, v.reason);
  } else {
    counters_->Drop(v.reason);
  }
}

void WorkerPath::OnControl(const uint8_t* data, size_t len,
                           const RxMeta& meta, const SocketAddress& from,
                           int64_t now_ns) {
  if (len > SlowPathQueue::kMaxControlBytes) {
    counters_->Drop(relay::DropReason::kOversizedControl);
    return;
  }
  // Junk (an unknown VNI, a sender that is not a client of it) is dropped
  // here, before it can spend the handshake budget of real clients.
  relay::ControlSide side;
  if (relay::DropReason r = server_->PrecheckControl(data, len, &side);
      r != relay::DropReason::kCount) {
    counters_->Drop(r);
    return;
  }
  if (!limiter_.Allow(from, side, now_ns)) {
    counters_->Drop(relay::DropReason::kRateLimited);
    return;
  }
  const uint64_t seq = slow_->TryPush(QueueItem::kControl, writer_,
                                      from, meta.local, data, len);
  if (seq == 0) {
    counters_->Drop(relay::DropReason::kSlowPathQueueFull);
    return;
  }
  counters_->to_slow_path.Add();
  // Remember it, so this source's data is not judged before it is applied.
  // Entries whose item is done are stale; they are pruned in one sweep when
  // the table reaches twice what the queue can hold at once, so the table
  // stays bounded however many sources send control datagrams.
  if (pending_.size() >= max_pending_) {
    const uint64_t done = slow_->completed();
    absl::erase_if(pending_,
                   [done](const auto& kv) { return kv.second.seq <= done; });
  }
  pending_[from] = {.seq = seq, .waiting = 0};
}

void WorkerPath::OnDropped(const uint8_t* data, size_t len,
                           const RxMeta& meta, const SocketAddress& from,
                           int64_t now_ns, relay::DropReason reason) {
  auto it = pending_.find(from);
  if (it == pending_.end()) {
    counters_->Drop(reason);
    return;
  }
  if (it->second.seq <= slow_->completed()) {
    // Everything this source queued has been applied, possibly after the
    // table was read above: judge it again, once, against the new state.
    pending_.erase(it);
    relay::Verdict v = server_->Classify(data, len, 1, len, from, now_ns);
    if (v.kind == relay::Verdict::kForward) {
      Forward(data, len, len, 1, from, v.destination, meta);
    } else {
      counters_->Drop(v.reason);
    }
    return;
  }
  if (it->second.waiting >= kMaxWaitPerControl) {
    counters_->Drop(relay::DropReason::kControlWaitFull);
    return;
  }
  const uint64_t seq = slow_->TryPush(QueueItem::kData, writer_,
                                      from, meta.local, data, len);
  if (seq == 0) {
    counters_->Drop(relay::DropReason::kControlWaitFull);
    return;
  }
  // Later data from this source now waits behind this one, keeping order
  // among the waiting datagrams.
  it->second.seq = seq;
  ++it->second.waiting;
  counters_->to_slow_path.Add();
  counters_->waited_for_control.Add();
}

}  // namespace peerrelay::engine
