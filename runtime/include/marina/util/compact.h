#pragma once
// Reading a dense sum out as a sparse delta: the nonzero entries of a run of doubles, with
// their indices, in order, the run cleared behind them. The server half does this once per
// round over every entry that may be nonzero (methods/method.cc: sum_to_delta and
// weighted_delta's scanned blocks); at n·K ≈ d that pass took as long as folding the replies.
//
// The scalar loop writes every entry and moves the output position on past nonzeros only (no
// branch to mispredict); it is bound by that position's chain, about 2 cycles an entry. On
// x86-64 with AVX-512 (F and VL) eight entries go at a time: a compare gives the nonzeros' mask
// and a compress packs their values and indices; with AVX2, four, packed by a permutation
// looked up from the mask (util/compact.cc, chosen at run time). All ways give the same
// result: they only move values.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace marina::util {

// Writes the nonzero entries of sum[0, count) to val[0, m) and their indices first + i to
// idx[0, m), ascending, and returns m; sets sum[0, count) to +0.0. idx and val must have room
// for `count` entries: past m they are overwritten with what does not count. "Nonzero" is
// `sum[i] != 0.0` (a NaN counts, −0.0 does not).
std::size_t compact_nonzero(double* sum, std::size_t count, uint32_t first, uint32_t* idx,
                            double* val);

namespace detail {
using CompactFn = std::size_t (*)(double*, std::size_t, uint32_t, uint32_t*, double*);
struct CompactWay {
  const char* name;
  CompactFn fn;
};
// Every way this CPU can run, fastest first and the scalar one last: compact_nonzero takes the
// first. For tests, which check each.
[[nodiscard]] std::vector<CompactWay> compact_ways();
}  // namespace detail

}  // namespace marina::util
