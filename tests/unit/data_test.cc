// Tests of the LibSVM reader, the shard split and append_bias.

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "marina/data/dataset.h"
#include "test_support.h"

namespace fs = std::filesystem;
using marina::data::Dataset;
using marina::data::ParseError;
using marina::data::ShardInfo;
using marina::data::ShardSpec;

namespace {

using marina::test::TempDir;

double at(const Dataset& d, int r, int c) {
  return d.A.coeff(r, c);
}

// The message of the ParseError that reading `content` throws ("" if none is thrown).
std::string parse_error(const TempDir& tmp, const std::string& content) {
  const fs::path p = tmp.write("bad.libsvm", content);
  try {
    (void)marina::data::read_libsvm(p);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "";
}

// A file whose row t (0-based) has feature 1 = t, so rows can be identified after a split.
std::string numbered_rows(int n, int last_row_extra_index = 0) {
  std::string s;
  for (int t = 0; t < n; ++t) {
    s += (t % 2 ? "-1" : "+1") + std::string(" 1:") + std::to_string(t);
    if (t == n - 1 && last_row_extra_index > 0)
      s += " " + std::to_string(last_row_extra_index) + ":1";
    s += "\n";
  }
  return s;
}

std::vector<int> row_ids(const Dataset& d) {
  std::vector<int> ids;
  for (int r = 0; r < d.A.rows(); ++r) ids.push_back(static_cast<int>(at(d, r, 0)));
  return ids;
}

}  // namespace

TEST_CASE("data: reads a LibSVM file with comments, blank lines, gaps and empty rows") {
  TempDir tmp;
  const auto p = tmp.write("ok.libsvm",
                           "# header comment\n"
                           "\n"
                           "+1 1:0.5 4:-2   \n"
                           "   \t\n"
                           "-1\t2:1e-3\t10:.5 # trailing comment\n"
                           "-1\n"
                           "1 3:7 # row 4\n"
                           "#\n");
  const Dataset d = marina::data::read_libsvm(p);
  REQUIRE(d.rows() == 4);
  CHECK(d.dim() == 10);
  CHECK(d.A.nonZeros() == 5);
  CHECK(at(d, 0, 0) == 0.5);
  CHECK(at(d, 0, 3) == -2);
  CHECK(at(d, 1, 1) == 1e-3);
  CHECK(at(d, 1, 9) == 0.5);
  CHECK(d.A.row(2).nonZeros() == 0);
  CHECK(at(d, 3, 2) == 7);
  CHECK(d.y[0] == 1);
  CHECK(d.y[1] == -1);
  CHECK(d.y[2] == -1);
  CHECK(d.y[3] == 1);
}

TEST_CASE("data: label encodings -1/+1, 0/1 and 1/2 all map to -1/+1") {
  TempDir tmp;
  struct Case {
    std::string text;
    std::vector<double> y;
  };
  const std::vector<Case> cases = {
      {"+1 1:1\n-1 1:1\n1 1:1\n-1.0 1:1\n", {1, -1, 1, -1}},
      {"0 1:1\n1 1:1\n1.0 1:1\n0.0 1:1\n", {-1, 1, 1, -1}},
      {"1 1:1\n2 1:1\n2.0 1:1\n+1 1:1\n", {-1, 1, 1, -1}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const Dataset d = marina::data::read_libsvm(tmp.write("labels.libsvm", c.text));
    REQUIRE(d.rows() == c.y.size());
    for (std::size_t i = 0; i < c.y.size(); ++i) CHECK(d.y[static_cast<int>(i)] == c.y[i]);
  }
}

TEST_CASE("data: CRLF line endings, tabs and a last line without newline") {
  TempDir tmp;
  const Dataset d =
      marina::data::read_libsvm(tmp.write("crlf.libsvm", "1 1:1 2:2\r\n\r\n0\t3:3 \r\n1 2:5"));
  REQUIRE(d.rows() == 3);
  CHECK(d.dim() == 3);
  CHECK(at(d, 0, 1) == 2);
  CHECK(at(d, 1, 2) == 3);
  CHECK(at(d, 2, 1) == 5);
  CHECK(d.y[1] == -1);
}

TEST_CASE("data: number forms accepted by the value parser") {
  TempDir tmp;
  const Dataset d = marina::data::read_libsvm(
      tmp.write("num.libsvm", "1 1:1 2:-0.5 3:1e-3 4:.5 5:5. 6:+2 7:-.5E2 8:0 9:1e-400\n-1 1:1\n"));
  CHECK(d.dim() == 9);
  const std::vector<double> want = {1, -0.5, 1e-3, 0.5, 5, 2, -50, 0, 0};
  for (int c = 0; c < 9; ++c) CHECK(at(d, 0, c) == want[static_cast<std::size_t>(c)]);
  CHECK(d.A.row(0).nonZeros() == 7);  // explicit zeros are not stored
}

TEST_CASE("data: an explicit trailing zero declares d") {
  TempDir tmp;
  const Dataset d = marina::data::read_libsvm(tmp.write("dim.libsvm", "1 2:1 216:0\n-1 1:1\n"));
  CHECK(d.dim() == 216);
  CHECK(d.A.nonZeros() == 2);
}

TEST_CASE("data: the fixture file in tests/data") {
  const fs::path p = fs::path(MARINA_TEST_DATA_DIR) / "small.libsvm";
  ShardInfo info;
  const Dataset d = marina::data::read_libsvm_shard(p, ShardSpec{}, &info);
  CHECK(d.rows() == 6);
  CHECK(d.dim() == 7);
  CHECK(info.file_rows == 6);
  CHECK(info.dim == 7);
  CHECK(info.dropped == 0);
  CHECK(d.y[0] == 1);
  CHECK(d.y[1] == -1);
  CHECK(at(d, 1, 3) == 0.25);
  CHECK(at(d, 3, 4) == 3);
}

TEST_CASE("data: rejects malformed lines with FILE:LINE: reason") {
  TempDir tmp;
  const std::string file = (tmp.path() / "bad.libsvm").string();
  struct Case {
    std::string text;
    int line;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"1 1:1\n-1 xyz\n", 2, "missing ':' in feature 'xyz' (expected index:value)"},
      {"1 1:1\n-1 0:1\n", 2, "feature index 0 (indices are 1-based)"},
      {"1 1:1\n# c\n-1 7:1 5:1\n", 3, "non-increasing index 5 after 7"},
      {"1 1:1\n-1 3:1 3:2\n", 2, "non-increasing index 3 after 3"},
      {"1 1:1\n-1 -3:1\n", 2, "negative feature index -3"},
      {"1 1:1\n-1 a:1\n", 2, "bad feature index 'a' in 'a:1'"},
      {"1 1:1\n-1 :1\n", 2, "missing feature index in ':1'"},
      {"1 1:1\n-1 2:\n", 2, "missing value in '2:'"},
      {"1 1:1\n-1 2:abc\n", 2, "bad value 'abc' in '2:abc'"},
      {"1 1:1\n-1 2:1.5x\n", 2, "bad value '1.5x'"},
      {"1 1:1\n-1 2:0x10\n", 2, "bad value '0x10'"},
      {"1 1:1\n-1 2:nan\n", 2, "non-finite value 'nan'"},
      {"1 1:1\n-1 2:inf\n", 2, "non-finite value 'inf'"},
      {"1 1:1\n-1 2:1e999\n", 2, "value '1e999' out of double range"},
      {"1 1:1\n-1 99999999999:1\n", 2, "feature index 99999999999 out of range"},
      {"1 1:1\nabc 1:1\n", 2, "bad label 'abc'"},
      {"1 1:1\n1:1 2:1\n", 2, "bad label '1:1' (a row must start with its label)"},
      {"1 1:1\n3 1:1\n", 2, "bad label '3' (accepted encodings"},
      {"1 1:1\n0.5 1:1\n", 2, "bad label '0.5'"},
      {"1 1:1\nnan 1:1\n", 2, "bad label 'nan'"},
      {"1 1:1\n-1 1:1\n\n0 1:1\n", 4, "label '0' is a third class after -1, 1"},
      {"1 qid:3 1:1\n", 1, "'qid:' (ranking data) is not supported"},
      {"1 1:1\r\n-1 2:1\r3:1\r\n", 2, "bad value '1\\x0d3:1'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const std::string msg = parse_error(tmp, c.text);
    CAPTURE(msg);
    const std::string prefix = file + ":" + std::to_string(c.line) + ": ";
    CHECK(msg.rfind(prefix, 0) == 0);
    CHECK(msg.find(c.reason) != std::string::npos);
  }
}

TEST_CASE("data: whole-file errors") {
  TempDir tmp;
  const std::string file = (tmp.path() / "bad.libsvm").string();
  CHECK(parse_error(tmp, "") == file + ": empty file (no data rows)");
  CHECK(parse_error(tmp, "# only a comment\n\n  \n") == file + ": empty file (no data rows)");
  CHECK(parse_error(tmp, "1 1:1\n1 2:1\n") == file + ": only one label class (1); need two");
  CHECK(parse_error(tmp, "0 1:1\n") == file + ": only one label class (0); need two");
  CHECK(parse_error(tmp, "0 1:1\n2 1:1\n") ==
        file + ": labels {0, 2} are not a supported encoding; accepted: {-1,+1}, {0,1} or {1,2}");
  CHECK(parse_error(tmp, "-1 1:1\n0 1:1\n").find("labels {-1, 0} are not a supported") !=
        std::string::npos);

  const fs::path missing = tmp.path() / "no_such_file";
  CHECK_THROWS_WITH_AS((void)marina::data::read_libsvm(missing),
                       (missing.string() + ": cannot open: No such file or directory").c_str(),
                       ParseError);
  CHECK_THROWS_WITH_AS((void)marina::data::read_libsvm(tmp.path()),
                       (tmp.path().string() + ": cannot open: Is a directory").c_str(), ParseError);
}

TEST_CASE("data: lines longer than the read buffer and many buffer refills") {
  TempDir tmp;
  std::string s = "1";
  for (int i = 1; i <= 200000; ++i) s += " " + std::to_string(i) + ":1";  // ~1.7 MB line
  s += "\n";
  for (int t = 0; t < 50000; ++t) s += t % 2 ? "-1 3:2\n" : "1 2:0.5 # x\n";
  const Dataset d = marina::data::read_libsvm(tmp.write("long.libsvm", s));
  CHECK(d.rows() == 50001);
  CHECK(d.dim() == 200000);
  CHECK(d.A.row(0).nonZeros() == 200000);
  CHECK(at(d, 50000, 2) == 2);
  CHECK(at(d, 49999, 1) == 0.5);
}

TEST_CASE("data: contiguous shards, dropped remainder, same d everywhere") {
  TempDir tmp;
  // 11 rows into 3 shards: 3 rows each, rows 9 and 10 dropped; the only use of index 42 is in
  // the dropped last row, yet every shard has d = 42.
  const auto p = tmp.write("rows.libsvm", "# leading comment\n" + numbered_rows(11, 42));
  for (std::size_t i = 0; i < 3; ++i) {
    ShardInfo info;
    const Dataset d = marina::data::read_libsvm_shard(p, ShardSpec{i, 3, std::nullopt}, &info);
    CHECK(info.file_rows == 11);
    CHECK(info.rows_per_shard == 3);
    CHECK(info.dropped == 2);
    CHECK(info.dim == 42);
    CHECK(d.dim() == 42);
    const int first = static_cast<int>(3 * i);
    CHECK(row_ids(d) == std::vector<int>{first, first + 1, first + 2});
    for (int r = 0; r < 3; ++r) CHECK(d.y[r] == ((first + r) % 2 ? -1 : 1));
  }
  // The whole file keeps everything.
  ShardInfo info;
  const Dataset all = marina::data::read_libsvm_shard(p, ShardSpec{}, &info);
  CHECK(all.rows() == 11);
  CHECK(info.dropped == 0);
  CHECK(all.A.coeff(10, 41) == 1);
}

TEST_CASE("data: shuffled shards partition the kept rows and are deterministic") {
  TempDir tmp;
  const int n_rows = 23;
  const std::size_t n = 4;  // 5 rows per shard, 3 dropped
  const auto p = tmp.write("rows.libsvm", numbered_rows(n_rows));
  const std::vector<std::size_t> order = marina::data::row_order(n_rows, 7);
  REQUIRE(order.size() == static_cast<std::size_t>(n_rows));
  CHECK(order != marina::data::row_order(n_rows, std::nullopt));
  CHECK(order == marina::data::row_order(n_rows, 7));
  CHECK(order != marina::data::row_order(n_rows, 8));

  std::vector<int> seen;
  for (std::size_t i = 0; i < n; ++i) {
    ShardInfo info;
    const Dataset d = marina::data::read_libsvm_shard(p, ShardSpec{i, n, 7}, &info);
    CHECK(info.rows_per_shard == 5);
    CHECK(info.dropped == 3);
    const std::vector<int> ids = row_ids(d);
    // Rows come in the order of the shuffled sequence.
    for (std::size_t k = 0; k < ids.size(); ++k)
      CHECK(ids[k] == static_cast<int>(order[i * 5 + k]));
    for (std::size_t k = 0; k < ids.size(); ++k)
      CHECK(d.y[static_cast<int>(k)] == (ids[k] % 2 ? -1 : 1));
    seen.insert(seen.end(), ids.begin(), ids.end());
    // Same seed, same shard.
    CHECK(row_ids(marina::data::read_libsvm_shard(p, ShardSpec{i, n, 7})) == ids);
  }
  std::vector<int> kept(order.begin(), order.begin() + 20);
  std::sort(seen.begin(), seen.end());
  std::sort(kept.begin(), kept.end());
  CHECK(seen == kept);
  CHECK(std::set<int>(seen.begin(), seen.end()).size() == 20);

  // A different seed gives a different first shard.
  CHECK(row_ids(marina::data::read_libsvm_shard(p, ShardSpec{0, n, 8})) !=
        row_ids(marina::data::read_libsvm_shard(p, ShardSpec{0, n, 7})));
  // One shuffled shard holds every row, permuted.
  std::vector<int> all = row_ids(marina::data::read_libsvm_shard(p, ShardSpec{0, 1, 7}));
  CHECK(all.size() == static_cast<std::size_t>(n_rows));
  std::sort(all.begin(), all.end());
  for (int t = 0; t < n_rows; ++t) CHECK(all[static_cast<std::size_t>(t)] == t);
}

TEST_CASE("data: the shuffle is pinned (same permutation on every architecture)") {
  // Regenerate only if the shuffle is changed on purpose: workers on different machines must
  // agree on it.
  const std::vector<std::size_t> order = marina::data::row_order(10, 2021);
  std::vector<std::size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t t = 0; t < 10; ++t) CHECK(sorted[t] == t);
  CHECK(order == std::vector<std::size_t>{1, 7, 9, 2, 3, 6, 5, 4, 8, 0});
}

TEST_CASE("data: shard arguments that cannot work") {
  TempDir tmp;
  const auto p = tmp.write("rows.libsvm", numbered_rows(3));
  CHECK_THROWS_AS((void)marina::data::read_libsvm_shard(p, ShardSpec{0, 4, std::nullopt}),
                  std::invalid_argument);
  CHECK_THROWS_AS((void)marina::data::read_libsvm_shard(p, ShardSpec{3, 3, std::nullopt}),
                  std::invalid_argument);
  CHECK_THROWS_AS((void)marina::data::read_libsvm_shard(p, ShardSpec{0, 0, std::nullopt}),
                  std::invalid_argument);
  CHECK(marina::data::read_libsvm_shard(p, ShardSpec{2, 3, std::nullopt}).rows() == 1);
  // The row check comes after validation: a bad file is a ParseError even with too many shards.
  const auto bad = tmp.write("bad.libsvm", "1 1:1\n-1 0:1\n");
  CHECK_THROWS_AS((void)marina::data::read_libsvm_shard(bad, ShardSpec{0, 5, std::nullopt}),
                  ParseError);
}

TEST_CASE("data: append_bias adds a last column of ones") {
  TempDir tmp;
  Dataset d = marina::data::read_libsvm(tmp.write("b.libsvm", "1 2:3\n-1\n1 1:1 3:-1\n"));
  REQUIRE(d.dim() == 3);
  marina::data::append_bias(d);
  CHECK(d.dim() == 4);
  CHECK(d.rows() == 3);
  CHECK(d.A.nonZeros() == 3 + 3);
  for (int r = 0; r < 3; ++r) CHECK(at(d, r, 3) == 1);
  CHECK(at(d, 0, 1) == 3);
  CHECK(at(d, 0, 0) == 0);
  CHECK(at(d, 2, 0) == 1);
  CHECK(at(d, 2, 2) == -1);
  CHECK(d.y[1] == -1);
}
