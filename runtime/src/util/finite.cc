// The scans of util/finite.h, out of line so that they can be compiled once per x86-64
// instruction set and picked at load time.
//
// The loop is written one element at a time and left to GCC's vectorizer (CMakeLists.txt asks
// for it on this file): an OR over integers may be reordered freely, so it becomes a reduction
// over vectors as wide as the target has. On x86-64 the baseline is SSE2, 16 bytes per
// instruction, which reads a vector already in cache at about half the speed of memcpy;
// target_clones adds AVX2 and AVX-512 versions, chosen by the loader (an ifunc) on the CPU the
// program runs on. ARM builds have one version (NEON).

#include "marina/util/finite.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MARINA_SCAN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MARINA_SCAN_CLONES
#endif

namespace marina::util::detail {

namespace {

// A value is not finite exactly when all its exponent bits are set; adding one unit of the
// exponent's lowest bit to the masked exponent then carries into the sign bit.
template <typename U, int kMantissa>
inline bool scan(const uint8_t* data, std::size_t n) {
  constexpr U kExponent = static_cast<U>(~U{0} >> 1) & static_cast<U>(~U{0} << kMantissa);
  constexpr U kUnit = U{1} << kMantissa;
  U all = 0;
  // Unrolled vectors keep two loads in flight per cycle: about 12 % faster from L2.
#pragma GCC unroll 4
  for (std::size_t i = 0; i < n; ++i) {
    U u;
    std::memcpy(&u, data + i * sizeof(U), sizeof u);
    all |= (u & kExponent) + kUnit;
  }
  return (all >> (8 * sizeof(U) - 1)) != 0;
}

}  // namespace

MARINA_SCAN_CLONES bool any_non_finite_f64(const uint8_t* data, std::size_t n) {
  return scan<uint64_t, std::numeric_limits<double>::digits - 1>(data, n);
}

MARINA_SCAN_CLONES bool any_non_finite_f32(const uint8_t* data, std::size_t n) {
  return scan<uint32_t, std::numeric_limits<float>::digits - 1>(data, n);
}

}  // namespace marina::util::detail
