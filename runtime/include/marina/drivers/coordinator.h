#pragma once
// The coordinator's loop over a Hub: admission, rounds with deadlines, liveness, rejoin,
// checkpoints, bye. It owns the server half of the method and the wire codec; who is in lives
// in membership.h, when a round closes in round_policy.h, checkpoint files in checkpoint.h.
//
// Start-up: wait up to the join timeout for the n workers (each reports its shard statistics,
// from which the method's parameters are resolved), but start with those present if they are
// at least --min-workers. Send each its Welcome, publish probes until each has acknowledged
// one (no slow-joiner loss), then round 0.
// Rounds: publish the broadcast; collect replies until every live worker the round awaits has
// answered or the deadline passes (repairing the broadcast to silent workers half-way); close
// the round over the replies that arrived. A worker that misses --miss-limit deadlines in a
// row, whose connection is gone (a direct send fails) or that says bye is marked gone; a
// worker that joins again (same id, possibly a new process) gets its Welcome and a snapshot of
// the server state and takes part from there. Below --min-workers live the round waits up to
// --quorum-timeout-ms, then the run stops with an error naming the missing ids.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "marina/drivers/checkpoint.h"
#include "marina/drivers/membership.h"
#include "marina/drivers/round_policy.h"
#include "marina/methods/config.h"
#include "marina/methods/theory.h"
#include "marina/problem/objective.h"
#include "marina/run/events.h"
#include "marina/run/log.h"
#include "marina/transport/transport.h"

namespace marina::drivers {

// Where the CSV and events files stand, for a checkpoint (a resumed run truncates to it).
struct LogPosition {
  uint64_t rows = 0;
  uint64_t bytes = 0;
  uint64_t events_bytes = 0;
};

// What the coordinator knows about its fleet, for a live view (metrics, dashboard). Published
// by the round loop at most every `status_interval`, and once at the end; the receiver copies
// what it needs and must not block.
struct WorkerStatus {
  uint32_t id = 0;
  MemberState state = MemberState::kAbsent;
  std::string arch;
  uint64_t answered = 0;        // replies aggregated
  uint64_t returns = 0;         // times it came back after being gone
  double last_seen_age_s = -1;  // seconds since its last message (-1: never)
  double last_latency_s = -1;   // broadcast to its last aggregated reply (-1: none yet)
  std::string gone_reason;
  std::string key_fingerprint;  // of the CurveZMQ key it joined with; empty in plaintext
};

struct FleetStatus {
  double time_s = 0.0;  // since the run started
  uint64_t round = 0;   // the round open (or next)
  uint32_t live = 0;
  uint32_t min_workers = 0;
  bool finished = false;
  uint64_t repairs = 0, resyncs = 0, rejected = 0;
  methods::MethodConfig config;  // as resolved (dim 0 before the workers joined)
  std::vector<WorkerStatus> workers;
};

struct CoordinatorSettings {
  methods::MethodConfig base;  // method, compressor, workers, seed, batch sizes, clients
  methods::Choices choices;    // γ and p given by the user, if any
  // The Model::description() every worker must report. Empty: the first admitted worker's
  // becomes the run's (with --data, the coordinator's own model states it).
  std::string model;
  uint64_t rounds = 0;
  std::optional<double> stop_at;
  uint64_t session = 1;

  uint32_t min_workers = 0;  // M; 0 means ⌈n/2⌉
  std::chrono::milliseconds round_timeout{2000};
  std::chrono::milliseconds sync_timeout{0};  // 0 means 3 × round_timeout
  std::chrono::milliseconds repair_after{0};  // 0 means half the round's timeout
  std::chrono::milliseconds join_timeout{60000};
  std::chrono::milliseconds quorum_timeout{60000};
  std::chrono::milliseconds heartbeat{1000};  // publish a heartbeat when silent this long
  uint32_t miss_limit = 3;
  AbsentFn absent;  // simulated faults (marina-sim); empty in a networked run
  // Joins declaring more features are refused before anything is allocated (with --data,
  // its d is the only one accepted).
  uint64_t max_dim = uint64_t{1} << 22;
  // With keys: the worker id an authenticated identity (Incoming::user) is bound to now, or
  // nullopt when its key is not (or no longer) allowed. Empty: plaintext, no identity checks.
  std::function<std::optional<uint32_t>(const std::string& user)> identify;
  // Polled by the loop: true once after the allowlist changed (SIGHUP), and the keys refused
  // at the handshake since the last call (as "key FP from ADDRESS").
  std::function<bool()> keys_changed;
  std::function<std::vector<std::string>()> refused_keys;
  // Set (from a signal handler) to stop: the open round is abandoned, a checkpoint written
  // (if configured), workers told bye; run_coordinator then returns with interrupted = true.
  const std::atomic<bool>* stop = nullptr;
  // Polled while the run waits for workers to join or to return (cheap to call often): a
  // reason when none of the missing workers can come any more (every worker process the caller
  // started has exited); the wait then ends at once instead of at its timeout. Empty: the
  // timeouts decide.
  std::function<std::optional<std::string>()> workers_exited;

  std::filesystem::path checkpoint_dir;  // empty: no checkpoints
  uint64_t checkpoint_every = 0;         // rounds between checkpoints (0: only at the end)
  const Checkpoint* resume = nullptr;    // continue from this checkpoint
  // Called as a checkpoint is written, after every row so far was given to on_row: the logs'
  // sizes, with everything they count already in the files (flush buffered rows first), since
  // a resumed run cuts the files to these sizes.
  std::function<LogPosition()> log_position;

  // Shards for the exact loss and ‖∇f‖² of the log (optional: --data).
  const std::vector<problem::Objective>* evaluation = nullptr;
  std::function<void(const run::LogRow&)> on_row;
  std::function<void(const run::Event&)> on_event;
  std::function<void(const std::string&)> on_info;
  std::function<void(const FleetStatus&)> on_status;
  std::chrono::milliseconds status_interval{100};
};

struct CoordinatorOutcome {
  methods::MethodConfig config;  // as resolved
  run::LogRow last;
  std::optional<double> initial_grad_norm_sq;
  uint64_t repairs = 0;
  uint64_t resyncs = 0;
  uint64_t rejected = 0;                        // messages that failed validation
  std::map<std::string, uint64_t> rejected_by;  // the same, by reason
  bool interrupted = false;
  run::EventCounts events;
};

// Why two model descriptions differ, for a refusal: the differing "key=value" words.
[[nodiscard]] std::string model_difference(const std::string& worker, const std::string& run);

// The "key=value" lines of the settings a resumed run must share with the checkpointed one.
[[nodiscard]] std::string resume_settings(const CoordinatorSettings& s);

// With s.resume: throws std::runtime_error naming every setting that differs from the
// checkpointed run's. run_coordinator checks this first; a program calls it before it touches
// the run's files or starts workers, so that a refused resume changes nothing.
void check_resume(const CoordinatorSettings& s);

// Runs to completion (or until *stop); throws std::runtime_error (after saying bye, and after
// a checkpoint when configured) when too few workers join or stay, or the run diverges.
CoordinatorOutcome run_coordinator(transport::Hub& hub, const CoordinatorSettings& settings);

}  // namespace marina::drivers
