// DIANA (Mishchenko, Gorbunov, Takáč, Richtárik 2019), one round k:
//
//   worker i:  m_i = Q(∇f_i(x^k) − h_i),  h_i ← h_i + α m_i
//   server:    g^k = h^k + (1/n) Σ m_i,  x^{k+1} = x^k − γ g^k,  h^{k+1} = h^k + α (1/n) Σ m_i
//
// VR-DIANA (Horváth, Kovalev, Mishchenko, Richtárik, Stich 2019, the loopless-SVRG variant)
// replaces ∇f_i(x^k) with g_i = (1/b′) Σ_{j∈I′} (∇f_ij(x^k) − ∇f_ij(w_i)) + ∇f_i(w_i) and moves
// the reference point w_i ← x^k with probability p after each round.
//
// The broadcast of round k+1 carries (1/n) Σ m_i as a sparse delta; every worker applies
// diana_advance() to it exactly as the server does.

#include "marina/methods/diana.h"

#include "marina/methods/mirror.h"
#include "marina/util/random.h"

namespace marina::methods {

DianaServer::DianaServer(const MethodConfig& config) : ServerHalf(config) {
  h_ = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(config.dim));
}

void DianaServer::plan(Broadcast& b) {
  b.full_sync = false;
}

void DianaServer::aggregate(ModelUpdate& next) {
  weighted_sum(sum_);  // (1/n) Σ m_i
  to_delta(sum_, next);
  diana_advance(next, config_.gamma, config_.alpha, h_, x_, x_prev_);
}

Snapshot DianaServer::snapshot() const {
  Snapshot s;
  s.round = round_;
  s.x.assign(x_.data(), x_.data() + x_.size());
  if (round_ > 0) s.x_prev.assign(x_prev_.data(), x_prev_.data() + x_prev_.size());
  s.aux.assign(h_.data(), h_.data() + h_.size());
  return s;
}

DianaWorker::DianaWorker(const MethodConfig& config, uint32_t id,
                         const problem::Objective& objective)
    : WorkerHalf(config, id, objective) {
  const auto d = static_cast<Eigen::Index>(config.dim);
  h_ = Eigen::VectorXd::Zero(d);
  h_local_ = Eigen::VectorXd::Zero(d);
}

void DianaWorker::advance(const ModelUpdate& u) {
  diana_advance(u, config_.gamma, config_.alpha, h_, x_, x_prev_);
}

void DianaWorker::send_shifted(const Broadcast& b, Eigen::VectorXd& estimate, Reply& reply) {
  estimate -= h_local_;
  const compress::Context ctx = context(b);
  q_->compress({estimate.data(), static_cast<std::size_t>(estimate.size())}, ctx, reply.payload);
  compress::accumulate(reply.payload, *q_, ctx, config_.alpha, h_local_);
}

void DianaWorker::respond(const Broadcast& b, Reply& reply) {
  reply.local_loss = f_.gradient(x_, grad_);
  reply.oracle_calls = f_.rows();
  send_shifted(b, grad_, reply);
}

void DianaWorker::restore(const Snapshot& s) {
  WorkerHalf::restore(s);  // checks every size
  h_ = Eigen::Map<const Eigen::VectorXd>(s.aux.data(), static_cast<Eigen::Index>(s.aux.size()));
}

void VrDianaWorker::respond(const Broadcast& b, Reply& reply) {
  const auto m = static_cast<uint64_t>(f_.rows());
  if (!have_reference_) {  // w_i^0 = x^0
    w_ = x_;
    f_.gradient(w_, mu_);
    reply.oracle_calls += m;
    have_reference_ = true;
  }
  util::Rng batch_rng(
      util::derive(config_.seed, {b.round, id_, util::tag(util::Stream::kMinibatch)}));
  batch_.resize(config_.batch);
  for (auto& j : batch_) j = static_cast<uint32_t>(batch_rng.below(m));
  f_.minibatch_difference(x_, w_, batch_, grad_);
  grad_ += mu_;
  reply.oracle_calls += 2 * config_.batch;
  send_shifted(b, grad_, reply);

  util::Rng coin(util::derive(config_.seed, {b.round, id_, util::tag(util::Stream::kReference)}));
  if (coin.bernoulli(config_.p)) {
    w_ = x_;
    reply.local_loss = f_.gradient(w_, mu_);
    reply.oracle_calls += m;
  }
}

}  // namespace marina::methods
