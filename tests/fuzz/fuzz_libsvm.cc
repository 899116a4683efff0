// libFuzzer harness: the LibSVM reader (data::parse_libsvm, the code path of read_libsvm) on
// arbitrary text. Data files come from outside the project, and every worker parses one.
//
// Beyond "no crash, no UB": malformed text is reported as data::ParseError and as nothing else,
// and the two-pass shard reader agrees with the one-pass reader. Each shard of a shuffled split
// has rows/count rows, the file's d, and row k of shard i equal to row order[i·m + k] of the
// whole file, which is what makes workers that each read their own shard train on one dataset.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "marina/data/dataset.h"

namespace {

using marina::fuzz::bug;
using namespace marina::data;

constexpr const char* kHarness = "fuzz_libsvm";
constexpr std::size_t kShards = 3;
constexpr uint64_t kShuffleSeed = 7;

bool same_row(const Dataset& a, Eigen::Index ra, const Dataset& b, Eigen::Index rb) {
  if (a.y[ra] != b.y[rb]) return false;
  SparseMatrix::InnerIterator ia(a.A, ra);
  SparseMatrix::InnerIterator ib(b.A, rb);
  for (; ia && ib; ++ia, ++ib) {
    if (ia.index() != ib.index() || ia.value() != ib.value()) return false;
  }
  return !ia && !ib;
}

void check_shards(const std::string& text, const Dataset& whole) {
  const std::size_t rows = whole.rows();
  if (rows < kShards) return;
  const std::size_t m = rows / kShards;
  const std::vector<std::size_t> order = row_order(rows, kShuffleSeed);
  for (std::size_t i = 0; i < kShards; ++i) {
    std::istringstream in(text);
    ShardInfo info;
    Dataset shard;
    try {
      shard = parse_libsvm_shard(in, "fuzz", ShardSpec{i, kShards, kShuffleSeed}, &info);
    } catch (const std::exception& e) {
      bug(kHarness, std::string("a shard of a file that parses whole is refused: ") + e.what());
    }
    if (info.file_rows != rows || info.rows_per_shard != m || info.dim != whole.dim()) {
      bug(kHarness, "shard info disagrees with the whole file");
    }
    if (shard.rows() != m || shard.dim() != whole.dim()) {
      bug(kHarness, "shard of " + std::to_string(shard.rows()) + " x " +
                        std::to_string(shard.dim()) + " for m = " + std::to_string(m) +
                        ", d = " + std::to_string(whole.dim()));
    }
    for (std::size_t k = 0; k < m; ++k) {
      const auto r = static_cast<Eigen::Index>(order[i * m + k]);
      if (!same_row(shard, static_cast<Eigen::Index>(k), whole, r)) {
        bug(kHarness, "row " + std::to_string(k) + " of shard " + std::to_string(i) +
                          " is not row " + std::to_string(r) + " of the file");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<Dataset> whole;
  try {
    std::istringstream in(text);
    whole = parse_libsvm(in, "fuzz");
  } catch (const ParseError&) {
    return 0;
  } catch (const std::exception& e) {
    bug(kHarness, std::string("the reader threw something other than ParseError: ") + e.what());
  }
  if (whole->y.size() != static_cast<Eigen::Index>(whole->rows())) {
    bug(kHarness, "labels and rows differ in number");
  }
  for (Eigen::Index r = 0; r < whole->y.size(); ++r) {
    if (whole->y[r] != 1.0 && whole->y[r] != -1.0) bug(kHarness, "a label is not +-1");
  }
  check_shards(text, *whole);
  return 0;
}
