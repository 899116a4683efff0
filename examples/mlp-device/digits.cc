// Reading and splitting the digits CSV (see digits.h).

#include "digits.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace mlp_device {
namespace {

constexpr int kMaxPixel = 16;
constexpr std::size_t kFields = kPixels + 1;

std::string where(const std::filesystem::path& file, std::size_t line) {
  return file.string() + ":" + std::to_string(line) + ": ";
}

// Parses one data line into 64 pixels and a label; returns the reason it is invalid, or "".
std::string parse_line(std::string_view text, double* pixels, uint8_t& label) {
  // The count first, so that a shifted line is reported as such rather than by a value that
  // happens to land on the class column.
  const auto found = static_cast<std::size_t>(std::count(text.begin(), text.end(), ',')) + 1;
  if (found != kFields)
    return "expected " + std::to_string(kFields) +
           " comma-separated values (64 pixels, then the class), found " + std::to_string(found);
  std::size_t pos = 0;
  for (std::size_t field = 1; field <= kFields; ++field) {
    const std::size_t comma = field < kFields ? text.find(',', pos) : text.size();
    const std::string_view token = text.substr(pos, comma - pos);
    pos = comma + 1;
    int value = 0;
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (token.empty() || ec != std::errc{} || end != token.data() + token.size())
      return "value " + std::to_string(field) + " '" + std::string(token) + "' is not an integer";
    if (field <= kPixels) {
      if (value < 0 || value > kMaxPixel)
        return "pixel " + std::to_string(field) + " is " + std::to_string(value) + ", not in 0.." +
               std::to_string(kMaxPixel);
      pixels[field - 1] = static_cast<double>(value) / kMaxPixel;
    } else {
      if (value < 0 || value >= static_cast<int>(kClasses))
        return "class is " + std::to_string(value) + ", not in 0.." + std::to_string(kClasses - 1);
      label = static_cast<uint8_t>(value);
    }
  }
  return {};
}

// Keeps the samples order[begin, end) of `all`, in that order.
Digits pick(const Digits& all, const std::vector<uint32_t>& order, std::size_t begin,
            std::size_t end) {
  Digits out;
  out.pixels.reserve((end - begin) * kPixels);
  out.labels.reserve(end - begin);
  out.rows.reserve(end - begin);
  for (std::size_t k = begin; k < end; ++k) {
    const uint32_t j = order[k];
    out.pixels.insert(out.pixels.end(), all.sample(j), all.sample(j) + kPixels);
    out.labels.push_back(all.labels[j]);
    out.rows.push_back(all.rows[j]);
  }
  return out;
}

}  // namespace

Digits read_digits(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot open the file");
  Digits out;
  std::string line;
  std::size_t number = 0;
  double pixels[kPixels];
  while (std::getline(in, line)) {
    ++number;
    std::string_view text(line);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);  // CRLF files
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    uint8_t label = 0;
    if (const std::string reason = parse_line(text, pixels, label); !reason.empty())
      throw std::runtime_error(where(file, number) + reason);
    out.pixels.insert(out.pixels.end(), pixels, pixels + kPixels);
    out.labels.push_back(label);
    out.rows.push_back(static_cast<uint32_t>(out.rows.size()));
  }
  if (in.bad()) throw std::runtime_error(file.string() + ": read error");
  if (out.size() == 0) throw std::runtime_error(file.string() + ": no data rows");
  return out;
}

Split split_digits(const Digits& all, const SplitOptions& options) {
  if (!(options.test_fraction >= 0.0 && options.test_fraction < 1.0))
    throw std::invalid_argument("the test fraction must be in [0, 1)");
  if (options.shards == 0 || options.shard >= options.shards)
    throw std::invalid_argument("shard " + std::to_string(options.shard) + "/" +
                                std::to_string(options.shards) + ": needs 0 <= I < N");
  const std::size_t n = all.size();
  // Fisher-Yates with our own generator: the same permutation everywhere.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0U);
  SplitMix64 rng(options.seed);
  for (std::size_t k = n; k > 1; --k) std::swap(order[k - 1], order[rng.below(k)]);

  const auto test_rows =
      static_cast<std::size_t>(std::floor(options.test_fraction * static_cast<double>(n) + 0.5));
  const std::size_t train_rows = n - test_rows;
  const std::size_t per_shard = train_rows / options.shards;
  if (per_shard == 0)
    throw std::invalid_argument(std::to_string(train_rows) + " training rows cannot make " +
                                std::to_string(options.shards) + " non-empty shards");
  Split split;
  split.train = pick(all, order, options.shard * per_shard, (options.shard + 1) * per_shard);
  split.test = pick(all, order, train_rows, n);
  return split;
}

}  // namespace mlp_device
