// The Decoder: the only code that reads bytes from the network (see codec.h for the order of
// the checks). Everything is validated on the verified FlatBuffer before the Inbox is touched,
// so a rejected message changes nothing.

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <type_traits>

#include "marina/util/finite.h"
#include "marina/util/increasing.h"
#include "marina/wire/codec.h"
#include "marina_generated.h"

namespace marina::wire {

// Vector contents are copied with memcpy, which is only a decode on little-endian hosts. Every
// target of this project (x86-64, arm64, armhf) is; a big-endian port would need ReadScalar per
// element here.
static_assert(FLATBUFFERS_LITTLEENDIAN, "the wire codec assumes a little-endian host");

namespace {

template <typename... Args>
[[noreturn]] void fail(MessageKind kind, const Args&... args) {
  std::ostringstream out;
  out << to_string(kind) << ": ";
  (out << ... << args);
  throw DecodeError(out.str());
}

template <typename T>
std::size_t count(const flatbuffers::Vector<T>* v) {
  return v == nullptr ? 0 : v->size();
}

// The Verifier checks a vector's length prefix for alignment but not its elements, so a
// hostile buffer can place doubles at 4 mod 8. memcpy reads them without a misaligned load.
template <typename T>
T element(const flatbuffers::Vector<T>* v, std::size_t i) {
  T x;
  std::memcpy(&x, v->Data() + i * sizeof(T), sizeof(T));
  return x;
}

// resize() keeps the capacity when shrinking and fills only what grows, so steady-state decoding
// into the same Inbox does not allocate.
template <typename T, typename A>
void copy_into(const flatbuffers::Vector<T>* v, std::vector<T, A>& out) {
  const std::size_t n = count(v);
  out.resize(n);
  if (n != 0) std::memcpy(out.data(), v->Data(), n * sizeof(T));
}

// Whether `v` can stay in the message: the message is the caller's to give up (`take`: the
// buffer `data` is in) and v's elements are aligned in it for loads of T.
template <typename T>
bool can_take(const flatbuffers::Vector<T>* v, const uint8_t* data,
              const std::vector<uint8_t>* take) {
  return take != nullptr && take->data() == data && count(v) != 0 &&
         (v->Data() - data) % alignof(T) == 0;
}

template <typename T>
compress::InMessage::Range range_of(const flatbuffers::Vector<T>* v, const uint8_t* data) {
  return {static_cast<std::size_t>(v->Data() - data), v->size()};
}

// A long vector of doubles stays where it is when it can (they are aligned unless the sender
// misplaced them on purpose): the message moves into `in`, the caller gets in's previous
// buffer. Otherwise the values are copied into `copy`.
void take_or_copy(const flatbuffers::Vector<double>* v, const uint8_t* data,
                  std::vector<uint8_t>* take, compress::InMessage& in, std::vector<double>& copy) {
  in.forget();
  if (can_take(v, data, take)) {
    in.at = range_of(v, data);
    in.bytes.swap(*take);
    return;
  }
  copy_into(v, copy);
}

// The same for a sparse update's indices and values, which are taken or copied together.
void take_or_copy(const flatbuffers::Vector<uint32_t>* indices,
                  const flatbuffers::Vector<double>* values, const uint8_t* data,
                  std::vector<uint8_t>* take, compress::InMessage& in,
                  util::Buffer<uint32_t>& index_copy, util::Buffer<double>& value_copy) {
  in.forget();
  if (can_take(indices, data, take) && can_take(values, data, take)) {
    in.at = range_of(values, data);
    in.indices_at = range_of(indices, data);
    in.bytes.swap(*take);
    return;
  }
  copy_into(indices, index_copy);
  copy_into(values, value_copy);
}

// The same for a reply's vectors, which are taken or copied together: taken when each one
// there is aligned for its element type (a hostile sender may misplace doubles; the Verifier
// keeps 4-byte elements aligned).
void take_or_copy(const fb::Reply& m, const uint8_t* data, std::vector<uint8_t>* take,
                  compress::Payload& p) {
  compress::InMessage& in = p.received;
  in.forget();
  const auto fits = [&](const auto* v) { return count(v) == 0 || can_take(v, data, take); };
  const bool any =
      count(m.dense()) + count(m.values()) + count(m.indices()) + count(m.levels()) != 0;
  if (take != nullptr && take->data() == data && any && fits(m.dense()) && fits(m.values()) &&
      fits(m.indices()) && fits(m.levels())) {
    if (count(m.dense()) != 0) in.at = range_of(m.dense(), data);
    if (count(m.values()) != 0) in.floats_at = range_of(m.values(), data);
    if (count(m.indices()) != 0) in.indices_at = range_of(m.indices(), data);
    if (count(m.levels()) != 0) in.levels_at = range_of(m.levels(), data);
    p.dense.clear();
    p.values.clear();
    p.indices.clear();
    p.levels.clear();
    in.bytes.swap(*take);
    return;
  }
  copy_into(m.dense(), p.dense);
  copy_into(m.values(), p.values);
  copy_into(m.indices(), p.indices);
  copy_into(m.levels(), p.levels);
}

void copy_into(const flatbuffers::String* s, std::string& out) {
  if (s == nullptr) {
    out.clear();
  } else {
    out.assign(s->data(), s->size());
  }
}

template <typename T>
void check_finite(MessageKind kind, const char* what, const flatbuffers::Vector<T>* v) {
  if (const auto i = util::find_non_finite<T>(v == nullptr ? nullptr : v->Data(), count(v)))
    fail(kind, what, "[", *i, "] is ", element(v, *i));
}

void check_finite(MessageKind kind, const char* what, double x) {
  if (!std::isfinite(x)) fail(kind, what, " is ", x);
}

// Whether every level lies in [−s, s], compared 16 at a time with no branch per element (GCC's -O2
// does not vectorize the plain loop).
bool levels_within(const uint8_t* data, std::size_t n, uint32_t s) {
  if (s > 127) return true;  // |−128| = 128 ≤ s: every byte is a level
  typedef int8_t V __attribute__((vector_size(16)));
  constexpr std::size_t kLanes = sizeof(V);
  const auto hi = static_cast<int8_t>(s);
  const auto lo = static_cast<int8_t>(-hi);
  const V his = V{} + hi;
  const V los = V{} + lo;
  V bad = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    V x;
    std::memcpy(&x, data + i, sizeof x);
    bad |= (x > his) | (x < los);
  }
  int any = 0;
  for (std::size_t l = 0; l < kLanes; ++l) any |= bad[l];
  for (; i < n; ++i) {
    const auto x = static_cast<int8_t>(data[i]);
    any |= static_cast<int>(x > hi) | static_cast<int>(x < lo);
  }
  return any == 0;
}

// Strictly increasing and below `bound` (no bound when it is 0, i.e. d is unknown).
void check_indices(MessageKind kind, const char* what, const flatbuffers::Vector<uint32_t>* v,
                   uint64_t bound) {
  const std::size_t n = count(v);
  // Strictly increasing also means the last index is the largest: one comparison checks the
  // bound.
  if (n == 0 ||
      (util::strictly_increasing_u32(v->Data(), n) && (bound == 0 || element(v, n - 1) < bound)))
    return;
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t index = element(v, i);
    if (bound != 0 && index >= bound) fail(kind, what, "[", i, "] = ", index, " >= d = ", bound);
    if (i > 0 && index <= element(v, i - 1)) {
      fail(kind, what, " not strictly increasing at position ", i, " (", element(v, i - 1),
           " then ", index, ")");
    }
  }
}

void check_string(MessageKind kind, const char* what, const flatbuffers::String* s) {
  if (s != nullptr && s->size() > kMaxStringBytes) {
    fail(kind, what, " of ", s->size(), " bytes (at most ", kMaxStringBytes, ")");
  }
}

class Checker {
 public:
  Checker(const Limits& limits, MessageKind kind) : limits_(limits), kind_(kind) {}

  void worker(const char* what, uint32_t id, bool coordinator_allowed = false) const {
    if (coordinator_allowed && id == kCoordinatorId) return;
    if (limits_.workers != 0 && id >= limits_.workers) {
      fail(kind_, what, " ", id, " >= n = ", limits_.workers);
    }
  }

  void join(const fb::Join& m) const {
    worker("worker id", m.worker_id());
    check_string(kind_, "arch", m.arch());
    check_string(kind_, "model description", m.model());
    for (double v : {m.smoothness(), m.smoothness_mean_sq(), m.smoothness_max()})
      if (!std::isfinite(v) || v < 0) fail(kind_, "smoothness constants must be finite and >= 0");
  }

  void welcome(const fb::Welcome& m) const {
    worker("worker id", m.worker_id());
    if (m.method() > fb::Method::MAX) {
      fail(kind_, "unknown method ", static_cast<unsigned>(m.method()));
    }
    if (m.compressor() == nullptr || m.compressor()->size() == 0) {
      fail(kind_, "no compressor");
    }
    check_string(kind_, "compressor spec", m.compressor());
    if (m.batch_sampling() > fb::BatchSampling::MAX) {
      fail(kind_, "unknown batch sampling ", static_cast<unsigned>(m.batch_sampling()));
    }
    if (m.workers() == 0) fail(kind_, "n = 0 workers");
    if (!std::isfinite(m.init_scale()) || m.init_scale() < 0)
      fail(kind_, "init_scale must be finite and >= 0");
    if (m.worker_id() >= m.workers()) {
      fail(kind_, "worker id ", m.worker_id(), " >= n = ", m.workers());
    }
    // Payloads carry d as uint32.
    if (m.dim() > std::numeric_limits<uint32_t>::max()) fail(kind_, "d = ", m.dim(), " too large");
    if (limits_.dim != 0 && m.dim() != limits_.dim) {
      fail(kind_, "d = ", m.dim(), " but this side has d = ", limits_.dim);
    }
    check_finite(kind_, "gamma", m.gamma());
    check_finite(kind_, "p", m.p());
    check_finite(kind_, "alpha", m.alpha());
    if (m.gamma() < 0.0) fail(kind_, "gamma = ", m.gamma(), " < 0");
    if (m.alpha() < 0.0) fail(kind_, "alpha = ", m.alpha(), " < 0");
    if (m.p() < 0.0 || m.p() > 1.0) fail(kind_, "p = ", m.p(), " outside [0, 1]");
  }

  void broadcast(const fb::Broadcast& m) const {
    const auto* participants = m.participants();
    for (std::size_t i = 0, n = count(participants); i < n; ++i) {
      const uint32_t id = element(participants, i);
      worker("participant", id);
      // Ascending with repeats: PP-MARINA draws clients with replacement.
      if (i > 0 && id < element(participants, i - 1)) {
        fail(kind_, "participants not ascending at position ", i);
      }
    }
    const auto* dropped = m.dropped();
    for (std::size_t i = 0, n = count(dropped); i < n; ++i) {
      worker("dropped worker", element(dropped, i));
      if (i > 0 && element(dropped, i) <= element(dropped, i - 1))
        fail(kind_, "dropped ids not strictly increasing at position ", i);
    }
    const std::size_t n_dense = count(m.update_dense());
    const std::size_t n_indices = count(m.update_indices());
    const std::size_t n_values = count(m.update_values());
    switch (m.update_kind()) {
      case fb::UpdateKind::None:
        if (n_dense + n_indices + n_values != 0) fail(kind_, "update of kind none carries data");
        break;
      case fb::UpdateKind::Dense:
        if (n_indices + n_values != 0) fail(kind_, "dense update carries indices or values");
        if (n_dense == 0) fail(kind_, "dense update without values");
        if (limits_.dim != 0 && n_dense != limits_.dim) {
          fail(kind_, "dense update of ", n_dense, " values for d = ", limits_.dim);
        }
        check_finite(kind_, "dense update", m.update_dense());
        break;
      case fb::UpdateKind::Delta:
        if (n_dense != 0) fail(kind_, "delta update carries a dense vector");
        if (n_indices != n_values) {
          fail(kind_, "delta update with ", n_indices, " indices but ", n_values, " values");
        }
        if (limits_.dim != 0 && n_indices > limits_.dim) {
          fail(kind_, "delta update of ", n_indices, " entries for d = ", limits_.dim);
        }
        check_indices(kind_, "delta index", m.update_indices(), limits_.dim);
        check_finite(kind_, "delta value", m.update_values());
        break;
      default:
        fail(kind_, "unknown update kind ", static_cast<unsigned>(m.update_kind()));
    }
  }

  void reply(const fb::Reply& m) const {
    worker("worker", m.worker());
    const uint32_t d = m.dim();
    if (limits_.dim != 0 && d != limits_.dim) {
      fail(kind_, "payload for d = ", d, " but d = ", limits_.dim);
    }
    const std::size_t n_values = count(m.values());
    const std::size_t n_indices = count(m.indices());
    const std::size_t n_dense = count(m.dense());
    const std::size_t n_levels = count(m.levels());
    const bool quantized_scalars = m.norm() != 0.0 || m.levels_s() != 0;
    switch (m.kind()) {
      case fb::PayloadKind::Dense64:
        if (n_values + n_indices + n_levels != 0 || quantized_scalars) {
          fail(kind_, "dense64 payload carries fields of another kind");
        }
        if (n_dense != d) fail(kind_, n_dense, " values for d = ", d);
        check_finite(kind_, "value", m.dense());
        break;
      case fb::PayloadKind::Dense32:
        if (n_dense + n_indices + n_levels != 0 || quantized_scalars) {
          fail(kind_, "dense32 payload carries fields of another kind");
        }
        if (n_values != d) fail(kind_, n_values, " values for d = ", d);
        check_finite(kind_, "value", m.values());
        break;
      case fb::PayloadKind::Sparse:
        if (n_dense + n_levels != 0 || quantized_scalars) {
          fail(kind_, "sparse payload carries fields of another kind");
        }
        if (n_indices != n_values) {
          fail(kind_, "sparse payload with ", n_indices, " indices but ", n_values, " values");
        }
        if (n_values > d) fail(kind_, n_values, " values for d = ", d);
        check_indices(kind_, "index", m.indices(), d);
        check_finite(kind_, "value", m.values());
        break;
      case fb::PayloadKind::Seeded:
        if (n_dense + n_indices + n_levels != 0 || quantized_scalars) {
          fail(kind_, "seeded payload carries fields of another kind");
        }
        if (n_values > d) fail(kind_, n_values, " values for d = ", d);
        check_finite(kind_, "value", m.values());
        break;
      case fb::PayloadKind::Quantized: {
        if (n_dense + n_values != 0) fail(kind_, "quantized payload carries float values");
        if (n_indices != n_levels) {
          fail(kind_, "quantized payload with ", n_indices, " indices but ", n_levels, " levels");
        }
        if (n_indices > d) fail(kind_, n_indices, " levels for d = ", d);
        check_indices(kind_, "index", m.indices(), d);
        check_finite(kind_, "norm", m.norm());
        if (m.norm() < 0.0) fail(kind_, "norm = ", m.norm(), " < 0");
        const uint32_t s = m.levels_s();
        if (s == 0) fail(kind_, "quantized payload with s = 0 levels");
        if (n_levels != 0 && !levels_within(m.levels()->Data(), n_levels, s)) {
          for (std::size_t i = 0; i < n_levels; ++i) {  // which one, for the message
            const int level = element(m.levels(), i);
            if (static_cast<uint32_t>(level < 0 ? -level : level) > s) {
              fail(kind_, "level[", i, "] = ", level, " outside [-s, s], s = ", s);
            }
          }
        }
        break;
      }
      default:
        fail(kind_, "unknown payload kind ", static_cast<unsigned>(m.kind()));
    }
    if (const auto loss = m.local_loss(); loss.has_value())
      check_finite(kind_, "local loss", *loss);
  }

  void resync_request(const fb::ResyncRequest& m) const { worker("worker", m.worker()); }

  void resync_response(const fb::ResyncResponse& m) const {
    const std::size_t n_x = count(m.x());
    const std::size_t n_aux = count(m.aux());
    const std::size_t n_prev = count(m.x_prev());
    if (limits_.dim != 0) {
      if (n_x != limits_.dim) fail(kind_, "x of ", n_x, " values for d = ", limits_.dim);
      if (n_prev != 0 && n_prev != limits_.dim) {
        fail(kind_, "x_prev of ", n_prev, " values for d = ", limits_.dim);
      }
      if (n_aux != 0 && n_aux != limits_.dim) {
        fail(kind_, "aux of ", n_aux, " values for d = ", limits_.dim);
      }
      const std::size_t n_mine = count(m.worker_aux());
      if (n_mine != 0 && n_mine != limits_.dim) {
        fail(kind_, "worker_aux of ", n_mine, " values for d = ", limits_.dim);
      }
    }
    check_finite(kind_, "worker_aux", m.worker_aux());
    check_finite(kind_, "x", m.x());
    check_finite(kind_, "aux", m.aux());
    check_finite(kind_, "x_prev", m.x_prev());
  }

  void heartbeat(const fb::Heartbeat& m) const { worker("worker", m.worker(), true); }

  void bye(const fb::Bye& m) const {
    worker("worker", m.worker(), true);
    check_string(kind_, "reason", m.reason());
  }

 private:
  const Limits& limits_;
  MessageKind kind_;
};

template <typename T>
const T& body_as(const fb::Envelope& envelope, MessageKind kind) {
  // A union whose offset is absent passes the Verifier; without a body there is nothing to read.
  const auto* body = static_cast<const T*>(envelope.body());
  if (body == nullptr) fail(kind, "message without a body");
  return *body;
}

}  // namespace

Decoder::Decoder(Limits limits) {
  set_limits(limits);
}

void Decoder::set_limits(Limits limits) {
  limits_ = limits;
}

MessageKind Decoder::decode(std::span<const uint8_t> bytes, Inbox& inbox) {
  return decode(bytes, inbox, nullptr);
}

MessageKind Decoder::decode_taking(std::vector<uint8_t>& bytes, Inbox& inbox) {
  return decode(bytes, inbox, &bytes);
}

MessageKind Decoder::decode(std::span<const uint8_t> bytes, Inbox& inbox,
                            std::vector<uint8_t>* take) {
  const std::size_t size = bytes.size();
  // The Verifier only asserts its size preconditions, and asserts vanish in release builds.
  if (size > limits_.max_bytes || size >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    throw DecodeError("message of " + std::to_string(size) + " bytes exceeds the limit of " +
                      std::to_string(limits_.max_bytes));
  }
  if (size < kMinMessageBytes) {
    throw DecodeError("message of " + std::to_string(size) + " bytes is too short (at least " +
                      std::to_string(kMinMessageBytes) + ")");
  }
  // The identifier follows the root offset. Compared here, once (a 4-byte memcmp, inlined);
  // the Verifier below is told not to compare it again.
  if (std::memcmp(bytes.data() + sizeof(flatbuffers::uoffset_t), fb::EnvelopeIdentifier(),
                  flatbuffers::kFileIdentifierLength) != 0) {
    throw DecodeError("not a MARINA message (file identifier is not \"" +
                      std::string(fb::EnvelopeIdentifier()) + "\")");
  }

  const uint8_t* data = bytes.data();
  if (reinterpret_cast<std::uintptr_t>(data) % alignof(uint64_t) != 0) {
    const std::size_t words = (size + sizeof(uint64_t) - 1) / sizeof(uint64_t);
    if (aligned_.size() < words) aligned_.resize(words);
    std::memcpy(aligned_.data(), data, size);
    data = reinterpret_cast<const uint8_t*>(aligned_.data());
  }

  // An envelope and its body are the only tables, at depth 2.
  flatbuffers::Verifier::Options options;
  options.max_depth = 4;
  options.max_tables = 4;
  options.check_alignment = true;
  options.check_nested_flatbuffers = false;
  flatbuffers::Verifier verifier(data, size, options);
  if (!verifier.VerifyBuffer<fb::Envelope>(nullptr)) {
    throw DecodeError("malformed message (" + std::to_string(size) +
                      " bytes): FlatBuffers verification failed");
  }

  const fb::Envelope& envelope = *fb::GetEnvelope(data);
  if (envelope.version() != kProtocolVersion) {
    throw VersionError(
        "protocol version " + std::to_string(envelope.version()) + ", expected " +
            std::to_string(kProtocolVersion) +
            ": the peer runs another marina release; install the same on both sides (each "
            "program's --version names its release and protocol)",
        envelope.version());
  }
  const auto type = envelope.body_type();
  if (type == fb::Body::NONE) throw DecodeError("message without a body");
  if (type > fb::Body::MAX) {
    throw DecodeError("unknown message kind " + std::to_string(static_cast<unsigned>(type)));
  }
  const auto kind = static_cast<MessageKind>(static_cast<uint8_t>(type) - 1);
  const Checker check(limits_, kind);

  switch (kind) {
    case MessageKind::kJoin: {
      const auto& m = body_as<fb::Join>(envelope, kind);
      check.join(m);
      Join& out = inbox.join;
      out.worker_id = m.worker_id();
      out.shard_rows = m.samples();
      out.dim = m.dim();
      out.capabilities = m.capabilities();
      copy_into(m.arch(), out.arch);
      out.smoothness = Smoothness{m.smoothness(), m.smoothness_mean_sq(), m.smoothness_max()};
      copy_into(m.model(), out.model);
      out.shard_count = m.shard_count();
      break;
    }
    case MessageKind::kWelcome: {
      const auto& m = body_as<fb::Welcome>(envelope, kind);
      check.welcome(m);
      Welcome& out = inbox.welcome;
      out.worker_id = m.worker_id();
      methods::MethodConfig& c = out.config;
      c.method = static_cast<methods::Method>(m.method());
      copy_into(m.compressor(), c.compressor);
      c.workers = m.workers();
      c.dim = m.dim();
      c.seed = m.seed();
      c.gamma = m.gamma();
      c.p = m.p();
      c.alpha = m.alpha();
      c.batch = m.batch();
      c.online_batch = m.online_batch();
      c.clients = m.clients();
      c.init_scale = m.init_scale();
      c.batch_sampling = static_cast<methods::BatchSampling>(m.batch_sampling());
      break;
    }
    case MessageKind::kBroadcast: {
      const auto& m = body_as<fb::Broadcast>(envelope, kind);
      check.broadcast(m);
      methods::Broadcast& out = inbox.broadcast;
      out.round = m.round();
      out.full_sync = m.full_sync();
      out.round_seed = m.round_seed();
      copy_into(m.participants(), out.participants);
      methods::ModelUpdate& u = out.update;
      u.kind = static_cast<methods::UpdateKind>(m.update_kind());
      if (u.kind == methods::UpdateKind::kDelta) {
        u.dense.clear();
        take_or_copy(m.update_indices(), m.update_values(), data, take, u.received, u.indices,
                     u.values);
      } else {  // check.broadcast: no indices or values
        u.indices.clear();
        u.values.clear();
        take_or_copy(m.update_dense(), data, take, u.received, u.dense);
      }
      copy_into(m.dropped(), out.dropped);
      break;
    }
    case MessageKind::kReply: {
      const auto& m = body_as<fb::Reply>(envelope, kind);
      check.reply(m);
      methods::Reply& out = inbox.reply;
      out.worker = m.worker();
      out.round = m.round();
      out.oracle_calls = m.oracle_calls();
      const auto loss = m.local_loss();
      out.local_loss = loss.has_value() ? std::optional<double>(*loss) : std::nullopt;
      compress::Payload& p = out.payload;
      p.kind = static_cast<compress::PayloadKind>(m.kind());
      p.dim = m.dim();
      take_or_copy(m, data, take, p);
      p.norm = m.norm();
      p.levels_s = m.levels_s();
      p.finite = true;  // check.reply: values, dense, norm (and int8 levels within ±s)
      break;
    }
    case MessageKind::kResyncRequest: {
      const auto& m = body_as<fb::ResyncRequest>(envelope, kind);
      check.resync_request(m);
      inbox.resync_request = {m.worker(), m.have_round(), m.want_round()};
      break;
    }
    case MessageKind::kResyncResponse: {
      const auto& m = body_as<fb::ResyncResponse>(envelope, kind);
      check.resync_response(m);
      methods::Snapshot& out = inbox.resync;
      out.round = m.round();
      copy_into(m.x(), out.x);
      copy_into(m.aux(), out.aux);
      copy_into(m.x_prev(), out.x_prev);
      copy_into(m.worker_aux(), out.worker_aux);
      break;
    }
    case MessageKind::kHeartbeat: {
      const auto& m = body_as<fb::Heartbeat>(envelope, kind);
      check.heartbeat(m);
      inbox.heartbeat = {m.worker(), m.round()};
      break;
    }
    case MessageKind::kBye: {
      const auto& m = body_as<fb::Bye>(envelope, kind);
      check.bye(m);
      inbox.bye.worker = m.worker();
      copy_into(m.reason(), inbox.bye.reason);
      break;
    }
  }
  inbox.session = envelope.session();
  return kind;
}

}  // namespace marina::wire
