// Seed corpora for the fuzzers, from real messages: Geneve headers, sealed
// handshakes from the same deterministic keys the datagram fuzzer's server
// and clients use, every message type in both dialects.
//
//   make_corpus OUT_DIR   -> OUT_DIR/<fuzzer>/seed-N
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "disco/message.h"
#include "geneve/geneve.h"
#include "client/disco_client.h"

namespace {

using namespace peerrelay;
using client::Bytes;

void Write(const std::string& dir, int* n, const Bytes& b) {
  std::string path = dir + "/seed-" + std::to_string((*n)++);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::fprintf(stderr, "make_corpus: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
}

// One datagram_fuzzer record.
void Record(Bytes* out, uint8_t op, uint8_t arg, const Bytes& body) {
  out->push_back(op);
  out->push_back(arg);
  out->push_back(uint8_t(body.size()));
  out->push_back(uint8_t(body.size() >> 8));
  out->insert(out->end(), body.begin(), body.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus OUT_DIR\n");
    return 2;
  }
  const std::string root = argv[1];
  mkdir(root.c_str(), 0755);
  for (const char* f : {"geneve_fuzzer", "envelope_fuzzer", "message_fuzzer",
                        "datagram_fuzzer"}) {
    mkdir((root + "/" + f).c_str(), 0755);
  }
  int n = 0;
  for (auto h : {geneve::Header{.control = true, .protocol = geneve::kProtocolDisco, .vni = 1},
                 geneve::Header{.protocol = geneve::kProtocolWireGuard, .vni = 456}}) {
    Bytes b(8);
    geneve::Encode(h, b.data());
    Write(root + "/geneve_fuzzer", &n, b);
  }

  // The datagram fuzzer's keys (see datagram_fuzzer.cc).
  const disco::KeyPair server = disco::KeyPair::FromSecret({0x70});
  const disco::KeyPair ka = disco::KeyPair::FromSecret({0x80});
  const disco::KeyPair kb = disco::KeyPair::FromSecret({0x90});
  for (disco::Dialect d : {disco::Dialect::kSeed, disco::Dialect::kCurrent}) {
    client::DiscoClient a(d, server.public_key(),
                        SocketAddress::Parse("10.0.0.1:1000").value(), ka);
    a.SetEndpoint(1, kb.public_key());
    // Plaintexts of every type, for the message and envelope fuzzers.
    for (auto t : {disco::MessageType::kBind, disco::MessageType::kChallenge,
                   disco::MessageType::kAnswer}) {
      Bytes pt(disco::kMaxHandshakeSize);
      pt.resize(disco::MarshalHandshake(
          d, {.type = t, .vni = 1, .generation = 1, .remote_key = kb.public_key()},
          pt.data()));
      Write(root + "/message_fuzzer", &n, pt);
      Write(root + "/envelope_fuzzer", &n, pt);
      // A sealed message from A, and the plaintext sealed by the fuzzer.
      Bytes rec = {uint8_t(d == disco::Dialect::kCurrent)};
      Record(&rec, 0, 0, a.Seal({.type = t, .vni = 1, .generation = 1,
                                 .remote_key = kb.public_key()}, 1));
      Record(&rec, 2, 1, {});                 // end of batch, one slow item
      Record(&rec, 1, 0, pt);
      Record(&rec, 3, 0, Bytes(40, 0x11));
      Record(&rec, 4, 9, Bytes(40, 0x33));    // a GRO buffer of 4
      Record(&rec, 5, 0, Bytes(60, 0x44));    // a control header + bytes
      Record(&rec, 3, 2, Bytes(40, 0x22));    // data from a stranger
      Record(&rec, 2, 31, {});                // 7 slow items, 3 s later
      Write(root + "/datagram_fuzzer", &n, rec);
    }
    Bytes req(disco::kAllocateRequestSize);
    disco::MarshalAllocateRequest({.client_a = ka.public_key(),
                                   .client_b = kb.public_key(), .generation = 1},
                                  req.data());
    Write(root + "/message_fuzzer", &n, req);
    Write(root + "/message_fuzzer", &n,
          disco::MarshalAllocateResponse(
              {.generation = 1, .server = server.public_key(), .lamport_id = 1,
               .vni = 1, .addresses = {SocketAddress::Parse("1.2.3.4:5").value()}}));
    Write(root + "/datagram_fuzzer", &n,
          [&] {
            Bytes rec = {uint8_t(d == disco::Dialect::kCurrent)};
            Record(&rec, 0, 2, a.SealRaw(req, 0));
            return rec;
          }());
  }
  std::printf("wrote %d seeds under %s\n", n, root.c_str());
  return 0;
}
