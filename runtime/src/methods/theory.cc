#include "marina/methods/theory.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "marina/compress/compressor.h"

namespace marina::methods {

ProblemConstants combine(std::span<const problem::Smoothness> shards, uint64_t rows) {
  ProblemConstants k;
  k.rows = rows;
  if (shards.empty()) return k;
  double l2 = 0.0, lms = 0.0;
  // A model that cannot state the per-sample constants reports 0: taken as 𝓛_i² = L_i²
  // and max_j L_ij = L_i (exact when every sample has the same curvature).
  for (const auto& s : shards) {
    l2 += s.L * s.L;
    lms += s.L_mean_sq > 0.0 ? s.L_mean_sq : s.L * s.L;
    k.L_max = std::max(k.L_max, s.L_max > 0.0 ? s.L_max : s.L);
  }
  const auto n = static_cast<double>(shards.size());
  k.L = std::sqrt(l2 / n);
  k.L_mean_sq = lms / n;
  return k;
}

ProblemConstants measure(std::span<const problem::Objective> shards) {
  std::vector<problem::Smoothness> s;
  for (const auto& f : shards) s.push_back(f.smoothness());
  return combine(s, shards.empty() ? 0 : shards.front().rows());
}

SmoothnessBound parse_smoothness(const std::string& name) {
  if (name == "spectral") return SmoothnessBound::kSpectral;
  if (name == "row-max") return SmoothnessBound::kRowMax;
  throw std::invalid_argument("--smoothness: expected spectral or row-max, got '" + name + "'");
}

MethodConfig resolve(MethodConfig c, const Choices& choices, const ProblemConstants& measured,
                     std::string* explain) {
  ProblemConstants k = measured;
  if (choices.smoothness == SmoothnessBound::kRowMax) {
    k.L = k.L_max;
    k.L_mean_sq = k.L_max * k.L_max;
  }
  const auto q = compress::make_compressor(c.compressor);
  const auto d = static_cast<double>(c.dim);
  const auto n = static_cast<double>(c.workers);
  const double omega = compress::omega(*q, c.dim, c.workers);
  const double zeta = compress::zeta(*q, c.dim, c.workers);
  std::ostringstream why;
  why.precision(6);

  const bool compressed = c.method != Method::kGd;
  const bool diana = c.method == Method::kDiana || c.method == Method::kVrDiana;
  // DIANA's shifts move by alpha = 1/(1+omega), and a biased compressor has no omega: no choice
  // of --gamma or --p gives the method a meaning (and a NaN alpha would reach every worker).
  if (diana && !q->unbiased())
    throw std::invalid_argument(std::string(to_string(c.method)) +
                                " needs an unbiased compressor " +
                                "(its shift stepsize is alpha = 1/(1+omega)); " + q->name() +
                                " is biased: use randk, randblock, permk, qsgd or natural");
  if (compressed && !q->unbiased() && (!choices.gamma || !choices.p))
    throw std::invalid_argument("compressor " + q->name() +
                                " is biased: the theory gives no stepsize; set --gamma and --p");
  if (!(k.L > 0.0) && !choices.gamma)
    throw std::invalid_argument("smoothness constant L is zero (all-zero data?); set --gamma");
  if (draws_minibatches(c.method)) {
    if (c.batch == 0) throw std::invalid_argument("--batch must be at least 1");
    check_batches_fit(c, k.rows);
  }
  if (c.method == Method::kPpMarina) {
    if (c.clients == 0) c.clients = (c.workers + 1) / 2;
    if (c.clients > c.workers)
      throw std::invalid_argument(
          "--clients: r = " + std::to_string(c.clients) +
          " exceeds the number of workers n = " + std::to_string(c.workers));
    why << "clients r = " << c.clients
        << (c.clients == (c.workers + 1) / 2 ? " (default ⌈n/2⌉)" : "") << "\n";
  }

  double p = 1.0, gamma = 0.0;
  switch (c.method) {
    case Method::kGd:
      p = 1.0;
      gamma = 1.0 / k.L;
      why << "GD: gamma = 1/L\n";
      break;
    case Method::kMarina:
      // Theorem 2.1 / Corollary 2.1: p = ζ_Q/d, γ = 1/(L(1 + sqrt((1−p)ω/(pn)))).
      p = choices.p.value_or(zeta / d);
      gamma = 1.0 / (k.L * (1.0 + std::sqrt((1.0 - p) * omega / (p * n))));
      why << "MARINA (Cor. 2.1): p = zeta/d, gamma = 1/(L(1+sqrt((1-p)omega/(pn))))\n";
      break;
    case Method::kVrMarina: {
      // Theorem 3.1 (finite sum): p = min(ζ_Q/d, b′/(m+b′)); Theorem 3.3 (online):
      // p = min(ζ_Q/d, b′/(b+b′)); γ = 1/(L + sqrt((1−p)/(pn)·(ωL² + (1+ω)𝓛²/b′))).
      const auto b1 = static_cast<double>(c.batch);
      const double other =
          c.online_batch > 0 ? static_cast<double>(c.online_batch) : static_cast<double>(k.rows);
      p = choices.p.value_or(std::min(zeta / d, b1 / (other + b1)));
      gamma = 1.0 / (k.L + std::sqrt((1.0 - p) / (p * n) *
                                     (omega * k.L * k.L + (1.0 + omega) * k.L_mean_sq / b1)));
      why << "VR-MARINA (Thm 3.1/3.3): p = min(zeta/d, b'/(" << (c.online_batch ? "b" : "m")
          << "+b')), gamma = 1/(L + sqrt((1-p)/(pn)(omega L^2 + (1+omega) Lcal^2/b')))\n";
      break;
    }
    case Method::kPpMarina: {
      // Theorem 4.1: p = ζ_Q r/(dn), γ = 1/(L(1 + sqrt((1−p)(1+ω)/(pr)))).
      const auto r = static_cast<double>(c.clients);
      p = choices.p.value_or(std::min(1.0, zeta * r / (d * n)));
      gamma = 1.0 / (k.L * (1.0 + std::sqrt((1.0 - p) * (1.0 + omega) / (p * r))));
      why << "PP-MARINA (Thm 4.1): p = zeta r/(dn), gamma = 1/(L(1+sqrt((1-p)(1+omega)/(pr))))\n";
      break;
    }
    case Method::kDiana:
      // Horváth, Kovalev, Mishchenko, Richtárik, Stich, "Stochastic distributed learning with
      // gradient quantization and variance reduction" (2019, arXiv:1904.05115): the
      // non-convex theorem for VR-DIANA, taken with m = 1 (every worker uses its
      // full gradient, so the variance-reduction terms vanish and VR-DIANA is DIANA):
      // α = 1/(1+ω), γ = 1/(10 L sqrt(1+ω/n) (ω + 2)).
      p = 1.0;
      c.alpha = 1.0 / (1.0 + omega);
      gamma = 1.0 / (10.0 * k.L * std::sqrt(1.0 + omega / n) * (omega + 2.0));
      why << "DIANA (Horvath et al. 2019, non-convex theorem with m = 1): alpha = 1/(1+omega), "
             "gamma = 1/(10 L sqrt(1+omega/n)(omega+2))\n";
      break;
    case Method::kVrDiana: {
      // Horváth et al. 2019 (arXiv:1904.05115), the non-convex VR-DIANA theorem: α = 1/(1+ω), p =
      // 1/m, γ = 1/(10 L_max sqrt(1+ω/n) (m^{2/3} + ω + 1)), L_max the per-sample smoothness.
      // The theorem's m samples are drawn one per round; with minibatches of b′ a shard holds
      // m = rows/b′ of them (the loopless-SVRG convention, and the paper's experiments), so the
      // reference point is renewed about once per pass over the shard.
      const double m = std::max(1.0, static_cast<double>(k.rows) / static_cast<double>(c.batch));
      p = choices.p.value_or(1.0 / m);
      c.alpha = 1.0 / (1.0 + omega);
      gamma =
          1.0 / (10.0 * k.L_max * std::sqrt(1.0 + omega / n) * (std::cbrt(m * m) + omega + 1.0));
      why << "VR-DIANA (Horvath et al. 2019, non-convex theorem): alpha = 1/(1+omega), p = 1/m, "
             "gamma = 1/(10 Lmax sqrt(1+omega/n)(m^(2/3)+omega+1)), m = rows/b' = "
          << m << "\n";
      break;
    }
  }
  if (draws_minibatches(c.method) && c.batch_sampling == BatchSampling::kWithoutReplacement)
    why << "minibatches of distinct rows (without replacement): their variance is at most that "
           "of independent draws, so the theorem's stepsize still applies\n";
  if (choices.p) {
    if (c.method == Method::kGd || c.method == Method::kDiana)
      throw std::invalid_argument("--p does not apply to " + std::string(to_string(c.method)));
    p = *choices.p;
  }
  if (choices.gamma) gamma = *choices.gamma;
  if (!(p > 0.0 && p <= 1.0))
    throw std::invalid_argument("--p: p must be in (0, 1], got " + std::to_string(p));
  if (!(gamma > 0.0) || !std::isfinite(gamma))
    throw std::invalid_argument("--gamma: the stepsize must be a positive finite number, got " +
                                std::to_string(gamma));
  c.p = p;
  c.gamma = gamma;
  if (choices.smoothness == SmoothnessBound::kRowMax)
    why << "smoothness row-max: L = Lcal = Lmax = " << k.L_max << " (the paper's code)\n";
  // The constant the stepsize was computed from: VR-DIANA's is the per-sample L_max.
  why << "omega = " << omega << ", zeta = " << zeta << ", "
      << (c.method == Method::kVrDiana ? "Lmax = " : "L = ")
      << (c.method == Method::kVrDiana ? k.L_max : k.L) << ", p = " << p
      << (choices.p ? " (given)" : "") << ", gamma = " << gamma
      << (choices.gamma ? " (given)" : "");
  if (c.method == Method::kDiana || c.method == Method::kVrDiana) why << ", alpha = " << c.alpha;
  if (explain) *explain = why.str();
  return c;
}

}  // namespace marina::methods
