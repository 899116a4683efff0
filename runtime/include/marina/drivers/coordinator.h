#pragma once
// The coordinator's loop over a Hub: start-up handshake, rounds, repair, bye. It owns the
// server half of the method and the wire codec; the transport only moves bytes.
//
// Start-up: wait for the n workers to join (each reports its shard statistics), resolve the
// method's parameters, send each its Welcome, then publish probes until every worker has
// acknowledged one: only then is round 0 published, so no worker misses it (slow joiner).
// Rounds: publish the broadcast; collect replies; a worker that has not answered within the
// round timeout gets the broadcast again directly (PUB may have dropped it); a worker that
// reports a gap gets a snapshot. End: bye to every worker.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "marina/methods/config.h"
#include "marina/methods/theory.h"
#include "marina/problem/objective.h"
#include "marina/run/log.h"
#include "marina/transport/transport.h"

namespace marina::drivers {

struct CoordinatorSettings {
  methods::MethodConfig base;  // method, compressor, workers, seed, batch sizes, clients
  methods::Choices choices;    // γ and p given by the user, if any
  problem::Loss loss = problem::Loss::kNonConvex;
  double l2 = 0.0;
  bool bias = false;
  std::optional<uint64_t> shuffle_seed;
  uint64_t rounds = 0;
  std::optional<double> stop_at;
  uint64_t session = 1;
  std::chrono::milliseconds round_timeout{10000};
  std::chrono::milliseconds join_timeout{60000};
  int max_repairs = 3;
  // Shards for the exact loss and ‖∇f‖² of the log (optional: --data).
  const std::vector<problem::Objective>* evaluation = nullptr;
  std::function<void(const run::LogRow&)> on_row;
  std::function<void(const std::string&)> on_info;
};

struct CoordinatorOutcome {
  methods::MethodConfig config;  // as resolved
  run::LogRow last;
  std::optional<double> initial_grad_norm_sq;
  uint64_t repairs = 0;
  uint64_t resyncs = 0;
  uint64_t rejected = 0;  // messages that failed validation
};

// Runs to completion; throws std::runtime_error (after saying bye) when workers do not join
// or stop answering.
CoordinatorOutcome run_coordinator(transport::Hub& hub, const CoordinatorSettings& settings);

}  // namespace marina::drivers
