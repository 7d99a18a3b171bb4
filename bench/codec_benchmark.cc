// Per-packet costs of the codecs: the Geneve decode every datagram pays, the
// envelope check every control datagram pays, and the seal / open the slow
// path pays per handshake message.
//
//   bazel run -c opt //bench:codec_benchmark
#include <benchmark/benchmark.h>

#include <array>
#include <vector>

#include "disco/box.h"
#include "disco/envelope.h"
#include "disco/key.h"
#include "disco/message.h"
#include "geneve/geneve.h"

namespace peerrelay {
namespace {

void BM_GeneveDecode(benchmark::State& state) {
  std::array<uint8_t, 1400> pkt{};
  geneve::Encode({.protocol = geneve::kProtocolWireGuard, .vni = 456},
                       pkt.data());
  geneve::Header h;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pkt.data());
    bool ok = geneve::Decode(pkt.data(), pkt.size(), &h);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GeneveDecode);

struct Keys {
  disco::KeyPair server = disco::KeyPair::Generate();
  disco::KeyPair client = disco::KeyPair::Generate();
  disco::SharedKey shared =
      disco::SharedKey::Compute(client.public_key(), server).value();
};

void BM_EnvelopePeek(benchmark::State& state) {
  Keys k;
  uint8_t pt[disco::kMaxHandshakeSize] = {4};
  std::vector<uint8_t> buf(disco::kEnvelopeOverhead + sizeof(pt));
  disco::SealEnvelope(k.client.public_key(), k.shared, pt, sizeof(pt),
                      buf.data());
  disco::EnvelopeView env;
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf.data());
    bool ok = disco::PeekEnvelope(buf.data(), buf.size(), &env);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(env);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EnvelopePeek);

// Seal of a current-dialect handshake message (74-byte plaintext).
void BM_Seal(benchmark::State& state) {
  Keys k;
  uint8_t pt[disco::kMaxHandshakeSize] = {5};
  uint8_t out[disco::kMaxHandshakeSize + disco::kBoxOverhead];
  for (auto _ : state) {
    size_t n = disco::Seal(k.shared, pt, sizeof(pt), out);
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Seal);

void BM_Open(benchmark::State& state) {
  Keys k;
  uint8_t pt[disco::kMaxHandshakeSize] = {6};
  uint8_t sealed[disco::kMaxHandshakeSize + disco::kBoxOverhead];
  size_t n = disco::Seal(k.shared, pt, sizeof(pt), sealed);
  uint8_t out[disco::kMaxHandshakeSize];
  for (auto _ : state) {
    bool ok = disco::Open(k.shared, sealed, n, out);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Open);

// What a never-seen peer costs: the Curve25519 scalar multiplication. The
// relay caches shared keys per endpoint side so that this is paid once.
void BM_SharedKeyCompute(benchmark::State& state) {
  Keys k;
  for (auto _ : state) {
    auto s = disco::SharedKey::Compute(k.client.public_key(), k.server);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedKeyCompute);

}  // namespace
}  // namespace peerrelay
