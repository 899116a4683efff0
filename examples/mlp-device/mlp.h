#pragma once
// The model of the mlp-device example: a one-hidden-layer perceptron that classifies 8x8
// digits, implementing marina::Model so that the MARINA worker runtime can train it.
//
//   f_i(x) = (1/m) Σ_j CE(softmax(W2 tanh(W1 p_j + b1) + b2), y_j) + (l2/2)‖x‖²
//
// over the m samples (p_j, y_j) of this worker's shard, with the 64 pixels p_j, H hidden tanh
// units and 10 classes. The parameters are one flat vector x, d = 64·H + H + 10·H + 10 entries:
//
//   x[0,       64H)          W1, H×64 column-major: x[i·H + h] is pixel i → hidden unit h
//   x[64H,     65H)          b1, the hidden biases
//   x[65H,     75H)          W2, 10×H column-major: x[65H + h·10 + c] is hidden h → class c
//   x[75H,     75H + 10)     b2, the class biases
//
// Column-major blocks make every inner loop a contiguous axpy (one pixel's column of W1, one
// hidden unit's column of W2), which the compiler vectorises without reordering any sum.
//
// Bit-identical on every platform: the sums over samples, pixels and units run in a fixed
// order, exp/log/tanh are computed from basic IEEE operations (libm's may round differently
// per architecture), and the build uses -ffp-contract=off. Workers on x86-64 and ARM therefore
// compute the same gradients for the same data and x.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <marina/model.h>

#include "digits.h"

namespace mlp_device {

struct MlpOptions {
  std::size_t hidden = 32;  // H
  double l2 = 1e-4;         // the weight of (1/2)‖x‖²
  // How the samples were prepared (split seed, test fraction...), added to description() so
  // that the coordinator refuses a worker whose data differs from the others'.
  std::string data;
};

class Mlp : public marina::Model {
 public:
  // Takes the training shard. Throws std::invalid_argument for an empty shard, H = 0 or an
  // l2 that is negative or not finite.
  Mlp(Digits train, MlpOptions options);

  [[nodiscard]] std::size_t dim() const override { return dim_; }
  [[nodiscard]] std::size_t samples() const override { return train_.size(); }
  [[nodiscard]] std::size_t hidden() const { return hidden_; }
  [[nodiscard]] const Digits& train() const { return train_; }

  double gradient(std::span<const double> x, std::span<double> grad) override;
  // Throws std::invalid_argument for an empty batch, std::out_of_range for an index ≥ samples().
  void minibatch_gradient(std::span<const double> x, std::span<const uint32_t> batch,
                          std::span<double> grad) override;

  // L from marina::estimate_smoothness at a fixed random point near 0 (where the coordinator's
  // --init-scale starts), times kSmoothnessMargin, computed on the first call only. The curvature
  // of a network changes as it trains, so the theoretical stepsize that follows from this L is a
  // guide, not a guarantee: give the coordinator --gamma for real runs.
  [[nodiscard]] marina::Smoothness smoothness() override;
  [[nodiscard]] std::string description() const override;

  // The objective of gradient() — mean cross-entropy plus (l2/2)‖x‖² — on other samples (e.g.
  // the test split), so that training and test losses compare.
  [[nodiscard]] double loss(std::span<const double> x, const Digits& rows) const;
  // The fraction of `rows` whose largest output is the label (a tie goes to the lower class).
  [[nodiscard]] double accuracy(std::span<const double> x, const Digits& rows) const;

  // Random-sign probes see the mean curvature, not the sharpest direction: on a digits shard
  // (H = 32) they measured about 0.085 where power iteration finds λ_max ≈ 0.55, and λ_max
  // rose to about 2.2 during gradient descent. 25× covers both.
  static constexpr double kSmoothnessMargin = 25.0;
  static constexpr double kProbeScale = 0.1;  // the probe point is uniform in [-0.1, 0.1]^d

 private:
  // Per-sample buffers: hidden activations, logits, and the back-propagated errors.
  struct Scratch {
    std::vector<double> hidden, back;  // H each
    double logits[kClasses], delta[kClasses];
    explicit Scratch(std::size_t h) : hidden(h), back(h) {}
  };

  // Σ_{j in batch} CE_j (returned) and, when grad is not empty, Σ_{j in batch} ∇CE_j into grad
  // (overwritten). The sums run over the batch in its order.
  double accumulate(std::span<const double> x, std::span<const uint32_t> batch,
                    std::span<double> grad);
  // Logits of one sample into s.logits (and s.hidden).
  void forward(std::span<const double> x, const double* pixels, Scratch& s) const;
  void check_sizes(std::span<const double> x, std::span<const double> grad,
                   bool with_grad = true) const;

  Digits train_;
  std::size_t hidden_;
  double l2_;
  std::string data_;
  std::size_t dim_;
  std::vector<uint32_t> all_;  // 0..m-1: gradient() is the minibatch of every sample
  Scratch scratch_;
  std::optional<marina::Smoothness> smoothness_;
};

}  // namespace mlp_device
