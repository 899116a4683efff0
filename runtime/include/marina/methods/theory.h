#pragma once
// Default parameters from the convergence theory of each method. A user can override γ and
// p; everything left unset is filled in here, and `explain` says where each value came from.

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "marina/methods/config.h"
#include "marina/problem/objective.h"

namespace marina::methods {

// What the theory needs to know about the problem, gathered from the workers' shards.
struct ProblemConstants {
  double L = 0.0;          // sqrt((1/n) Σ L_i²)
  double L_mean_sq = 0.0;  // 𝓛² = (1/n) Σ 𝓛_i², mean-squared per-sample smoothness
  double L_max = 0.0;      // max over all samples of L_ij
  uint64_t rows = 0;       // m, rows per shard
};

// Combines the shards' constants: L = sqrt(mean L_i²), 𝓛² = mean 𝓛_i², L_max = max; a
// per-sample constant reported as 0 (unknown) stands in as L_i² or L_i.
[[nodiscard]] ProblemConstants combine(std::span<const problem::Smoothness> shards, uint64_t rows);

// The same, measured directly on shards held in this process (marina-sim).
[[nodiscard]] ProblemConstants measure(std::span<const problem::Objective> shards);

// Which smoothness constants the theory's formulas use. kSpectral: L, 𝓛 and L_max as
// measured (L_i from the largest eigenvalue of the shard's curvature bound, the tightest of the
// bounds). kRowMax: L = 𝓛 = L_max, the largest per-sample constant c·max_j ‖a_j‖² + λ, which is
// what the paper's experiment code uses; its stepsizes are smaller.
enum class SmoothnessBound { kSpectral, kRowMax };

[[nodiscard]] SmoothnessBound parse_smoothness(const std::string& name);

struct Choices {
  std::optional<double> gamma;  // nullopt: theory
  std::optional<double> p;      // nullopt: theory
  SmoothnessBound smoothness = SmoothnessBound::kSpectral;
};

// Completes `config` (method, compressor, workers, dim, batch sizes, clients must be set).
// Throws std::invalid_argument when the theory does not apply and no value was given
// (e.g. a biased compressor with --gamma auto). `explain` receives one line per choice.
[[nodiscard]] MethodConfig resolve(MethodConfig config, const Choices& choices,
                                   const ProblemConstants& k, std::string* explain = nullptr);

}  // namespace marina::methods
