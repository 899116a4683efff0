// util/increasing.h, out of line so that it can be compiled once per x86-64 instruction set and
// picked at load time (as util/finite.cc).
//
// The loop is written one pair at a time and left to GCC's vectorizer (CMakeLists.txt asks for
// it on this file). An unsigned comparison of 32-bit lanes is one instruction with AVX-512 and
// two with AVX2 (max, then equal); SSE2 has only signed ones and flips the sign bits first, so
// the baseline version takes about three times as long per index as the AVX2 one.

#include "marina/util/increasing.h"

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MARINA_SCAN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MARINA_SCAN_CLONES
#endif

namespace marina::util {

MARINA_SCAN_CLONES bool strictly_increasing_u32(const uint8_t* data, std::size_t n) {
  uint32_t bad = 0;
#pragma GCC unroll 2
  for (std::size_t i = 1; i < n; ++i) {
    uint32_t now, before;
    std::memcpy(&now, data + i * sizeof(uint32_t), sizeof now);
    std::memcpy(&before, data + (i - 1) * sizeof(uint32_t), sizeof before);
    bad |= now <= before ? 1u : 0u;
  }
  return bad == 0;
}

}  // namespace marina::util
