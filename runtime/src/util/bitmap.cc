// util/bitmap.h: reading a bitmap's set bits out in ascending order.

#include "marina/util/bitmap.h"

#include <bit>

namespace marina::util {
namespace {

// Stores base + the position of each set bit of w at o[n], o[n + 1], …, kSlots stores per turn
// of the loop. The position moves on only for a set bit, so a store past a word's bits is
// overwritten by the next one (or lands in one slot of slack the caller cuts off): the result
// is that of a bit-by-bit loop. The top bit only keeps countr_zero's argument nonzero (no
// branch for w == 0): where w has a bit, its lowest one is what counts.
template <int kSlots>
inline void read_word(uint64_t w, uint32_t base, uint32_t* o, std::size_t& n) {
  do {
    for (int r = 0; r < kSlots; ++r) {
      o[n] = base + static_cast<uint32_t>(std::countr_zero(w | (uint64_t{1} << 63)));
      n += w != 0;
      w &= w - 1;
    }
  } while (w != 0);
}

}  // namespace

// Read in groups of stores (read_word), the first group even for an empty word: with about one
// bit per word or less, a loop that stops at the last bit would mispredict on most words.
void read_set_bits(const uint64_t* bits, std::size_t words, std::size_t k,
                   std::vector<uint32_t>& out) {
  out.resize(k + 1);
  uint32_t* o = out.data();
  std::size_t n = 0;
  if (uint64_t{k} * 32 <= uint64_t{words} * 64) {
    // At most one bit in 32 set (K ≤ 3% of d): most words are empty, and four stores each are
    // mostly wasted. A first pass lists the non-empty words (no branch: the position moves on
    // only for one), the second reads their bits two stores at a time (a third bit or more, in
    // about 6% of them at 1%, takes another turn of the loop).
    thread_local std::vector<uint32_t> nonempty;
    if (nonempty.size() < words) nonempty.resize(words);
    uint32_t* ne = nonempty.data();
    std::size_t m = 0;
    for (std::size_t i = 0; i < words; ++i) {
      ne[m] = static_cast<uint32_t>(i);
      m += bits[i] != 0;
    }
    for (std::size_t t = 0; t < m; ++t) read_word<2>(bits[ne[t]], ne[t] * 64, o, n);
  } else if (uint64_t{k} * 12 <= uint64_t{words} * 64) {  // up to about 5 bits a word
    for (std::size_t i = 0; i < words; ++i)
      read_word<4>(bits[i], static_cast<uint32_t>(i * 64), o, n);
  } else {
    // Denser (RandK's K = d/10: 6.4 bits a word on average), four slots a turn leave the number
    // of turns to chance, 1 to 3 for most words, and the loop's exit mispredicts on many of
    // them; with eight, 8 words in 10 take one turn. K = d/10 at d = 1e6: 402-434 µs → 391-399
    // for the whole derivation, 3-9 % (docs/PERFORMANCE.md, aggregation).
    for (std::size_t i = 0; i < words; ++i)
      read_word<8>(bits[i], static_cast<uint32_t>(i * 64), o, n);
  }
  out.resize(k);
}

}  // namespace marina::util
