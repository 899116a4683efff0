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
      return value_view().size();
    case PayloadKind::kQuantized:
      return index_view().size() + 1;  // + the norm
  }
  return 0;
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
  received.forget();
}

}  // namespace marina::compress
