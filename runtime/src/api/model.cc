#include "marina/model.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "marina/util/random.h"

namespace marina {

void Model::minibatch_gradient(std::span<const double>, std::span<const uint32_t>,
                               std::span<double>) {
  throw std::logic_error(
      "this model has no minibatch_gradient(): the variance-reduced methods (vr-marina, "
      "vr-diana) need it; use marina, pp-marina, gd or diana");
}

void Model::minibatch_difference(std::span<const double> x, std::span<const double> y,
                                 std::span<const uint32_t> batch, std::span<double> grad) {
  scratch_.resize(grad.size());
  minibatch_gradient(y, batch, scratch_);
  minibatch_gradient(x, batch, grad);
  for (std::size_t j = 0; j < grad.size(); ++j) grad[j] -= scratch_[j];
}

double estimate_smoothness(Model& model, std::span<const double> x, unsigned probes, double radius,
                           uint64_t seed, double factor) {
  const std::size_t d = model.dim();
  if (x.size() != d)
    throw std::invalid_argument("estimate_smoothness: x has " + std::to_string(x.size()) +
                                " entries, the model " + std::to_string(d));
  if (probes == 0 || !(radius > 0.0) || !(factor >= 1.0))
    throw std::invalid_argument("estimate_smoothness: needs probes >= 1, radius > 0, factor >= 1");
  std::vector<double> g0(d), g1(d), z(d);
  model.gradient(x, g0);
  util::Rng rng(util::derive(seed, {0x5a007e55ULL}));
  double best = 0.0;
  for (unsigned probe = 0; probe < probes; ++probe) {
    // A uniform direction on the sphere would need normals; a random sign vector scaled to
    // the radius probes every coordinate equally and is the same on every architecture.
    const double step = radius / std::sqrt(static_cast<double>(d));
    for (std::size_t j = 0; j < d; ++j) z[j] = x[j] + ((rng.next() >> 63) ? step : -step);
    model.gradient(z, g1);
    double diff = 0.0;
    for (std::size_t j = 0; j < d; ++j) diff += (g1[j] - g0[j]) * (g1[j] - g0[j]);
    const double ratio = std::sqrt(diff) / radius;
    if (!std::isfinite(ratio))
      throw std::runtime_error("estimate_smoothness: the model's gradient is not finite near x");
    if (ratio > best) best = ratio;
  }
  return factor * best;
}

}  // namespace marina
