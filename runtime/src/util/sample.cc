// util/sample.h: Floyd's algorithm for k distinct indices of [0, d), ascending.

#include "marina/util/sample.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include "marina/util/bitmap.h"

namespace marina::util {
namespace {

constexpr uint32_t kEmptySlot = 0xffffffffu;  // never an index: d < 2^32 − 1

// Below k = d/512, membership is a linear-probing hash set (load ≤ 1/2, thread_local, O(k) to
// reset) followed by a sort: O(k log k) time and no O(d) work or memory. From k = d/512 on
// (bitmap_beats_sort) it is a d-bit bitmap, read out in order at the end: O(k + d/64) and no
// sort. Floyd's draws and rules are the same, so the set, and the sorted output, are too.
void sample_sorted_bitmap(Rng& state, uint32_t d, uint32_t k, std::vector<uint32_t>& out) {
  thread_local std::vector<uint64_t> bitmap;
  const std::size_t words = (std::size_t{d} + 63) / 64;
  if (bitmap.size() < words) bitmap.resize(words);
  uint64_t* const bits = bitmap.data();
  std::fill_n(bits, words, uint64_t{0});
  // A local copy of the generator: the bitmap's words are uint64_t like its state, so through
  // the reference every store to the bitmap would make the compiler reload the state.
  Rng rng = state;
  const auto insert_new = [bits](uint64_t v) {  // false if v was present
    uint64_t& w = bits[v >> 6];
    const uint64_t m = uint64_t{1} << (v & 63);
    if (w & m) return false;
    w |= m;
    return true;
  };
  for (uint64_t j = d - k; j < d; ++j) {
    const uint64_t t = rng.below(j + 1);
    if (!insert_new(t)) insert_new(j);  // every earlier sample is < j, so j itself is new
  }
  state = rng;
  read_set_bits(bits, words, k, out);
}

}  // namespace

void sample_sorted(Rng& rng, uint32_t d, uint32_t k, std::vector<uint32_t>& out) {
  if (d >= kEmptySlot || k > d) {
    throw std::invalid_argument("sample_sorted: " + std::to_string(k) + " distinct of " +
                                std::to_string(d));
  }
  if (k == 1) {  // Floyd's single step: one draw, nothing to look up (RandK:1's every round)
    out.assign(1, static_cast<uint32_t>(rng.below(d)));
    return;
  }
  if (bitmap_beats_sort(k, d)) {
    sample_sorted_bitmap(rng, d, k, out);
    return;
  }
  thread_local std::vector<uint32_t> table;
  int bits = 1;
  while ((uint64_t{1} << bits) < 2 * uint64_t{k}) ++bits;
  if (bits >= std::numeric_limits<std::size_t>::digits)
    throw std::length_error("sample_sorted: k too large");
  const std::size_t cap = std::size_t{1} << bits;
  if (table.size() < cap) table.resize(cap);
  std::fill_n(table.begin(), cap, kEmptySlot);
  const auto insert_new = [&](uint32_t v) {  // false if v was present
    std::size_t h = static_cast<std::size_t>((uint64_t{v} * 0x9e3779b97f4a7c15ULL) >> (64 - bits));
    while (table[h] != kEmptySlot) {
      if (table[h] == v) return false;
      h = (h + 1) & (cap - 1);
    }
    table[h] = v;
    return true;
  };
  out.resize(k);
  std::size_t n = 0;
  for (uint64_t j = d - k; j < d; ++j) {
    auto t = static_cast<uint32_t>(rng.below(j + 1));
    if (!insert_new(t)) {  // every earlier sample is < j, so j itself is new
      t = static_cast<uint32_t>(j);
      insert_new(t);
    }
    out[n++] = t;
  }
  std::sort(out.begin(), out.end());
}

}  // namespace marina::util
