// Decoding payloads on the receiving side. A received payload was validated where it entered
// (wire::Decoder: its shape, index order and range, finite values; Compressor::mismatch: the
// compressor's kind and parameters), so this only checks what the arithmetic itself can see:
// the accumulator's dimension, a seeded payload's count against the indices derived here, and
// that no updated entry becomes non-finite. Either the whole payload is added or nothing is.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "marina/compress/compressor.h"
#include "marina/util/finite.h"

namespace marina::compress {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("payload: " + what);
}

std::string str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// acc[index(i)] += weight·value(i) for i < count, or nothing at all if a value or an updated
// entry would not be finite. Indices are already checked.
template <class Index, class Value>
void add(std::size_t count, Index index, Value value, double weight,
         Eigen::Ref<Eigen::VectorXd> acc) {
  for (std::size_t i = 0; i < count; ++i) {
    const double x = value(i);
    const auto j = static_cast<Eigen::Index>(index(i));
    if (!std::isfinite(x)) {
      fail("value " + str(x) + " at index " + std::to_string(j) + " is not finite");
    }
    // An entry that is already not finite is the caller's, not this payload's, doing.
    if (std::isfinite(acc[j]) && !std::isfinite(acc[j] + weight * x)) {
      fail("value " + str(x) + " at index " + std::to_string(j) + " overflows the accumulator");
    }
  }
  for (std::size_t i = 0; i < count; ++i) {
    acc[static_cast<Eigen::Index>(index(i))] += weight * value(i);
  }
}

// A kSeeded payload's count against the `drawn` indices derived for it.
void check_seeded_count(const Payload& p, const Compressor& q, std::size_t drawn) {
  if (p.value_view().size() != drawn) {
    fail("seeded payload has " + std::to_string(p.value_view().size()) + " values, " + q.name() +
         " draws " + std::to_string(drawn) + " this round");
  }
}

// A kSeeded payload's indices, derived into `out` (throws for a compressor without seeded
// payloads), and its count checked against them.
void derive_seeded(const Payload& p, const Compressor& q, const Context& ctx,
                   std::vector<uint32_t>& out) {
  q.seeded_indices(ctx, p.dim, out);
  check_seeded_count(p, q, out.size());
}

// Adds a validated `p` (see accumulate in compressor.h). For kSeeded the indices are re-derived
// into `seeded`, and their count must match the values'.
void check_and_add(const Payload& p, const Compressor& q, const Context& ctx, double weight,
                   Eigen::Ref<Eigen::VectorXd> acc, std::vector<uint32_t>& seeded) {
  const std::size_t d = p.dim;
  const auto dense = [](std::size_t i) { return i; };
  const auto f32 = [v = p.value_view()](std::size_t i) { return static_cast<double>(v[i]); };
  const auto index = [ix = p.index_view()](std::size_t i) { return ix[i]; };
  switch (p.kind) {
    case PayloadKind::kDense64:
      add(
          d, dense, [v = p.dense_values()](std::size_t i) { return v[i]; }, weight, acc);
      return;
    case PayloadKind::kDense32:
      add(d, dense, f32, weight, acc);
      return;
    case PayloadKind::kSparse:
      add(p.index_view().size(), index, f32, weight, acc);
      return;
    case PayloadKind::kSeeded:
      derive_seeded(p, q, ctx, seeded);
      add(
          seeded.size(), [&seeded](std::size_t i) { return seeded[i]; }, f32, weight, acc);
      return;
    case PayloadKind::kQuantized: {
      const double sd = p.levels_s;
      add(
          p.index_view().size(), index,
          [&p, l = p.level_view(), sd](std::size_t i) { return p.norm * l[i] / sd; }, weight, acc);
      return;
    }
  }
  fail("unknown kind " + std::to_string(static_cast<unsigned>(p.kind)));  // not from a decoder
}

// The entries decode() would leave for a sparse payload, checked exactly as add() checks them
// against a zero accumulator with weight 1 (where only a non-finite value can fail): value(i)
// stored as 0 + 1·value(i), so a −0.0 becomes +0.0 as it does in the dense vector.
// A payload already known finite (Payload::finite) is only converted.
template <class Value>
void collect(std::span<const uint32_t> indices, Value value, bool known_finite,
             std::vector<double>& out) {
  const std::size_t count = indices.size();
  out.resize(count);
  if (known_finite) {
    for (std::size_t i = 0; i < count; ++i) out[i] = 0.0 + 1.0 * value(i);
    return;
  }
  for (std::size_t i = 0; i < count; ++i) {
    const double x = value(i);
    if (!std::isfinite(x)) {
      fail("value " + str(x) + " at index " + std::to_string(indices[i]) + " is not finite");
    }
    out[i] = 0.0 + 1.0 * x;
  }
}

// Capacity for the caller's buffers: the exact count the first time, the whole dimension when a
// later payload needs more (a data-dependent count such as QSGD's non-zeros), so buffers stop
// growing after that and steady-state rounds do not allocate.
template <class T>
void reserve_for(std::vector<T>& v, std::size_t count, std::size_t d) {
  if (v.capacity() < count) v.reserve(v.capacity() == 0 ? count : std::max(count, d));
}

// Whether a receiver keeps `message` itself and gives back out.message in its place. Always
// when out.message is at least as large: an exchange of equals, which neither side ever has to
// grow back. Otherwise only a buffer about the message's size (at most twice), for which
// out.message is first grown to as much (the first time, and when the receiver's buffers
// grew): a receive buffer grown for a much larger message stays with the receiver rather than
// make every receiver's buffer that large.
bool keep(const std::vector<uint8_t>& message, SparseValues& out) {
  const std::size_t capacity = message.capacity();
  if (out.message.capacity() >= capacity) return true;
  if (capacity > 2 * message.size()) return false;
  out.message.reserve(capacity);
  return true;
}

}  // namespace

void accumulate(const Payload& payload, const Compressor& q, const Context& ctx, double weight,
                Eigen::Ref<Eigen::VectorXd> acc) {
  if (!std::isfinite(weight)) throw std::invalid_argument("accumulate: weight is not finite");
  if (static_cast<std::size_t>(acc.size()) != payload.dim) {
    fail("dimension " + std::to_string(payload.dim) +
         " does not match d = " + std::to_string(acc.size()));
  }
  thread_local std::vector<uint32_t> seeded;
  check_and_add(payload, q, ctx, weight, acc, seeded);
}

// Sizes `out` from payload.dim (a dense payload must hold that many values, but a sparse one may
// claim any d < 2^32): for untrusted input prefer accumulate into a vector of the expected size.
// On an error `out` is left zero.
void decode(const Payload& payload, const Compressor& q, const Context& ctx, Eigen::VectorXd& out) {
  out.setZero(payload.dim);
  accumulate(payload, q, ctx, 1.0, out);
}

bool decode_sparse(const Payload& p, const Compressor& q, const Context& ctx,
                   std::vector<uint32_t>& indices, std::vector<double>& values) {
  const std::size_t d = p.dim;
  const auto f32 = [v = p.value_view()](std::size_t i) { return static_cast<double>(v[i]); };
  const auto sent_indices = p.index_view();
  switch (p.kind) {
    case PayloadKind::kSparse:
      reserve_for(indices, sent_indices.size(), d);
      reserve_for(values, sent_indices.size(), d);
      indices.assign(sent_indices.begin(), sent_indices.end());
      collect(indices, f32, p.finite, values);
      return true;
    case PayloadKind::kSeeded:
      // Derived in place: a seeded compressor draws the same count for a worker every round,
      // so `indices` stops growing after the first.
      derive_seeded(p, q, ctx, indices);
      reserve_for(values, indices.size(), d);
      collect(indices, f32, p.finite, values);
      return true;
    case PayloadKind::kQuantized: {
      const double sd = p.levels_s;
      reserve_for(indices, sent_indices.size(), d);
      reserve_for(values, sent_indices.size(), d);
      indices.assign(sent_indices.begin(), sent_indices.end());
      collect(
          indices, [&p, l = p.level_view(), sd](std::size_t i) { return p.norm * l[i] / sd; },
          p.finite, values);
      return true;
    }
    default:
      return false;
  }
}

bool take_sparse(const Payload& p, const Compressor& q, const Context& ctx, SparseValues& out,
                 Payload* recycle, bool indices_derived) {
  const bool seeded = p.kind == PayloadKind::kSeeded;
  if (!seeded && p.kind != PayloadKind::kSparse) return false;
  const std::span<const float> sent = p.value_view();
  const std::span<const uint32_t> sent_indices = p.index_view();
  const std::size_t count = sent.size();
  if (!seeded && sent_indices.size() != count)
    fail(std::to_string(sent_indices.size()) + " indices for " + std::to_string(count) + " values");
  // Everything that can fail before anything is exchanged or copied.
  if (seeded && indices_derived)
    check_seeded_count(p, q, out.idx.size());
  else if (seeded)
    derive_seeded(p, q, ctx, out.indices);
  const std::span<const uint32_t> idx =
      !seeded ? sent_indices : (indices_derived ? out.idx : std::span<const uint32_t>(out.indices));
  if (!p.finite) {
    if (const auto i = util::find_non_finite(sent.data(), count)) {
      fail("value " + str(static_cast<double>(sent[*i])) + " at index " + std::to_string(idx[*i]) +
           " is not finite");
    }
  }
  if (recycle != nullptr && recycle->received.floats_at && keep(recycle->received.bytes, out)) {
    // Left in the message they came in: the message changes hands, its previous buffer goes
    // back to be received into. Swapping vectors moves no element, so the views stay valid.
    out.message.swap(recycle->received.bytes);
    recycle->received.forget();
    recycle->received.bytes.clear();
    recycle->finite = false;
    out.val = sent;
    out.idx = idx;
    return true;
  }
  // The payload's own vectors are exchanged once there is a buffer of that size to give back
  // (from the second reply on): they keep being reused by whoever fills them next. Values in a
  // message that stays with the payload are copied.
  if (recycle != nullptr && !recycle->received.floats_at && out.values.capacity() >= count &&
      (seeded || out.indices.capacity() >= count)) {
    out.values.swap(recycle->values);
    if (!seeded) out.indices.swap(recycle->indices);
    recycle->finite = false;
  } else {
    out.values.assign(sent.begin(), sent.end());
    if (!seeded) out.indices.assign(sent_indices.begin(), sent_indices.end());
  }
  out.val = out.values;
  out.idx = seeded ? idx : std::span<const uint32_t>(out.indices);
  return true;
}

void decode_dense(const Payload& p, DenseValues& out, Payload* recycle) {
  const std::size_t d = p.dim;
  const bool f64 = p.kind == PayloadKind::kDense64;
  const std::span<const double> v64 = p.dense_values();
  const std::span<const float> v32 = p.value_view();
  if ((f64 ? v64.size() : v32.size()) != d)
    fail(std::to_string(f64 ? v64.size() : v32.size()) + " values for d = " + std::to_string(d));
  // A payload not known finite is read once more for that (at memory speed, see
  // util/finite.h).
  if (!p.finite) {
    if (const auto j =
            f64 ? util::find_non_finite(v64.data(), d) : util::find_non_finite(v32.data(), d)) {
      const double v = f64 ? v64[*j] : static_cast<double>(v32[*j]);
      fail("value " + str(v) + " at index " + std::to_string(*j) + " is not finite");
    }
  }
  if (f64 && recycle) {
    if (recycle->received.at) {
      // The pointer stays valid: swapping vectors moves no element.
      out.message.swap(recycle->received.bytes);
      out.data = v64.data();
      recycle->received.forget();
      recycle->received.bytes.clear();
      recycle->finite = false;
      return;
    }
    if (out.copy.capacity() >= d) {
      out.copy.swap(recycle->dense);  // recycle->dense: capacity d, contents unspecified
      out.data = out.copy.data();
      recycle->finite = false;
      return;
    }
  }
  out.copy.resize(d);
  if (f64) {
    for (std::size_t j = 0; j < d; ++j) out.copy[j] = 0.0 + v64[j];
  } else {
    for (std::size_t j = 0; j < d; ++j) out.copy[j] = 0.0 + static_cast<double>(v32[j]);
  }
  out.data = out.copy.data();
}

}  // namespace marina::compress
