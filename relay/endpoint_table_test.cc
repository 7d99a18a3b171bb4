// The endpoint table (endpoint_table.h) as tables: expiry by state and
// time, removal guarded by expiry, the session filter, state counts and
// the session listing's order and limit.
#include "relay/endpoint_table.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace peerrelay::relay {
namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kBindLifetime = 30 * kSec;
constexpr int64_t kSteady = 300 * kSec;

SocketAddress Addr(const char* s) { return SocketAddress::Parse(s).value(); }
disco::DiscoKey Key(uint8_t b) {
  disco::DiscoKey k;
  k.bytes.fill(b);
  return k;
}

// An endpoint allocated at t=100 s; `bound` sides last seen at `seen[i]`.
std::unique_ptr<Endpoint> Make(uint32_t vni, int bound,
                               std::array<int64_t, 2> seen = {0, 0}) {
  auto ep = std::make_unique<Endpoint>();
  ep->vni = vni;
  ep->lamport_id = vni;
  ep->allocated_at_ns = 100 * kSec;
  ep->sides[0].key = Key(uint8_t(2 * vni));
  ep->sides[1].key = Key(uint8_t(2 * vni + 1));
  for (int i = 0; i < bound; ++i) {
    ep->sides[i].bound = true;
    ep->sides[i].addr = i == 0 ? Addr("198.51.100.1:1000") : Addr("[2001:db8::2]:2000");
    ep->sides[i].stats.last_seen_ns.store(seen[i]);
  }
  return ep;
}

TEST(EndpointTable, ExpiryTable) {
  EndpointTable t(kBindLifetime, kSteady);
  struct Row {
    const char* name;
    int bound;
    std::array<int64_t, 2> seen;
    int64_t now;
    bool expired;
  } rows[] = {
      {"open, within the bind lifetime", 0, {}, 130 * kSec, false},
      {"open, just past it", 0, {}, 130 * kSec + 1, true},
      {"one side bound still counts as not bound", 1, {129 * kSec, 0}, 130 * kSec + 1, true},
      {"both bound, both recently seen", 2, {400 * kSec, 390 * kSec}, 600 * kSec, false},
      {"both bound long after the bind lifetime", 2, {1000 * kSec, 1000 * kSec}, 1200 * kSec, false},
      {"both bound, one side silent exactly the steady lifetime", 2, {300 * kSec, 500 * kSec}, 600 * kSec, false},
      {"both bound, one side silent longer", 2, {300 * kSec - 1, 590 * kSec}, 600 * kSec, true},
      {"both bound, the other side silent longer", 2, {590 * kSec, 300 * kSec - 1}, 600 * kSec, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto ep = Make(1, r.bound, r.seen);
    EXPECT_EQ(t.Expired(*ep, r.now), r.expired);
    // Remove guarded by expiry agrees; unguarded always removes.
    EndpointTable table(kBindLifetime, kSteady);
    table.Insert(Make(1, r.bound, r.seen));
    std::vector<uint32_t> collected;
    table.CollectExpired(1, r.now, &collected);
    EXPECT_EQ(collected.size(), r.expired ? 1u : 0u);
    EXPECT_EQ(table.Remove(1, r.now) != nullptr, r.expired);
    EXPECT_EQ(table.size(), r.expired ? 0u : 1u);
    EXPECT_EQ(table.Remove(1, std::nullopt) != nullptr, !r.expired);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.Remove(1, std::nullopt), nullptr);  // gone twice: nothing
  }
}

std::string WholeKeyHex() {
  std::string h;
  for (int i = 0; i < 32; ++i) h += "06";
  return h;
}

TEST(EndpointTable, SessionFilterTable) {
  auto ep = Make(3, 1, {5 * kSec, 0});  // keys 0x06.., 0x07..; side 0 bound
  struct Row {
    const char* name;
    SessionFilter f;
    bool matches;
  } rows[] = {
      {"no filter", {}, true},
      {"side 0's key prefix", {.key_hex_prefix = "0606"}, true},
      {"side 1's key prefix (unbound sides match by key)", {.key_hex_prefix = "07"}, true},
      {"a whole key", {.key_hex_prefix = WholeKeyHex()}, true},
      {"another key", {.key_hex_prefix = "08"}, false},
      {"the bound address and port", {.address = Addr("198.51.100.1:1000")}, true},
      {"the bound address, any port", {.address = Addr("198.51.100.1:0")}, true},
      {"the bound address, another port", {.address = Addr("198.51.100.1:1001")}, false},
      {"side 1's would-be address: not bound", {.address = Addr("[2001:db8::2]:2000")}, false},
      {"key and address both needed", {.key_hex_prefix = "07", .address = Addr("198.51.100.1:0")}, true},
      {"key matches, address does not", {.key_hex_prefix = "07", .address = Addr("198.51.100.9:0")}, false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.f.Matches(*ep), r.matches);
  }
}

TEST(EndpointTable, StatesAndListing) {
  EndpointTable t(kBindLifetime, kSteady);
  // VNIs spread over shards (kNumShards apart lands in the same shard).
  const uint32_t vnis[] = {EndpointTable::kNumShards + 5, 5, 9, 2 * EndpointTable::kNumShards + 5, 1};
  const int bound[] = {2, 0, 1, 2, 0};
  for (int i = 0; i < 5; ++i) t.Insert(Make(vnis[i], bound[i], {7, 7}));
  EXPECT_EQ(t.size(), 5u);
  const EndpointStates s = t.StateCounts();
  EXPECT_EQ(s.open, 2u);
  EXPECT_EQ(s.semi_bound, 1u);
  EXPECT_EQ(s.bound, 2u);
  EXPECT_EQ(t.bound_count(), 2u);

  // Lowest VNIs first, at most `limit`, `total` counting all that match.
  size_t total = 0;
  std::vector<SessionInfo> l = t.Sessions(3, &total);
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(total, 5u);
  EXPECT_EQ(l[0].vni, 1u);
  EXPECT_EQ(l[1].vni, 5u);
  EXPECT_EQ(l[2].vni, 9u);
  // What a listing copies out.
  l = t.Sessions(1, &total, {.address = Addr("198.51.100.1:0")});
  EXPECT_EQ(total, 3u);  // the three with side 0 bound
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].vni, 9u);
  EXPECT_TRUE(l[0].bound[0].has_value());
  EXPECT_FALSE(l[0].bound[1].has_value());
  EXPECT_EQ(l[0].last_seen_ns[0], 7);
  EXPECT_EQ(l[0].client_keys[0], Key(18));

  // WithShared / WithExclusive see the same endpoint; an absent VNI is null.
  EXPECT_TRUE(t.WithShared(5, [](const Endpoint* ep) { return ep != nullptr; }));
  EXPECT_FALSE(t.WithShared(6, [](const Endpoint* ep) { return ep != nullptr; }));
  t.WithExclusive(5, [](Endpoint* ep) { ep->sides[0].bound = true; });
  EXPECT_EQ(t.StateCounts().semi_bound, 2u);
}

}  // namespace
}  // namespace peerrelay::relay
