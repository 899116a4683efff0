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
  [[nodiscard]] Snapshot snapshot() const override;

 protected:
  void plan(Broadcast& b) override;
  void aggregate(ModelUpdate& next) override;

 private:
  Eigen::VectorXd h_;    // h^k, the mean of the workers' shifts
  Eigen::VectorXd sum_;  // scratch
};

class DianaWorker : public WorkerHalf {
 public:
  DianaWorker(const MethodConfig& config, uint32_t id, const problem::Objective& objective);
  void restore(const Snapshot& s) override;

 protected:
  void advance(const ModelUpdate& u) override;
  void respond(const Broadcast& b, Reply& reply) override;
  // Sends m_i = Q(estimate − h_i) and moves the local shift h_i ← h_i + α m_i, using the
  // decoded m_i exactly as the server sees it.
  void send_shifted(const Broadcast& b, Eigen::VectorXd& estimate, Reply& reply);

  Eigen::VectorXd h_;        // h^k (mirrored server shift)
  Eigen::VectorXd h_local_;  // h_i
  Eigen::VectorXd grad_;     // scratch
};

class VrDianaWorker : public DianaWorker {
 public:
  using DianaWorker::DianaWorker;

 protected:
  void respond(const Broadcast& b, Reply& reply) override;

 private:
  Eigen::VectorXd w_;   // reference point w_i
  Eigen::VectorXd mu_;  // ∇f_i(w_i)
  std::vector<uint32_t> batch_;
  bool have_reference_ = false;
};

}  // namespace marina::methods
