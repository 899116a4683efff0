#pragma once
// What the coordinator's HTTP view (--http) reads: the log rows, the events and the latest fleet
// status of the run, copied in by the round loop's callbacks and read by the HTTP threads.
//
// The round loop must never wait for a reader: every writer takes the lock only for an append
// or a pointer swap (copies are made before the lock), and readers copy what they need in
// bounded chunks, releasing the lock between them, so a large /api/log request never holds the
// round loop up for longer than one chunk.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "marina/drivers/coordinator.h"
#include "marina/methods/config.h"
#include "marina/run/events.h"
#include "marina/run/log.h"

namespace marina::observe {

// The run as configured, known before the workers join.
struct RunInfo {
  methods::MethodConfig config;  // as asked; the fleet status carries the resolved one
  uint64_t rounds = 0;           // --rounds
  std::string listen;            // the ZeroMQ endpoint workers connect to
  std::string data;              // --data (empty: loss and ||grad f||^2 may be unknown)
  uint32_t min_workers = 0;      // as asked (0: ceil(n/2))
  int64_t round_timeout_ms = 0;
  int64_t sync_timeout_ms = 0;
  uint32_t miss_limit = 0;
};

// Everything but the row and event history, as one consistent copy.
struct Summary {
  RunInfo info;
  std::optional<run::LogRow> last_row;
  uint64_t rows = 0;              // rows held (this process's)
  uint64_t events = 0;            // events held (this process's)
  uint64_t full_sync_rounds = 0;  // rows with full_sync, this process's
  std::map<std::string, uint64_t> event_counts;
  std::shared_ptr<const drivers::FleetStatus> status;  // null until the first one
  double status_age_s = 0.0;  // how long ago `status` was taken: its ages have grown by this
  bool finished = false;      // the run is over (the HTTP view may linger)
  std::string outcome;        // how it ended: "run complete", "stopped by a signal", an error
};

class Store {
 public:
  explicit Store(RunInfo info) : info_(std::move(info)) {}

  // Writers: the coordinator's thread (the callbacks of CoordinatorSettings).
  void add_row(const run::LogRow& row);
  void add_event(const run::Event& e);
  void set_status(const drivers::FleetStatus& status);
  void finish(const std::string& outcome);

  // Readers: any thread.
  [[nodiscard]] Summary summary() const;
  // Rows with round >= `round`, at most `limit` of them, in round order.
  [[nodiscard]] std::vector<run::LogRow> rows_since(uint64_t round, std::size_t limit) const;
  // Events from index `index` on (0: the first of this process), at most `limit`.
  [[nodiscard]] std::vector<run::Event> events_since(uint64_t index, std::size_t limit) const;

 private:
  using Clock = std::chrono::steady_clock;

  const RunInfo info_;
  mutable std::mutex mu_;
  // Deques: an append never moves what is held, so it costs the writer O(1) under the lock.
  std::deque<run::LogRow> rows_;
  std::deque<run::Event> events_;
  uint64_t full_sync_rounds_ = 0;
  std::map<std::string, uint64_t> event_counts_;
  std::shared_ptr<const drivers::FleetStatus> status_;
  Clock::time_point status_at_{};
  bool finished_ = false;
  std::string outcome_;
};

}  // namespace marina::observe
