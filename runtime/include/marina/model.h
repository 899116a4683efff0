#pragma once
// Public API: the model a device program trains.
//
// A worker holds one shard of the data and the model's loss on it,
//   f_i(x) = (1/m_i) Σ_{j<m_i} f_ij(x),   x ∈ ℝ^d,
// and the methods need only what this interface gives: f_i and ∇f_i at a point, minibatch
// gradients (VR-MARINA, VR-DIANA) and smoothness constants for the theoretical stepsizes.
// Every output goes into a buffer the caller owns, so nothing needs to allocate per round. The
// spans passed in are valid for the call only: the runtime reuses (and swaps) its vectors
// between calls, so a model must copy what it wants to keep of x.
//
// The runtime calls a model from one thread only (the thread that runs marina::Worker::run),
// so an implementation may keep scratch buffers in its members. An exception thrown by any of
// these functions ends the worker's run: the coordinator is told why, and Worker::run rethrows
// it to the device program as marina::WorkerError.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace marina {

// Smoothness constants of f_i, as the convergence theory of the methods uses them.
struct Smoothness {
  // L_i: ‖∇f_i(x) − ∇f_i(y)‖ ≤ L_i‖x − y‖. Required (> 0) for the theoretical stepsizes; a
  // coordinator given --gamma explicitly does not use it.
  double L = 0.0;
  // 𝓛_i² = (1/m_i) Σ_j L_ij², the mean square of the per-sample constants (VR methods).
  // 0: unknown, taken as L².
  double L_mean_sq = 0.0;
  // max_j L_ij (VR-DIANA). 0: unknown, taken as L.
  double L_max = 0.0;

  bool operator==(const Smoothness&) const = default;
};

class Model {
 public:
  virtual ~Model() = default;

  // d, the number of parameters; the same on every worker of a run.
  [[nodiscard]] virtual std::size_t dim() const = 0;
  // m_i, the number of local samples (≥ 1).
  [[nodiscard]] virtual std::size_t samples() const = 0;

  // grad ← ∇f_i(x) over all local samples; returns f_i(x). x and grad have dim() entries.
  virtual double gradient(std::span<const double> x, std::span<double> grad) = 0;

  // The columns outside which ∇f_i(x) is zero at every x, strictly increasing and < dim():
  // for a linear model on sparse data without an l2 term, the columns its shard uses. Empty
  // (the default) when there is no such set or it is all of [0, d). A model that states one
  // lets MARINA's worker keep its gradients zero outside it and evaluate them with
  // gradient_on_support(), so that a round costs O(nnz + |support|) there instead of O(d), and
  // RandK reads their difference only at the indices it draws within the set.
  // The set must not change during a run (it is read once).
  [[nodiscard]] virtual std::span<const uint32_t> gradient_support() const { return {}; }

  // gradient(), for a `grad` that is zero outside gradient_support() on entry: only the
  // entries at those columns need to be written (the others must stay zero). The default calls
  // gradient().
  virtual double gradient_on_support(std::span<const double> x, std::span<double> grad) {
    return gradient(x, grad);
  }

  // grad ← (1/|batch|) Σ_{j ∈ batch} ∇f_ij(x); entries of batch are sample indices < samples()
  // and may repeat (distinct and ascending when the run draws minibatches without replacement,
  // MethodConfig::batch_sampling). Used by the variance-reduced methods only; the default
  // throws.
  virtual void minibatch_gradient(std::span<const double> x, std::span<const uint32_t> batch,
                                  std::span<double> grad);

  // grad ← (1/|batch|) Σ_{j ∈ batch} (∇f_ij(x) − ∇f_ij(y)). The default calls
  // minibatch_gradient twice (with one scratch vector allocated on first use); a model can do
  // better when the difference is cheaper than two gradients.
  virtual void minibatch_difference(std::span<const double> x, std::span<const double> y,
                                    std::span<const uint32_t> batch, std::span<double> grad);

  // The smoothness constants of f_i, reported to the coordinator when the worker joins.
  // Models that cannot state them can use estimate_smoothness() below.
  [[nodiscard]] virtual Smoothness smoothness() = 0;

  // Whatever must be the same on every worker of a run besides d (the loss, regularisation,
  // data preparation, architecture...), as a short text: the coordinator refuses a worker whose
  // description differs from the others'. Empty by default.
  [[nodiscard]] virtual std::string description() const { return {}; }

 private:
  std::vector<double> scratch_;
};

// An estimate of L_i for a model that cannot state it: the largest ‖∇f_i(x+δ) − ∇f_i(x)‖/‖δ‖
// over `probes` random directions δ of length `radius` around x (deterministic for a seed).
// It measures the curvature near x only, so a margin (the factor, ≥ 1) covers the rest of the
// path; the theoretical stepsize then is about 1/(factor·estimate). Allocates; call it once.
[[nodiscard]] double estimate_smoothness(Model& model, std::span<const double> x,
                                         unsigned probes = 8, double radius = 1e-3,
                                         uint64_t seed = 1, double factor = 1.0);

}  // namespace marina
