// Disco message codecs for the messages the relay handles, in both protocol
// dialects (docs/protocol.md).
//
// Plaintext layout: type (1) | version (1) | body. Version is written as 0;
// the Bind/Challenge/Answer parsers ignore it. Bytes after what a type needs
// are ignored.
//
// Handshake bodies (Bind 0x04, Challenge 0x05, Answer 0x06):
//   seed:    Bind 32 zero bytes (any length accepted, even none);
//            Challenge / Answer: 32-byte challenge (at least 32 needed).
//   current: 72 bytes, the same for all three:
//     0  4  VNI (BE)        4  4  generation (BE)
//     8 32  remote key     40 32  challenge (padding in Bind)
//
// AllocateRequest 0x08:  key A (32) | key B (32) | generation (4, BE)
// AllocateResponse 0x09: generation (4) | server key | key A | key B |
//   Lamport ID (8) | VNI (4) | bind lifetime ns (8) | steady lifetime ns (8)
//   | 18 bytes per address (16-byte IPv6 / IPv4-mapped + port BE), >= 1.
//
// Every parser is bounds-checked and returns a ParseError naming why it
// refused; none allocates except ParseAllocateResponse (address list).
#ifndef PEERRELAY_DISCO_MESSAGE_H_
#define PEERRELAY_DISCO_MESSAGE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/socket_address.h"
#include "disco/key.h"

namespace peerrelay::disco {

enum class Dialect : uint8_t { kSeed, kCurrent };
absl::string_view DialectName(Dialect d);
bool ParseDialect(absl::string_view text, Dialect* out);

enum class MessageType : uint8_t {
  kBind = 0x04,
  kChallenge = 0x05,
  kAnswer = 0x06,
  kAllocateRequest = 0x08,
  kAllocateResponse = 0x09,
};

enum class ParseError : uint8_t {
  kOk = 0,
  kNoHeader,         // fewer than 2 bytes: no type and version
  kWrongType,        // a type this parser does not decode
  kBadVersion,       // allocate messages: version other than 0
  kBodyTooShort,     // fewer body bytes than the type needs
  kBadAddressList,   // allocate response: no address, or a partial entry
};
absl::string_view ParseErrorName(ParseError e);

inline constexpr size_t kMessageHeaderSize = 2;
inline constexpr size_t kSeedHandshakeBodySize = 32;
inline constexpr size_t kCurrentHandshakeBodySize = 72;
// Largest handshake plaintext either dialect writes.
inline constexpr size_t kMaxHandshakeSize =
    kMessageHeaderSize + kCurrentHandshakeBodySize;
inline constexpr size_t kAllocateRequestSize = kMessageHeaderSize + 68;
inline constexpr size_t kAllocateResponseFixedSize =
    kMessageHeaderSize + 4 + 3 * kKeySize + 8 + 4 + 8 + 8;
inline constexpr size_t kAddressEntrySize = 18;
// Allocation over UDP (the appliance's extension; README "Allocation over
// UDP"). VNI 0 is never allocated: a control datagram for VNI 0 on the relay
// port is an AllocateUDPRelayEndpointRequest.
inline constexpr uint32_t kAllocateVni = 0;
// Addresses an allocate response carries at most (keeps replies bounded).
inline constexpr size_t kMaxResponseAddresses = 8;
// An allocate request must be at least as large as its reply: clients pad
// its plaintext to this size, the reply with the most addresses.
inline constexpr size_t kAllocateRequestPaddedSize =
    kAllocateResponseFixedSize + kMaxResponseAddresses * kAddressEntrySize;

using Challenge = std::array<uint8_t, 32>;

// Bind, Challenge or Answer. In the seed dialect only `challenge` is on the
// wire (and not for Bind); the other fields are zero after parsing.
struct HandshakeMessage {
  MessageType type = MessageType::kBind;
  uint32_t vni = 0;
  uint32_t generation = 0;
  DiscoKey remote_key;
  Challenge challenge{};

  friend bool operator==(const HandshakeMessage&,
                         const HandshakeMessage&) = default;
};

// Reads the type byte without checking anything else. False when empty.
bool PeekType(const uint8_t* p, size_t len, uint8_t* type);

ParseError ParseHandshake(Dialect dialect, const uint8_t* p, size_t len,
                          HandshakeMessage* out);
// Writes the message to `out` (kMaxHandshakeSize bytes suffice) and returns
// its length: 34 in the seed dialect (a seed Bind carries 32 zero bytes of
// padding), 74 in the current one.
size_t MarshalHandshake(Dialect dialect, const HandshakeMessage& m,
                        uint8_t* out);

struct AllocateRequest {
  DiscoKey client_a;
  DiscoKey client_b;
  uint32_t generation = 0;

  friend bool operator==(const AllocateRequest&,
                         const AllocateRequest&) = default;
};

ParseError ParseAllocateRequest(const uint8_t* p, size_t len,
                                AllocateRequest* out);
// Writes kAllocateRequestSize bytes.
size_t MarshalAllocateRequest(const AllocateRequest& m, uint8_t* out);

struct AllocateResponse {
  uint32_t generation = 0;
  DiscoKey server;
  DiscoKey client_a;
  DiscoKey client_b;
  uint64_t lamport_id = 0;
  uint32_t vni = 0;
  uint64_t bind_lifetime_ns = 0;
  uint64_t steady_state_lifetime_ns = 0;
  std::vector<SocketAddress> addresses;

  friend bool operator==(const AllocateResponse&,
                         const AllocateResponse&) = default;
};

ParseError ParseAllocateResponse(const uint8_t* p, size_t len,
                                 AllocateResponse* out);
std::vector<uint8_t> MarshalAllocateResponse(const AllocateResponse& m);

}  // namespace peerrelay::disco

#endif  // PEERRELAY_DISCO_MESSAGE_H_
