#include "marina/compress/payload.h"

namespace marina::compress {

std::string_view to_string(PayloadKind kind) {
  switch (kind) {
    case PayloadKind::kDense64:
      return "dense64";
    case PayloadKind::kDense32:
      return "dense32";
    case PayloadKind::kSparse:
      return "sparse";
    case PayloadKind::kSeeded:
      return "seeded";
    case PayloadKind::kQuantized:
      return "quantized";
  }
  return "unknown";
}

std::size_t Payload::value_count() const {
  switch (kind) {
    case PayloadKind::kDense64:
    case PayloadKind::kDense32:
      return dim;
    case PayloadKind::kSparse:
    case PayloadKind::kSeeded:
      return values.size();
    case PayloadKind::kQuantized:
      return indices.size() + 1;  // + the norm
  }
  return 0;
}

std::span<const double> InMessage::doubles() const {
  if (!at) return {};
  // The decoder placed the range inside `bytes` and checked its alignment; a vector copied
  // with its owner starts at a new allocation, which is aligned at least as well.
  return {reinterpret_cast<const double*>(bytes.data() + at->offset), at->count};
}

std::span<const uint32_t> InMessage::indices() const {
  if (!indices_at) return {};
  return {reinterpret_cast<const uint32_t*>(bytes.data() + indices_at->offset), indices_at->count};
}

void Payload::clear() {
  kind = PayloadKind::kDense64;
  dim = 0;
  dense.clear();  // clear() keeps the capacity: a reused payload does not reallocate
  values.clear();
  indices.clear();
  levels.clear();
  norm = 0.0;
  levels_s = 0;
  finite = false;
  received.bytes.clear();
  received.at.reset();
}

}  // namespace marina::compress
