#ifndef PEERRELAY_ENGINE_FAKE_WRITER_TESTING_H_
#define PEERRELAY_ENGINE_FAKE_WRITER_TESTING_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/socket_address.h"
#include "engine/datagram.h"
#include "engine/packet_writer.h"
#include "relay/counters.h"

namespace peerrelay::engine {

// FakeWriter: a PacketWriter for tests and fuzzers that records every
// send. It sends synchronously (no sender: InFlight() is 0), so, as the
// contract in packet_writer.h says, Add/AddRun keep pointers only until
// Flush, and the fake copies the bytes there.
class FakeWriter : public PacketWriter {
 public:
  struct Sent {
    std::vector<uint8_t> bytes;
    SocketAddress dest;
    bool now;  // SendNow rather than a batched send
  };
  void Add(const uint8_t* p, size_t len, const SocketAddress& dest,
           relay::Counters*) override {
    queued_.push_back({p, len, dest});
  }
  void AddRun(const uint8_t* p, size_t seg, size_t total,
              const SocketAddress& dest, relay::Counters* c) override {
    ++runs;
    for (size_t off = 0; off < total; off += seg) {
      Add(p + off, std::min(seg, total - off), dest, c);
    }
  }
  void Flush(relay::Counters*) override {
    for (const Queued& q : queued_) {
      sent.push_back({std::vector<uint8_t>(q.p, q.p + q.len), q.dest, false});
    }
    queued_.clear();
    ++flushes;
  }
  bool SendNow(const uint8_t* p, size_t len, const SocketAddress& dest,
               const LocalAddress&) override {
    sent.push_back({std::vector<uint8_t>(p, p + len), dest, true});
    return true;
  }
  size_t queued() const { return queued_.size(); }

  std::vector<Sent> sent;
  int runs = 0;
  int flushes = 0;

 private:
  struct Queued {
    const uint8_t* p;
    size_t len;
    SocketAddress dest;
  };
  std::vector<Queued> queued_;
};

}  // namespace peerrelay::engine

#endif  // PEERRELAY_ENGINE_FAKE_WRITER_TESTING_H_
