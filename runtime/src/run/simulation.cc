#include "marina/run/simulation.h"

#include <stdexcept>

namespace marina::run {

Simulation::Simulation(const methods::MethodConfig& config, std::vector<problem::Objective>& shards)
    : shards_(shards), server_(methods::make_server(config)), tally_(config.workers) {
  if (shards.size() != config.workers)
    throw std::invalid_argument("simulation: " + std::to_string(shards.size()) + " shards for " +
                                std::to_string(config.workers) + " workers");
  for (uint32_t i = 0; i < config.workers; ++i)
    workers_.push_back(methods::make_worker(config, i, shards[i]));
}

void Simulation::evaluate(LogRow& row) {
  const auto e = problem::evaluate(shards_, server_->x(), scratch_, grad_);
  row.loss = e.loss;
  row.grad_norm_sq = e.grad_norm_sq;
  row.local_grad_norm_sq = e.local_grad_norm_sq;
}

LogRow Simulation::initial_row() {
  LogRow row = tally_.row();
  evaluate(row);
  return row;
}

LogRow Simulation::step() {
  const methods::Broadcast& b = server_->begin_round();
  tally_.on_broadcast(0, static_cast<uint32_t>(workers_.size()));
  for (auto& w : workers_) {
    if (w->on_broadcast(b, reply_)) {
      tally_.on_reply(reply_, 0);
      server_->accept_and_recycle(reply_);  // its dense buffer comes back for the next
    }
  }
  const bool full_sync = b.full_sync;
  server_->end_round();
  tally_.end_round(server_->round() - 1, full_sync, server_->last_participants());
  LogRow row = tally_.row();
  evaluate(row);
  return row;
}

}  // namespace marina::run
