#pragma once
// Public API: the built-in model, a linear binary classifier on a shard of a LibSVM file —
// the problem of the MARINA paper's experiments and of the marina-worker program:
//   f_i(x) = (1/m) Σ_j φ(y_j a_jᵀx) + (λ/2)‖x‖²,
// with φ(t) = (1 − σ(t))² (non-convex) or log(1 + e^{−t}) (logistic). It states its smoothness
// constants exactly, from the shard.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "marina/model.h"

namespace marina {

struct LinearModelOptions {
  std::filesystem::path data;  // LibSVM file: labels ±1, 0/1 or 1/2; indices from 1
  uint32_t shard = 0;          // this worker's shard I of ...
  uint32_t shards = 1;         // ... N equal contiguous shards (the remainder rows are dropped)
  std::optional<uint64_t> shuffle_seed;  // shuffle the rows before splitting
  bool bias = false;                     // append a constant feature
  std::string loss = "nonconvex";        // "nonconvex" or "logistic"
  double l2 = 0.0;                       // λ
};

// Reads the shard (only its rows are kept in memory). Throws std::runtime_error naming the
// file and line for malformed data, and std::invalid_argument for invalid options.
[[nodiscard]] std::unique_ptr<Model> load_linear_model(const LinearModelOptions& options);

}  // namespace marina
