#pragma once
// A binary-classification dataset: rows a_t ∈ R^d (sparse) with labels y_t ∈ {−1, +1}.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <Eigen/SparseCore>

namespace marina::data {

using SparseMatrix = Eigen::SparseMatrix<double, Eigen::RowMajor, int>;

struct Dataset {
  SparseMatrix A;     // one row per sample, d columns
  Eigen::VectorXd y;  // labels, each −1 or +1
  [[nodiscard]] std::size_t rows() const { return static_cast<std::size_t>(A.rows()); }
  [[nodiscard]] std::size_t dim() const { return static_cast<std::size_t>(A.cols()); }
};

// Thrown for malformed input; what() reads "FILE:LINE: reason" (LINE omitted when the
// problem concerns the whole file, e.g. "FILE: empty file").
class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Which rows of a file to keep, and in which order. A shard is a contiguous slice of the
// (optionally shuffled) row order, so a worker can read just its own rows.
struct ShardSpec {
  std::size_t index = 0;                 // i in [0, count)
  std::size_t count = 1;                 // n
  std::optional<uint64_t> shuffle_seed;  // permute rows before slicing
};

struct ShardInfo {
  std::size_t file_rows = 0;  // data rows in the file
  std::size_t rows_per_shard = 0;
  std::size_t dropped = 0;  // file_rows − count·rows_per_shard, the remainder that is dropped
  std::size_t dim = 0;      // d = largest feature index in the whole file
};

// Reads a LibSVM file: "label idx:val idx:val ...", 1-based strictly increasing indices,
// '#' comments and blank lines allowed, labels ±1, 0/1 or 1/2 (mapped to −1/+1).
// d is the largest feature index of the whole file. Throws ParseError.
[[nodiscard]] Dataset read_libsvm(const std::filesystem::path& file);

// Reads only the rows of one shard (two passes over the file; memory holds only the shard).
// The shard split is contiguous and equal-sized as in the MARINA paper's experiments:
// rows_per_shard = file_rows / count, the remainder rows at the end (after the optional
// shuffle) are dropped. Throws ParseError, and std::invalid_argument when the file has
// fewer rows than shards.
[[nodiscard]] Dataset read_libsvm_shard(const std::filesystem::path& file, const ShardSpec& spec,
                                        ShardInfo* info = nullptr);

// The row order that read_libsvm_shard slices: order[p] is the file row (0-based, counting data
// rows only) at position p. The identity without a seed; with one, a Fisher–Yates shuffle driven
// by util::Rng(derive(seed, {tag(Stream::kShuffle)})), identical on every architecture.
[[nodiscard]] std::vector<std::size_t> row_order(std::size_t file_rows,
                                                 std::optional<uint64_t> shuffle_seed);

// The same readers on any seekable stream (a file is opened and handed to them); `origin` names
// the input in errors ("ORIGIN:LINE: reason"). The shard variant rewinds the stream to where it
// started for its second pass and fails with ParseError when it cannot.
[[nodiscard]] Dataset parse_libsvm(std::istream& in, const std::string& origin);
[[nodiscard]] Dataset parse_libsvm_shard(std::istream& in, const std::string& origin,
                                         const ShardSpec& spec, ShardInfo* info = nullptr);

// Appends a constant feature 1 to every row (d grows by one): the optional bias term.
void append_bias(Dataset& data);

}  // namespace marina::data
