#pragma once
// The learning problem of the paper's experiments (§5.1): binary classification with a
// margin loss φ(y aᵀx), f_i(x) = (1/m_i) Σ_j φ(y_j a_jᵀx) + (λ/2)||x||² on worker i's shard.
//
// All reductions are plain loops in row order: the result depends only on the data and x, not
// on the SIMD width of the machine, so workers on ARM and x86-64 agree.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <string>

#include <Eigen/Core>

#include "marina/data/dataset.h"
#include "marina/model.h"

namespace marina::problem {

enum class Loss : uint8_t {
  kNonConvex,  // (1 − σ(m))², the paper's loss
  kLogistic,   // log(1 + e^{−m})
};

[[nodiscard]] std::string_view to_string(Loss loss);
// "nonconvex" or "logistic"; throws std::invalid_argument otherwise.
[[nodiscard]] Loss parse_loss(std::string_view name);

// sup_m |φ''(m)|: 0.15405 for (1 − σ(m))² (docs/ARCHITECTURE.md, "Compressors and the loss"), 1/4
// for the logistic loss.
[[nodiscard]] double curvature_bound(Loss loss);

// Statistics of a shard that do not depend on the loss: what a worker reports when it joins,
// so that the coordinator can compute the theoretical stepsizes without the data.
struct ShardStats {
  uint64_t rows = 0;
  double lambda_max = 0.0;       // λ_max(AᵀA/m), by power iteration from a fixed start
  double mean_row_norm4 = 0.0;   // (1/m) Σ_j ||a_j||⁴
  double max_row_norm_sq = 0.0;  // max_j ||a_j||²
  bool operator==(const ShardStats&) const = default;
};
[[nodiscard]] ShardStats shard_stats(const data::Dataset& shard);

// Smoothness constants of f_i from the statistics: L_i = c·λ_max + λ,
// 𝓛_i² = (1/m) Σ (c||a_j||² + λ)², max_j L_ij = c·max||a_j||² + λ, c = curvature_bound(loss).
using Smoothness = marina::Smoothness;
[[nodiscard]] Smoothness smoothness(const ShardStats& s, Loss loss, double l2);

// What every worker of a run must share besides d: the loss, λ and the data preparation
// (Model::description(); the coordinator compares it with its own when given --data).
[[nodiscard]] std::string describe(Loss loss, double l2, bool bias,
                                   std::optional<uint64_t> shuffle_seed);

// The linear classifier as a marina::Model: the built-in model of marina-worker and of the
// simulator. Its const members (value, the Eigen overloads) are safe to call from several
// threads at once, which the simulator's evaluation relies on.
class Objective final : public Model {
 public:
  // `description` defaults to describe(loss, l2, false, nullopt).
  Objective(data::Dataset shard, Loss loss, double l2, std::string description = {});

  [[nodiscard]] std::size_t rows() const { return data_.rows(); }
  [[nodiscard]] std::size_t dim() const override { return data_.dim(); }
  [[nodiscard]] std::size_t samples() const override { return data_.rows(); }
  double gradient(std::span<const double> x, std::span<double> grad) override;
  // Without an l2 term, the columns the shard uses (when they are at most a quarter of d).
  [[nodiscard]] std::span<const uint32_t> gradient_support() const override { return support_; }
  double gradient_on_support(std::span<const double> x, std::span<double> grad) override;
  void minibatch_gradient(std::span<const double> x, std::span<const uint32_t> batch,
                          std::span<double> grad) override;
  void minibatch_difference(std::span<const double> x, std::span<const double> y,
                            std::span<const uint32_t> batch, std::span<double> grad) override;
  [[nodiscard]] Smoothness smoothness() override { return std::as_const(*this).smoothness(); }
  [[nodiscard]] std::string description() const override { return description_; }
  [[nodiscard]] Loss loss_kind() const { return loss_; }
  [[nodiscard]] double l2() const { return l2_; }
  [[nodiscard]] const data::Dataset& data() const { return data_; }

  [[nodiscard]] double value(const Eigen::VectorXd& x) const;
  // grad = ∇f_i(x); returns f_i(x), computed in the same pass.
  double gradient(const Eigen::VectorXd& x, Eigen::VectorXd& grad) const;
  // grad = (1/|rows|) Σ_{j ∈ rows} ∇f_ij(x) + λx (rows may repeat).
  void minibatch_gradient(const Eigen::VectorXd& x, std::span<const uint32_t> rows,
                          Eigen::VectorXd& grad) const;
  // grad = (1/|rows|) Σ_{j ∈ rows} (∇f_ij(x) − ∇f_ij(y)): the λ terms cancel to λ(x − y).
  void minibatch_difference(const Eigen::VectorXd& x, const Eigen::VectorXd& y,
                            std::span<const uint32_t> rows, Eigen::VectorXd& grad) const;

  // The smoothness constants of this f_i (see Smoothness).
  [[nodiscard]] Smoothness smoothness() const;

 private:
  [[nodiscard]] double margin(std::size_t row, const double* x) const;
  void add_row(std::size_t row, double scale, double* out) const;
  double gradient_into(const double* x, double* grad) const;
  double support_gradient_into(const double* x, double* grad);
  void minibatch_into(const double* x, std::span<const uint32_t> batch, double* grad) const;
  void difference_into(const double* x, const double* y, std::span<const uint32_t> batch,
                       double* grad) const;
  void check(std::size_t size, const char* what) const;

  data::Dataset data_;
  Loss loss_;
  double l2_;
  std::string description_;
  // gradient_support(), stated when at most 1/kSupportFraction of the columns.
  static constexpr std::size_t kSupportFraction = 4;
  std::vector<uint32_t> support_;
  std::vector<int> support_position_;  // per non-zero of A: its column's place in support_
  std::vector<double> compact_;        // the gradient at support_, before scaling (scratch)
};

// The full objective f = (1/n) Σ f_i over equal shards, evaluated exactly; for logs.
struct Evaluation {
  double loss = 0.0;
  double grad_norm_sq = 0.0;        // ‖∇f(x)‖²
  double local_grad_norm_sq = 0.0;  // (1/n) Σ ‖∇f_i(x)‖², what the paper's own code plots
};
[[nodiscard]] Evaluation evaluate(std::span<const Objective> shards, const Eigen::VectorXd& x,
                                  Eigen::VectorXd& scratch, Eigen::VectorXd& grad);

}  // namespace marina::problem
