#pragma once
// Whether a long vector of IEEE doubles or floats holds a NaN or an infinity, at the speed of
// reading it. Used where whole vectors are checked: the wire Decoder (every received vector),
// the compressors' input and the server half's check of a payload of unknown origin.
//
// The scan has no branch and no select per element (a select-based reduction chains every
// element through the blend's latency, which made such a scan several times slower than the
// sum it guarded); it lives in src/util/finite.cc, built per instruction set. Which element is
// bad is left to find_non_finite's slow path.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

namespace marina::util {

namespace detail {
bool any_non_finite_f64(const uint8_t* data, std::size_t n);
bool any_non_finite_f32(const uint8_t* data, std::size_t n);
}  // namespace detail

// `data` may be misaligned (elements are loaded with memcpy): a hostile buffer can place
// doubles at 4 mod 8.
template <typename T>
[[nodiscard]] bool any_non_finite(const uint8_t* data, std::size_t n) {
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>);
  static_assert(std::numeric_limits<T>::is_iec559);
  if constexpr (std::is_same_v<T, double>) {
    return detail::any_non_finite_f64(data, n);
  } else {
    return detail::any_non_finite_f32(data, n);
  }
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
