// PP-MARINA, one round k:
//
//   c_k = 1: every client sends ∇f_i(x^{k+1}); g^{k+1} is their mean (as in MARINA)
//   c_k = 0: the server draws r client indices i.i.d. uniformly (with replacement); only those
//            send Q(∇f_i(x^{k+1}) − ∇f_i(x^k)) and g^{k+1} = g^k + (1/r) Σ over the draws
//
// A client drawn t times replies once and its reply counts t times (weight t/r in
// ServerHalf::weight), which keeps the estimator unbiased. A client that sat out round k−1
// evaluates its gradient at both points (MarinaWorker keeps track of that).

#include "marina/methods/pp_marina.h"

#include <algorithm>

#include "marina/util/random.h"

namespace marina::methods {

void PpMarinaServer::plan(Broadcast& b) {
  MarinaServer::plan(b);
  if (b.full_sync) return;
  util::Rng rng(util::derive(config_.seed, {round_, util::tag(util::Stream::kClients)}));
  b.participants.resize(config_.clients);
  for (auto& i : b.participants) i = static_cast<uint32_t>(rng.below(config_.workers));
  std::sort(b.participants.begin(), b.participants.end());
}

}  // namespace marina::methods
