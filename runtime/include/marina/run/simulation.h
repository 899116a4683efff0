#pragma once
// The in-process driver: one server half and n worker halves stepped in one thread, in
// worker-id order, deterministically. It is the reference that a networked run must equal.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "marina/methods/method.h"
#include "marina/problem/objective.h"
#include "marina/run/log.h"

namespace marina::run {

class Simulation {
 public:
  // `shards` must outlive the simulation; shards.size() == config.workers.
  Simulation(const methods::MethodConfig& config, std::vector<problem::Objective>& shards);

  // Row 0: x^0 before any round.
  [[nodiscard]] LogRow initial_row();
  // Runs one round and returns the row of the new iterate.
  [[nodiscard]] LogRow step();

  [[nodiscard]] const methods::ServerHalf& server() const { return *server_; }

 private:
  void evaluate(LogRow& row);

  std::vector<problem::Objective>& shards_;
  std::unique_ptr<methods::ServerHalf> server_;
  std::vector<std::unique_ptr<methods::WorkerHalf>> workers_;
  methods::Reply reply_;
  Tally tally_;
  Eigen::VectorXd scratch_, grad_;
};

}  // namespace marina::run
