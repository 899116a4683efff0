// The committed seed corpora of the fuzz harnesses (tests/fuzz/corpus, written by fuzz_seeds)
// must stay valid inputs: after a protocol, schema or format change, seeds that are refused at
// the first check would leave the fuzzers to rediscover the format from nothing.

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "marina/data/dataset.h"
#include "marina/drivers/checkpoint.h"
#include "marina/security/keys.h"
#include "marina/wire/codec.h"

namespace fs = std::filesystem;

namespace {

const fs::path kCorpus = MARINA_FUZZ_CORPUS_DIR;
const char* const kRegenerate =
    "regenerate with: build/tests/fuzz/fuzz_seeds tests/fuzz/corpus data/heart_scale";

std::vector<uint8_t> bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<fs::path> seeds(const std::string& harness, const std::string& extension = "") {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(kCorpus / harness)) {
    if (extension.empty() || entry.path().extension() == extension) out.push_back(entry.path());
  }
  return out;
}

}  // namespace

TEST_CASE("fuzz: the corpora are small") {
  std::size_t files = 0;
  std::uintmax_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kCorpus)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    bytes += entry.file_size();
  }
  CHECK(files >= 10);
  CHECK(files < 200);
  CHECK(bytes < (1u << 20));
}

TEST_CASE("fuzz: every decode seed is a message the Decoder accepts") {
  INFO(kRegenerate);
  using namespace marina::wire;
  Decoder decoder(Limits{max_message_bytes(13, 5), 13, 5});
  std::vector<bool> seen(8, false);
  for (const fs::path& file : seeds("fuzz_decode")) {
    CAPTURE(file.string());
    Inbox in;
    MessageKind kind{};
    CHECK_NOTHROW(kind = decoder.decode(bytes_of(file), in));
    seen[static_cast<std::size_t>(kind)] = true;
  }
  for (std::size_t k = 0; k < seen.size(); ++k) {
    CAPTURE(to_string(static_cast<MessageKind>(k)));
    CHECK(seen[k]);
  }
}

TEST_CASE("fuzz: every checkpoint seed verifies, framed whole or as a state") {
  INFO(kRegenerate);
  using marina::drivers::frame_checkpoint;
  using marina::drivers::parse_checkpoint;
  const std::vector<fs::path> files = seeds("fuzz_checkpoint", ".mrck");
  const std::vector<fs::path> states = seeds("fuzz_checkpoint", ".state");
  CHECK(!files.empty());
  CHECK(states.size() == files.size());
  for (const fs::path& file : files) {
    CAPTURE(file.string());
    CHECK_NOTHROW((void)parse_checkpoint(bytes_of(file), file.string()));
  }
  for (const fs::path& file : states) {
    CAPTURE(file.string());
    CHECK_NOTHROW((void)parse_checkpoint(frame_checkpoint(bytes_of(file)), file.string()));
  }
}

TEST_CASE("fuzz: every LibSVM and allowlist seed parses") {
  INFO(kRegenerate);
  for (const fs::path& file : seeds("fuzz_libsvm")) {
    CAPTURE(file.string());
    std::ifstream in(file, std::ios::binary);
    CHECK_NOTHROW((void)marina::data::parse_libsvm(in, file.string()));
  }
  for (const fs::path& file : seeds("fuzz_allowlist")) {
    CAPTURE(file.string());
    const std::vector<uint8_t> text = bytes_of(file);
    CHECK_NOTHROW((void)marina::security::Allowlist::parse(std::string(text.begin(), text.end()),
                                                           file.string(), 5u));
  }
}
