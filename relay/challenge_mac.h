// ChallengeMac: the current dialect's server challenge.
//
// The challenge the server puts in BindUDPRelayEndpointChallenge is a keyed
// MAC over (VNI, generation, remote key, client source address and port), so
// the server keeps no per-Bind state and an Answer only verifies when it
// comes from the address the Challenge was sent to. Only the server ever
// checks it; keyed BLAKE2b-256 (libsodium crypto_generichash) serves.
//
// The secret rotates lazily: MaybeRotate(now) replaces it when at least
// kRotationInterval has passed since the last rotation (Tailscale rotates on
// the first control packet after 2 minutes). Challenges use the newest
// secret; answers verify against the newest and the previous one, so a
// handshake that straddles one rotation still completes and one that
// straddles two does not.
//
// Thread-safe.
#ifndef PEERRELAY_RELAY_CHALLENGE_MAC_H_
#define PEERRELAY_RELAY_CHALLENGE_MAC_H_

#include <array>
#include <cstdint>
#include <mutex>

#include "common/socket_address.h"
#include "disco/key.h"
#include "disco/message.h"

namespace peerrelay::relay {

class ChallengeMac {
 public:
  // 2 minutes, as Tailscale: long enough for any handshake's round trips.
  static constexpr int64_t kRotationInterval = 120'000'000'000;

  explicit ChallengeMac(int64_t now_ns);

  // Rotates when now_ns - last rotation >= kRotationInterval.
  void MaybeRotate(int64_t now_ns);

  disco::Challenge Compute(uint32_t vni, uint32_t generation,
                           const disco::DiscoKey& remote_key,
                           const SocketAddress& client) const;
  // Constant-time compare against the current and the previous secret.
  bool Verify(const disco::Challenge& mac, uint32_t vni, uint32_t generation,
              const disco::DiscoKey& remote_key,
              const SocketAddress& client) const;

 private:
  using Secret = std::array<uint8_t, 32>;
  static disco::Challenge ComputeWith(const Secret& secret, uint32_t vni,
                                      uint32_t generation,
                                      const disco::DiscoKey& remote_key,
                                      const SocketAddress& client);

  mutable std::mutex mu_;
  Secret current_;
  Secret previous_;
  bool has_previous_ = false;
  int64_t rotated_at_;
};

}  // namespace peerrelay::relay

#endif  // PEERRELAY_RELAY_CHALLENGE_MAC_H_
