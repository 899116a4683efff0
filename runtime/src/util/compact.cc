// util/compact.h: the nonzeros of a run of doubles with their indices, per instruction set.

#include "marina/util/compact.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MARINA_COMPACT_AVX512 1
#include <immintrin.h>
#endif

namespace marina::util {
namespace detail {

std::size_t compact_nonzero_scalar(double* __restrict sum, std::size_t count, uint32_t first,
                                   uint32_t* __restrict idx, double* __restrict val) {
  std::size_t m = 0;
  for (std::size_t i = 0; i < count; ++i) {
    idx[m] = first + static_cast<uint32_t>(i);
    val[m] = sum[i];
    m += sum[i] != 0.0;
    sum[i] = 0.0;
  }
  return m;
}

#ifdef MARINA_COMPACT_AVX512
namespace {

// Eight entries a turn. Each turn stores eight values and eight indices at position m, of which
// the first popcount(mask) count; the next turn writes over the rest. m never passes the
// entries read, so the stores stay within idx/val[0, count).
__attribute__((target("avx512f,avx512vl"))) std::size_t compact_avx512(double* __restrict sum,
                                                                       std::size_t count,
                                                                       uint32_t first,
                                                                       uint32_t* __restrict idx,
                                                                       double* __restrict val) {
  const __m512d zero = _mm512_setzero_pd();
  const __m256i eight = _mm256_set1_epi32(8);
  __m256i lanes = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first)),
                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  std::size_t m = 0;
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m512d v = _mm512_loadu_pd(sum + i);
    // Unordered-or-not-equal: true for NaN, as the scalar `!=` is.
    const __mmask8 nonzero = _mm512_cmp_pd_mask(v, zero, _CMP_NEQ_UQ);
    _mm512_storeu_pd(val + m, _mm512_maskz_compress_pd(nonzero, v));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + m),
                        _mm256_maskz_compress_epi32(nonzero, lanes));
    _mm512_storeu_pd(sum + i, zero);
    m += static_cast<std::size_t>(__builtin_popcount(nonzero));
    lanes = _mm256_add_epi32(lanes, eight);
  }
  return m + compact_nonzero_scalar(sum + i, count - i, first + static_cast<uint32_t>(i), idx + m,
                                    val + m);
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return yes;
}

}  // namespace
#endif

bool compact_has_vector_path() {
#ifdef MARINA_COMPACT_AVX512
  return has_avx512();
#else
  return false;
#endif
}

}  // namespace detail

std::size_t compact_nonzero(double* sum, std::size_t count, uint32_t first, uint32_t* idx,
                            double* val) {
#ifdef MARINA_COMPACT_AVX512
  if (detail::has_avx512()) return detail::compact_avx512(sum, count, first, idx, val);
#endif
  return detail::compact_nonzero_scalar(sum, count, first, idx, val);
}

}  // namespace marina::util
