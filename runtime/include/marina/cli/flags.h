#pragma once
// Command-line pieces shared by marina-sim and marina-coordinator: the algorithm flags, the
// data flags, and the terminal progress line.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "marina/drivers/coordinator.h"
#include "marina/methods/config.h"
#include "marina/methods/theory.h"
#include "marina/problem/objective.h"
#include "marina/run/log.h"

namespace CLI {
class App;
}

namespace marina::cli {

// What the user asked for; "auto" values stay empty until resolve().
struct AlgorithmFlags {
  std::string method = "marina";
  std::string compressor = "identity";
  uint32_t workers = 5;
  uint64_t rounds = 1000;
  uint64_t seed = 0;
  std::string gamma = "auto";
  std::string p = "auto";
  std::string smoothness = "spectral";
  uint64_t batch = 1;
  uint64_t online_batch = 0;
  std::string batch_sampling = "with-replacement";
  uint32_t clients = 0;
  std::string loss = "nonconvex";
  double l2 = 0.0;
  std::optional<uint64_t> shuffle_seed;
  bool bias = false;
  double init_scale = 0.0;
  std::optional<double> stop_at;  // stop when ‖∇f‖² ≤ stop_at · ‖∇f(x⁰)‖²
};

void add_algorithm_flags(CLI::App& app, AlgorithmFlags& flags);

// Parses the method and compressor names and "auto"/numbers; throws std::invalid_argument
// naming the flag.
[[nodiscard]] methods::MethodConfig base_config(const AlgorithmFlags& flags, uint64_t dim);
[[nodiscard]] methods::Choices choices(const AlgorithmFlags& flags);

// The coordinator settings the flags describe (the drivers' own timeouts and callbacks are
// left at their defaults). `dim` is a placeholder until the workers report theirs.
[[nodiscard]] drivers::CoordinatorSettings coordinator_settings(const AlgorithmFlags& flags,
                                                                uint64_t dim);

// The description of the linear model these flags give (problem::describe): what a
// coordinator holding the data (--data) requires of every worker.
[[nodiscard]] std::string model_description(const AlgorithmFlags& flags);

// Reads all n shards of `file` (contiguous split, remainder dropped) as objectives.
// `note` receives a line about dropped rows, if any.
[[nodiscard]] std::vector<problem::Objective> load_shards(const std::string& file,
                                                          const AlgorithmFlags& flags,
                                                          std::string* note);

// Progress on a terminal: rewrites one line at most a few times a second.
class Progress {
 public:
  explicit Progress(uint64_t total_rounds);
  // Whether update() would draw this row (a terminal, and 200 ms since the last): lets a
  // caller skip building `extra` in the rounds that are not shown.
  [[nodiscard]] bool due(const run::LogRow& row) const;
  void update(const run::LogRow& row, const std::string& extra = {});
  void finish();

 private:
  bool tty_;
  uint64_t total_;
  std::chrono::steady_clock::time_point start_, last_;
  bool shown_ = false;
};

}  // namespace marina::cli
