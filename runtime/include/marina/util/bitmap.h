#pragma once
// Sets of indices of [0, d) kept as d-bit bitmaps (bit j of word j / 64), read back in
// ascending order. Marking is one branch-free OR per index and the read-out costs O(k + d/64),
// where sorting the k indices would cost O(k log k): RandK's and PermK's seeded derivations
// (compress/compressor.cc) and the server's record of the entries a round's sparse replies
// touched (methods/method.cc) all come out sorted this way.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace marina::util {

// Whether k indices of [0, d) come out sorted sooner from a d-bit bitmap (O(k + d/64)) than
// from a sort (O(k log k)): from k = d/512 on. (Measured with RandK's derivation, the read-out
// already wins from about k = d/3000; below d/512 the sort avoids the O(d/64) words at little
// cost.) Every place that chooses between the two asks this.
[[nodiscard]] inline bool bitmap_beats_sort(std::size_t k, std::size_t d) {
  return uint64_t{k} * 512 >= uint64_t{d};
}

// Sets bits [first, first + len), a word at a time, and calls on_new(j) for each bit j among
// them that was not set before, ascending. For runs of consecutive indices (RandBlock's
// blocks): marking them one OR per index chains every OR of a word through the store before it,
// some five cycles an index.
template <typename OnNew>
void mark_range(uint64_t* bits, std::size_t first, std::size_t len, OnNew&& on_new) {
  const std::size_t end = first + len;
  while (first < end) {
    const std::size_t lo = first & 63;
    const std::size_t hi = std::min<std::size_t>(64, lo + (end - first));  // bits [lo, hi)
    const uint64_t mask =
        (hi == 64 ? ~uint64_t{0} : (uint64_t{1} << hi) - 1) & (~uint64_t{0} << lo);
    uint64_t& word = bits[first >> 6];
    for (uint64_t fresh = mask & ~word; fresh != 0; fresh &= fresh - 1)
      on_new((first & ~std::size_t{63}) + static_cast<std::size_t>(std::countr_zero(fresh)));
    word |= mask;
    first += hi - lo;
  }
}

// out = the positions of the set bits of bits[0, words), ascending. `k` must be their exact
// number (out is sized from it; a wrong k is a caller's bug, not checked here).
void read_set_bits(const uint64_t* bits, std::size_t words, std::size_t k,
                   std::vector<uint32_t>& out);

}  // namespace marina::util
