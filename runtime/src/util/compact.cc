// util/compact.h: the nonzeros of a run of doubles with their indices, per instruction set.

#include "marina/util/compact.h"

#include <array>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MARINA_COMPACT_X86 1
#include <immintrin.h>
#endif

namespace marina::util {
namespace {

std::size_t compact_scalar(double* __restrict sum, std::size_t count, uint32_t first,
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

#ifdef MARINA_COMPACT_X86
// In both vector ways each turn stores a whole vector of values and of indices at position m,
// of which the first popcount(mask) count; the next turn writes over the rest. m never passes
// the entries read, so the stores stay within idx/val[0, count). The compare is
// unordered-or-not-equal: true for NaN, as the scalar `!=` is.

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
    const __mmask8 nonzero = _mm512_cmp_pd_mask(v, zero, _CMP_NEQ_UQ);
    _mm512_storeu_pd(val + m, _mm512_maskz_compress_pd(nonzero, v));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + m),
                        _mm256_maskz_compress_epi32(nonzero, lanes));
    _mm512_storeu_pd(sum + i, zero);
    m += static_cast<std::size_t>(__builtin_popcount(nonzero));
    lanes = _mm256_add_epi32(lanes, eight);
  }
  return m + compact_scalar(sum + i, count - i, first + static_cast<uint32_t>(i), idx + m, val + m);
}

// Per 4-bit mask of nonzero doubles: the 32-bit lanes that move them to the front (two per
// double) and the lanes of their indices.
struct Permutations {
  alignas(32) std::array<std::array<int32_t, 8>, 16> values{};
  alignas(32) std::array<std::array<int32_t, 8>, 16> indices{};
};
constexpr Permutations make_permutations() {
  Permutations p;
  for (int mask = 0; mask < 16; ++mask) {
    int out = 0;
    for (int b = 0; b < 4; ++b) {
      if (((mask >> b) & 1) == 0) continue;
      p.values[mask][2 * out] = 2 * b;
      p.values[mask][2 * out + 1] = 2 * b + 1;
      p.indices[mask][out] = b;
      ++out;
    }
  }
  return p;
}
constexpr Permutations kPermutations = make_permutations();

__attribute__((target("avx2"))) std::size_t compact_avx2(double* __restrict sum, std::size_t count,
                                                         uint32_t first, uint32_t* __restrict idx,
                                                         double* __restrict val) {
  const __m256d zero = _mm256_setzero_pd();
  const __m256i four = _mm256_setr_epi32(4, 4, 4, 4, 0, 0, 0, 0);
  __m256i lanes = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first)),
                                   _mm256_setr_epi32(0, 1, 2, 3, 0, 0, 0, 0));
  std::size_t m = 0;
  std::size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const __m256d v = _mm256_loadu_pd(sum + i);
    const int nonzero = _mm256_movemask_pd(_mm256_cmp_pd(v, zero, _CMP_NEQ_UQ));
    const __m256i to_front =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kPermutations.values[nonzero].data()));
    const __m256i index_lanes =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kPermutations.indices[nonzero].data()));
    _mm256_storeu_pd(val + m,
                     _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), to_front)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + m),
                     _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lanes, index_lanes)));
    _mm256_storeu_pd(sum + i, zero);
    m += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(nonzero)));
    lanes = _mm256_add_epi32(lanes, four);
  }
  return m + compact_scalar(sum + i, count - i, first + static_cast<uint32_t>(i), idx + m, val + m);
}
#endif

// The ways this CPU can run into `ways` (room for three), fastest first and the scalar one
// last; returns how many. Both users below ask here, so they agree.
std::size_t list_ways(detail::CompactWay* ways) {
  std::size_t n = 0;
#ifdef MARINA_COMPACT_X86
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
    ways[n++] = {"AVX-512", compact_avx512};
  if (__builtin_cpu_supports("avx2")) ways[n++] = {"AVX2", compact_avx2};
#endif
  ways[n++] = {"scalar", compact_scalar};
  return n;
}

detail::CompactFn fastest() {
  std::array<detail::CompactWay, 3> ways{};
  (void)list_ways(ways.data());
  return ways[0].fn;
}

}  // namespace

std::size_t compact_nonzero(double* sum, std::size_t count, uint32_t first, uint32_t* idx,
                            double* val) {
  static const detail::CompactFn way = fastest();
  return way(sum, count, first, idx, val);
}

std::vector<detail::CompactWay> detail::compact_ways() {
  std::array<CompactWay, 3> ways{};
  const std::size_t n = list_ways(ways.data());
  return {ways.begin(), ways.begin() + static_cast<std::ptrdiff_t>(n)};
}

}  // namespace marina::util
