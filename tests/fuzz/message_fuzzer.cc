// Every disco message parser, both dialects: bounds-checked, and whatever
// parses marshals back to something that parses to the same message.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "disco/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace peerrelay::disco;
  // Copy so the parsers see exactly `size` bytes on the heap (ASan).
  std::vector<uint8_t> in(data, data + size);
  for (Dialect d : {Dialect::kSeed, Dialect::kCurrent}) {
    HandshakeMessage m;
    if (ParseHandshake(d, in.data(), in.size(), &m) == ParseError::kOk) {
      uint8_t out[kMaxHandshakeSize];
      size_t n = MarshalHandshake(d, m, out);
      HandshakeMessage back;
      if (ParseHandshake(d, out, n, &back) != ParseError::kOk) __builtin_trap();
      if (d == Dialect::kCurrent && !(back == m)) __builtin_trap();
      if (back.type != m.type) __builtin_trap();
      if (m.type != MessageType::kBind && back.challenge != m.challenge) {
        __builtin_trap();
      }
    }
  }
  AllocateRequest req;
  if (ParseAllocateRequest(in.data(), in.size(), &req) == ParseError::kOk) {
    uint8_t out[kAllocateRequestSize];
    MarshalAllocateRequest(req, out);
    AllocateRequest back;
    if (ParseAllocateRequest(out, sizeof(out), &back) != ParseError::kOk ||
        !(back == req)) {
      __builtin_trap();
    }
  }
  AllocateResponse resp;
  if (ParseAllocateResponse(in.data(), in.size(), &resp) == ParseError::kOk) {
    if (resp.addresses.empty()) __builtin_trap();
    std::vector<uint8_t> out = MarshalAllocateResponse(resp);
    if (out.size() != in.size()) __builtin_trap();
    AllocateResponse back;
    if (ParseAllocateResponse(out.data(), out.size(), &back) !=
            ParseError::kOk ||
        !(back == resp)) {
      __builtin_trap();
    }
  }
  return 0;
}
