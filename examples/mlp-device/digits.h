#pragma once
// The handwritten-digits data of the mlp-device example: reading the CSV file and splitting it
// into a held-out test set and one training shard per worker.
//
// The file is scikit-learn's digits.csv (scripts/fetch-data.sh writes data/digits.csv): one
// sample a line, 65 comma-separated integers, the 8x8 pixels (0..16, row by row) then the class
// (0..9); no header. Every worker reads the whole file and derives the same split from the
// seed, so the shards are disjoint and every worker holds the same test set without any
// exchange of data.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace mlp_device {

inline constexpr std::size_t kPixels = 64;
inline constexpr std::size_t kClasses = 10;

// A set of samples.
struct Digits {
  std::vector<double> pixels;   // kPixels per sample, row-major, scaled to [0, 1]
  std::vector<uint8_t> labels;  // 0..kClasses-1
  std::vector<uint32_t> rows;   // the 0-based data row of the file each sample came from

  [[nodiscard]] std::size_t size() const { return labels.size(); }
  [[nodiscard]] const double* sample(std::size_t j) const { return pixels.data() + j * kPixels; }
};

// Reads every sample of the file. Throws std::runtime_error "FILE:LINE: reason" for a line
// that is not 65 integers in range ("FILE: reason" when the file cannot be read or is empty).
// Blank lines are skipped.
[[nodiscard]] Digits read_digits(const std::filesystem::path& file);

struct SplitOptions {
  double test_fraction = 0.2;  // the last round(fraction·rows) shuffled rows; 0 ≤ fraction < 1
  uint64_t seed = 1;           // of the row shuffle
  uint32_t shard = 0;          // this worker keeps training shard I of ...
  uint32_t shards = 1;         // ... N equal contiguous shards (the remainder rows are dropped)
};

struct Split {
  Digits train;  // this worker's shard of the training rows
  Digits test;   // all the test rows
};

// Shuffles the rows with SplitMix64 (the same permutation on every platform), takes the
// test rows off the end and keeps shard I of the rest. Throws std::invalid_argument for
// options out of range or a shard that would be empty.
[[nodiscard]] Split split_digits(const Digits& all, const SplitOptions& options);

// SplitMix64 (Steele, Lea & Flood): tiny and fully specified, so that the shuffle and the
// probe point of the smoothness estimate are the same with every compiler and standard
// library (std::shuffle and the <random> distributions are implementation-defined).
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(uint64_t seed) : state_(seed) {}

  constexpr uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1), 53 random bits.
  constexpr double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n ≥ 1, without the bias of a plain modulo.
  constexpr uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: the short last bucket is rejected
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

 private:
  uint64_t state_;
};

}  // namespace mlp_device
