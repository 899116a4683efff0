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
//
// Partial participation: a worker whose m_i did not arrive contributes m_i = 0 (weight 1/n for
// every reply), keeps its h_i (the next broadcast names it as dropped), and h^k remains the
// mean of the h_i. The server moves a mirror of every h_i with each m_i it aggregates, so a
// worker that restarts or resyncs receives its own h_i back and continues unbiased.

#include "marina/methods/diana.h"

#include <algorithm>

#include "marina/methods/mirror.h"
#include "marina/util/random.h"

namespace marina::methods {

DianaServer::DianaServer(const MethodConfig& config) : ServerHalf(config) {
  const auto d = static_cast<Eigen::Index>(config.dim);
  h_ = Eigen::VectorXd::Zero(d);
  shifts_.assign(config.workers, Eigen::VectorXd::Zero(d));
}

double DianaServer::weight(uint32_t /*worker*/) const {
  return 1.0 / static_cast<double>(config_.workers);
}

void DianaServer::plan(Broadcast& b) {
  b.full_sync = false;
}

bool DianaServer::aggregate(ModelUpdate& next) {
  weighted_delta(next);  // (1/n) Σ m_i
  const bool ok = diana_advance(next, config_.gamma, config_.alpha, h_, x_, x_prev_);
  for (uint32_t w = 0; w < config_.workers; ++w)
    if (received(w)) shift_by_reply(w, config_.alpha, shifts_[w]);
  return ok;
}

void DianaServer::save_aux(ServerState& s) const {
  s.aux.assign(h_.data(), h_.data() + h_.size());
  s.worker_aux.clear();
  for (const auto& h : shifts_)
    s.worker_aux.insert(s.worker_aux.end(), h.data(), h.data() + h.size());
}

void DianaServer::load_aux(const ServerState& s) {
  const std::size_t d = config_.dim;
  if (s.aux.size() != d || s.worker_aux.size() != d * config_.workers)
    throw std::invalid_argument("server state: DIANA keeps h (d values) and every h_i (n·d)");
  const auto di = static_cast<Eigen::Index>(d);
  h_ = Eigen::Map<const Eigen::VectorXd>(s.aux.data(), di);
  for (uint32_t w = 0; w < config_.workers; ++w)
    shifts_[w] = Eigen::Map<const Eigen::VectorXd>(s.worker_aux.data() + w * d, di);
}

void DianaServer::snapshot_aux(uint32_t worker, Snapshot& s) const {
  s.aux.assign(h_.data(), h_.data() + h_.size());
  const Eigen::VectorXd& mine = shifts_.at(worker);
  s.worker_aux.assign(mine.data(), mine.data() + mine.size());
}

DianaWorker::DianaWorker(const MethodConfig& config, uint32_t id, Model& model)
    : WorkerHalf(config, id, model) {
  const auto d = static_cast<Eigen::Index>(config.dim);
  h_ = Eigen::VectorXd::Zero(d);
  h_local_ = Eigen::VectorXd::Zero(d);
  sent_ = Eigen::VectorXd::Zero(d);
}

void DianaWorker::settle(const Broadcast& b) {
  if (sent_round_ != UINT64_MAX && sent_round_ + 1 == b.round &&
      !std::binary_search(b.dropped.begin(), b.dropped.end(), id_))
    diana_shift(config_.alpha, sent_, h_local_);
  sent_round_ = UINT64_MAX;
}

void DianaWorker::advance(const ModelUpdate& u) {
  diana_advance(u, config_.gamma, config_.alpha, h_, x_, x_prev_);
}

void DianaWorker::send_shifted(const Broadcast& b, Eigen::VectorXd& estimate, Reply& reply) {
  estimate -= h_local_;
  sent_.setZero();
  compress_reply(estimate, b, reply, &sent_);  // sent_: the server's decode, exactly
  sent_round_ = b.round;
}

void DianaWorker::respond(const Broadcast& b, Reply& reply) {
  reply.local_loss = gradient(x_, grad_);
  reply.oracle_calls = f_.samples();
  send_shifted(b, grad_, reply);
}

void DianaWorker::restore(const Snapshot& s) {
  WorkerHalf::restore(s);  // checks every size
  if (s.worker_aux.size() != s.aux.size())
    throw ProtocolError("snapshot of round " + std::to_string(s.round) +
                        " lacks this worker's shift h_i");
  const auto d = static_cast<Eigen::Index>(s.aux.size());
  h_ = Eigen::Map<const Eigen::VectorXd>(s.aux.data(), d);
  h_local_ = Eigen::Map<const Eigen::VectorXd>(s.worker_aux.data(), d);
  sent_round_ = UINT64_MAX;
}

void VrDianaWorker::restore(const Snapshot& s) {
  DianaWorker::restore(s);
  have_reference_ = false;
}

void VrDianaWorker::respond(const Broadcast& b, Reply& reply) {
  const auto m = static_cast<uint64_t>(f_.samples());
  if (!have_reference_) {  // w_i^0 = x^0
    w_ = x_;
    gradient(w_, mu_);
    reply.oracle_calls += m;
    have_reference_ = true;
  }
  draw_minibatch(b.round, config_.batch, batch_);
  minibatch_difference(x_, w_, batch_, grad_);
  grad_ += mu_;
  reply.oracle_calls += 2 * config_.batch;
  send_shifted(b, grad_, reply);

  util::Rng coin(util::derive(config_.seed, {b.round, id_, util::tag(util::Stream::kReference)}));
  if (coin.bernoulli(config_.p)) {
    w_ = x_;
    reply.local_loss = gradient(w_, mu_);
    reply.oracle_calls += m;
  }
}

}  // namespace marina::methods
