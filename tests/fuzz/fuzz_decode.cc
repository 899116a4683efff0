// libFuzzer harness: wire::Decoder::decode, the trust boundary of the networked drivers, on
// arbitrary bytes under the three Limits the drivers use (a coordinator before it knows d, a
// worker before its Welcome, and both during the run), for d = 13 and n = 5.
//
// What it checks beyond "no crash, no UB, only DecodeError": a message the Decoder accepts is
// one the Encoder can reproduce. Its re-encoding decodes to the same kind, and encoding that
// decode again gives the same bytes (a fixed point), so nothing the Decoder lets through is
// lost or altered on the way into the message structs.
//
// Accepted messages then go where the drivers send them, to fresh method halves at round 0: a
// reply to ServerHalf::accept() and end_round() under each compressor (the Decoder checks
// shapes against d, but only the compressor knows how many values a payload of its kind must
// carry), a broadcast to WorkerHalf::on_broadcast(), a resync response to restore() followed by
// that round's broadcast. They may refuse it (ProtocolError) or stop the run (Diverged), no more.
//
// The same bytes also go through decode_taking, the drivers' decode, which must agree with
// decode() and hand over messages the halves take the same way.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_support.h"
#include "marina/data/dataset.h"
#include "marina/methods/method.h"
#include "marina/problem/objective.h"
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
// `recycle`: as the coordinator hands it over (accept_and_recycle takes a dense reply's buffer,
// here from a copy per server).
void serve(const marina::methods::Reply& reply, bool recycle = false) {
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
      if (recycle) {
        marina::methods::Reply own = reply;
        server->accept_and_recycle(own);
      } else {
        server->accept(reply);
      }
      server->end_round();
    } catch (const ProtocolError&) {
    } catch (const Diverged&) {
    } catch (const std::exception& e) {
      bug(kHarness, std::string("the server took a decoded reply with ") + compressor +
                        " and threw: " + e.what());
    }
  }
}

// A shard of d = 13 for the worker halves (heart_scale's first rows).
marina::problem::Objective& objective() {
  static marina::problem::Objective f = [] {
    std::istringstream rows(
        "+1 1:0.708333 2:1 3:1 4:-0.320755 5:-0.105023 6:-1 7:1 8:-0.419847 9:-1 12:1 13:-1\n"
        "-1 1:0.583333 2:-1 3:0.333333 4:-0.603774 5:1 6:-1 7:1 8:0.358779 9:-1 13:1\n"
        "+1 1:0.166667 2:1 3:-0.333333 4:-0.433962 5:-0.383562 6:-1 7:-1 8:0.0687023 13:1\n");
    return marina::problem::Objective(marina::data::parse_libsvm(rows, "shard"),
                                      marina::problem::Loss::kNonConvex, 0.0);
  }();
  return f;
}

void work(MessageKind kind, const Inbox& in) {
  using namespace marina::methods;
  static const std::pair<Method, const char*> kHalves[] = {{Method::kMarina, "randk:3"},
                                                           {Method::kVrMarina, "permk"},
                                                           {Method::kPpMarina, "natural"},
                                                           {Method::kDiana, "qsgd:4"}};
  for (const auto& [method, compressor] : kHalves) {
    MethodConfig config;
    config.method = method;
    config.compressor = compressor;
    config.workers = kWorkers;
    config.dim = kDim;
    config.gamma = 0.1;
    config.p = 0.5;
    config.alpha = 0.1;
    config.batch = 2;
    config.clients = 2;
    const std::unique_ptr<WorkerHalf> worker = make_worker(config, 1, objective());
    Reply reply;
    try {
      if (kind == MessageKind::kBroadcast) {
        (void)worker->on_broadcast(in.broadcast, reply);
      } else {
        worker->restore(in.resync);
        Broadcast next;
        next.round = in.resync.round;
        (void)worker->on_broadcast(next, reply);
      }
    } catch (const ProtocolError&) {
    } catch (const Diverged&) {
    } catch (const std::exception& e) {
      bug(kHarness, std::string("a worker took a decoded ") + std::string(to_string(kind)) +
                        " with " + compressor + " and threw: " + e.what());
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
  if (limits.dim == kDim && limits.workers == kWorkers) {
    if (kind == MessageKind::kReply) serve(in.reply);
    if (kind == MessageKind::kBroadcast || kind == MessageKind::kResyncResponse) work(kind, in);
  }
}

// The drivers decode with decode_taking into buffers of their own: it must accept exactly what
// decode() accepts, decode it to the same message, leave the bytes of a rejected one as they
// were, and hand the method halves something they take as they take decode()'s.
void check_taking(const Limits& limits, std::span<const uint8_t> bytes) {
  Decoder plain(limits), taking(limits);
  Inbox a, b;
  std::optional<MessageKind> kind_a, kind_b;
  try {
    kind_a = plain.decode(bytes, a);
  } catch (const DecodeError&) {
  }
  std::vector<uint8_t> owned(bytes.begin(), bytes.end());
  try {
    kind_b = taking.decode_taking(owned, b);
  } catch (const DecodeError&) {
    if (!std::equal(owned.begin(), owned.end(), bytes.begin(), bytes.end()))
      bug(kHarness, "decode_taking changed the bytes of a message it rejected");
  } catch (const std::exception& e) {
    bug(kHarness, std::string("decode_taking threw something other than DecodeError: ") + e.what());
  }
  if (kind_a.has_value() != kind_b.has_value())
    bug(kHarness, std::string("decode ") + (kind_a ? "accepts" : "rejects") +
                      " a message that decode_taking " + (kind_b ? "accepts" : "rejects"));
  if (!kind_a) return;
  if (*kind_a != *kind_b || encode(*kind_a, a) != encode(*kind_b, b))
    bug(kHarness,
        "decode_taking decodes a " + std::string(to_string(*kind_a)) + " differently from decode");
  if (*kind_b == MessageKind::kReply) serve(b.reply, /*recycle=*/true);
  if (*kind_b == MessageKind::kBroadcast) work(*kind_b, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  check(Limits{max_message_bytes(1, 1), 0, kWorkers}, bytes);  // coordinator, before d
  check(Limits{max_message_bytes(kDim, 1), kDim, 0}, bytes);   // worker, before its Welcome
  const Limits run{max_message_bytes(kDim, kWorkers), kDim, kWorkers};
  check(run, bytes);
  check_taking(run, bytes);
  // ZeroMQ hands over buffers at any address; the Decoder copies misaligned ones first.
  std::vector<uint8_t> shifted(size + 1);
  if (size != 0) std::memcpy(shifted.data() + 1, data, size);
  check(run, std::span<const uint8_t>(shifted.data() + 1, size));
  return 0;
}
