#include "tests/relay_harness.h"

#include <chrono>
#include <thread>

#include "common/clock.h"

namespace peerrelay::testing {

absl::StatusOr<std::unique_ptr<RelayHarness>> RelayHarness::Start(
    const SocketAddress& loopback, relay::ServerConfig config,
    engine::RelayOptions options) {
  auto h = std::make_unique<RelayHarness>();
  h->loopback_ = loopback;
  config.addresses = {loopback};
  auto server = relay::Server::Create(std::move(config),
                                      MonotonicNowNs());
  if (!server.ok()) return server.status();
  h->server_ = std::move(*server);
  options.bind = loopback;
  auto r = engine::Relay::Start(h->server_.get(), options);
  if (!r.ok()) return r.status();
  h->relay_ = std::move(*r);
  h->relay_addr_ = loopback;
  h->relay_addr_.set_port(h->relay_->port());
  h->server_->SetAddresses({h->relay_addr_});
  return h;
}

Client RelayHarness::NewClient() {
  Client c{UdpSocket::Open(loopback_).value(), nullptr};
  c.disco = std::make_unique<client::DiscoClient>(
      dialect(), server_->server_key(), c.sock.local());
  return c;
}

void RelayHarness::AllocatePair(Client& a, Client& b) {
  relay::EndpointInfo ep =
      server_->Allocate(a.disco->key(), b.disco->key(), MonotonicNowNs())
          .value();
  a.disco->SetEndpoint(ep.vni, b.disco->key());
  b.disco->SetEndpoint(ep.vni, a.disco->key());
}

bool RelayHarness::WaitFor(const std::function<bool()>& pred) {
  for (int i = 0; i < kTimeoutMs / 5; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

bool RelayHarness::Handshake(Client& c, uint32_t generation) {
  if (!c.sock.SendTo(c.disco->Bind(generation), relay_addr_)) return false;
  auto got = c.sock.Recv(kTimeoutMs);
  if (!got || got->second != relay_addr_) return false;
  auto ch = c.disco->OpenChallenge(got->first);
  if (!ch) return false;
  const uint64_t done = relay_->Counters().handshakes_completed;
  if (!c.sock.SendTo(c.disco->Answer(*ch), relay_addr_)) return false;
  return WaitFor(
      [&] { return relay_->Counters().handshakes_completed > done; });
}

bool RelayHarness::BindPair(Client& a, Client& b) {
  AllocatePair(a, b);
  return Handshake(a) && Handshake(b);
}

bool RelayHarness::WaitDropped(relay::DropReason r, uint64_t at_least) {
  return WaitFor([&] { return relay_->Counters().Dropped(r) >= at_least; });
}

}  // namespace peerrelay::testing
