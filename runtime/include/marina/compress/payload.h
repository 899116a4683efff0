#pragma once
// What a compressor produces: the payload of a worker's reply, in the exact form that crosses
// the wire. The compressor rounds to the wire precision itself, so the sender, the receiver and
// the simulator all see the same numbers.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace marina::compress {

enum class PayloadKind : uint8_t {
  kDense64,    // d doubles (full gradients, the identity compressor)
  kDense32,    // d floats (natural compression: powers of two are exact in f32)
  kSparse,     // (index, float value) pairs, indices strictly increasing
  kSeeded,     // float values only; indices re-derived from (round seed, worker)
  kQuantized,  // QSGD: one norm, (index, signed level) pairs for the non-zero levels
};

// "dense64", "dense32", "sparse", "seeded", "quantized".
[[nodiscard]] std::string_view to_string(PayloadKind kind);

// A received message's vectors left where it holds them (wire::Decoder::decode_taking) instead
// of being copied out of it: the message, and where in it each vector is (a byte offset, aligned
// for the element type, and a count). Offsets rather than pointers, so that a copy is whole.
// `at`: doubles (a dense reply's or update's values, a delta's values); `indices_at`: uint32s
// (a delta's or a sparse reply's indices); `floats_at`: a reply's float values; `levels_at`:
// a QSGD reply's int8 levels.
struct InMessage {
  struct Range {
    std::size_t offset = 0;
    std::size_t count = 0;
  };
  std::vector<uint8_t> bytes;
  std::optional<Range> at;
  std::optional<Range> indices_at;
  std::optional<Range> floats_at;
  std::optional<Range> levels_at;

  // Each vector; empty when its range is not set.
  [[nodiscard]] std::span<const double> doubles() const { return view<double>(at); }
  [[nodiscard]] std::span<const uint32_t> indices() const { return view<uint32_t>(indices_at); }
  [[nodiscard]] std::span<const float> floats() const { return view<float>(floats_at); }
  [[nodiscard]] std::span<const int8_t> levels() const { return view<int8_t>(levels_at); }
  // The vector if its range is set, else `copy` (where a decode that did not take the message
  // put it): what the accessors of Payload and methods::ModelUpdate return.
  [[nodiscard]] std::span<const double> doubles_or(std::span<const double> copy) const {
    return view_or(at, copy);
  }
  [[nodiscard]] std::span<const uint32_t> indices_or(std::span<const uint32_t> copy) const {
    return view_or(indices_at, copy);
  }
  [[nodiscard]] std::span<const float> floats_or(std::span<const float> copy) const {
    return view_or(floats_at, copy);
  }
  [[nodiscard]] std::span<const int8_t> levels_or(std::span<const int8_t> copy) const {
    return view_or(levels_at, copy);
  }
  // Whether any vector is read from `bytes`.
  [[nodiscard]] bool holds_any() const { return at || indices_at || floats_at || levels_at; }
  // No vector is read from `bytes` any more (which keep their buffer).
  void forget() {
    at.reset();
    indices_at.reset();
    floats_at.reset();
    levels_at.reset();
  }

 private:
  // The decoder placed the range inside `bytes` and checked its alignment; a vector copied
  // with its owner starts at a new allocation, which is aligned at least as well.
  template <typename T>
  [[nodiscard]] std::span<const T> view(const std::optional<Range>& r) const {
    if (!r) return {};
    return {reinterpret_cast<const T*>(bytes.data() + r->offset), r->count};
  }
  template <typename T>
  [[nodiscard]] std::span<const T> view_or(const std::optional<Range>& r,
                                           std::span<const T> copy) const {
    return r ? view<T>(r) : copy;
  }
};

struct Payload {
  PayloadKind kind = PayloadKind::kDense64;
  uint32_t dim = 0;
  // The vectors, unless in `received` (below):
  std::vector<double> dense;      // kDense64
  std::vector<float> values;      // kDense32, kSparse, kSeeded
  std::vector<uint32_t> indices;  // kSparse, kQuantized
  std::vector<int8_t> levels;     // kQuantized: signed level l, value = norm·l/s
  double norm = 0.0;              // kQuantized
  uint32_t levels_s = 0;          // kQuantized: s
  // Every value is known to be finite: set by whoever has checked that — the compressor that
  // produced the payload, or wire::Decoder at the trust boundary — so that the receiving
  // server half does not read a long vector a second time to check it again (payloads
  // validated once). False for a payload built by hand; clear() resets it, and code that
  // changes the values of a payload must reset it too.
  bool finite = false;
  // A payload as wire::Decoder::decode_taking leaves it, sparing a copy of its vectors: the
  // message it came in, with the ranges of the vectors it has set (`at` for kDense64's values,
  // `floats_at`, `indices_at`, `levels_at` for the others'); `dense`, `values`, `indices` and
  // `levels` are then empty (they keep their buffers for later payloads). Read a payload's
  // vectors through the accessors below, which find them wherever they are.
  InMessage received;

  [[nodiscard]] std::span<const double> dense_values() const { return received.doubles_or(dense); }
  [[nodiscard]] std::span<const float> value_view() const { return received.floats_or(values); }
  [[nodiscard]] std::span<const uint32_t> index_view() const {
    return received.indices_or(indices);
  }
  [[nodiscard]] std::span<const int8_t> level_view() const { return received.levels_or(levels); }

  // Number of values sent, counted as the paper counts communication (32 bits per value,
  // indices not counted): d for dense, nnz for sparse, K for seeded, nnz + 1 for QSGD.
  [[nodiscard]] std::size_t value_count() const;

  void clear();
};

}  // namespace marina::compress
