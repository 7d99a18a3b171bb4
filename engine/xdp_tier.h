// XdpTier: relayd's kernel fast path. A BPF program (xdp_relay.bpf.c)
// attached to the relay's interfaces forwards the data datagrams of bound
// pairs in the driver hook; everything else goes up to the sockets, where
// the engines handle it as before (docs/xdp.md).
//
// The relay core stays the source of truth. The tier is the endpoint
// table's PairObserver: a pair enters the kernel's map when it becomes
// bound, changes on a re-bind and leaves on removal (expiry, re-allocation),
// each under the endpoint's shard lock, so the map changes in the table's
// order. What the kernel forwarded is read back by Harvest (the relay's
// expiry thread, before each sweep): it moves the endpoint sides' figures
// and last-seen time (so kernel-forwarded pairs do not expire as idle) and
// the tier's own counters block (stage="xdp").
//
//   auto tier = XdpTier::Attach({.mode = "auto", .interfaces = {"eth0"},
//                                .port = 7777});
//   if (!tier.ok()) log(tier.status().message());  // relaying goes on
//   server->SetPairObserver(tier->get());
//   ... (*tier)->Harvest(server, now) every second ...
//   // destroying the tier (or the process dying) detaches the program
#ifndef PEERRELAY_ENGINE_XDP_TIER_H_
#define PEERRELAY_ENGINE_XDP_TIER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/socket_address.h"
#include "engine/xdp_abi.h"
#include "relay/counters.h"
#include "relay/endpoint_table.h"
#include "relay/server.h"

struct xdp_relay;  // the generated skeleton

namespace peerrelay::engine {

struct XdpOptions {
  // "native" (the driver's hook), "generic" (the kernel's skb hook, any
  // interface, slower) or "auto" (native where the driver has it, else
  // generic). "off" is the caller's business: Attach refuses it.
  std::string mode = "auto";
  std::vector<std::string> interfaces;
  // The relay's UDP port (the sockets' port; a fixed one).
  uint16_t port = 0;
  // The address the relay listens on: a wildcard ([::] or 0.0.0.0) takes
  // every local address of its families; else only that one.
  SocketAddress listen = SocketAddress::Parse("[::]:0").value();
  // Pairs the kernel can forward at once; more stay in user space.
  uint32_t max_pairs = 65536;
};

// True for the modes Attach takes: "native", "generic", "auto" ("off" is
// the caller's: no tier at all).
bool IsXdpAttachMode(absl::string_view mode);

// Names of the pass reasons (metrics label values), by xdp_pass_reason.
const char* XdpPassReasonName(int reason);

// A packet as the test-run facility returns it (tests and the bench).
struct XdpRunResult {
  uint32_t action = 0;  // XDP_PASS, XDP_TX, XDP_REDIRECT, ...
  std::vector<uint8_t> packet;
};

class XdpTier : public relay::PairObserver {
 public:
  // Loads the program and attaches it to every interface, all or none.
  // Errors are one line naming the interface, the mode and what to suspect
  // (privilege, driver support, another program, kernel).
  static absl::StatusOr<std::unique_ptr<XdpTier>> Attach(XdpOptions options);
  // Loads the program without attaching it anywhere: for the test-run
  // facility (Run) in tests and benchmarks.
  static absl::StatusOr<std::unique_ptr<XdpTier>> LoadForTesting(
      XdpOptions options);
  ~XdpTier() override;  // detaches

  // PairObserver (called under the endpoint's shard lock).
  void PairBound(const relay::Endpoint& ep) override;
  void PairRemoved(const relay::Endpoint& ep) override;

  // Reads what the kernel forwarded since the last call into `server`'s
  // endpoints and this tier's counters, frees the slots of pairs removed
  // before the previous call, and refreshes the local addresses. Called
  // from one thread (the relay's expiry thread). `last`: the relay is
  // stopping; every removed pair's slot is read now.
  void Harvest(relay::Server* server, int64_t now_ns, bool last = false);

  // The tier's counters: received = relayed (everything else passed up).
  relay::CountersSnapshot Counters() const;
  // Datagrams for the relay's port handed to the sockets, by reason.
  std::array<uint64_t, XDP_PASS_REASONS> Passes() const;
  // "native" or "generic" (after auto chose).
  const std::string& mode() const { return mode_; }
  const std::vector<std::string>& interfaces() const {
    return options_.interfaces;
  }
  // What the caller should log after a successful Attach (a family that
  // will stay on the sockets, and why).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Pairs in the kernel's map now.
  size_t pairs() const;
  // Bound pairs left in user space: their sides are of different address
  // families, the map was full, or the kernel refused the update.
  uint64_t pairs_mixed_family() const { return mixed_.load(); }
  uint64_t pairs_map_full() const { return full_.load(); }
  uint64_t map_errors() const { return map_errors_.load(); }

  // Test hooks: the local addresses the program answers on (replacing the
  // ones found by Harvest until the next refresh), and one run of the
  // program on `packet` as it arrived on `ifindex`.
  absl::Status SetLocalAddressesForTesting(
      const std::vector<SocketAddress>& addrs);
  absl::StatusOr<XdpRunResult> Run(const std::vector<uint8_t>& packet,
                                   int ifindex) const;

 private:
  explicit XdpTier(XdpOptions options);
  absl::Status Load();
  absl::Status CheckForwarding();
  absl::Status AttachAll();
  absl::Status ZeroSlot(uint32_t slot);
  absl::Status ReadSlot(uint32_t slot, xdp_slot_stats* out) const;
  void RefreshLocalAddresses();
  void ApplyLocalAddresses(const absl::flat_hash_set<SocketAddress>& want);
  void RemoveLocked(uint32_t vni);

  XdpOptions options_;
  std::string mode_;
  std::vector<std::string> warnings_;
  xdp_relay* skel_ = nullptr;
  std::vector<int> link_fds_;
  int ncpus_ = 1;

  // Mirror state, behind mu_ (a leaf lock: taken under shard locks, never
  // held while calling the table).
  struct Mirrored {
    uint32_t slot = 0;
    uint64_t lamport_id = 0;
  };
  struct Slot {
    uint32_t vni = 0;
    uint64_t lamport_id = 0;
    bool ipv6 = false;
    xdp_slot_stats seen{};  // totals already counted
  };
  mutable std::mutex mu_;
  absl::flat_hash_map<uint32_t, Mirrored> mirrored_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  // Slots of removed pairs and the harvest that retired them: read one last
  // time and freed a harvest later, when no program run can still hold the
  // pair it looked up before the removal.
  std::vector<std::pair<uint32_t, uint64_t>> retiring_;
  uint64_t harvests_ = 0;

  absl::flat_hash_set<SocketAddress> local_;  // harvest thread only
  relay::Counters counters_;                  // harvest thread writes
  std::atomic<uint64_t> mixed_{0}, full_{0}, map_errors_{0};
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_XDP_TIER_H_
