// The in-memory entry points of the file readers (data::parse_libsvm*, drivers::parse_checkpoint),
// which the fuzz harnesses call: they must behave exactly as the readers they serve.

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <iterator>
#include <span>
#include <sstream>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include "marina/data/dataset.h"
#include "marina/drivers/checkpoint.h"

using marina::data::Dataset;
using marina::data::ParseError;
using marina::data::ShardInfo;
using marina::data::ShardSpec;

namespace {

constexpr const char* kText =
    "# six rows, d = 5\n"
    "1 1:0.5 3:-2\n"
    "-1 2:1 5:0\n"
    "1 4:3\n"
    "-1 1:1 2:2\n"
    "1 3:0.25\n"
    "-1 5:-1\n";

// A stream that cannot seek, like a pipe.
class OneWay : public std::streambuf {
 public:
  explicit OneWay(std::string text) : text_(std::move(text)) {
    setg(text_.data(), text_.data(), text_.data() + text_.size());
  }

 private:
  std::string text_;
};

}  // namespace

TEST_CASE("data: parse_libsvm reads a stream as read_libsvm reads a file") {
  std::istringstream in(kText);
  const Dataset d = marina::data::parse_libsvm(in, "text");
  CHECK(d.rows() == 6);
  CHECK(d.dim() == 5);
  CHECK(d.A.coeff(0, 2) == -2.0);
  CHECK(d.y[1] == -1.0);

  std::istringstream bad("1 1:1\n-1 2:x\n");
  CHECK_THROWS_WITH_AS((void)marina::data::parse_libsvm(bad, "text"),
                       "text:2: bad value 'x' in '2:x'", ParseError);
}

TEST_CASE("data: parse_libsvm_shard rewinds the stream to where it started") {
  // Text before the stream's position is not part of the input.
  std::istringstream in(std::string("junk that is not LibSVM\n") + kText);
  std::string skipped;
  std::getline(in, skipped);
  ShardInfo info;
  const Dataset shard = marina::data::parse_libsvm_shard(in, "text", ShardSpec{1, 2, 7}, &info);
  CHECK(info.file_rows == 6);
  CHECK(info.rows_per_shard == 3);
  CHECK(shard.rows() == 3);
  CHECK(shard.dim() == 5);

  OneWay pipe(kText);
  std::istream one_way(&pipe);
  CHECK_THROWS_WITH_AS((void)marina::data::parse_libsvm_shard(one_way, "pipe", ShardSpec{1, 2, 7}),
                       "pipe: cannot rewind for the second reading pass (input is not seekable)",
                       ParseError);
}

TEST_CASE("checkpoint: parse_checkpoint takes the bytes of a file at any alignment") {
  marina::drivers::Checkpoint c;
  c.config.compressor = "randk:1";
  c.config.workers = 2;
  c.config.dim = 3;
  c.server.x = {1.0, -2.0, 0.5};
  c.server.aux = {0.0, 0.25, -0.0};
  c.members = {1};
  // The state's serialisation is internal; a framed empty state is refused, which shows that
  // the framing was read, and a real file round-trips below.
  const std::vector<uint8_t> empty = marina::drivers::frame_checkpoint({});
  CHECK_THROWS_WITH_AS((void)marina::drivers::parse_checkpoint(empty, "mem"), "mem: no state",
                       marina::drivers::CheckpointError);

  const auto dir = std::filesystem::temp_directory_path() /
                   ("marina_parsers_test_" + std::to_string(::getpid()));
  const auto file = marina::drivers::write_checkpoint(dir, c);
  std::ifstream f(file, std::ios::binary);
  const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(f),
                                   std::istreambuf_iterator<char>()};
  std::filesystem::remove_all(dir);
  for (std::size_t offset = 0; offset < 8; ++offset) {
    CAPTURE(offset);
    std::vector<uint8_t> shifted(bytes.size() + offset);
    std::memcpy(shifted.data() + offset, bytes.data(), bytes.size());
    const std::span<const uint8_t> view(shifted.data() + offset, bytes.size());
    CHECK(marina::drivers::parse_checkpoint(view, "mem") == c);
  }
  CHECK_THROWS_AS(
      (void)marina::drivers::parse_checkpoint(std::span<const uint8_t>(bytes).first(40), "mem"),
      marina::drivers::CheckpointError);
}
