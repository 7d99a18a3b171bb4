#include "relay/challenge_mac.h"

#include <sodium.h>

namespace peerrelay::relay {

ChallengeMac::ChallengeMac(int64_t now_ns) : rotated_at_(now_ns) {
  if (sodium_init() < 0) __builtin_trap();  // cannot run without randomness
  randombytes_buf(current_.data(), current_.size());
}

void ChallengeMac::MaybeRotate(int64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  if (now_ns - rotated_at_ < kRotationInterval) return;
  previous_ = current_;
  has_previous_ = true;
  randombytes_buf(current_.data(), current_.size());
  rotated_at_ = now_ns;
}

disco::Challenge ChallengeMac::ComputeWith(const Secret& secret, uint32_t vni,
                                           uint32_t generation,
                                           const disco::DiscoKey& remote_key,
                                           const SocketAddress& client) {
  // vni (4) | generation (4) | remote key (32) | address (16) | port (2)
  uint8_t msg[4 + 4 + 32 + 16 + 2];
  for (int i = 0; i < 4; ++i) {
    msg[i] = static_cast<uint8_t>(vni >> (24 - 8 * i));
    msg[4 + i] = static_cast<uint8_t>(generation >> (24 - 8 * i));
  }
  std::copy(remote_key.bytes.begin(), remote_key.bytes.end(), msg + 8);
  std::copy(client.bytes().begin(), client.bytes().end(), msg + 40);
  msg[56] = static_cast<uint8_t>(client.port() >> 8);
  msg[57] = static_cast<uint8_t>(client.port());
  disco::Challenge out;
  crypto_generichash(out.data(), out.size(), msg, sizeof(msg), secret.data(),
                     secret.size());
  return out;
}

disco::Challenge ChallengeMac::Compute(uint32_t vni, uint32_t generation,
                                       const disco::DiscoKey& remote_key,
                                       const SocketAddress& client) const {
  Secret s;
  {
    std::lock_guard<std::mutex> l(mu_);
    s = current_;
  }
  return ComputeWith(s, vni, generation, remote_key, client);
}

bool ChallengeMac::Verify(const disco::Challenge& mac, uint32_t vni,
                          uint32_t generation,
                          const disco::DiscoKey& remote_key,
                          const SocketAddress& client) const {
  Secret cur, prev;
  bool has_prev;
  {
    std::lock_guard<std::mutex> l(mu_);
    cur = current_;
    prev = previous_;
    has_prev = has_previous_;
  }
  disco::Challenge want = ComputeWith(cur, vni, generation, remote_key, client);
  if (sodium_memcmp(want.data(), mac.data(), want.size()) == 0) return true;
  if (!has_prev) return false;
  want = ComputeWith(prev, vni, generation, remote_key, client);
  return sodium_memcmp(want.data(), mac.data(), want.size()) == 0;
}

}  // namespace peerrelay::relay
