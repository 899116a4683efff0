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
  // `received` is the whole message the payload came in, its values are `dense_in_received`
  // (a byte offset, 8-byte aligned, and a count) of it, and `dense` is not read (it keeps its
  // buffer for later payloads). An offset rather than a pointer, so that a copy of the payload
  // is whole.
  struct Range {
    std::size_t offset = 0;
    std::size_t count = 0;
  };
  std::vector<uint8_t> received;
  std::optional<Range> dense_in_received;

  // The kDense64 values, wherever they are (`dense`, or inside `received`).
  [[nodiscard]] std::span<const double> dense_values() const;

  // Number of values sent, counted as the paper counts communication (32 bits per value,
  // indices not counted): d for dense, nnz for sparse, K for seeded, nnz + 1 for QSGD.
  [[nodiscard]] std::size_t value_count() const;

  void clear();
};

}  // namespace marina::compress
