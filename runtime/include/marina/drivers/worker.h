#pragma once
// An edge worker's loop over a Link: join (with backoff until the coordinator answers), build
// the method's worker half from the Welcome, answer broadcasts, resync after a gap, leave on
// bye. All state lives in the worker half; this loop only moves and checks messages.
//
// The worker rides through faults: a coordinator silent for longer than `liveness`, or one
// that announces another session (it restarted), is joined again with backoff; the Welcome and
// the snapshot that follow bring the worker back to the run's state. It gives up only after
// `idle_timeout` without a coordinator.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "marina/model.h"
#include "marina/transport/transport.h"

namespace marina::drivers {

// How the worker is doing, for a service manager (systemd's READY, STATUS and WATCHDOG).
struct WorkerProgress {
  bool joined = false;  // welcomed into a run; false while it joins or joins again
  uint64_t round = 0;   // the next round it expects
  uint64_t replies = 0;
  uint64_t rejoins = 0;
};

struct WorkerSettings {
  uint32_t id = 0;
  std::optional<uint32_t> shard_count;  // N of --shard I/N, checked against the run's n
  Model* model = nullptr;               // f_i; not owned, must outlive the run
  std::chrono::milliseconds connect_timeout{60000};  // give up joining the first time after this
  std::chrono::milliseconds liveness{5000};          // coordinator silent this long: join it again
  std::chrono::milliseconds idle_timeout{120000};    // no coordinator for this long: give up
  // Simulated faults (marina-sim): true when this worker is absent from `round`; the broadcast
  // is then ignored as if it had never arrived.
  std::function<bool(uint64_t round)> absent;
  // Set (from a signal handler) to leave: the worker tells the coordinator bye and returns.
  const std::atomic<bool>* stop = nullptr;
  std::function<void(const std::string&)> on_info;
  // Called from the worker's loop, so a watchdog fed from it sees that loop alive: once when
  // welcomed, then every ~500 ms whether it serves rounds or joins again (never more often).
  std::function<void(const WorkerProgress&)> on_progress;
};

struct WorkerOutcome {
  uint64_t rounds = 0;  // broadcasts handled
  uint64_t replies = 0;
  uint64_t resent = 0;  // replies sent again for a repaired round (the first may have been lost)
  uint64_t resyncs = 0;
  uint64_t rejoins = 0;
  uint64_t rejected = 0;  // messages that failed validation and were ignored
  uint64_t recovery_oracle_calls = 0;
  bool left = false;  // stopped by *stop
  std::string bye_reason;
  std::vector<double> x;  // the worker's last x^k (empty if it never joined)
};

// Throws std::runtime_error when the coordinator cannot be reached, refuses this worker or
// speaks another protocol version; an exception of the model or the method half passes
// through unchanged (the coordinator is told why first).
WorkerOutcome run_worker(transport::Link& link, WorkerSettings settings);

}  // namespace marina::drivers
