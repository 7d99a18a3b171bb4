#include "relay/counters.h"

namespace peerrelay::relay {

absl::string_view DropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kShortDatagram: return "short_datagram";
    case DropReason::kBadControlProtocol: return "bad_control_protocol";
    case DropReason::kUnknownVni: return "unknown_vni";
    case DropReason::kNotBound: return "not_bound";
    case DropReason::kUnknownSource: return "unknown_source";
    case DropReason::kNotDisco: return "not_disco";
    case DropReason::kUnknownSender: return "unknown_sender";
    case DropReason::kBadSenderKey: return "bad_sender_key";
    case DropReason::kBoxOpenFailed: return "box_open_failed";
    case DropReason::kBadMessage: return "bad_message";
    case DropReason::kUnexpectedMessage: return "unexpected_message";
    case DropReason::kWrongVni: return "wrong_vni";
    case DropReason::kWrongRemoteKey: return "wrong_remote_key";
    case DropReason::kZeroGeneration: return "zero_generation";
    case DropReason::kStaleGeneration: return "stale_generation";
    case DropReason::kBadMac: return "bad_mac";
    case DropReason::kBadAnswer: return "bad_answer";
    case DropReason::kWrongAddress: return "wrong_address";
    case DropReason::kAlreadyBound: return "already_bound";
    case DropReason::kEndpointGone: return "endpoint_gone";
    case DropReason::kSlowPathQueueFull: return "slow_path_queue_full";
    case DropReason::kRateLimited: return "rate_limited";
    case DropReason::kTruncated: return "truncated";
    case DropReason::kOversizedControl: return "oversized_control";
    case DropReason::kAllocateNotAllowed: return "allocate_not_allowed";
    case DropReason::kAllocateFailed: return "allocate_failed";
    case DropReason::kControlWaitFull: return "control_wait_full";
    case DropReason::kBadSourceAddress: return "bad_source_address";
    case DropReason::kBadCompletion: return "bad_completion";
    case DropReason::kAllocateNotClient: return "allocate_not_client";
    case DropReason::kAllocateUnpadded: return "allocate_unpadded";
    case DropReason::kReplayed: return "replayed";
    case DropReason::kCount: break;
  }
  return "unknown";
}

void CountersSnapshot::Add(const Counters& c) {
#define PEERRELAY_ADD_VALUE(field, metric, help) field += c.field.Get();
  PEERRELAY_COUNTER_FIELDS(PEERRELAY_ADD_VALUE)
#undef PEERRELAY_ADD_VALUE
  for (size_t i = 0; i < kNumDropReasons; ++i) dropped[i] += c.dropped[i].Get();
  for (size_t i = 0; i < 4; ++i) {
    forwarded_packets[i] += c.forwarded_packets[i].Get();
    forwarded_bytes[i] += c.forwarded_bytes[i].Get();
  }
}

void CountersSnapshot::Add(const CountersSnapshot& c) {
#define PEERRELAY_ADD_VALUE(field, metric, help) field += c.field;
  PEERRELAY_COUNTER_FIELDS(PEERRELAY_ADD_VALUE)
#undef PEERRELAY_ADD_VALUE
  for (size_t i = 0; i < kNumDropReasons; ++i) dropped[i] += c.dropped[i];
  for (size_t i = 0; i < 4; ++i) {
    forwarded_packets[i] += c.forwarded_packets[i];
    forwarded_bytes[i] += c.forwarded_bytes[i];
  }
}

uint64_t CountersSnapshot::DroppedTotal() const {
  uint64_t n = 0;
  for (uint64_t d : dropped) n += d;
  return n;
}

}  // namespace peerrelay::relay
