#pragma once
// Whether a vector of uint32 indices is strictly increasing, at about the speed of reading it:
// the wire Decoder's check of every received index vector (a sparse reply's, a delta's). The
// scan has no branch per element; it lives in src/util/increasing.cc, built per instruction set
// as util/finite.h's scan is. Where the order breaks is left to the caller's slow path.

#include <cstddef>
#include <cstdint>

namespace marina::util {

// `data` may be misaligned (elements are loaded with memcpy). True for n ≤ 1.
[[nodiscard]] bool strictly_increasing_u32(const uint8_t* data, std::size_t n);

}  // namespace marina::util
