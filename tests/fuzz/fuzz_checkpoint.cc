// libFuzzer harness: the checkpoint reader (drivers::parse_checkpoint, the code path of
// read_checkpoint) on arbitrary bytes. A coordinator resumed with --resume reads whatever is in
// the directory: a file truncated by a crash, damaged on disk, or planted.
//
// Each input is read twice: as a whole file, and as the serialised state inside a correctly
// framed file (frame_checkpoint adds the identifier, version and CRC-32). Random bytes almost
// never carry a matching CRC, so without the second reading the fuzzer would hardly get past the
// framing to the state's Verifier, decoding and consistency checks, where the work is.
//
// Beyond "no crash, no UB": the reader throws CheckpointError and nothing else, and a state it
// accepts has the sizes that ServerHalf::load() and the coordinator rely on.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "marina/drivers/checkpoint.h"

namespace {

using marina::fuzz::bug;
using namespace marina::drivers;

constexpr const char* kHarness = "fuzz_checkpoint";

void check_accepted(const Checkpoint& c) {
  const uint64_t d = c.config.dim;
  const uint32_t n = c.config.workers;
  const auto& s = c.server;
  if (n == 0 || d == 0) bug(kHarness, "accepted a checkpoint with n = 0 or d = 0");
  if (s.x.size() != d || s.aux.size() != d) bug(kHarness, "accepted x or aux of the wrong size");
  if (!s.x_prev.empty() && s.x_prev.size() != d) bug(kHarness, "accepted x_prev of a wrong size");
  if (!s.worker_aux.empty() && s.worker_aux.size() != d * n) {
    bug(kHarness, "accepted worker_aux of the wrong size");
  }
  for (const double v : s.x) {
    if (!std::isfinite(v)) bug(kHarness, "accepted a non-finite x");
  }
  for (const uint32_t id : c.members) {
    if (id >= n) bug(kHarness, "accepted a member id >= n");
  }
  for (const uint32_t id : s.dropped) {
    if (id >= n) bug(kHarness, "accepted a dropped id >= n");
  }
}

void read(std::span<const uint8_t> bytes) {
  std::optional<Checkpoint> c;
  try {
    c = parse_checkpoint(bytes, "fuzz");
  } catch (const CheckpointError&) {
    return;
  } catch (const std::exception& e) {
    bug(kHarness,
        std::string("the reader threw something other than CheckpointError: ") + e.what());
  }
  check_accepted(*c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  read(bytes);
  const std::vector<uint8_t> framed = frame_checkpoint(bytes);
  read(framed);
  return 0;
}
