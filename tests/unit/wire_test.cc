// Tests of the wire codec: exact round trips, misaligned input, Inbox reuse, rejection of
// hostile bytes, the bytes of reference messages, and the size budget of a seeded RandK reply.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "marina/util/increasing.h"
#include "marina/util/random.h"
#include "marina/wire/codec.h"
#include "marina_generated.h"

using marina::compress::Payload;
using marina::compress::PayloadKind;
using marina::methods::BatchSampling;
using marina::methods::Broadcast;
using marina::methods::Method;
using marina::methods::MethodConfig;
using marina::methods::Reply;
using marina::methods::Snapshot;
using marina::methods::UpdateKind;
using namespace marina::wire;
namespace fb = marina::wire::fb;

namespace {

constexpr uint64_t kSession = 0x5EED'0000'0000'0042ULL;

using Bytes = std::vector<uint8_t>;

// encode() returns a view into the Encoder; the tests keep copies.
Bytes copy(std::span<const uint8_t> s) {
  return {s.begin(), s.end()};
}

template <typename T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <typename T>
bool bit_equal(std::span<const T> a, std::span<const T> b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool bit_equal(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

bool bit_equal(const std::optional<double>& a, const std::optional<double>& b) {
  return a.has_value() == b.has_value() && (!a || bit_equal(*a, *b));
}

bool same(const Payload& a, const Payload& b) {
  return a.kind == b.kind && a.dim == b.dim && bit_equal(a.dense_values(), b.dense_values()) &&
         bit_equal(a.value_view(), b.value_view()) &&
         std::ranges::equal(a.index_view(), b.index_view()) &&
         std::ranges::equal(a.level_view(), b.level_view()) && bit_equal(a.norm, b.norm) &&
         a.levels_s == b.levels_s;
}

bool same(const Reply& a, const Reply& b) {
  return a.worker == b.worker && a.round == b.round && same(a.payload, b.payload) &&
         bit_equal(a.local_loss, b.local_loss) && a.oracle_calls == b.oracle_calls;
}

bool same(const Broadcast& a, const Broadcast& b) {
  return a.round == b.round && a.full_sync == b.full_sync && a.round_seed == b.round_seed &&
         a.participants == b.participants && a.update.kind == b.update.kind &&
         bit_equal(a.update.dense_values(), b.update.dense_values()) &&
         std::ranges::equal(a.update.delta_indices(), b.update.delta_indices()) &&
         bit_equal(a.update.delta_values(), b.update.delta_values()) && a.dropped == b.dropped;
}

bool same(const Snapshot& a, const Snapshot& b) {
  return a.round == b.round && bit_equal(a.x, b.x) && bit_equal(a.aux, b.aux) &&
         bit_equal(a.x_prev, b.x_prev) && bit_equal(a.worker_aux, b.worker_aux);
}

bool same(const Welcome& a, const Welcome& b) {
  const MethodConfig& x = a.config;
  const MethodConfig& y = b.config;
  return a.worker_id == b.worker_id && x.method == y.method && x.compressor == y.compressor &&
         x.workers == y.workers && x.dim == y.dim && x.seed == y.seed &&
         bit_equal(x.gamma, y.gamma) && bit_equal(x.p, y.p) && bit_equal(x.alpha, y.alpha) &&
         x.batch == y.batch && x.online_batch == y.online_batch && x.clients == y.clients &&
         bit_equal(x.init_scale, y.init_scale) && x.batch_sampling == y.batch_sampling;
}

// Doubles that a lossy encoding would get wrong: signed zero, denormals, extremes.
std::vector<double> awkward_doubles(std::size_t n) {
  const double specials[] = {-0.0,
                             0.0,
                             std::numeric_limits<double>::denorm_min(),
                             -std::numeric_limits<double>::denorm_min(),
                             2.5e-310,
                             std::numeric_limits<double>::min(),
                             std::numeric_limits<double>::max(),
                             -std::numeric_limits<double>::max(),
                             1.0 / 3.0,
                             -3.141592653589793};
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = specials[i % std::size(specials)] * (1 + i / 10);
  return v;
}

std::vector<float> awkward_floats(std::size_t n) {
  const float specials[] = {-0.0f,
                            0.0f,
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::max(),
                            -1.0f / 3.0f};
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = specials[i % std::size(specials)];
  return v;
}

constexpr uint32_t kDim = 13;

Payload dense64_payload() {
  Payload p;
  p.kind = PayloadKind::kDense64;
  p.dim = kDim;
  p.dense = awkward_doubles(kDim);
  return p;
}

Payload dense32_payload() {
  Payload p;
  p.kind = PayloadKind::kDense32;
  p.dim = kDim;
  p.values = awkward_floats(kDim);
  return p;
}

Payload sparse_payload() {
  Payload p;
  p.kind = PayloadKind::kSparse;
  p.dim = kDim;
  p.indices = {0, 4, 5, 12};
  p.values = awkward_floats(4);
  return p;
}

Payload seeded_payload(std::size_t k, uint32_t dim = kDim) {
  Payload p;
  p.kind = PayloadKind::kSeeded;
  p.dim = dim;
  p.values.resize(k);
  for (std::size_t i = 0; i < k; ++i) p.values[i] = 0.25f * static_cast<float>(i) - 7.5f;
  return p;
}

Payload quantized_payload() {
  Payload p;
  p.kind = PayloadKind::kQuantized;
  p.dim = kDim;
  p.indices = {1, 2, 7, 11};
  p.levels = {-4, 1, 4, -1};
  p.norm = 12.375;
  p.levels_s = 4;
  return p;
}

std::vector<Payload> all_payloads() {
  return {dense64_payload(), dense32_payload(), sparse_payload(), seeded_payload(3),
          quantized_payload()};
}

Reply reply_with(Payload p) {
  Reply r;
  r.worker = 2;
  r.round = 1'000'003;
  r.payload = std::move(p);
  r.local_loss = 0.6931471805599453;
  r.oracle_calls = 108;
  return r;
}

Broadcast dense_broadcast() {
  Broadcast b;
  b.round = 7;
  b.full_sync = true;
  b.round_seed = 0xDEAD'BEEF'1234'5678ULL;
  b.participants = {0, 1, 1, 3};
  b.update.kind = UpdateKind::kDense;
  b.update.dense = awkward_doubles(kDim);
  return b;
}

Broadcast delta_broadcast(std::size_t entries = 4) {
  Broadcast b;
  b.round = 8;
  b.round_seed = 99;
  b.update.kind = UpdateKind::kDelta;
  for (std::size_t i = 0; i < entries; ++i) b.update.indices.push_back(static_cast<uint32_t>(i));
  const auto values = awkward_doubles(entries);
  b.update.values.assign(values.begin(), values.end());
  b.dropped = {0, 3};
  return b;
}

Welcome welcome() {
  Welcome w;
  w.worker_id = 3;
  w.config.method = Method::kPpMarina;
  w.config.compressor = "randk:5";
  w.config.workers = 5;
  w.config.dim = kDim;
  w.config.seed = 0xFFFF'FFFF'FFFF'FFFFULL;
  w.config.gamma = 0.123456789;
  w.config.p = 5.0 / 13.0;
  w.config.alpha = std::numeric_limits<double>::denorm_min();
  w.config.batch = 16;
  w.config.online_batch = 64;
  w.config.clients = 2;
  w.config.init_scale = 1e-3;
  w.config.batch_sampling = BatchSampling::kWithoutReplacement;
  return w;
}

Snapshot snapshot() {
  Snapshot s;
  s.round = 41;
  s.x = awkward_doubles(kDim);
  s.aux = awkward_doubles(kDim);
  s.aux[0] = 1.5;
  s.x_prev = awkward_doubles(kDim);
  s.x_prev[2] = -7.25;
  s.worker_aux = awkward_doubles(kDim);
  s.worker_aux[1] = 0.5;
  return s;
}

// One valid message of every kind, for the hostile-input loops.
std::vector<Bytes> sample_messages() {
  Encoder enc(kSession);
  std::vector<Bytes> out;
  out.push_back(copy(
      enc.encode(Join{1, 54, kDim, 0x3, "aarch64", {2.5, 3.0, 4.0}, "linear loss=nonconvex", 5})));
  out.push_back(copy(enc.encode(welcome())));
  out.push_back(copy(enc.encode(dense_broadcast())));
  out.push_back(copy(enc.encode(delta_broadcast())));
  for (Payload& p : all_payloads()) out.push_back(copy(enc.encode(reply_with(std::move(p)))));
  out.push_back(copy(enc.encode(ResyncRequest{4, 10, 12})));
  out.push_back(copy(enc.encode(snapshot())));
  out.push_back(copy(enc.encode(Heartbeat{kCoordinatorId, 12})));
  out.push_back(copy(enc.encode(Bye{2, "battery low"})));
  return out;
}

Limits run_limits() {
  return Limits{max_message_bytes(kDim, 16), kDim, 5};
}

// A decode that succeeded must have produced a message that survives another round trip.
void check_reencodes(MessageKind kind, const Inbox& in, Decoder& decoder) {
  Encoder enc(in.session);
  Inbox again;
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
  CHECK(decoder.decode(bytes, again) == kind);
}

// Feeds hostile bytes; they may decode (a flip can land in padding) but must never crash.
// Returns whether they decoded.
bool survives(Decoder& decoder, std::span<const uint8_t> bytes) {
  Inbox in;
  try {
    const MessageKind kind = decoder.decode(bytes, in);
    check_reencodes(kind, in, decoder);
    return true;
  } catch (const DecodeError&) {
    return false;
  }
}

// The Encoder never validates, so hostile contents can be produced with it directly.
std::string reject_reason(std::span<const uint8_t> bytes, Limits limits = run_limits()) {
  Decoder decoder(limits);
  Inbox in;
  try {
    (void)decoder.decode(bytes, in);
  } catch (const DecodeError& e) {
    return e.what();
  }
  return "";
}

// An envelope built by hand, to get what the Encoder never produces.
Bytes raw_envelope(uint16_t version, fb::Body type, bool with_body) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto body = fb::CreateHeartbeat(fbb, 1, 2);
  const auto env = fb::CreateEnvelope(fbb, version, kSession, type,
                                      with_body ? body.Union() : flatbuffers::Offset<void>());
  fb::FinishEnvelopeBuffer(fbb, env);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// A message whose doubles `v` sit at 4 mod 8 from its start: the Verifier checks the alignment
// of a vector's length, not of its elements, so a sender can do this. `finish` builds the rest
// of the message around the vector and finishes the buffer.
template <class Finish>
Bytes with_misplaced_doubles(std::span<const double> v, Finish finish) {
  for (const bool pad : {false, true}) {
    flatbuffers::FlatBufferBuilder fbb;
    if (pad) fbb.PushElement<uint32_t>(0);
    // Built back to front, as 2d words of 4-byte alignment under a length of d.
    fbb.StartVector(2 * v.size(), sizeof(uint32_t));
    for (std::size_t i = v.size(); i-- > 0;) {
      uint32_t w[2];
      std::memcpy(w, &v[i], sizeof w);
      fbb.PushElement(w[1]);
      fbb.PushElement(w[0]);
    }
    const std::size_t data_from_end = fbb.GetSize();
    finish(fbb, flatbuffers::Offset<flatbuffers::Vector<double>>(fbb.EndVector(v.size())));
    // The finished buffer's size is a multiple of 8, so "from the end" and "from the start"
    // agree modulo 8.
    if (fbb.GetSize() % 8 == 0 && data_from_end % 8 == 4)
      return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
  }
  FAIL("could not misplace the doubles");
  return {};
}

Bytes misplaced_dense_reply(const Reply& r) {
  return with_misplaced_doubles(r.payload.dense, [&](auto& fbb, auto dense) {
    const auto body = fb::CreateReply(fbb, r.worker, r.round, r.oracle_calls, r.payload.dim, 0,
                                      fb::PayloadKind::Dense64, 0, r.local_loss, dense);
    fb::FinishEnvelopeBuffer(
        fbb, fb::CreateEnvelope(fbb, kProtocolVersion, kSession, fb::Body::Reply, body.Union()));
  });
}

Bytes misplaced_delta_broadcast(const Broadcast& b) {
  return with_misplaced_doubles(b.update.values, [&](auto& fbb, auto values) {
    const auto indices = fbb.CreateVector(b.update.indices.data(), b.update.indices.size());
    const auto dropped = fbb.CreateVector(b.dropped);
    const auto body = fb::CreateBroadcast(fbb, b.round, b.full_sync, b.round_seed, 0,
                                          fb::UpdateKind::Delta, indices, values, 0, dropped);
    fb::FinishEnvelopeBuffer(fbb, fb::CreateEnvelope(fbb, kProtocolVersion, kSession,
                                                     fb::Body::Broadcast, body.Union()));
  });
}

}  // namespace

TEST_CASE("wire: every message kind round-trips exactly") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  Inbox in;

  const Join join{4, 54, kDim, 0xA5A5A5A5u, "armv7l", {1.25, 7.5, 3.0}, "mlp 64-32-10", 12345u};
  CHECK(dec.decode(enc.encode(join), in) == MessageKind::kJoin);
  CHECK(in.join == join);
  CHECK(in.session == kSession);

  CHECK(dec.decode(enc.encode(welcome()), in) == MessageKind::kWelcome);
  CHECK(same(in.welcome, welcome()));

  // Defaults of MethodConfig are omitted on the wire and must come back as the same defaults.
  Welcome plain;
  plain.config.dim = kDim;
  CHECK(dec.decode(enc.encode(plain), in) == MessageKind::kWelcome);
  CHECK(same(in.welcome, plain));

  for (const Broadcast& b : {dense_broadcast(), delta_broadcast(), Broadcast{}}) {
    CHECK(dec.decode(enc.encode(b), in) == MessageKind::kBroadcast);
    CHECK(same(in.broadcast, b));
  }

  CHECK(dec.decode(enc.encode(ResyncRequest{4, 10, 12}), in) == MessageKind::kResyncRequest);
  CHECK(in.resync_request == ResyncRequest{4, 10, 12});

  CHECK(dec.decode(enc.encode(snapshot()), in) == MessageKind::kResyncResponse);
  CHECK(same(in.resync, snapshot()));

  CHECK(dec.decode(enc.encode(Heartbeat{1, UINT64_MAX}), in) == MessageKind::kHeartbeat);
  CHECK(in.heartbeat == Heartbeat{1, UINT64_MAX});

  CHECK(dec.decode(enc.encode(Bye{kCoordinatorId, "coordinator shutting down"}), in) ==
        MessageKind::kBye);
  CHECK(in.bye == Bye{kCoordinatorId, "coordinator shutting down"});

  enc.set_session(7);
  CHECK(dec.decode(enc.encode(Bye{0, ""}), in) == MessageKind::kBye);
  CHECK(in.bye == Bye{0, ""});
  CHECK(in.session == 7);
}

TEST_CASE("wire: every payload kind round-trips exactly") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  Inbox in;
  for (Payload& p : all_payloads()) {
    Reply r = reply_with(std::move(p));
    CAPTURE(static_cast<int>(r.payload.kind));
    CHECK(dec.decode(enc.encode(r), in) == MessageKind::kReply);
    CHECK(same(in.reply, r));
    CHECK(in.reply.payload.finite);  // the Decoder checked every value

    // Presence of the local loss survives, including a present -0.0 and an absent value.
    for (const std::optional<double> loss :
         {std::optional<double>(), std::optional<double>(-0.0), std::optional<double>(0.0)}) {
      r.local_loss = loss;
      REQUIRE(dec.decode(enc.encode(r), in) == MessageKind::kReply);
      CHECK(same(in.reply, r));
    }
  }
}

TEST_CASE("wire: default-constructed messages round-trip (encoder and schema defaults agree)") {
  // The Encoder leaves out every field equal to its schema default; if the two disagreed, the
  // decoded value would differ here.
  Encoder enc(0);
  Decoder dec(Limits{});
  Inbox in;
  CHECK(dec.decode(enc.encode(Join{}), in) == MessageKind::kJoin);
  CHECK(in.join == Join{});
  CHECK(in.session == 0);
  Welcome w;
  w.config.compressor = "identity";
  CHECK(dec.decode(enc.encode(w), in) == MessageKind::kWelcome);
  CHECK(same(in.welcome, w));
  CHECK(dec.decode(enc.encode(Broadcast{}), in) == MessageKind::kBroadcast);
  CHECK(same(in.broadcast, Broadcast{}));
  CHECK(dec.decode(enc.encode(Reply{}), in) == MessageKind::kReply);
  CHECK(same(in.reply, Reply{}));
  for (const PayloadKind kind :
       {PayloadKind::kDense64, PayloadKind::kDense32, PayloadKind::kSparse, PayloadKind::kSeeded}) {
    Reply r;
    r.payload.kind = kind;
    CHECK(dec.decode(enc.encode(r), in) == MessageKind::kReply);
    CHECK(same(in.reply, r));
  }
  CHECK(dec.decode(enc.encode(ResyncRequest{}), in) == MessageKind::kResyncRequest);
  CHECK(in.resync_request == ResyncRequest{});
  CHECK(dec.decode(enc.encode(Snapshot{}), in) == MessageKind::kResyncResponse);
  CHECK(same(in.resync, Snapshot{}));
  CHECK(dec.decode(enc.encode(Heartbeat{}), in) == MessageKind::kHeartbeat);
  CHECK(in.heartbeat == Heartbeat{});
  CHECK(dec.decode(enc.encode(Bye{}), in) == MessageKind::kBye);
  CHECK(in.bye == Bye{});

  // Scalars are compared with their defaults bit by bit, so a -0.0 scalar survives too.
  w.config.gamma = -0.0;
  w.config.alpha = -0.0;
  w.config.p = std::numeric_limits<double>::denorm_min();
  CHECK(dec.decode(enc.encode(w), in) == MessageKind::kWelcome);
  CHECK(same(in.welcome, w));
  Reply q = reply_with(quantized_payload());
  q.payload.norm = -0.0;
  CHECK(dec.decode(enc.encode(q), in) == MessageKind::kReply);
  CHECK(same(in.reply, q));
}

TEST_CASE("wire: the encoder reuses its buffer") {
  Encoder enc(kSession);
  const Reply r = reply_with(seeded_payload(10));
  const uint8_t* first = enc.encode(r).data();
  (void)enc.encode(snapshot());
  CHECK(enc.encode(r).data() == first);
}

TEST_CASE("wire: a reply written over the last one has the bytes of one encoded afresh") {
  // The Encoder writes a reply over the one it holds when the two have the same shape. Every
  // reply of this sequence, through one encoder, must have exactly the bytes a new encoder
  // gives it: same shapes with new values, and every way a shape can change (a scalar at or
  // away from its default, -0.0, the loss present or not, vector lengths, the kind, another
  // message in between, another session).
  Encoder kept(kSession);
  marina::util::Rng rng(11);
  std::size_t compared = 0;
  const auto check = [&](const Reply& r) {
    Encoder fresh(kept.session());
    const auto a = kept.encode(r);
    const auto b = fresh.encode(r);
    CHECK(std::vector<uint8_t>(a.begin(), a.end()) == std::vector<uint8_t>(b.begin(), b.end()));
    ++compared;
  };
  for (int step = 0; step < 400; ++step) {
    CAPTURE(step);
    auto payloads = all_payloads();
    Reply r = reply_with(std::move(payloads[rng.below(payloads.size())]));
    for (int again = 0; again < 3; ++again) {  // the same shape, other values
      r.worker = 1 + static_cast<uint32_t>(rng.below(5));
      r.round += 1 + rng.below(3);
      r.oracle_calls = 1 + rng.below(1000);
      r.local_loss = rng.uniform();
      for (auto& v : r.payload.values) v = static_cast<float>(rng.uniform() - 0.5);
      for (auto& v : r.payload.dense) v = rng.uniform() - 0.5;
      for (auto& l : r.payload.levels) l = static_cast<int8_t>(rng.below(5)) - 2;
      r.payload.norm = rng.uniform();
      check(r);
    }
    switch (rng.below(9)) {  // then a change of shape, or of what the builder holds
      case 0:
        r.local_loss.reset();
        break;
      case 1:
        r.local_loss = -0.0;
        break;
      case 2:
        r.oracle_calls = 0;
        break;
      case 3:
        r.worker = 0;
        break;
      case 4:
        r.payload.norm = -0.0;
        break;
      case 5:
        r.payload = seeded_payload(1 + rng.below(6));
        break;
      case 6:
        (void)kept.encode(Heartbeat{1, 2});
        break;
      case 7:
        kept.set_session(kept.session() + 1);
        break;
      default:
        r.round = 0;
        break;
    }
    check(r);
    check(r);
  }
  CHECK(compared == 400 * 5);
}

TEST_CASE("wire: decoding from misaligned buffers") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  const Bytes bytes = copy(enc.encode(snapshot()));
  const Bytes reply = copy(enc.encode(reply_with(dense32_payload())));
  // uint64_t storage: offset 0 is 8-byte aligned, so offsets 1..7 are not.
  std::vector<uint64_t> storage(bytes.size() / 8 + 2);
  auto* base = reinterpret_cast<uint8_t*>(storage.data());
  for (std::size_t offset : {1, 2, 3, 4, 5}) {
    CAPTURE(offset);
    Inbox in;
    std::memcpy(base + offset, bytes.data(), bytes.size());
    REQUIRE(dec.decode({base + offset, bytes.size()}, in) == MessageKind::kResyncResponse);
    CHECK(same(in.resync, snapshot()));
    std::memcpy(base + offset, reply.data(), reply.size());
    REQUIRE(dec.decode({base + offset, reply.size()}, in) == MessageKind::kReply);
    CHECK(same(in.reply, reply_with(dense32_payload())));
  }
}

TEST_CASE("wire: one Inbox is reused across kinds and keeps its capacity") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  Inbox in;
  REQUIRE(dec.decode(enc.encode(dense_broadcast()), in) == MessageKind::kBroadcast);
  REQUIRE(dec.decode(enc.encode(reply_with(sparse_payload())), in) == MessageKind::kReply);
  CHECK(same(in.broadcast, dense_broadcast()));  // untouched by the reply
  CHECK(same(in.reply, reply_with(sparse_payload())));

  // A delta broadcast after a dense one: the dense vector empties, its capacity stays.
  const double* dense_storage = in.broadcast.update.dense.data();
  REQUIRE(dec.decode(enc.encode(delta_broadcast()), in) == MessageKind::kBroadcast);
  CHECK(same(in.broadcast, delta_broadcast()));
  CHECK(in.broadcast.update.dense.capacity() >= kDim);
  REQUIRE(dec.decode(enc.encode(dense_broadcast()), in) == MessageKind::kBroadcast);
  CHECK(in.broadcast.update.dense.data() == dense_storage);  // no reallocation

  // A payload of another kind replaces every field of the previous one.
  REQUIRE(dec.decode(enc.encode(reply_with(seeded_payload(4))), in) == MessageKind::kReply);
  CHECK(same(in.reply, reply_with(seeded_payload(4))));

  // A rejected message leaves everything, the session included, as it was.
  Encoder other(kSession + 1);
  Reply bad = reply_with(dense64_payload());
  bad.payload.dense[3] = std::nan("");
  CHECK_THROWS_AS((void)dec.decode(other.encode(bad), in), DecodeError);
  CHECK(in.session == kSession);
  CHECK(same(in.reply, reply_with(seeded_payload(4))));
  CHECK(same(in.broadcast, dense_broadcast()));
}

TEST_CASE("wire: decode_taking leaves a dense reply's values in the message it takes") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  Inbox in;
  const Reply dense = reply_with(dense64_payload());
  Bytes bytes = copy(enc.encode(dense));
  const uint8_t* message = bytes.data();
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kReply);
  const Payload& p = in.reply.payload;
  CHECK(same(in.reply, dense));
  CHECK(p.finite);
  // The values are read where the message holds them; the caller got the payload's old buffer.
  REQUIRE(p.received.at.has_value());
  CHECK(p.received.bytes.data() == message);
  CHECK(p.dense_values().data() > reinterpret_cast<const double*>(message));
  CHECK(bytes.empty());

  // A copy of the payload is whole on its own.
  std::optional<Payload> kept = p;
  CHECK(kept->dense_values().data() != p.dense_values().data());
  CHECK(bit_equal(kept->dense_values(), dense.payload.dense_values()));

  // Its next dense reply hands the first message's buffer back to the caller.
  Reply next = dense;
  next.round += 1;
  next.payload.dense[0] = 0.25;
  bytes = copy(enc.encode(next));
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kReply);
  CHECK(same(in.reply, next));
  CHECK(bytes.data() == message);

  // Anything else is copied and leaves `bytes` alone, and no stale view survives it: a dense
  // reply through decode(), one whose doubles are misplaced in the message.
  REQUIRE(dec.decode(enc.encode(dense), in) == MessageKind::kReply);
  CHECK_FALSE(in.reply.payload.received.at.has_value());
  CHECK(same(in.reply, dense));
  const Bytes misplaced = misplaced_dense_reply(next);
  bytes = misplaced;
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kReply);
  CHECK(same(in.reply, next));
  CHECK_FALSE(in.reply.payload.received.at.has_value());
  CHECK(bytes == misplaced);

  // A rejected dense reply leaves the bytes and the Inbox as they were.
  REQUIRE(dec.decode_taking(bytes = copy(enc.encode(dense)), in) == MessageKind::kReply);
  Reply bad = next;
  bad.payload.dense[5] = std::numeric_limits<double>::infinity();
  const Bytes bad_bytes = copy(enc.encode(bad));
  bytes = bad_bytes;
  CHECK_THROWS_AS((void)dec.decode_taking(bytes, in), DecodeError);
  CHECK(bytes == bad_bytes);
  CHECK(same(in.reply, dense));
}

TEST_CASE("wire: decode_taking leaves every kind of reply's vectors in the message it takes") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  Inbox in;
  const Payload& p = in.reply.payload;
  for (const Payload& payload : {dense32_payload(), sparse_payload(), seeded_payload(5),
                                 quantized_payload(), dense64_payload()}) {
    const std::string kind(to_string(payload.kind));
    CAPTURE(kind);
    const Reply r = reply_with(payload);
    Bytes bytes = copy(enc.encode(r));
    const uint8_t* message = bytes.data();
    const uint8_t* held = p.received.bytes.data();
    REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kReply);
    CHECK(same(in.reply, r));
    CHECK(p.finite);
    CHECK(p.received.bytes.data() == message);
    CHECK(bytes.data() == held);  // the previous message's buffer, handed back
    // Each vector is read in the message, and only there: the copies are empty.
    const auto inside = [&](const void* at) {
      const auto* b = static_cast<const uint8_t*>(at);
      return b > message && b < message + p.received.bytes.size();
    };
    CHECK(p.values.empty());
    CHECK(p.indices.empty());
    CHECK(p.levels.empty());
    CHECK(p.dense.empty());
    CHECK(p.value_view().empty() != inside(p.value_view().data()));
    CHECK(p.index_view().empty() != inside(p.index_view().data()));
    CHECK(p.level_view().empty() != inside(p.level_view().data()));
    CHECK(p.dense_values().empty() != inside(p.dense_values().data()));
    // A copy is whole on its own.
    const Payload kept = p;
    std::fill(bytes.begin(), bytes.end(), uint8_t{0xFF});
    CHECK(same(kept, payload));
  }
  // Through decode(), or rejected: nothing taken, no stale view left.
  const Reply sparse = reply_with(sparse_payload());
  REQUIRE(dec.decode(enc.encode(sparse), in) == MessageKind::kReply);
  CHECK_FALSE(p.received.holds_any());
  CHECK(same(in.reply, sparse));
  Reply bad = reply_with(seeded_payload(5));
  bad.payload.values[3] = std::numeric_limits<float>::quiet_NaN();
  const Bytes bad_bytes = copy(enc.encode(bad));
  Bytes bytes = bad_bytes;
  CHECK_THROWS_AS((void)dec.decode_taking(bytes, in), DecodeError);
  CHECK(bytes == bad_bytes);
  CHECK(same(in.reply, sparse));
}

TEST_CASE("wire: decode_taking leaves an update's vectors in the message it takes") {
  Encoder enc(kSession);
  Decoder dec(run_limits());
  Inbox in;
  const Broadcast dense = dense_broadcast();
  Bytes bytes = copy(enc.encode(dense));
  const uint8_t* message = bytes.data();
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kBroadcast);
  CHECK(same(in.broadcast, dense));
  REQUIRE(in.broadcast.update.received.at.has_value());
  CHECK(in.broadcast.update.received.bytes.data() == message);
  CHECK(bytes.empty());
  CHECK(in.broadcast.update == dense.update);  // compares values, not where they are kept

  // A worker keeps a broadcast it cannot apply yet (OutOfSync): the copy is whole on its own.
  std::optional<Broadcast> pending = in.broadcast;
  Broadcast next = dense;
  next.round += 1;
  next.update.dense[1] = -3.5;
  bytes = copy(enc.encode(next));
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kBroadcast);
  CHECK(bytes.data() == message);  // the first message's buffer, handed back
  std::fill(bytes.begin(), bytes.end(), uint8_t{0xFF});
  CHECK(same(*pending, dense));
  CHECK(same(in.broadcast, next));
  CHECK_FALSE(in.broadcast.update == pending->update);

  // A delta broadcast is taken too: its indices and values are read in the message.
  const Broadcast delta = delta_broadcast(kDim - 1);
  bytes = copy(enc.encode(delta));
  const uint8_t* delta_message = bytes.data();
  const uint8_t* held = in.broadcast.update.received.bytes.data();  // `next`, taken above
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kBroadcast);
  CHECK(same(in.broadcast, delta));
  CHECK(in.broadcast.update == delta.update);
  REQUIRE(in.broadcast.update.received.indices_at.has_value());
  CHECK(in.broadcast.update.received.bytes.data() == delta_message);
  CHECK(in.broadcast.update.delta_values().data() > reinterpret_cast<const double*>(delta_message));
  CHECK(in.broadcast.update.dense_values().empty());
  CHECK(bytes.data() == held);  // handed back

  // A dense broadcast after it leaves no stale view of the delta behind.
  REQUIRE(dec.decode_taking(bytes = copy(enc.encode(dense)), in) == MessageKind::kBroadcast);
  CHECK_FALSE(in.broadcast.update.received.indices_at.has_value());
  CHECK(in.broadcast.update.delta_values().empty());
  CHECK(same(in.broadcast, dense));

  // A delta whose doubles are misplaced is copied, leaves `bytes` alone and no stale view
  // behind; so is a delta through decode().
  const Bytes misplaced = misplaced_delta_broadcast(delta);
  bytes = misplaced;
  REQUIRE(dec.decode_taking(bytes, in) == MessageKind::kBroadcast);
  CHECK(bytes == misplaced);
  CHECK_FALSE(in.broadcast.update.received.at.has_value());
  CHECK_FALSE(in.broadcast.update.received.indices_at.has_value());
  CHECK(same(in.broadcast, delta));
  REQUIRE(dec.decode(enc.encode(delta), in) == MessageKind::kBroadcast);
  CHECK_FALSE(in.broadcast.update.received.at.has_value());
  CHECK(same(in.broadcast, delta));
}

TEST_CASE("wire: every truncation of a valid message is rejected") {
  Decoder dec(run_limits());
  for (const Bytes& bytes : sample_messages()) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      // A fresh vector of exactly n bytes, so a read past the end is an ASan report.
      const Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
      Inbox in;
      CAPTURE(n);
      CHECK_THROWS_AS((void)dec.decode(prefix, in), DecodeError);
    }
  }
}

TEST_CASE("wire: size, identifier and version are checked") {
  Encoder enc(kSession);
  const Bytes snap = copy(enc.encode(snapshot()));
  Limits tight = run_limits();
  tight.max_bytes = snap.size() - 1;
  CHECK(reject_reason(snap, tight).find("exceeds the limit") != std::string::npos);
  tight.max_bytes = snap.size();
  CHECK(reject_reason(snap, tight).empty());

  CHECK(reject_reason(Bytes{}).find("too short") != std::string::npos);

  Bytes foreign = snap;
  foreign[4] = 'X';
  CHECK(reject_reason(foreign).find("file identifier") != std::string::npos);

  CHECK(reject_reason(raw_envelope(kProtocolVersion, fb::Body::Heartbeat, true)).empty());
  const std::string advice =
      ": the peer runs another marina release; install the same on both sides (each program's "
      "--version names its release and protocol)";
  CHECK(reject_reason(raw_envelope(1, fb::Body::Heartbeat, true)) ==
        "protocol version 1, expected 4" + advice);
  CHECK(reject_reason(raw_envelope(2, fb::Body::Heartbeat, true)) ==
        "protocol version 2, expected 4" + advice);
  CHECK(reject_reason(raw_envelope(0, fb::Body::Heartbeat, true)) ==
        "protocol version 0, expected 4" + advice);
  // A peer of another release is told apart from garbage, with its version.
  Decoder versions(run_limits());
  Inbox scratch;
  try {
    (void)versions.decode(raw_envelope(2, fb::Body::Heartbeat, true), scratch);
    FAIL("a version 2 message decoded");
  } catch (const VersionError& e) {
    CHECK(e.peer_version == 2);
  }
  CHECK(reject_reason(raw_envelope(kProtocolVersion, static_cast<fb::Body>(9), true)) ==
        "unknown message kind 9");
  CHECK(reject_reason(raw_envelope(kProtocolVersion, fb::Body::Reply, false)) ==
        "reply: message without a body");
  CHECK(reject_reason(raw_envelope(kProtocolVersion, fb::Body::NONE, false)) ==
        "message without a body");
}

TEST_CASE("wire: QSGD levels must lie in [-s, s], wherever they are in a long reply") {
  Encoder enc(kSession);
  constexpr uint32_t kLong = 1000;  // long enough for the vectorized check's full blocks
  const Limits limits{max_message_bytes(kLong, 5), kLong, 5};
  auto reason = [&](const Reply& r) { return reject_reason(enc.encode(r), limits); };
  auto qsgd = [&](uint32_t s, std::size_t n) {
    Reply r = reply_with(quantized_payload());
    Payload& p = r.payload;
    p.dim = kLong;
    p.levels_s = s;
    p.indices.clear();
    p.levels.clear();
    for (std::size_t i = 0; i < n; ++i) {
      p.indices.push_back(static_cast<uint32_t>(2 * i));
      // Every level from −s to s, both ends included.
      const int span = 2 * static_cast<int>(std::min<uint32_t>(s, 127)) + 1;
      p.levels.push_back(static_cast<int8_t>(static_cast<int>(i) % span - (span - 1) / 2));
    }
    return r;
  };
  for (const uint32_t s : {1u, 4u, 126u, 127u, 128u, 1000u}) {
    for (const std::size_t n :
         {std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{497}}) {
      CAPTURE(s);
      CAPTURE(n);
      Reply r = qsgd(s, n);
      CHECK(reason(r).empty());
      if (s > 127) {
        r.payload.levels.back() = -128;  // |−128| ≤ s: a level like any other
        CHECK(reason(r).empty());
        continue;
      }
      for (const int bad : {static_cast<int>(s) + 1, -static_cast<int>(s) - 1}) {
        if (bad > 127 || bad < -128) continue;
        for (const std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
          Reply b = r;
          b.payload.levels[at] = static_cast<int8_t>(bad);
          CHECK(reason(b) == "reply: level[" + std::to_string(at) + "] = " + std::to_string(bad) +
                                 " outside [-s, s], s = " + std::to_string(s));
        }
      }
    }
  }
}

TEST_CASE("wire: semantic bounds") {
  Encoder enc(kSession);
  auto reason = [&](const auto& message) { return reject_reason(enc.encode(message)); };

  Reply r = reply_with(dense64_payload());
  r.payload.dense.push_back(1.0);
  CHECK(reason(r) == "reply: 14 values for d = 13");

  r = reply_with(dense64_payload());
  r.payload.dense[5] = std::numeric_limits<double>::quiet_NaN();
  CHECK(reason(r) == "reply: value[5] is nan");
  r = reply_with(dense32_payload());
  r.payload.values[0] = -std::numeric_limits<float>::infinity();
  CHECK(reason(r) == "reply: value[0] is -inf");
  r = reply_with(seeded_payload(2));
  r.local_loss = std::numeric_limits<double>::infinity();
  CHECK(reason(r) == "reply: local loss is inf");

  r = reply_with(sparse_payload());
  r.payload.indices.back() = kDim;
  CHECK(reason(r) == "reply: index[3] = 13 >= d = 13");
  r.payload.indices = {0, 5, 5, 12};
  CHECK(reason(r) == "reply: index not strictly increasing at position 2 (5 then 5)");
  r.payload.indices = {0, 5, 12};
  CHECK(reason(r) == "reply: sparse payload with 3 indices but 4 values");

  r = reply_with(seeded_payload(14, 14));  // a payload for another d
  CHECK(reason(r) == "reply: payload for d = 14 but d = 13");
  r = reply_with(seeded_payload(14));
  CHECK(reason(r) == "reply: 14 values for d = 13");

  r = reply_with(quantized_payload());
  r.payload.levels[2] = 5;
  CHECK(reason(r) == "reply: level[2] = 5 outside [-s, s], s = 4");
  r.payload.levels[2] = 4;
  r.payload.norm = std::nan("");
  CHECK(reason(r) == "reply: norm is nan");

  r = reply_with(seeded_payload(2));
  r.payload.kind = static_cast<PayloadKind>(17);
  CHECK(reason(r) == "reply: unknown payload kind 17");

  r = reply_with(seeded_payload(2));
  r.worker = 5;
  CHECK(reason(r) == "reply: worker 5 >= n = 5");
  CHECK(reason(Heartbeat{5, 0}) == "heartbeat: worker 5 >= n = 5");
  CHECK(reason(ResyncRequest{9, 0, 1}) == "resync-request: worker 9 >= n = 5");
  CHECK(reason(Join{5, 1, kDim, 0, "x86_64", {1.0, 0.0, 0.0}, "", 0}) ==
        "join: worker id 5 >= n = 5");
  CHECK(reason(Join{1, 1, kDim, 0, "x86_64", {-1.0, 0.0, 0.0}, "", 0}) ==
        "join: smoothness constants must be finite and >= 0");
  CHECK(reason(Join{1, 1, kDim, 0, "x86_64", {1.0, std::nan(""), 0.0}, "", 0}) ==
        "join: smoothness constants must be finite and >= 0");
  CHECK(reason(Bye{kCoordinatorId, "done"}).empty());

  Broadcast b = delta_broadcast();
  b.update.indices[1] = 0;
  CHECK(reason(b) == "broadcast: delta index not strictly increasing at position 1 (0 then 0)");
  b = delta_broadcast();
  b.update.indices.back() = 100;
  CHECK(reason(b) == "broadcast: delta index[3] = 100 >= d = 13");
  b = delta_broadcast(kDim + 1);
  CHECK(reason(b) == "broadcast: delta update of 14 entries for d = 13");
  b = delta_broadcast();
  b.update.values[0] = std::nan("");
  CHECK(reason(b) == "broadcast: delta value[0] is nan");
  b = dense_broadcast();
  b.update.dense.pop_back();
  CHECK(reason(b) == "broadcast: dense update of 12 values for d = 13");
  b = dense_broadcast();
  b.participants = {0, 5};
  CHECK(reason(b) == "broadcast: participant 5 >= n = 5");
  b.participants = {1, 0};
  CHECK(reason(b) == "broadcast: participants not ascending at position 1");

  Snapshot s = snapshot();
  s.x.push_back(0.0);
  CHECK(reason(s) == "resync-response: x of 14 values for d = 13");
  s = snapshot();
  s.aux[12] = std::numeric_limits<double>::infinity();
  CHECK(reason(s) == "resync-response: aux[12] is inf");

  Welcome w = welcome();
  w.config.p = 1.5;
  CHECK(reason(w) == "welcome: p = 1.5 outside [0, 1]");
  w = welcome();
  w.config.compressor.assign(kMaxStringBytes + 1, 'k');
  CHECK(reason(w) == "welcome: compressor spec of 257 bytes (at most 256)");
  w = welcome();
  w.config.method = static_cast<Method>(6);
  CHECK(reason(w) == "welcome: unknown method 6");
  w = welcome();
  w.config.batch_sampling = static_cast<BatchSampling>(2);
  CHECK(reason(w) == "welcome: unknown batch sampling 2");

  // With d unknown only the message's own consistency is checked.
  Limits open{max_message_bytes(100, 0), 0, 0};
  r = reply_with(seeded_payload(14, 14));
  r.worker = 99;
  CHECK(reject_reason(enc.encode(r), open).empty());
}

TEST_CASE("wire: a non-finite value at any position of a vector is found and named") {
  // The decoder scans vectors 32 bytes at a time and finishes with a scalar tail: every
  // position of a 13-element vector (both widths) exercises both parts.
  Encoder enc(kSession);
  auto reason = [&](const auto& message) { return reject_reason(enc.encode(message)); };
  const double bad64[] = {
      std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::signaling_NaN(),
      std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  const float bad32[] = {std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity()};
  for (uint32_t i = 0; i < kDim; ++i) {
    CAPTURE(i);
    for (double v : bad64) {
      Reply r = reply_with(dense64_payload());
      r.payload.dense[i] = v;
      CHECK(reason(r).rfind("reply: value[" + std::to_string(i) + "] is ", 0) == 0);
    }
    for (float v : bad32) {
      Reply r = reply_with(dense32_payload());
      r.payload.values[i] = v;
      CHECK(reason(r).rfind("reply: value[" + std::to_string(i) + "] is ", 0) == 0);
    }
  }
  // The extremes of the finite range pass.
  Reply r = reply_with(dense64_payload());
  r.payload.dense[0] = std::numeric_limits<double>::max();
  r.payload.dense[1] = -std::numeric_limits<double>::max();
  r.payload.dense[2] = std::numeric_limits<double>::denorm_min();
  r.payload.dense[12] = -0.0;
  CHECK(reason(r).empty());
  r = reply_with(dense32_payload());
  r.payload.values[11] = std::numeric_limits<float>::max();
  r.payload.values[12] = -std::numeric_limits<float>::denorm_min();
  CHECK(reason(r).empty());
}

TEST_CASE("wire: an index out of order at any position is found and named") {
  // All 13 indices of d = 13 (the vector scan's blocks of 4 and its tail), then one broken.
  Encoder enc(kSession);
  auto reason = [&](const Reply& r) { return reject_reason(enc.encode(r)); };
  Reply r = reply_with(sparse_payload());
  r.payload.indices.resize(kDim);
  for (uint32_t i = 0; i < kDim; ++i) r.payload.indices[i] = i;
  r.payload.values = awkward_floats(kDim);
  CHECK(reason(r).empty());
  for (uint32_t i = 1; i < kDim; ++i) {
    CAPTURE(i);
    Reply bad = r;
    bad.payload.indices[i] = bad.payload.indices[i - 1];  // a repeat
    CHECK(reason(bad) == "reply: index not strictly increasing at position " + std::to_string(i) +
                             " (" + std::to_string(i - 1) + " then " + std::to_string(i - 1) + ")");
    bad = r;
    std::swap(bad.payload.indices[i], bad.payload.indices[i - 1]);  // out of order
    CHECK(reason(bad) == "reply: index not strictly increasing at position " + std::to_string(i) +
                             " (" + std::to_string(i) + " then " + std::to_string(i - 1) + ")");
  }
  r.payload.indices.back() = kDim;  // the largest decides the bound
  CHECK(reason(r) == "reply: index[12] = 13 >= d = 13");
  r.payload.indices[0] = 0xffffffffu;  // huge and out of order at once: the first failure
  CHECK(reason(r) == "reply: index[0] = 4294967295 >= d = 13");
}

TEST_CASE("wire: the index scan finds a break at every position of vectors of any length") {
  // util::strictly_increasing_u32 runs in vectors of 4, 8 or 16 lanes (SSE2, AVX2, AVX-512:
  // whichever this CPU has), unrolled twice, then a scalar tail: lengths around each multiple
  // take every path, and unsigned values across 2^31 catch a signed comparison.
  for (std::size_t n : {0, 1, 2, 3, 8, 9, 16, 17, 31, 32, 33, 34, 64, 65, 66, 100, 257}) {
    CAPTURE(n);
    for (const uint32_t base : {5u, 0x7ffffff0u}) {
      CAPTURE(base);
      std::vector<uint32_t> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = base + static_cast<uint32_t>(3 * i);
      // Misaligned by one byte, as a hostile message may place them.
      std::vector<uint8_t> bytes(4 * n + 1);
      const auto scan = [&] {
        if (n != 0) std::memcpy(bytes.data() + 1, v.data(), 4 * n);
        return marina::util::strictly_increasing_u32(bytes.data() + 1, n);
      };
      CHECK(scan());
      for (std::size_t i = 1; i < n; ++i) {
        CAPTURE(i);
        const uint32_t kept = v[i];
        v[i] = v[i - 1];  // a repeat
        CHECK_FALSE(scan());
        v[i] = v[i - 1] - 1;  // a step down
        CHECK_FALSE(scan());
        v[i] = kept;
      }
    }
  }
  // Across the sign bit of a 32-bit lane, and up to the largest index.
  const std::vector<uint32_t> wide = {1u,          0x7fffffffu, 0x80000000u,
                                      0x80000001u, 0xfffffffeu, 0xffffffffu};
  std::vector<uint8_t> bytes(4 * wide.size());
  std::memcpy(bytes.data(), wide.data(), bytes.size());
  CHECK(marina::util::strictly_increasing_u32(bytes.data(), wide.size()));
}

TEST_CASE("wire: random garbage never crashes the decoder") {
  Decoder dec(run_limits());
  marina::util::Rng rng(20240611);
  int decoded = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    Bytes bytes(rng.below(160));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.next());
    // Half the strings carry the identifier, so they reach the Verifier.
    if (trial % 2 == 0 && bytes.size() >= 8) std::memcpy(bytes.data() + 4, "MRNA", 4);
    decoded += survives(dec, bytes);
  }
  // Random strings almost never verify; valid messages with a few random bytes overwritten
  // reach the semantic checks and the copies into the Inbox.
  const std::vector<Bytes> samples = sample_messages();
  for (int trial = 0; trial < 4000; ++trial) {
    Bytes bytes = samples[rng.below(samples.size())];
    for (uint64_t n = 1 + rng.below(4); n > 0; --n) {
      bytes[rng.below(bytes.size())] = static_cast<uint8_t>(rng.next());
    }
    decoded += survives(dec, bytes);
  }
  MESSAGE("random strings and mutated messages that decoded: " << decoded << " of 8000");
}

TEST_CASE("wire: flipped bytes of valid messages never crash the decoder") {
  Decoder dec(run_limits());
  int decoded = 0, total = 0;
  for (const Bytes& original : sample_messages()) {
    Bytes bytes = original;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const uint8_t mask : {0x01, 0x10, 0x80, 0xFF}) {
        bytes[i] ^= mask;
        decoded += survives(dec, bytes);
        ++total;
        bytes[i] ^= mask;
      }
    }
  }
  MESSAGE("flipped messages that still decoded: " << decoded << " of " << total);
}

// The exact bytes of a few messages, as protocol version 4 writes them (version 3 wrote the same
// bytes but for the version field; a Welcome that names no batch sampling is unchanged).
// Deployed workers and coordinators decode these bytes, so a change to the encoder that moves a
// field (the order TableWriter pushes fields in, a padding rule) must fail here; a deliberate
// change of layout goes with a new kProtocolVersion and new bytes below.
namespace {
std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}
}  // namespace

TEST_CASE("wire: the bytes of reference messages stay those of protocol version 4") {
  REQUIRE(kProtocolVersion == 4);
  Encoder enc(kSession);

  Reply seeded;  // three floats leave the buffer at 4 mod 8: fields are ordered to fill it
  seeded.worker = 4;
  seeded.round = 123'456;
  seeded.oracle_calls = 12'000;
  seeded.local_loss = 0.5;
  seeded.payload.kind = PayloadKind::kSeeded;
  seeded.payload.dim = 1000;
  seeded.payload.values = {1.5f, -2.0f, 0.25f};
  CHECK(hex(enc.encode(seeded)) ==
        "180000004d524e41000000000c00140006000800050010000c00000000040400420000000000ed5e"
        "18000000140028000c0020001800080004000000000010001400000024000000e803000004000000"
        "000000000000e03fe02e00000000000040e2010000000000030000000000c03f000000c00000803e");

  Reply qsgd;
  qsgd.worker = 2;
  qsgd.round = 7;
  qsgd.oracle_calls = 3;
  qsgd.payload.kind = PayloadKind::kQuantized;
  qsgd.payload.dim = 9;
  qsgd.payload.indices = {1, 4, 8};
  qsgd.payload.levels = {-1, 2, 3};
  qsgd.payload.norm = 2.5;
  qsgd.payload.levels_s = 4;
  CHECK(hex(enc.encode(qsgd)) ==
        "140000004d524e410c00140006000c00050008000c0000000004040028000000420000000000ed5e"
        "1c00340018002c0024001400000007001000000000000c001c0008001c0000000000000404000000"
        "280000002c0000000900000002000000000000000000044003000000000000000700000000000000"
        "03000000ff02030003000000010000000400000008000000");

  Broadcast b;
  b.round = 9;
  b.round_seed = 0x0123'4567'89ab'cdefULL;
  b.participants = {0, 2, 5};
  b.dropped = {1};
  b.update.kind = UpdateKind::kDelta;
  b.update.indices = {3, 7};
  b.update.values = {-0.5, 8.0};
  CHECK(hex(enc.encode(b)) ==
        "180000004d524e41000000000c00160014000800070010000c00000000000003420000000000ed5e"
        "1c0000000400160028001c00000014002400070010000c0000000800160000000000000244000000"
        "1c00000030000000efcdab896745230109000000000000003000000002000000000000000000e0bf"
        "00000000000020400000000002000000030000000700000001000000010000000300000000000000"
        "0200000005000000");

  Welcome w;  // the widest table
  w.worker_id = 3;
  w.config.method = Method::kVrMarina;
  w.config.compressor = "randk:5";
  w.config.workers = 5;
  w.config.dim = 73;
  w.config.seed = 11;
  w.config.gamma = 0.125;
  w.config.p = 0.25;
  w.config.batch = 32;
  CHECK(hex(enc.encode(w)) ==
        "140000004d524e410c00140006000c00050008000c0000000002040024000000420000000000ed5e"
        "18003c00380007000c00080030002800200018000000100018000000000000020500000030000000"
        "2000000000000000000000000000d03f000000000000c03f0b000000000000004900000000000000"
        "030000000700000072616e646b3a3500");
}

TEST_CASE("wire: seeded RandK reply stays within 4K + 96 bytes") {
  Encoder enc(0x1234'5678'9ABC'DEF0ULL);
  Decoder dec(Limits{max_message_bytes(1'000'000, 0), 1'000'000, 8});
  Inbox in;
  for (const std::size_t k : {1, 10, 1000}) {
    Reply r;
    r.worker = 4;
    r.round = 123'456;
    r.oracle_calls = 2 * 6'000;
    r.payload = seeded_payload(k, 1'000'000);
    const std::size_t size = enc.encode(r).size();
    MESSAGE("seeded RandK reply, K = " << k << ": " << size << " bytes = 4K + " << size - 4 * k);
    CHECK(size <= 4 * k + 96);
    REQUIRE(dec.decode(enc.encode(r), in) == MessageKind::kReply);
    CHECK(same(in.reply, r));
  }

  Reply dense = reply_with(dense64_payload());
  MESSAGE("dense64 reply, d = 13, with local loss: " << enc.encode(dense).size() << " bytes");
  dense.local_loss.reset();
  MESSAGE("dense64 reply, d = 13, no local loss: " << enc.encode(dense).size() << " bytes");
  MESSAGE("broadcast with a 10-entry delta: " << enc.encode(delta_broadcast(10)).size()
                                              << " bytes");
}
