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

// Doubles (and a sparse update's indices) left where a received message holds them
// (wire::Decoder::decode_taking) instead of being copied out of it: the message, and where in
// it the values are (`at`: a byte offset, 8-byte aligned, and a count; `indices_at`: 4-byte
// aligned uint32s). Offsets rather than pointers, so that a copy is whole.
struct InMessage {
  struct Range {
    std::size_t offset = 0;
    std::size_t count = 0;
  };
  std::vector<uint8_t> bytes;
  std::optional<Range> at;
  std::optional<Range> indices_at;

  // The values; empty when `at` is not set.
  [[nodiscard]] std::span<const double> doubles() const;
  // The indices; empty when `indices_at` is not set.
  [[nodiscard]] std::span<const uint32_t> indices() const;
  // The values if `at` is set, else `copy` (where a decode that did not take the message put
  // them): what the dense_values() of Payload and methods::ModelUpdate return.
  [[nodiscard]] std::span<const double> doubles_or(const std::vector<double>& copy) const {
    return at ? doubles() : std::span<const double>(copy);
  }
  [[nodiscard]] std::span<const uint32_t> indices_or(const std::vector<uint32_t>& copy) const {
    return indices_at ? indices() : std::span<const uint32_t>(copy);
  }
};

struct Payload {
  PayloadKind kind = PayloadKind::kDense64;
  uint32_t dim = 0;
  std::vector<double> dense;      // kDense64, unless in `received` (below; see dense_values())
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
  // A kDense64 payload as wire::Decoder::decode_taking leaves it, sparing a copy of d doubles:
  // the message it came in, with received.at set, and `dense` not read (it keeps its buffer for
  // later payloads).
  InMessage received;

  // The kDense64 values, wherever they are (`dense`, or inside `received`).
  [[nodiscard]] std::span<const double> dense_values() const { return received.doubles_or(dense); }

  // Number of values sent, counted as the paper counts communication (32 bits per value,
  // indices not counted): d for dense, nnz for sparse, K for seeded, nnz + 1 for QSGD.
  [[nodiscard]] std::size_t value_count() const;

  void clear();
};

}  // namespace marina::compress
