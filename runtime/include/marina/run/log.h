#pragma once
// The per-round log that marina-sim and marina-coordinator both write, and the running
// totals behind it. Row k describes x^k: the loss and ‖∇f(x^k)‖² of the full objective, and
// the communication spent to reach x^k (the replies of round k−1 and all before).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "marina/methods/messages.h"

namespace marina::run {

struct LogRow {
  uint64_t round = 0;
  std::optional<double> loss;  // unknown to a coordinator without --data
  std::optional<double> grad_norm_sq;
  // (1/n) Σ ‖∇f_i(x^k)‖² over the n shards: the quantity the paper's own experiment code plots
  // as "‖∇f‖²". Logged only when asked for (CsvColumns), known when grad_norm_sq is.
  std::optional<double> local_grad_norm_sq;
  bool full_sync = false;        // the round that produced x^k was a full sync
  uint32_t participants = 0;     // distinct workers that replied in that round
  double bits_per_worker = 0.0;  // cumulative uplink bits per worker, 32 per value
  uint64_t wire_bytes_up = 0;    // cumulative bytes of all encoded replies
  uint64_t wire_bytes_down = 0;  // cumulative bytes of broadcasts, times their receivers
  double oracle_calls = 0.0;     // cumulative per-sample gradients per worker
  double wall_s = 0.0;

  bool operator==(const LogRow&) const = default;
};

// A Tally's running totals, for checkpoints.
struct TallyState {
  double values = 0.0;  // uplink values sent, all workers together
  double oracle = 0.0;  // per-sample gradients, all workers together
  LogRow row;           // the last closed round's row

  bool operator==(const TallyState&) const = default;
};

// Running totals; feed it every reply and every broadcast, then read row().
class Tally {
 public:
  explicit Tally(uint32_t workers) : workers_(workers) {}
  void on_broadcast(uint64_t encoded_bytes, uint32_t receivers);
  void on_reply(const methods::Reply& reply, uint64_t encoded_bytes);
  // The same from the reply's counts, read before a server half took its buffers.
  void on_reply(std::size_t values_sent, uint64_t oracle_calls, uint64_t encoded_bytes);
  // Closes a round: the next row reports it.
  void end_round(uint64_t round_closed, bool full_sync, uint32_t participants);
  [[nodiscard]] const LogRow& row() const { return row_; }
  [[nodiscard]] TallyState state() const { return {values_, oracle_, row_}; }
  void restore(const TallyState& s) {
    values_ = s.values;
    oracle_ = s.oracle;
    row_ = s.row;
  }

 private:
  uint32_t workers_;
  double values_ = 0.0;
  double oracle_ = 0.0;
  LogRow row_;
};

// Columns beyond the standard ten, each appended after them when chosen; a log resumes only
// with the columns it was started with (its header says which).
struct CsvColumns {
  bool local_grad_norm_sq = false;
};

// CSV with a header, numbers printed shortest-round-trip exact (std::to_chars).
class CsvLog {
 public:
  // Without `truncate_to`, creates (or replaces) the file and writes the header. With it, resumes
  // an existing log: the file is cut to that many bytes, which must hold the header and whole
  // rows, and rows are appended after them. Throws std::runtime_error naming the file when it
  // cannot be created, or is missing, shorter than `truncate_to` or not cut at a row's end.
  explicit CsvLog(const std::filesystem::path& file,
                  std::optional<uint64_t> truncate_to = std::nullopt, CsvColumns columns = {});
  // Appends one row. Rows reach the file in batches, at the latest with the first row written
  // kFlushInterval after the last flush, and at flush(): one write(2) per row took about a tenth
  // of the coordinator's CPU per round at thousands of rounds per second (docs/PERFORMANCE.md).
  // A killed process loses the rows since the last flush; a checkpoint flushes first
  // (drivers::CoordinatorSettings::log_position), so a run resumed from one misses none.
  // Throws std::runtime_error naming the file when the write fails.
  void write(const LogRow& row);
  // Writes out the buffered rows; throws std::runtime_error naming the file when that fails.
  // The destructor flushes too, but cannot report a failure: call this at the end of a run.
  void flush();
  static constexpr std::chrono::milliseconds kFlushInterval{100};
  [[nodiscard]] uint64_t bytes() const { return bytes_; }  // the file's size so far
  [[nodiscard]] uint64_t rows() const { return rows_; }    // header excluded
  static std::string header(CsvColumns columns = {});
  static std::string format(const LogRow& row, CsvColumns columns = {});
  // The same text appended to `out` (no allocation once `out` has grown to a row's size).
  static void format_into(const LogRow& row, std::string& out, CsvColumns columns = {});

 private:
  std::filesystem::path path_;
  CsvColumns columns_;
  std::ofstream out_;
  std::string line_;  // reused: a round's row must not allocate
  uint64_t bytes_ = 0;
  uint64_t rows_ = 0;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

// Shortest representation that parses back to the same double ("nan" when absent).
[[nodiscard]] std::string exact(double v);

}  // namespace marina::run
