// libFuzzer harness: wire::Decoder::decode, the trust boundary of the networked drivers, on
// arbitrary bytes under the three Limits the drivers use (a coordinator before it knows d, a
// worker before its Welcome, and both during the run), for d = 13 and n = 5.
//
// What it checks beyond "no crash, no UB, only DecodeError": a message the Decoder accepts is
// one the Encoder can reproduce. Its re-encoding decodes to the same kind, and encoding that
// decode again gives the same bytes (a fixed point), so nothing the Decoder lets through is
// lost or altered on the way into the message structs.
//
// An accepted reply then goes where the coordinator sends it, ServerHalf::accept() and
// end_round() of a fresh round 0 under each compressor: the Decoder checks shapes against d,
// but only the compressor knows how many values a payload of its kind must carry.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_support.h"
#include "marina/methods/method.h"
#include "marina/wire/codec.h"

namespace {

using marina::fuzz::bug;
using namespace marina::wire;

constexpr uint64_t kDim = 13;
constexpr uint32_t kWorkers = 5;
constexpr const char* kHarness = "fuzz_decode";

std::vector<uint8_t> encode(MessageKind kind, const Inbox& in) {
  Encoder enc(in.session);
  std::span<const uint8_t> bytes;
  switch (kind) {
    case MessageKind::kJoin:
      bytes = enc.encode(in.join);
      break;
    case MessageKind::kWelcome:
      bytes = enc.encode(in.welcome);
      break;
    case MessageKind::kBroadcast:
      bytes = enc.encode(in.broadcast);
      break;
    case MessageKind::kReply:
      bytes = enc.encode(in.reply);
      break;
    case MessageKind::kResyncRequest:
      bytes = enc.encode(in.resync_request);
      break;
    case MessageKind::kResyncResponse:
      bytes = enc.encode(in.resync);
      break;
    case MessageKind::kHeartbeat:
      bytes = enc.encode(in.heartbeat);
      break;
    case MessageKind::kBye:
      bytes = enc.encode(in.bye);
      break;
  }
  return {bytes.begin(), bytes.end()};
}

// Only ProtocolError (a reply that does not fit) and Diverged (values that blow up x) may come
// out: both end in a rejected reply or a stopped run, never in a crashed coordinator.
void serve(const marina::methods::Reply& reply) {
  using namespace marina::methods;
  static const std::pair<Method, const char*> kServers[] = {
      {Method::kMarina, "identity"}, {Method::kDiana, "identity"}, {Method::kDiana, "randk:3"},
      {Method::kDiana, "permk"},     {Method::kDiana, "qsgd:4"},   {Method::kDiana, "natural"},
      {Method::kDiana, "topk:3"}};
  for (const auto& [method, compressor] : kServers) {
    MethodConfig config;
    config.method = method;
    config.compressor = compressor;
    config.workers = kWorkers;
    config.dim = kDim;
    config.gamma = 0.1;
    config.alpha = 0.1;
    const std::unique_ptr<ServerHalf> server = make_server(config);
    (void)server->begin_round();
    try {
      server->accept(reply);
      server->end_round();
    } catch (const ProtocolError&) {
    } catch (const Diverged&) {
    } catch (const std::exception& e) {
      bug(kHarness, std::string("the server took a decoded reply with ") + compressor +
                        " and threw: " + e.what());
    }
  }
}

void check(const Limits& limits, std::span<const uint8_t> bytes) {
  Decoder decoder(limits);
  Inbox in;
  MessageKind kind;
  try {
    kind = decoder.decode(bytes, in);
  } catch (const DecodeError&) {
    return;
  } catch (const std::exception& e) {
    bug(kHarness, std::string("decode threw something other than DecodeError: ") + e.what());
  }

  // A hostile message may point several fields at one vector; its re-encoding stores each copy,
  // so it can be larger than the input and than max_bytes. Only the size bound is lifted.
  Limits unbounded = limits;
  unbounded.max_bytes = max_message_bytes(UINT64_MAX, UINT64_MAX);
  Decoder again(unbounded);
  const std::vector<uint8_t> first = encode(kind, in);
  Inbox in2;
  MessageKind kind2;
  try {
    kind2 = again.decode(first, in2);
  } catch (const std::exception& e) {
    bug(kHarness, std::string("the re-encoding of an accepted ") + std::string(to_string(kind)) +
                      " is rejected: " + e.what());
  }
  if (kind2 != kind) {
    bug(kHarness, "re-encoded " + std::string(to_string(kind)) + " decodes as " +
                      std::string(to_string(kind2)));
  }
  if (in2.session != in.session) bug(kHarness, "session changed in the round trip");
  if (encode(kind2, in2) != first) {
    bug(kHarness,
        "encode(decode(encode(m))) differs from encode(m) for a " + std::string(to_string(kind)));
  }
  if (kind == MessageKind::kReply && limits.dim == kDim && limits.workers == kWorkers) {
    serve(in.reply);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  check(Limits{max_message_bytes(1, 1), 0, kWorkers}, bytes);  // coordinator, before d
  check(Limits{max_message_bytes(kDim, 1), kDim, 0}, bytes);   // worker, before its Welcome
  const Limits run{max_message_bytes(kDim, kWorkers), kDim, kWorkers};
  check(run, bytes);
  // ZeroMQ hands over buffers at any address; the Decoder copies misaligned ones first.
  std::vector<uint8_t> shifted(size + 1);
  if (size != 0) std::memcpy(shifted.data() + 1, data, size);
  check(run, std::span<const uint8_t>(shifted.data() + 1, size));
  return 0;
}
