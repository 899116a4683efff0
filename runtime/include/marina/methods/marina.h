#pragma once
// MARINA (Gorbunov, Burlachenko, Li, Richtárik, ICML 2021, Algorithm 1) and its relatives.
// The server and worker halves of VR-MARINA (Alg. 2/3) and PP-MARINA (Alg. 4) reuse these:
// VR-MARINA changes only how a worker estimates its gradient difference, PP-MARINA only
// which workers the server asks.

#include <Eigen/Core>

#include "marina/methods/method.h"

namespace marina::methods {

class MarinaServer : public ServerHalf {
 public:
  explicit MarinaServer(const MethodConfig& config);

 protected:
  void plan(Broadcast& b) override;
  bool aggregate(ModelUpdate& next) override;
  void save_aux(ServerState& s) const override;
  void load_aux(const ServerState& s) override;
  void snapshot_aux(uint32_t worker, Snapshot& s) const override;
  // c_k ~ Bernoulli(p), drawn from the run seed and k alone (no hidden RNG state).
  [[nodiscard]] bool coin() const;

  Eigen::VectorXd g_;  // g^{k−1}
};

class MarinaWorker : public WorkerHalf {
 public:
  MarinaWorker(const MethodConfig& config, uint32_t id, Model& model);
  void restore(const Snapshot& s) override;

 protected:
  void advance(const ModelUpdate& u) override;
  void respond(const Broadcast& b, Reply& reply) override;

  Eigen::VectorXd g_;         // g^{k−1}
  Eigen::VectorXd grad_;      // ∇f_i at x^{grad_round_}
  Eigen::VectorXd grad_new_;  // scratch
  // grad_round_ after a restore: ∇f_i(x^{k−1}) must be evaluated again, as recovery.
  static constexpr uint64_t kRestored = UINT64_MAX - 1;
  uint64_t grad_round_ = UINT64_MAX;
};

}  // namespace marina::methods
