#include "marina/methods/method.h"

#include <algorithm>
#include <string>

#include "marina/methods/mirror.h"
#include "marina/util/random.h"

namespace marina::methods {

OutOfSync::OutOfSync(uint64_t expected_round, uint64_t got_round)
    : ProtocolError("missed broadcasts: expected round " + std::to_string(expected_round) +
                    ", got round " + std::to_string(got_round)),
      expected(expected_round),
      got(got_round) {}

// ---- server ---------------------------------------------------------------------------------

ServerHalf::ServerHalf(const MethodConfig& config)
    : config_(config), q_(compress::make_compressor(config.compressor)) {
  if (config_.workers == 0) throw std::invalid_argument("method: need at least one worker");
  if (config_.dim == 0) throw std::invalid_argument("method: dimension must be positive");
  const auto d = static_cast<Eigen::Index>(config_.dim);
  x_ = Eigen::VectorXd::Zero(d);
  x_prev_ = Eigen::VectorXd::Zero(d);
  decoded_.assign(config_.workers, Eigen::VectorXd::Zero(d));
  multiplicity_.assign(config_.workers, 0);
  received_.assign(config_.workers, false);
}

const Broadcast& ServerHalf::begin_round() {
  if (open_) throw std::logic_error("begin_round: round " + std::to_string(round_) + " is open");
  broadcast_.round = round_;
  broadcast_.round_seed = util::derive(config_.seed, {round_, util::tag(util::Stream::kRoundSeed)});
  broadcast_.full_sync = false;
  broadcast_.participants.clear();
  std::swap(broadcast_.update, pending_);
  plan(broadcast_);

  std::fill(multiplicity_.begin(), multiplicity_.end(), 0);
  std::fill(received_.begin(), received_.end(), false);
  if (broadcast_.participants.empty()) {
    std::fill(multiplicity_.begin(), multiplicity_.end(), 1);
  } else {
    for (uint32_t w : broadcast_.participants) ++multiplicity_.at(w);
  }
  expected_count_ = static_cast<uint32_t>(
      std::count_if(multiplicity_.begin(), multiplicity_.end(), [](uint32_t m) { return m > 0; }));
  received_count_ = 0;
  open_ = true;
  return broadcast_;
}

bool ServerHalf::expects(uint32_t worker) const {
  return worker < multiplicity_.size() && multiplicity_[worker] > 0;
}

void ServerHalf::accept(const Reply& reply) {
  const std::string where = "reply of worker " + std::to_string(reply.worker) + " for round " +
                            std::to_string(reply.round);
  if (!open_) throw ProtocolError(where + ": no round is open");
  if (reply.round != round_)
    throw ProtocolError(where + ": the open round is " + std::to_string(round_));
  if (reply.worker >= config_.workers)
    throw ProtocolError(where + ": unknown worker (n = " + std::to_string(config_.workers) + ")");
  if (!expects(reply.worker)) throw ProtocolError(where + ": worker was not drawn this round");
  if (received_[reply.worker]) throw ProtocolError(where + ": duplicate");
  if (reply.payload.dim != config_.dim)
    throw ProtocolError(where + ": payload has d = " + std::to_string(reply.payload.dim) +
                        ", the run has d = " + std::to_string(config_.dim));
  const bool dense = reply.payload.kind == compress::PayloadKind::kDense64;
  if (broadcast_.full_sync && !dense)
    throw ProtocolError(where + ": full-sync round needs a dense gradient");
  if (!broadcast_.full_sync && dense && q_->name() != "identity")
    throw ProtocolError(where + ": dense payload in a round compressed with " + q_->name());
  try {
    const compress::Context ctx{broadcast_.round_seed, reply.worker, config_.workers};
    compress::decode(reply.payload, *q_, ctx, decoded_[reply.worker]);
  } catch (const std::invalid_argument& e) {
    throw ProtocolError(where + ": " + e.what());
  }
  received_[reply.worker] = true;
  ++received_count_;
}

bool ServerHalf::complete() const {
  return open_ && received_count_ == expected_count_;
}

std::vector<uint32_t> ServerHalf::missing() const {
  std::vector<uint32_t> out;
  for (uint32_t w = 0; w < config_.workers; ++w)
    if (expects(w) && !received_[w]) out.push_back(w);
  return out;
}

void ServerHalf::end_round() {
  if (!complete())
    throw std::logic_error("end_round: round " + std::to_string(round_) + " is not complete");
  aggregate(pending_);
  last_participants_ = received_count_;
  ++round_;
  open_ = false;
}

double ServerHalf::weight(uint32_t worker) const {
  if (broadcast_.participants.empty()) return 1.0 / static_cast<double>(config_.workers);
  return static_cast<double>(multiplicity_[worker]) /
         static_cast<double>(broadcast_.participants.size());
}

void ServerHalf::weighted_sum(Eigen::VectorXd& out) const {
  out.setZero(static_cast<Eigen::Index>(config_.dim));
  for (uint32_t w = 0; w < config_.workers; ++w) {
    if (!expects(w)) continue;
    const double c = weight(w);
    const Eigen::VectorXd& v = decoded_[w];
    for (Eigen::Index j = 0; j < out.size(); ++j) out[j] += c * v[j];
  }
}

void ServerHalf::to_delta(const Eigen::VectorXd& v, ModelUpdate& out) {
  out.kind = UpdateKind::kDelta;
  out.dense.clear();
  out.indices.clear();
  out.values.clear();
  for (Eigen::Index j = 0; j < v.size(); ++j) {
    if (v[j] != 0.0) {
      out.indices.push_back(static_cast<uint32_t>(j));
      out.values.push_back(v[j]);
    }
  }
}

// ---- worker ---------------------------------------------------------------------------------

WorkerHalf::WorkerHalf(const MethodConfig& config, uint32_t id, const problem::Objective& objective)
    : config_(config), id_(id), f_(objective), q_(compress::make_compressor(config.compressor)) {
  if (id_ >= config_.workers)
    throw std::invalid_argument("worker id " + std::to_string(id_) +
                                " out of range (n = " + std::to_string(config_.workers) + ")");
  if (objective.dim() != config_.dim)
    throw std::invalid_argument("worker " + std::to_string(id_) +
                                ": shard has d = " + std::to_string(objective.dim()) +
                                " but the run has d = " + std::to_string(config_.dim));
  const auto d = static_cast<Eigen::Index>(config_.dim);
  x_ = Eigen::VectorXd::Zero(d);
  x_prev_ = Eigen::VectorXd::Zero(d);
}

bool WorkerHalf::on_broadcast(const Broadcast& b, Reply& reply) {
  if (b.round < next_round_)
    throw ProtocolError("stale broadcast of round " + std::to_string(b.round) +
                        " (expected round " + std::to_string(next_round_) + ")");
  if (b.round > next_round_) throw OutOfSync(next_round_, b.round);
  for (uint32_t p : b.participants)
    if (p >= config_.workers)
      throw ProtocolError("broadcast of round " + std::to_string(b.round) + ": participant id " +
                          std::to_string(p) + " out of range");
  if (!restored_) {
    validate(b.update, static_cast<Eigen::Index>(config_.dim));
    advance(b.update);
  }
  restored_ = false;
  next_round_ = b.round + 1;
  const bool drawn = b.participants.empty() ||
                     std::binary_search(b.participants.begin(), b.participants.end(), id_);
  if (!drawn) return false;
  reply.worker = id_;
  reply.round = b.round;
  reply.local_loss.reset();
  reply.oracle_calls = 0;
  respond(b, reply);
  return true;
}

void WorkerHalf::restore(const Snapshot& s) {
  const auto d = static_cast<std::size_t>(config_.dim);
  // Every method mirrors one auxiliary d-vector (g^{k−1} or h^k) besides x.
  if (s.x.size() != d || s.aux.size() != d || (!s.x_prev.empty() && s.x_prev.size() != d))
    throw ProtocolError("snapshot of round " + std::to_string(s.round) + " has the wrong size");
  x_ = Eigen::Map<const Eigen::VectorXd>(s.x.data(), static_cast<Eigen::Index>(d));
  if (s.x_prev.empty())
    x_prev_ = x_;
  else
    x_prev_ = Eigen::Map<const Eigen::VectorXd>(s.x_prev.data(), static_cast<Eigen::Index>(d));
  next_round_ = s.round;
  restored_ = true;
}

compress::Context WorkerHalf::context(const Broadcast& b) const {
  return compress::Context{b.round_seed, id_, config_.workers};
}

}  // namespace marina::methods
