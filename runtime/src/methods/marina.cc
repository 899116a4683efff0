// MARINA, Algorithm 1 of the paper, one round k:
//
//   server:  c_k ~ Be(p); broadcast g^k (as the update that turns g^{k−1} into g^k) and c_k
//   worker:  x^{k+1} = x^k − γ g^k
//            c_k = 1: send ∇f_i(x^{k+1})
//            c_k = 0: send Q(∇f_i(x^{k+1}) − ∇f_i(x^k))
//   server:  g^{k+1} = (1/n) Σ ∇f_i(x^{k+1})        if c_k = 1
//            g^{k+1} = g^k + (1/n) Σ Q(Δ_i)          if c_k = 0
//
// Here round r of the runtime is the worker step that produces x^r; round 0 is the initial
// full synchronisation g^0 = ∇f(x^0) and is always a full-sync round. The aggregated
// compressed differences are sent down as a sparse delta, so the downlink is compressed too.
//
// When workers drop out, the means run over the replies that arrived (ServerHalf::weight); a
// full-sync round without any reply keeps g^k.

#include "marina/methods/marina.h"

#include "marina/methods/mirror.h"
#include "marina/util/random.h"

namespace marina::methods {

MarinaServer::MarinaServer(const MethodConfig& config) : ServerHalf(config) {
  g_ = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(config.dim));
}

bool MarinaServer::coin() const {
  util::Rng rng(util::derive(config_.seed, {round_, util::tag(util::Stream::kCoin)}));
  return rng.bernoulli(config_.p);
}

void MarinaServer::plan(Broadcast& b) {
  b.full_sync = round_ == 0 || coin();
}

bool MarinaServer::aggregate(ModelUpdate& next) {
  if (broadcast_.full_sync && received_count() > 0) {
    const Eigen::VectorXd& sum = weighted_sum();  // (1/n) Σ of the dense gradients
    next.kind = UpdateKind::kDense;
    // `next` is reused: a delta it held rounds ago would otherwise ride along in checkpoints.
    next.indices.clear();
    next.values.clear();
    next.dense.assign(sum.data(), sum.data() + sum.size());
  } else {
    weighted_delta(next);  // (1/n) Σ Q(Δ_i)
  }
  return marina_advance(next, config_.gamma, g_, x_, x_prev_);
}

void MarinaServer::save_aux(ServerState& s) const {
  s.aux.assign(g_.data(), g_.data() + g_.size());
}

void MarinaServer::load_aux(const ServerState& s) {
  if (s.aux.size() != config_.dim || !s.worker_aux.empty())
    throw std::invalid_argument("server state: MARINA keeps g (d values) and no worker state");
  g_ = Eigen::Map<const Eigen::VectorXd>(s.aux.data(), static_cast<Eigen::Index>(s.aux.size()));
}

void MarinaServer::snapshot_aux(uint32_t /*worker*/, Snapshot& s) const {
  s.aux.assign(g_.data(), g_.data() + g_.size());
}

MarinaWorker::MarinaWorker(const MethodConfig& config, uint32_t id, Model& model)
    : WorkerHalf(config, id, model) {
  g_ = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(config.dim));
}

void MarinaWorker::advance(const ModelUpdate& u) {
  marina_advance(u, config_.gamma, g_, x_, x_prev_);
}

void MarinaWorker::respond(const Broadcast& b, Reply& reply) {
  const auto m = static_cast<uint64_t>(f_.samples());
  if (b.full_sync) {
    reply.local_loss = gradient(x_, grad_);
    reply.oracle_calls = m;
    grad_round_ = b.round;
    reply.payload.clear();  // nothing of the last round's payload (nor its `finite` mark) stays
    reply.payload.kind = compress::PayloadKind::kDense64;
    reply.payload.dim = static_cast<uint32_t>(config_.dim);
    reply.payload.dense.assign(grad_.data(), grad_.data() + grad_.size());
    return;
  }
  // ∇f_i(x^k) is cached from the previous round unless this worker sat it out (PP-MARINA)
  // or was resynchronised: then it is evaluated again at x^{k−1}. The sentinels must not count
  // as rounds: UINT64_MAX + 1 wraps to 0, so a compressed round 0 (which only a broken or
  // hostile coordinator sends) would otherwise subtract a gradient that was never computed.
  // grad_ and grad_new_ hold only gradients and their differences, so with a sparse model they
  // stay zero off its gradient support and the round touches only the support.
  if (grad_round_ >= kRestored || grad_round_ + 1 != b.round) {
    gradient_on_support(x_prev_, grad_);
    if (grad_round_ == kRestored)
      recovery_oracle_calls_ += m;
    else
      reply.oracle_calls += m;
  }
  reply.local_loss = gradient_on_support(x_, grad_new_);
  reply.oracle_calls += m;
  subtract_on_support(grad_new_, grad_);  // Δ_i, reusing grad_'s storage
  compress_on_support(grad_, b, reply);
  grad_.swap(grad_new_);
  grad_round_ = b.round;
}

void MarinaWorker::restore(const Snapshot& s) {
  WorkerHalf::restore(s);  // checks every size
  g_ = Eigen::Map<const Eigen::VectorXd>(s.aux.data(), static_cast<Eigen::Index>(s.aux.size()));
  grad_round_ = kRestored;
}

}  // namespace marina::methods
