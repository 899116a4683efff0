// Message kinds, size bounds and the Encoder (the Decoder is in decoder.cc).

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "marina/wire/codec.h"
#include "marina_generated.h"

namespace marina::wire {

// The schema's enums are cast to and from the runtime's; these keep the two in step.
static_assert(static_cast<uint8_t>(fb::Method::Gd) == static_cast<uint8_t>(methods::Method::kGd));
static_assert(static_cast<uint8_t>(fb::Method::VrDiana) ==
              static_cast<uint8_t>(methods::Method::kVrDiana));
static_assert(static_cast<uint8_t>(fb::UpdateKind::Delta) ==
              static_cast<uint8_t>(methods::UpdateKind::kDelta));
static_assert(static_cast<uint8_t>(fb::PayloadKind::Dense32) ==
              static_cast<uint8_t>(compress::PayloadKind::kDense32));
static_assert(static_cast<uint8_t>(fb::PayloadKind::Seeded) ==
              static_cast<uint8_t>(compress::PayloadKind::kSeeded));
static_assert(static_cast<uint8_t>(fb::PayloadKind::Quantized) ==
              static_cast<uint8_t>(compress::PayloadKind::kQuantized));
static_assert(static_cast<uint8_t>(fb::BatchSampling::WithoutReplacement) ==
              static_cast<uint8_t>(methods::BatchSampling::kWithoutReplacement));
static_assert(static_cast<uint8_t>(fb::BatchSampling::MAX) ==
              static_cast<uint8_t>(methods::BatchSampling::kWithoutReplacement));
static_assert(static_cast<uint8_t>(fb::Body::Join) == static_cast<uint8_t>(MessageKind::kJoin) + 1);
static_assert(static_cast<uint8_t>(fb::Body::Bye) == static_cast<uint8_t>(MessageKind::kBye) + 1);

std::string_view to_string(MessageKind kind) {
  switch (kind) {
    case MessageKind::kJoin:
      return "join";
    case MessageKind::kWelcome:
      return "welcome";
    case MessageKind::kBroadcast:
      return "broadcast";
    case MessageKind::kReply:
      return "reply";
    case MessageKind::kResyncRequest:
      return "resync-request";
    case MessageKind::kResyncResponse:
      return "resync-response";
    case MessageKind::kHeartbeat:
      return "heartbeat";
    case MessageKind::kBye:
      return "bye";
  }
  return "unknown";
}

std::size_t max_message_bytes(uint64_t dim, uint64_t max_participants) {
  // The largest bodies: a snapshot (4 d doubles: x, x_prev, aux, worker_aux), a sparse
  // broadcast delta (d indices and d doubles, plus participants and dropped ids) and a dense
  // reply (d doubles). 32 d + 8 P bounds them all; the slack covers tables, vtables, length
  // prefixes, padding and one bounded string.
  constexpr uint64_t kSlack = 1024;
  constexpr uint64_t kCap =
      std::min<uint64_t>(FLATBUFFERS_MAX_BUFFER_SIZE - 1, std::numeric_limits<std::size_t>::max());
  if (dim > kCap / 64 || max_participants > kCap / 16) return static_cast<std::size_t>(kCap);
  return static_cast<std::size_t>(std::min(kCap, 32 * dim + 8 * max_participants + kSlack));
}

namespace {

// A scalar's bits, as an unsigned integer of its size: how a value is compared with its schema
// default (bit by bit, so -0.0 differs from 0.0) and written.
template <typename T>
uint64_t bits(T value) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t));
  using Unsigned = std::conditional_t<
      sizeof(T) == 1, uint8_t,
      std::conditional_t<sizeof(T) == 2, uint16_t,
                         std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
  Unsigned u;
  std::memcpy(&u, &value, sizeof u);
  return u;
}

// Writes one table with its fields pushed in the order that wastes the fewest alignment bytes:
// at each step the field needing the least padding at the current position, the largest of
// those on a tie. The generated Create* functions use one fixed order (largest first), which
// pads up to 7 bytes after a vector whose length leaves the buffer at 4 mod 8, and again before
// the envelope's session; on a reply of a few floats that is a tenth of the message.
//
// Scalars are compared with their schema default bit by bit, so -0.0 is written (and survives)
// where the default is 0.0. The defaults passed in must equal the schema's; the round trips of
// default-constructed messages in wire_test.cc check that they do.
class TableWriter {
 public:
  explicit TableWriter(flatbuffers::FlatBufferBuilder& fbb) : fbb_(fbb) {}

  template <typename T>
  void scalar(flatbuffers::voffset_t slot, T value, T schema_default) {
    if (bits(value) == bits(schema_default)) return;
    add(slot, sizeof(T), false, bits(value));
  }

  // An optional scalar ("= null" in the schema) is written whenever it is present.
  void optional(flatbuffers::voffset_t slot, const std::optional<double>& value) {
    if (value) add(slot, sizeof(double), false, bits(*value));
  }

  template <typename T>
  void offset(flatbuffers::voffset_t slot, flatbuffers::Offset<T> target) {
    if (!target.IsNull()) add(slot, sizeof(flatbuffers::uoffset_t), true, target.o);
  }

  [[nodiscard]] flatbuffers::uoffset_t finish() {
    // Fields of one size need the same padding wherever the buffer stands, so the choice is
    // among at most four sizes, and within a size the field added first goes first: the same
    // order as comparing every field at every step, in O(fields) instead of O(fields²) (that
    // quadratic scan was most of the cost of encoding a small message). The sizes' queues are
    // bit masks of field numbers, kept in registers. (A lookup table instead of the branches was
    // slower: each choice then waits on a load that depends on the previous push.)
    std::array<uint32_t, 4> queued = queued_;
    const flatbuffers::uoffset_t start = fbb_.StartTable();
    for (std::size_t pushed = 0; pushed < count_; ++pushed) {
      // The builder grows downwards and aligns relative to the end of the buffer; Finish()
      // pads the front so that end-relative alignment is also start-relative.
      const std::size_t position = fbb_.GetSize();
      std::size_t best = 4;
      std::size_t best_padding = 0;
      for (std::size_t k = 4; k-- > 0;) {  // the largest size first: it wins a tie
        if (queued[k] == 0) continue;
        const std::size_t padding = (0 - position) & ((std::size_t{1} << k) - 1);
        if (best == 4 || padding < best_padding) {
          best = k;
          best_padding = padding;
        }
      }
      const auto field = static_cast<std::size_t>(std::countr_zero(queued[best]));
      queued[best] &= queued[best] - 1;
      push(fields_[field]);
    }
    return fbb_.EndTable(start);
  }

 private:
  // The widest table (Welcome) has 14 fields.
  static constexpr std::size_t kMaxFields = 16;

  struct Field {
    flatbuffers::voffset_t slot;
    uint8_t size;  // 1, 2, 4 or 8
    bool is_offset;
    uint64_t bits;
  };

  void add(flatbuffers::voffset_t slot, std::size_t size, bool is_offset, uint64_t value) {
    queued_[static_cast<std::size_t>(std::countr_zero(size))] |= uint32_t{1} << count_;
    fields_[count_++] = Field{slot, static_cast<uint8_t>(size), is_offset, value};
  }

  // The bytes of a scalar are its bits in little-endian order whatever its type, so pushing
  // the unsigned integer of the same size writes exactly the scalar.
  void push(const Field& f) {
    if (f.is_offset) {
      fbb_.AddOffset(f.slot,
                     flatbuffers::Offset<void>(static_cast<flatbuffers::uoffset_t>(f.bits)));
      return;
    }
    switch (f.size) {
      case 1:
        fbb_.AddElement<uint8_t>(f.slot, static_cast<uint8_t>(f.bits));
        break;
      case 2:
        fbb_.AddElement<uint16_t>(f.slot, static_cast<uint16_t>(f.bits));
        break;
      case 4:
        fbb_.AddElement<uint32_t>(f.slot, static_cast<uint32_t>(f.bits));
        break;
      default:
        fbb_.AddElement<uint64_t>(f.slot, f.bits);
        break;
    }
  }

  flatbuffers::FlatBufferBuilder& fbb_;
  std::array<Field, kMaxFields> fields_{};
  std::array<uint32_t, 4> queued_{};  // bit i of queued_[k]: field i is 2^k bytes
  std::size_t count_ = 0;
};

static_assert(FLATBUFFERS_LITTLEENDIAN, "TableWriter::push writes scalars as little-endian bits");

// Empty vectors are not written: an absent field costs nothing and decodes as empty.
template <typename T>
flatbuffers::Offset<flatbuffers::Vector<T>> vector_or_absent(flatbuffers::FlatBufferBuilder& fbb,
                                                             std::span<const T> v) {
  if (v.empty()) return 0;
  return fbb.CreateVector(v.data(), v.size());
}

template <typename T>
flatbuffers::Offset<flatbuffers::Vector<T>> vector_or_absent(flatbuffers::FlatBufferBuilder& fbb,
                                                             const std::vector<T>& v) {
  return vector_or_absent(fbb, std::span<const T>(v));
}

flatbuffers::Offset<flatbuffers::String> string_or_absent(flatbuffers::FlatBufferBuilder& fbb,
                                                          const std::string& s) {
  if (s.empty()) return 0;
  return fbb.CreateString(s);
}

template <typename E>
uint8_t u8(E e) {
  return static_cast<uint8_t>(e);
}

std::span<const uint8_t> finish(flatbuffers::FlatBufferBuilder& fbb, uint64_t session,
                                fb::Body type, flatbuffers::uoffset_t body) {
  TableWriter t(fbb);
  t.scalar<uint16_t>(fb::Envelope::VT_VERSION, kProtocolVersion, 1);
  t.scalar<uint64_t>(fb::Envelope::VT_SESSION, session, 0);
  t.scalar<uint8_t>(fb::Envelope::VT_BODY_TYPE, u8(type), 0);
  t.offset(fb::Envelope::VT_BODY, flatbuffers::Offset<void>(body));
  fb::FinishEnvelopeBuffer(fbb, flatbuffers::Offset<fb::Envelope>(t.finish()));
  return {fbb.GetBufferPointer(), fbb.GetSize()};
}

}  // namespace

Encoder::Encoder(uint64_t session) : session_(session) {}

std::span<const uint8_t> Encoder::encode(const Join& m) {
  clear();
  const auto arch = string_or_absent(fbb_, m.arch);
  const auto model = string_or_absent(fbb_, m.model);
  TableWriter t(fbb_);
  t.scalar<uint32_t>(fb::Join::VT_WORKER_ID, m.worker_id, 0);
  t.scalar<uint64_t>(fb::Join::VT_SAMPLES, m.shard_rows, 0);
  t.scalar<uint64_t>(fb::Join::VT_DIM, m.dim, 0);
  t.scalar<uint32_t>(fb::Join::VT_CAPABILITIES, m.capabilities, 0);
  t.offset(fb::Join::VT_ARCH, arch);
  t.scalar<double>(fb::Join::VT_SMOOTHNESS, m.smoothness.L, 0.0);
  t.scalar<double>(fb::Join::VT_SMOOTHNESS_MEAN_SQ, m.smoothness.L_mean_sq, 0.0);
  t.scalar<double>(fb::Join::VT_SMOOTHNESS_MAX, m.smoothness.L_max, 0.0);
  t.offset(fb::Join::VT_MODEL, model);
  t.scalar<uint32_t>(fb::Join::VT_SHARD_COUNT, m.shard_count, 0);
  return finish(fbb_, session_, fb::Body::Join, t.finish());
}

std::span<const uint8_t> Encoder::encode(const Welcome& m) {
  clear();
  const methods::MethodConfig& c = m.config;
  const auto compressor = string_or_absent(fbb_, c.compressor);
  TableWriter t(fbb_);
  t.scalar<uint32_t>(fb::Welcome::VT_WORKER_ID, m.worker_id, 0);
  t.scalar<uint8_t>(fb::Welcome::VT_METHOD, u8(c.method), u8(fb::Method::Marina));
  t.offset(fb::Welcome::VT_COMPRESSOR, compressor);
  t.scalar<uint32_t>(fb::Welcome::VT_WORKERS, c.workers, 1);
  t.scalar<uint64_t>(fb::Welcome::VT_DIM, c.dim, 0);
  t.scalar<uint64_t>(fb::Welcome::VT_SEED, c.seed, 0);
  t.scalar<double>(fb::Welcome::VT_GAMMA, c.gamma, 0.0);
  t.scalar<double>(fb::Welcome::VT_P, c.p, 1.0);
  t.scalar<double>(fb::Welcome::VT_ALPHA, c.alpha, 0.0);
  t.scalar<uint64_t>(fb::Welcome::VT_BATCH, c.batch, 1);
  t.scalar<uint64_t>(fb::Welcome::VT_ONLINE_BATCH, c.online_batch, 0);
  t.scalar<uint32_t>(fb::Welcome::VT_CLIENTS, c.clients, 0);
  t.scalar<double>(fb::Welcome::VT_INIT_SCALE, c.init_scale, 0.0);
  t.scalar<uint8_t>(fb::Welcome::VT_BATCH_SAMPLING, u8(c.batch_sampling),
                    u8(fb::BatchSampling::WithReplacement));
  return finish(fbb_, session_, fb::Body::Welcome, t.finish());
}

std::span<const uint8_t> Encoder::encode(const methods::Broadcast& m) {
  clear();
  const auto participants = vector_or_absent(fbb_, m.participants);
  const auto dropped = vector_or_absent(fbb_, m.dropped);
  // Only the vectors that belong to the update kind go out, so stale contents of reused
  // buffers never reach the wire.
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> indices = 0;
  flatbuffers::Offset<flatbuffers::Vector<double>> values = 0;
  flatbuffers::Offset<flatbuffers::Vector<double>> dense = 0;
  switch (m.update.kind) {
    case methods::UpdateKind::kNone:
      break;
    case methods::UpdateKind::kDense:
      dense = vector_or_absent(fbb_, m.update.dense_values());
      break;
    case methods::UpdateKind::kDelta:
      indices = vector_or_absent(fbb_, m.update.delta_indices());
      values = vector_or_absent(fbb_, m.update.delta_values());
      break;
  }
  TableWriter t(fbb_);
  t.scalar<uint64_t>(fb::Broadcast::VT_ROUND, m.round, 0);
  t.scalar<uint8_t>(fb::Broadcast::VT_FULL_SYNC, m.full_sync ? 1 : 0, 0);
  t.scalar<uint64_t>(fb::Broadcast::VT_ROUND_SEED, m.round_seed, 0);
  t.offset(fb::Broadcast::VT_PARTICIPANTS, participants);
  t.scalar<uint8_t>(fb::Broadcast::VT_UPDATE_KIND, u8(m.update.kind), u8(fb::UpdateKind::None));
  t.offset(fb::Broadcast::VT_UPDATE_INDICES, indices);
  t.offset(fb::Broadcast::VT_UPDATE_VALUES, values);
  t.offset(fb::Broadcast::VT_UPDATE_DENSE, dense);
  t.offset(fb::Broadcast::VT_DROPPED, dropped);
  return finish(fbb_, session_, fb::Body::Broadcast, t.finish());
}

namespace {

// What encode(Reply) writes for a payload: only the fields of its kind (as for broadcasts).
struct ReplyParts {
  std::span<const float> values;
  std::span<const uint32_t> indices;
  std::span<const double> dense;
  std::span<const int8_t> levels;
  double norm = 0.0;
  uint32_t levels_s = 0;
};

ReplyParts parts_of(const compress::Payload& p) {
  ReplyParts r;
  switch (p.kind) {
    case compress::PayloadKind::kDense64:
      r.dense = p.dense_values();
      break;
    case compress::PayloadKind::kDense32:
    case compress::PayloadKind::kSeeded:
      r.values = p.value_view();
      break;
    case compress::PayloadKind::kSparse:
      r.indices = p.index_view();
      r.values = p.value_view();
      break;
    case compress::PayloadKind::kQuantized:
      r.indices = p.index_view();
      r.levels = p.level_view();
      r.norm = p.norm;
      r.levels_s = p.levels_s;
      break;
  }
  return r;
}

// Writes a vector's values over those of an encoded vector of the same length.
template <typename T>
void overwrite(flatbuffers::Table& table, flatbuffers::voffset_t slot, std::span<const T> v) {
  if (v.empty()) return;  // not written
  std::memcpy(table.GetPointer<flatbuffers::Vector<T>*>(slot)->data(), v.data(), v.size_bytes());
}

}  // namespace

std::span<const uint8_t> Encoder::encode(const methods::Reply& m) {
  const compress::Payload& p = m.payload;
  const ReplyParts parts = parts_of(p);
  const uint8_t kind = u8(p.kind), seeded = u8(fb::PayloadKind::Seeded);
  // The scalars in schema order with their defaults: what TableWriter::scalar skips.
  const ReplyShape shape{
      session_,
      (m.worker != 0 ? 1u : 0u) | (m.round != 0 ? 2u : 0u) | (m.oracle_calls != 0 ? 4u : 0u) |
          (p.dim != 0 ? 8u : 0u) | (kind != seeded ? 16u : 0u) | (m.local_loss ? 32u : 0u) |
          (bits(parts.norm) != bits(0.0) ? 64u : 0u) | (parts.levels_s != 0 ? 128u : 0u),
      kind,
      parts.values.size(),
      parts.indices.size(),
      parts.dense.size(),
      parts.levels.size()};
  if (reply_shape_ == shape) {
    // The builder holds a reply of this shape: the same bytes but for the values.
    auto* body = flatbuffers::GetMutableRoot<flatbuffers::Table>(fbb_.GetBufferPointer())
                     ->GetPointer<flatbuffers::Table*>(fb::Envelope::VT_BODY);
    body->SetField<uint32_t>(fb::Reply::VT_WORKER, m.worker);
    body->SetField<uint64_t>(fb::Reply::VT_ROUND, m.round);
    body->SetField<uint64_t>(fb::Reply::VT_ORACLE_CALLS, m.oracle_calls);
    body->SetField<uint32_t>(fb::Reply::VT_DIM, p.dim);
    if (m.local_loss) body->SetField<double>(fb::Reply::VT_LOCAL_LOSS, *m.local_loss);
    body->SetField<double>(fb::Reply::VT_NORM, parts.norm);
    body->SetField<uint32_t>(fb::Reply::VT_LEVELS_S, parts.levels_s);
    overwrite(*body, fb::Reply::VT_VALUES, parts.values);
    overwrite(*body, fb::Reply::VT_INDICES, parts.indices);
    overwrite(*body, fb::Reply::VT_DENSE, parts.dense);
    overwrite(*body, fb::Reply::VT_LEVELS, parts.levels);
    return {fbb_.GetBufferPointer(), fbb_.GetSize()};
  }
  clear();
  // Indices before values: the order (and so the bytes) of every earlier encoder.
  const auto indices = vector_or_absent(fbb_, parts.indices);
  const auto values = vector_or_absent(fbb_, parts.values);
  const auto dense = vector_or_absent(fbb_, parts.dense);
  const auto levels = vector_or_absent(fbb_, parts.levels);
  TableWriter t(fbb_);
  t.scalar<uint32_t>(fb::Reply::VT_WORKER, m.worker, 0);
  t.scalar<uint64_t>(fb::Reply::VT_ROUND, m.round, 0);
  t.scalar<uint64_t>(fb::Reply::VT_ORACLE_CALLS, m.oracle_calls, 0);
  t.scalar<uint32_t>(fb::Reply::VT_DIM, p.dim, 0);
  t.offset(fb::Reply::VT_VALUES, values);
  t.scalar<uint8_t>(fb::Reply::VT_KIND, kind, seeded);
  t.offset(fb::Reply::VT_INDICES, indices);
  t.optional(fb::Reply::VT_LOCAL_LOSS, m.local_loss);
  t.offset(fb::Reply::VT_DENSE, dense);
  t.offset(fb::Reply::VT_LEVELS, levels);
  t.scalar<double>(fb::Reply::VT_NORM, parts.norm, 0.0);
  t.scalar<uint32_t>(fb::Reply::VT_LEVELS_S, parts.levels_s, 0);
  const auto out = finish(fbb_, session_, fb::Body::Reply, t.finish());
  reply_shape_ = shape;
  return out;
}

std::span<const uint8_t> Encoder::encode(const ResyncRequest& m) {
  clear();
  TableWriter t(fbb_);
  t.scalar<uint32_t>(fb::ResyncRequest::VT_WORKER, m.worker, 0);
  t.scalar<uint64_t>(fb::ResyncRequest::VT_HAVE_ROUND, m.have_round, 0);
  t.scalar<uint64_t>(fb::ResyncRequest::VT_WANT_ROUND, m.want_round, 0);
  return finish(fbb_, session_, fb::Body::ResyncRequest, t.finish());
}

std::span<const uint8_t> Encoder::encode(const methods::Snapshot& m) {
  clear();
  const auto x = vector_or_absent(fbb_, m.x);
  const auto aux = vector_or_absent(fbb_, m.aux);
  const auto x_prev = vector_or_absent(fbb_, m.x_prev);
  const auto worker_aux = vector_or_absent(fbb_, m.worker_aux);
  TableWriter t(fbb_);
  t.scalar<uint64_t>(fb::ResyncResponse::VT_ROUND, m.round, 0);
  t.offset(fb::ResyncResponse::VT_X, x);
  t.offset(fb::ResyncResponse::VT_AUX, aux);
  t.offset(fb::ResyncResponse::VT_X_PREV, x_prev);
  t.offset(fb::ResyncResponse::VT_WORKER_AUX, worker_aux);
  return finish(fbb_, session_, fb::Body::ResyncResponse, t.finish());
}

std::span<const uint8_t> Encoder::encode(const Heartbeat& m) {
  clear();
  TableWriter t(fbb_);
  t.scalar<uint32_t>(fb::Heartbeat::VT_WORKER, m.worker, 0);
  t.scalar<uint64_t>(fb::Heartbeat::VT_ROUND, m.round, 0);
  return finish(fbb_, session_, fb::Body::Heartbeat, t.finish());
}

std::span<const uint8_t> Encoder::encode(const Bye& m) {
  clear();
  const auto reason = string_or_absent(fbb_, m.reason);
  TableWriter t(fbb_);
  t.scalar<uint32_t>(fb::Bye::VT_WORKER, m.worker, 0);
  t.offset(fb::Bye::VT_REASON, reason);
  return finish(fbb_, session_, fb::Body::Bye, t.finish());
}

}  // namespace marina::wire
