#pragma once
// Checkpoints of the coordinator: everything it needs to continue a run exactly where it was
// (the server half, the tally behind the CSV, the resolved configuration), written atomically
// and read back only when it verifies.
//
// Files: DIR/checkpoint-<round, 20 digits>.mrck, FlatBuffers (schemas/checkpoint.fbs, file
// identifier "MRCK") followed by nothing else; the schema carries a format version and a
// CRC-32 of the serialised state, so a truncated or altered file is refused with a reason.
// Writing goes through a temporary file in DIR, fsync, rename, fsync of DIR; the two newest
// checkpoints are kept, so a checkpoint that fails to verify falls back to the previous one.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "marina/methods/config.h"
#include "marina/methods/server_state.h"
#include "marina/run/log.h"

namespace marina::drivers {

struct Checkpoint {
  methods::MethodConfig config;  // as resolved (γ, p, α are numbers here)
  // The settings a resumed run must share with this one, as "key=value" lines (loss, l2, bias,
  // shuffle seed, rounds, ...); the coordinator compares them and names what differs.
  std::string settings;
  methods::ServerState server;
  run::TallyState tally;
  std::optional<run::LogRow> held;  // a row waiting for its loss (coordinator without --data)
  std::optional<double> initial_grad_norm_sq;
  uint64_t log_rows = 0;      // CSV rows written when the checkpoint was taken (header excluded)
  uint64_t log_bytes = 0;     // the CSV's size then: a resumed run truncates the CSV to it
  uint64_t events_bytes = 0;  // the events file's size then (0 when there is none)
  double wall_s = 0.0;        // elapsed run time then; a resumed run's wall_s continues from it
  std::vector<uint32_t> members;  // worker ids that had joined

  bool operator==(const Checkpoint&) const = default;
};

// A checkpoint file that cannot be used; what() names the file and the reason.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes DIR/checkpoint-<server.round>.mrck atomically (creating DIR if needed) and removes
// all but the two newest checkpoints. Returns the file written. Throws CheckpointError (naming
// the path and errno text) when it cannot write.
// "Newest" is relative to the file written: it and the newest older one are kept, and files of
// later rounds are removed too. Those can only be left by a run that was resumed from an older
// checkpoint, and read_latest_checkpoint() would otherwise prefer them to the new one.
std::filesystem::path write_checkpoint(const std::filesystem::path& dir, const Checkpoint& c);

// Reads and verifies one file: size, identifier, FlatBuffers Verifier, format version, CRC,
// and internal consistency (vector sizes against config.dim and config.workers, finite values).
[[nodiscard]] Checkpoint read_checkpoint(const std::filesystem::path& file);

// The same checks on the bytes of a checkpoint file (read_checkpoint reads the file and calls
// this); `origin` names the input in errors. Throws CheckpointError and nothing else.
[[nodiscard]] Checkpoint parse_checkpoint(std::span<const uint8_t> bytes,
                                          const std::string& origin);

struct LoadedCheckpoint {
  Checkpoint checkpoint;
  std::filesystem::path file;
  std::vector<std::string> refused;  // "FILE: reason" for each newer file that did not verify
};

// The newest checkpoint in DIR that verifies, trying older ones when a newer one is refused.
// std::nullopt when DIR holds no checkpoint file at all; throws CheckpointError when there are
// checkpoint files but none verifies (the message lists each file and its reason).
[[nodiscard]] std::optional<LoadedCheckpoint> read_latest_checkpoint(
    const std::filesystem::path& dir);

// The format version this build writes and the only one read_checkpoint() accepts.
inline constexpr uint16_t kCheckpointFormatVersion = 1;

// CRC-32 as IEEE 802.3 and zlib define it (reflected polynomial 0xEDB88320, initial value and
// final xor 0xFFFFFFFF): crc32("123456789") == 0xCBF43926.
[[nodiscard]] uint32_t crc32(std::span<const uint8_t> bytes);

// The bytes of a checkpoint file around an already serialised state (a FlatBuffer whose root is
// marina.checkpoint.fb.State): identifier, format version, CRC-32 of `state`, `state`.
// write_checkpoint() writes exactly these bytes and read_checkpoint() accepts no other framing;
// tests use it to craft states that only the consistency checks can refuse.
[[nodiscard]] std::vector<uint8_t> frame_checkpoint(std::span<const uint8_t> state);

}  // namespace marina::drivers
