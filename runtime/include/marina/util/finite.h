#pragma once
// Whether a long vector of IEEE doubles or floats holds a NaN or an infinity, at the speed of
// reading it. Used where whole vectors are checked: the wire Decoder (every received vector)
// and the server half's check of a payload of unknown origin.
//
// A value is not finite exactly when all its exponent bits are set; adding one unit of the
// exponent's lowest bit to the masked exponent then carries into the sign bit. That is OR-ed
// over the vector 32 bytes at a time (GCC/Clang vector extensions: SSE2 or NEON) into two
// accumulators, with no branch and no select per element: a select-based reduction chains
// every element through the blend's latency, which made such a scan several times slower than
// the sum it guarded. Which element is bad is left to the caller's slow path.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

namespace marina::util {

// `data` may be misaligned (elements are loaded with memcpy): a hostile buffer can place
// doubles at 4 mod 8.
template <typename T>
[[nodiscard]] bool any_non_finite(const uint8_t* data, std::size_t n) {
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>);
  static_assert(std::numeric_limits<T>::is_iec559);
  using U = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  constexpr int kMantissa = std::numeric_limits<T>::digits - 1;
  typedef U V __attribute__((vector_size(16)));
  constexpr std::size_t kLanes = sizeof(V) / sizeof(U);
  constexpr U kExponent = static_cast<U>(~U{0} >> 1) & static_cast<U>(~U{0} << kMantissa);
  constexpr U kUnit = U{1} << kMantissa;
  V acc0 = {}, acc1 = {};
  std::size_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    V a, b;
    std::memcpy(&a, data + i * sizeof(U), sizeof a);
    std::memcpy(&b, data + (i + kLanes) * sizeof(U), sizeof b);
    acc0 |= (a & kExponent) + kUnit;
    acc1 |= (b & kExponent) + kUnit;
  }
  acc0 |= acc1;
  U all = 0;
  for (std::size_t l = 0; l < kLanes; ++l) all |= acc0[l];
  for (; i < n; ++i) {
    U u;
    std::memcpy(&u, data + i * sizeof(U), sizeof u);
    all |= (u & kExponent) + kUnit;
  }
  return (all >> (8 * sizeof(U) - 1)) != 0;
}

// The position of the first NaN or infinity, if any: the fast scan above, then (only when it
// found one) element by element, for an error message that names the culprit.
template <typename T>
[[nodiscard]] std::optional<std::size_t> find_non_finite(const uint8_t* data, std::size_t n) {
  if (!any_non_finite<T>(data, n)) return std::nullopt;
  for (std::size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, data + i * sizeof(T), sizeof x);
    if (!std::isfinite(x)) return i;
  }
  return std::nullopt;  // not reached: the scan and isfinite agree
}

template <typename T>
[[nodiscard]] std::optional<std::size_t> find_non_finite(const T* values, std::size_t n) {
  return find_non_finite<T>(reinterpret_cast<const uint8_t*>(values), n);
}

}  // namespace marina::util
