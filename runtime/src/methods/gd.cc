// Distributed gradient descent: every round every worker sends ∇f_i(x^k) and
// x^{k+1} = x^k − γ (1/n) Σ ∇f_i(x^k). It is MARINA with c_k = 1 in every round, and it reuses
// MARINA's halves with the coin fixed; the equality of their logs is a test.

#include "marina/methods/gd.h"

namespace marina::methods {

void GdServer::plan(Broadcast& b) {
  b.full_sync = true;
}

}  // namespace marina::methods
