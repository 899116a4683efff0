#pragma once
// An edge worker's loop over a Link: join (with backoff until the coordinator answers), build
// the method's worker half from the Welcome, answer broadcasts, resync after a gap, leave on
// bye. All state lives in the worker half; this loop only moves and checks messages.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "marina/data/dataset.h"
#include "marina/transport/transport.h"

namespace marina::drivers {

struct WorkerSettings {
  uint32_t id = 0;
  std::optional<uint32_t> shard_count;  // N of --shard I/N, checked against the run's n
  data::Dataset shard;                  // moved into the objective once the Welcome says which loss
  bool bias = false;                    // reported, so the coordinator can refuse a mismatch
  std::optional<uint64_t> shuffle_seed;
  std::chrono::milliseconds connect_timeout{60000};  // give up joining after this
  std::chrono::milliseconds idle_timeout{120000};    // coordinator silent this long: give up
  std::function<void(const std::string&)> on_info;
};

struct WorkerOutcome {
  uint64_t rounds = 0;  // broadcasts handled
  uint64_t replies = 0;
  uint64_t resyncs = 0;
  uint64_t rejected = 0;  // messages that failed validation and were ignored
  std::string bye_reason;
};

// Throws std::runtime_error when the coordinator cannot be reached or goes silent.
WorkerOutcome run_worker(transport::Link& link, WorkerSettings settings);

}  // namespace marina::drivers
