#pragma once
// DIANA (Mishchenko et al. 2019) and VR-DIANA (Horváth et al. 2019), the compressed baselines
// of the paper's experiments.

#include <vector>

#include <Eigen/Core>

#include "marina/methods/method.h"

namespace marina::methods {

class DianaServer : public ServerHalf {
 public:
  explicit DianaServer(const MethodConfig& config);
  // The server's mirror of worker i's shift h_i (for tests and resync).
  [[nodiscard]] const Eigen::VectorXd& shift(uint32_t worker) const { return shifts_.at(worker); }
  [[nodiscard]] const Eigen::VectorXd& mean_shift() const { return h_; }

 protected:
  void plan(Broadcast& b) override;
  bool aggregate(ModelUpdate& next) override;
  void save_aux(ServerState& s) const override;
  void load_aux(const ServerState& s) override;
  void snapshot_aux(uint32_t worker, Snapshot& s) const override;
  // 1/n for every reply: a missing worker's m_i is 0 (its shift stands in for its gradient).
  [[nodiscard]] double weight(uint32_t worker) const override;

 private:
  Eigen::VectorXd h_;                    // h^k, the mean of the workers' shifts
  std::vector<Eigen::VectorXd> shifts_;  // h_i, moved exactly as each worker moves its own
};

class DianaWorker : public WorkerHalf {
 public:
  DianaWorker(const MethodConfig& config, uint32_t id, Model& model);
  void restore(const Snapshot& s) override;
  [[nodiscard]] const Eigen::VectorXd& shift() const { return h_local_; }

 protected:
  void advance(const ModelUpdate& u) override;
  void respond(const Broadcast& b, Reply& reply) override;
  void settle(const Broadcast& b) override;
  // Sends m_i = Q(estimate − h_i) and keeps the decoded m_i, exactly as the server sees it;
  // the shift moves (h_i ← h_i + α m_i) once the next broadcast confirms that the server
  // aggregated it (settle), so h_i and the server's mirror of it never part.
  void send_shifted(const Broadcast& b, Eigen::VectorXd& estimate, Reply& reply);

  Eigen::VectorXd h_;                 // h^k (mirrored server shift)
  Eigen::VectorXd h_local_;           // h_i
  Eigen::VectorXd grad_;              // scratch
  Eigen::VectorXd sent_;              // m_i of the last reply, decoded
  uint64_t sent_round_ = UINT64_MAX;  // its round; UINT64_MAX: nothing awaits settling
};

class VrDianaWorker : public DianaWorker {
 public:
  using DianaWorker::DianaWorker;
  // The reference point is the worker's own: after a restore it starts again at x^k.
  void restore(const Snapshot& s) override;

 protected:
  void respond(const Broadcast& b, Reply& reply) override;

 private:
  Eigen::VectorXd w_;   // reference point w_i
  Eigen::VectorXd mu_;  // ∇f_i(w_i)
  std::vector<uint32_t> batch_;
  bool have_reference_ = false;
};

}  // namespace marina::methods
