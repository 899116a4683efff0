// VR-MARINA, one round k at worker i (the server is MARINA's):
//
//   c_k = 1: send ∇f_i(x^{k+1})                          (finite sum, Algorithm 2)
//            or (1/b) Σ_{j∈I} ∇f_ij(x^{k+1}), |I| = b      (online, Algorithm 3)
//   c_k = 0: send Q((1/b′) Σ_{j∈I′} (∇f_ij(x^{k+1}) − ∇f_ij(x^k))), the same minibatch I′ of
//            size b′ at both points
//
// Minibatches are drawn (with or without replacement: MethodConfig::batch_sampling) from a
// stream derived from (seed, round, worker), so a rerun draws the same samples.

#include "marina/methods/vr_marina.h"

namespace marina::methods {

void VrMarinaWorker::respond(const Broadcast& b, Reply& reply) {
  if (b.full_sync) {
    if (config_.online_batch == 0) {
      MarinaWorker::respond(b, reply);
      return;
    }
    draw_minibatch(b.round, config_.online_batch, batch_);
    minibatch_gradient(x_, batch_, grad_);
    reply.oracle_calls = config_.online_batch;
    reply.payload.clear();  // nothing of the last round's payload (nor its `finite` mark) stays
    reply.payload.kind = compress::PayloadKind::kDense64;
    reply.payload.dim = static_cast<uint32_t>(config_.dim);
    reply.payload.dense.assign(grad_.data(), grad_.data() + grad_.size());
    return;
  }
  draw_minibatch(b.round, config_.batch, batch_);
  minibatch_difference(x_, x_prev_, batch_, grad_);
  reply.oracle_calls = 2 * config_.batch;
  compress_reply(grad_, b, reply);
}

}  // namespace marina::methods
