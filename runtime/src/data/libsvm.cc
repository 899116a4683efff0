// LibSVM reader: streaming, two passes for shards, file:line errors.
//
// Pass 1 validates every line and learns what a shard needs to agree on across workers: the
// number of data rows, d (the largest index anywhere in the file) and the label encoding.
// Pass 2 parses only the rows of the requested shard, so memory holds one shard, never the
// whole file. Reading the whole file in file order needs only one pass. The file readers open
// the file and parse it as a stream, so fuzzers and tests reach the same code without files.

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <istream>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "marina/data/dataset.h"
#include "marina/util/random.h"

namespace marina::data {
namespace {

namespace fs = std::filesystem;

// Keeps d + 1 (append_bias) representable in Eigen's int storage index.
constexpr long long kMaxIndex = INT_MAX - 1;
constexpr std::string_view kEncodings = "{-1,+1}, {0,1} or {1,2}";

[[noreturn]] void fail(const std::string& file, std::size_t line, const std::string& reason) {
  throw ParseError(file + ":" + std::to_string(line) + ": " + reason);
}

[[noreturn]] void fail_file(const std::string& file, const std::string& reason) {
  throw ParseError(file + ": " + reason);
}

// A token as it appears in an error message: quoted, control bytes escaped, long ones cut.
std::string quote(std::string_view token) {
  constexpr std::size_t kMax = 40;
  std::string out = "'";
  for (std::size_t i = 0; i < token.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (token.size() > kMax) out += "...";
  return out + "'";
}

// Reads a stream line by line through a large buffer; getline per line and iostream >> per
// token are several times slower on 50 MB inputs. Large read() calls bypass the stream's own
// buffer, so a file is read about as fast as with fread. 64 KiB reads already run at the speed
// of the page cache, and a small input (a test's, a fuzzer's) then does not pay for zeroing
// and freeing a megabyte per pass.
class LineReader {
 public:
  LineReader(std::istream& in, const std::string& name) : in_(in), name_(name) {
    buf_.resize(1 << 16);
  }

  // The next line without its '\n' (and without a trailing '\r', for CRLF files). The view
  // stays valid until the next call.
  bool next(std::string_view* out) {
    carry_.clear();
    bool in_carry = false;
    for (;;) {
      if (begin_ == end_ && !fill()) {
        if (!in_carry) return false;
        *out = carry_;  // last line without a newline
        break;
      }
      const char* start = buf_.data() + begin_;
      const std::size_t avail = end_ - begin_;
      const auto* nl = static_cast<const char*>(std::memchr(start, '\n', avail));
      if (nl != nullptr) {
        const auto len = static_cast<std::size_t>(nl - start);
        begin_ += len + 1;
        if (in_carry) {
          carry_.append(start, len);
          *out = carry_;
        } else {
          *out = std::string_view(start, len);
        }
        break;
      }
      carry_.append(start, avail);
      in_carry = true;
      begin_ = end_;
    }
    ++line_;
    if (line_ == 1 && out->substr(0, 3) == "\xEF\xBB\xBF") out->remove_prefix(3);  // UTF-8 BOM
    if (!out->empty() && out->back() == '\r') out->remove_suffix(1);
    return true;
  }

  [[nodiscard]] std::size_t line() const { return line_; }

 private:
  bool fill() {
    begin_ = 0;
    in_.read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    if (in_.bad()) fail_file(name_, "read error: " + std::string(std::strerror(errno)));
    end_ = static_cast<std::size_t>(in_.gcount());
    return end_ > 0;
  }

  std::istream& in_;
  std::string name_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::string carry_;  // a line that spans two buffer fills
  std::size_t line_ = 0;
};

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// The line without its comment and surrounding blanks; empty means "not a data row".
std::string_view strip(std::string_view line) {
  if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
  std::size_t b = 0;
  while (b < line.size() && is_blank(line[b])) ++b;
  std::size_t e = line.size();
  while (e > b && is_blank(line[e - 1])) --e;
  return line.substr(b, e - b);
}

std::string_view next_token(std::string_view* rest) {
  std::size_t b = 0;
  while (b < rest->size() && is_blank((*rest)[b])) ++b;
  std::size_t e = b;
  while (e < rest->size() && !is_blank((*rest)[e])) ++e;
  const std::string_view token = rest->substr(b, e - b);
  rest->remove_prefix(e);
  return token;
}

enum class Num { kOk, kBad, kNonFinite, kOverflow };

// Parses a whole token as a double. Accepts what strtod accepts in the C locale except hex:
// 1, -0.5, +2, .5, 5., 1e-3. A value too small for a double (1e-400) becomes 0, as in strtod.
Num parse_double(std::string_view s, double* v) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  if (ptr != s.data() + s.size() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return Num::kBad;
  }
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports underflow and overflow alike; strtod tells them apart.
    const std::string copy(s);
    *v = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(*v)) return Num::kOverflow;
    return Num::kOk;
  }
  return std::isfinite(*v) ? Num::kOk : Num::kNonFinite;
}

// Label values seen in a file, as bits, so the encoding can be checked after the last row.
enum LabelBit : unsigned { kMinusOne = 1, kZero = 2, kOne = 4, kTwo = 8 };

std::optional<unsigned> label_bit(double v) {
  if (v == -1) return kMinusOne;
  if (v == 0) return kZero;
  if (v == 1) return kOne;
  if (v == 2) return kTwo;
  return std::nullopt;
}

std::string label_names(unsigned mask) {
  std::string out;
  const std::pair<unsigned, const char*> names[] = {
      {kMinusOne, "-1"}, {kZero, "0"}, {kOne, "1"}, {kTwo, "2"}};
  for (const auto& [bit, name] : names) {
    if ((mask & bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

struct Entry {
  int index;  // 0-based column
  double value;
};

struct FileStats {
  std::size_t rows = 0;
  int dim = 0;  // largest 1-based index seen
  unsigned labels = 0;
};

// Parses one line. Returns false when the line holds no data (blank or comment only).
// Throws ParseError with FILE:LINE on any malformed token.
bool parse_row(std::string_view line, const std::string& file, std::size_t lineno, double* label,
               std::vector<Entry>* entries, FileStats* stats) {
  std::string_view rest = strip(line);
  if (rest.empty()) return false;

  const std::string_view label_token = next_token(&rest);
  const Num label_ok = parse_double(label_token, label);
  if (label_ok != Num::kOk) {
    std::string reason = "bad label " + quote(label_token);
    if (label_token.find(':') != std::string_view::npos)
      reason += " (a row must start with its label)";
    fail(file, lineno, reason);
  }
  const auto bit = label_bit(*label);
  if (!bit) {
    fail(file, lineno,
         "bad label " + quote(label_token) + " (accepted encodings: " + std::string(kEncodings) +
             ")");
  }
  if (std::popcount(stats->labels | *bit) > 2) {
    fail(file, lineno,
         "label " + quote(label_token) + " is a third class after " + label_names(stats->labels) +
             "; labels must be binary: " + std::string(kEncodings));
  }
  stats->labels |= *bit;

  entries->clear();
  long long prev = 0;
  for (std::string_view token = next_token(&rest); !token.empty(); token = next_token(&rest)) {
    const auto colon = token.find(':');
    if (colon == std::string_view::npos) {
      fail(file, lineno, "missing ':' in feature " + quote(token) + " (expected index:value)");
    }
    const std::string_view idx_text = token.substr(0, colon);
    const std::string_view val_text = token.substr(colon + 1);
    if (idx_text.empty()) fail(file, lineno, "missing feature index in " + quote(token));
    if (val_text.empty()) fail(file, lineno, "missing value in " + quote(token));

    long long idx = 0;
    const auto [ptr, ec] = std::from_chars(idx_text.data(), idx_text.data() + idx_text.size(), idx);
    if (ec == std::errc::result_out_of_range && ptr == idx_text.data() + idx_text.size()) {
      fail(file, lineno, "feature index " + quote(idx_text) + " out of range");
    }
    if (ec != std::errc() || ptr != idx_text.data() + idx_text.size()) {
      if (idx_text == "qid") fail(file, lineno, "'qid:' (ranking data) is not supported");
      fail(file, lineno, "bad feature index " + quote(idx_text) + " in " + quote(token));
    }
    if (idx == 0) fail(file, lineno, "feature index 0 (indices are 1-based)");
    if (idx < 0)
      fail(file, lineno,
           "negative feature index " + std::to_string(idx) + " (indices are 1-based)");
    if (idx > kMaxIndex) {
      fail(file, lineno,
           "feature index " + std::to_string(idx) + " out of range (max " +
               std::to_string(kMaxIndex) + ")");
    }
    if (idx <= prev) {
      fail(file, lineno,
           "non-increasing index " + std::to_string(idx) + " after " + std::to_string(prev) +
               " (indices must be strictly increasing)");
    }
    prev = idx;

    double value = 0;
    switch (parse_double(val_text, &value)) {
      case Num::kOk:
        break;
      case Num::kBad:
        fail(file, lineno, "bad value " + quote(val_text) + " in " + quote(token));
      case Num::kNonFinite:
        fail(file, lineno, "non-finite value " + quote(val_text) + " in " + quote(token));
      case Num::kOverflow:
        fail(file, lineno, "value " + quote(val_text) + " out of double range in " + quote(token));
    }
    // An explicit zero is not stored, but its index still counts towards d: writers use a
    // trailing "D:0" to declare the dimension.
    if (value != 0) entries->push_back({static_cast<int>(idx - 1), value});
  }
  stats->dim = std::max(stats->dim, static_cast<int>(prev));
  ++stats->rows;
  return true;
}

// Maps a raw label to ±1 for the encoding that the whole file uses.
double map_label(double raw, unsigned mask) {
  if (mask == (kOne | kTwo)) return raw == 2 ? 1.0 : -1.0;
  return raw == 1 ? 1.0 : -1.0;  // {-1,+1} and {0,1}
}

void check_labels(const std::string& file, const FileStats& stats) {
  const unsigned m = stats.labels;
  if (m == (kMinusOne | kOne) || m == (kZero | kOne) || m == (kOne | kTwo)) return;
  if (std::popcount(m) == 1) {
    fail_file(file, "only one label class (" + label_names(m) + "); need two");
  }
  fail_file(file, "labels {" + label_names(m) +
                      "} are not a supported encoding; accepted: " + std::string(kEncodings));
}

// Rows kept by pass 2, stored in file order; local[k] is the row's place in the shard.
struct Kept {
  std::vector<long long> ptr{0};
  std::vector<int> index;
  std::vector<double> value;
  std::vector<double> label;  // raw file label
  std::vector<std::size_t> local;

  void add(double raw_label, const std::vector<Entry>& entries, std::size_t local_row) {
    for (const Entry& e : entries) {
      index.push_back(e.index);
      value.push_back(e.value);
    }
    ptr.push_back(static_cast<long long>(index.size()));
    label.push_back(raw_label);
    local.push_back(local_row);
  }
};

// Builds the CSR matrix directly in shard order (no triplets, no second copy of the shard).
Dataset build(const std::string& file, Kept&& kept, int dim, unsigned labels) {
  const std::size_t m = kept.label.size();
  const auto nnz = static_cast<long long>(kept.index.size());
  if (nnz > INT_MAX) fail_file(file, "shard has more than 2^31 - 1 nonzeros");

  Dataset out;
  out.A.resize(static_cast<int>(m), dim);
  out.A.resizeNonZeros(static_cast<Eigen::Index>(nnz));
  out.y.resize(static_cast<Eigen::Index>(m));

  int* outer = out.A.outerIndexPtr();
  std::fill(outer, outer + m + 1, 0);
  for (std::size_t k = 0; k < m; ++k) {
    outer[kept.local[k] + 1] = static_cast<int>(kept.ptr[k + 1] - kept.ptr[k]);
  }
  for (std::size_t r = 0; r < m; ++r) outer[r + 1] += outer[r];

  int* inner = out.A.innerIndexPtr();
  double* values = out.A.valuePtr();
  for (std::size_t k = 0; k < m; ++k) {
    const std::size_t r = kept.local[k];
    std::copy(kept.index.begin() + kept.ptr[k], kept.index.begin() + kept.ptr[k + 1],
              inner + outer[r]);
    std::copy(kept.value.begin() + kept.ptr[k], kept.value.begin() + kept.ptr[k + 1],
              values + outer[r]);
    out.y[static_cast<Eigen::Index>(r)] = map_label(kept.label[k], labels);
  }
  return out;
}

}  // namespace

std::vector<std::size_t> row_order(std::size_t file_rows, std::optional<uint64_t> shuffle_seed) {
  std::vector<std::size_t> order(file_rows);
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (shuffle_seed && file_rows > 1) {
    util::Rng rng(util::derive(*shuffle_seed, {util::tag(util::Stream::kShuffle)}));
    for (std::size_t i = file_rows - 1; i > 0; --i) {
      const auto j = static_cast<std::size_t>(rng.below(i + 1));
      std::swap(order[i], order[j]);
    }
  }
  return order;
}

Dataset parse_libsvm_shard(std::istream& in, const std::string& origin, const ShardSpec& spec,
                           ShardInfo* info) {
  if (spec.count == 0) throw std::invalid_argument("read_libsvm_shard: shard count must be >= 1");
  if (spec.index >= spec.count) {
    throw std::invalid_argument("read_libsvm_shard: shard index " + std::to_string(spec.index) +
                                " is not below the shard count " + std::to_string(spec.count));
  }
  const bool whole_in_order = spec.count == 1 && !spec.shuffle_seed;
  const std::istream::pos_type start = in.tellg();

  // Pass 1: validate all lines. When the whole file is wanted in file order, keep every row
  // now and skip pass 2.
  FileStats stats;
  Kept kept;
  {
    LineReader reader(in, origin);
    std::string_view line;
    double label = 0;
    std::vector<Entry> entries;
    while (reader.next(&line)) {
      if (parse_row(line, origin, reader.line(), &label, &entries, &stats) && whole_in_order) {
        kept.add(label, entries, stats.rows - 1);
      }
    }
  }
  if (stats.rows == 0) fail_file(origin, "empty file (no data rows)");
  check_labels(origin, stats);
  if (stats.rows < spec.count) {
    throw std::invalid_argument(origin + ": " + std::to_string(stats.rows) +
                                " data rows cannot be split into " + std::to_string(spec.count) +
                                " non-empty shards");
  }
  const std::size_t m = stats.rows / spec.count;
  if (m > static_cast<std::size_t>(INT_MAX)) {
    fail_file(origin, "shard has more than 2^31 - 1 rows");
  }
  if (info != nullptr) {
    info->file_rows = stats.rows;
    info->rows_per_shard = m;
    info->dropped = stats.rows - spec.count * m;
    info->dim = static_cast<std::size_t>(stats.dim);
  }
  if (whole_in_order) return build(origin, std::move(kept), stats.dim, stats.labels);

  // The shard's rows as (file row, place in shard), sorted by file row so that pass 2 can walk
  // the file once.
  std::vector<std::pair<std::size_t, std::size_t>> wanted(m);
  {
    const std::vector<std::size_t> order = row_order(stats.rows, spec.shuffle_seed);
    for (std::size_t k = 0; k < m; ++k) wanted[k] = {order[spec.index * m + k], k};
  }
  std::sort(wanted.begin(), wanted.end());

  // Pass 2: parse only the wanted rows; the others need only be recognised as data rows.
  in.clear();
  if (start == std::istream::pos_type(-1) || !in.seekg(start)) {
    fail_file(origin, "cannot rewind for the second reading pass (input is not seekable)");
  }
  FileStats again;
  LineReader reader(in, origin);
  std::string_view line;
  double label = 0;
  std::vector<Entry> entries;
  std::size_t row = 0;
  std::size_t next = 0;
  while (reader.next(&line)) {
    if (next < m && wanted[next].first == row) {
      if (!parse_row(line, origin, reader.line(), &label, &entries, &again)) continue;
      kept.add(label, entries, wanted[next].second);
      ++next;
      ++row;
    } else if (!strip(line).empty()) {
      ++row;
    }
  }
  if (row != stats.rows || next != m || again.dim > stats.dim || (again.labels & ~stats.labels)) {
    fail_file(origin, "file changed between the two reading passes");
  }
  return build(origin, std::move(kept), stats.dim, stats.labels);
}

Dataset parse_libsvm(std::istream& in, const std::string& origin) {
  return parse_libsvm_shard(in, origin, ShardSpec{});
}

Dataset read_libsvm_shard(const fs::path& path, const ShardSpec& spec, ShardInfo* info) {
  const std::string file = path.string();
  std::error_code ec;
  if (fs::is_directory(path, ec))
    fail_file(file, "cannot open: " + std::string(std::strerror(EISDIR)));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(file, "cannot open: " + std::string(std::strerror(errno)));
  return parse_libsvm_shard(in, file, spec, info);
}

Dataset read_libsvm(const fs::path& file) {
  return read_libsvm_shard(file, ShardSpec{});
}

void append_bias(Dataset& data) {
  SparseMatrix& A = data.A;
  A.makeCompressed();
  const auto rows = static_cast<int>(A.rows());
  const auto cols = static_cast<int>(A.cols());
  if (cols >= INT_MAX) throw std::length_error("append_bias: too many columns");

  SparseMatrix out(rows, cols + 1);
  out.resizeNonZeros(A.nonZeros() + rows);
  const int* outer = A.outerIndexPtr();
  int* new_outer = out.outerIndexPtr();
  int* inner = out.innerIndexPtr();
  double* values = out.valuePtr();
  new_outer[0] = 0;
  for (int r = 0; r < rows; ++r) {
    int at = new_outer[r];
    for (int k = outer[r]; k < outer[r + 1]; ++k, ++at) {
      inner[at] = A.innerIndexPtr()[k];
      values[at] = A.valuePtr()[k];
    }
    inner[at] = cols;  // the bias column comes last, so indices stay sorted
    values[at] = 1.0;
    new_outer[r + 1] = at + 1;
  }
  A = std::move(out);
}

}  // namespace marina::data
