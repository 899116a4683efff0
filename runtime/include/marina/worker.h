#pragma once
// Public API: the worker runtime that a device program embeds.
//
//   MyModel model(...);                       // implements marina::Model
//   marina::WorkerOptions options;
//   options.coordinator = "tcp://192.168.1.10:5555";
//   options.id = 3;
//   marina::Worker worker(model, options);
//   marina::WorkerSummary s = worker.run();   // until the coordinator says bye or stop()
//
// run() joins the coordinator (retrying with backoff), takes the method and its settings from
// the coordinator's welcome, answers each round with the compressed gradient difference of
// the model at the round's point, catches up after missed rounds or a coordinator restart,
// and returns when the run ends. The coordinator decides everything about the method; the
// device program decides the model and its data.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "marina/model.h"

namespace marina {

// The worker could not take part or stopped on an error: the coordinator was unreachable or
// refused it, an option was invalid, or the model threw (what() then carries the model's
// message, and the coordinator was told it before this was thrown).
class WorkerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the worker stands; passed to WorkerOptions::on_status and returned by status().
struct WorkerStatus {
  bool joined = false;  // welcomed into a run (false while joining or joining again)
  uint64_t round = 0;   // the next round it expects
  uint64_t replies = 0;
  uint64_t rejoins = 0;
};

// Settings of a worker; only `coordinator` has no usable default.
struct WorkerOptions {
  std::string coordinator;  // tcp://HOST:PORT of the coordinator's --listen (it uses PORT+1 too)
  uint32_t id = 0;          // this worker's id in the run, 0 ≤ id < n
  // N when the data was split into N shards, one per worker: the coordinator refuses the
  // worker when its run has another number of workers. Unset: not checked.
  std::optional<uint32_t> shard_count;
  // CurveZMQ: this worker's secret key file (marina-keygen NAME writes NAME.key) and the
  // coordinator's public key (a NAME.pub file or the 40-character Z85 key). Both or neither.
  std::string curve_secret_file;
  std::string server_key;
  std::chrono::milliseconds connect_timeout{60000};  // first join: give up after this
  std::chrono::milliseconds liveness{5000};          // coordinator silent this long: rejoin
  std::chrono::milliseconds idle_timeout{120000};    // lost coordinator: give up after this
  // Called from run()'s thread when the worker is welcomed, and then about every 500 ms: a
  // watchdog fed from here sees the worker's loop alive. Must not block.
  std::function<void(const WorkerStatus&)> on_status;
  // One line of news (welcomed, resynced, rejoining...), from run()'s thread.
  std::function<void(const std::string&)> on_message;
};

// What a finished run() did.
struct WorkerSummary {
  uint64_t rounds = 0;   // rounds handled
  uint64_t replies = 0;  // replies sent
  uint64_t resyncs = 0;
  uint64_t rejoins = 0;
  uint64_t rejected = 0;   // malformed or unexpected messages that were ignored
  uint64_t resent = 0;     // replies sent again for a repaired round (the first may be lost)
  bool stopped = false;    // ended by stop()
  std::string bye_reason;  // the coordinator's reason, when it ended the run
  std::vector<double> x;   // the model's last point (x^k of the last round it took part in)
};

class Worker {
 public:
  // Keeps a reference to `model`, which must outlive the Worker. Throws WorkerError for an
  // invalid option (naming it) or an unreadable key file.
  Worker(Model& model, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs until the coordinator ends the run or stop() is called; once per Worker. Throws
  // WorkerError (see above).
  WorkerSummary run();
  // Asks run() to leave (it tells the coordinator bye and returns within about 200 ms).
  // Safe from any thread and from a signal handler.
  void stop() noexcept;
  // The latest status; safe from any thread.
  [[nodiscard]] WorkerStatus status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace marina
