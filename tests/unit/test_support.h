#pragma once
// Small helpers shared by the unit tests: a synthetic dataset, running a method in-process, a
// temporary folder.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <doctest/doctest.h>
#include <Eigen/SparseCore>

#include "marina/data/dataset.h"
#include "marina/methods/config.h"
#include "marina/problem/objective.h"
#include "marina/run/simulation.h"
#include "marina/util/random.h"

namespace marina::test {

// A private folder under the system temp directory, removed when it goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "tmp") {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() / ("marina_test_" + std::to_string(::getpid()) +
                                                     "_" + tag + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes bytes as given (binary, so CRLF stays CRLF); returns the file's path.
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    const std::filesystem::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  [[nodiscard]] const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

// A reproducible sparse classification problem: `rows` samples, `dim` features, about
// `density` of the entries non-zero, labels from a planted linear model with noise.
inline data::Dataset synthetic(std::size_t rows, std::size_t dim, double density, uint64_t seed) {
  util::Rng rng(seed);
  Eigen::VectorXd w(static_cast<Eigen::Index>(dim));
  for (auto& v : w) v = rng.uniform() * 2 - 1;
  std::vector<Eigen::Triplet<double>> t;
  data::Dataset d;
  d.y.resize(static_cast<Eigen::Index>(rows));
  for (std::size_t i = 0; i < rows; ++i) {
    double dot = 0;
    for (std::size_t j = 0; j < dim; ++j) {
      if (rng.uniform() < density) {
        const double v = rng.uniform() * 2 - 1;
        t.emplace_back(static_cast<int>(i), static_cast<int>(j), v);
        dot += v * w[static_cast<Eigen::Index>(j)];
      }
    }
    d.y[static_cast<Eigen::Index>(i)] = (dot + 0.3 * (rng.uniform() - 0.5)) >= 0 ? 1.0 : -1.0;
  }
  d.A.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(dim));
  d.A.setFromTriplets(t.begin(), t.end());
  d.A.makeCompressed();
  return d;
}

// Contiguous equal shards of a dataset, as objectives.
inline std::vector<problem::Objective> shards_of(const data::Dataset& all, uint32_t n,
                                                 problem::Loss loss = problem::Loss::kNonConvex,
                                                 double l2 = 0.0) {
  std::vector<problem::Objective> out;
  const auto m = static_cast<Eigen::Index>(all.rows() / n);
  for (uint32_t i = 0; i < n; ++i) {
    data::Dataset s;
    s.A = all.A.middleRows(i * m, m);
    s.y = all.y.segment(i * m, m);
    out.emplace_back(std::move(s), loss, l2);
  }
  return out;
}

inline std::vector<run::LogRow> simulate(const methods::MethodConfig& c,
                                         const std::vector<problem::Objective>& shards,
                                         uint64_t rounds) {
  std::vector<problem::Objective> models(shards);  // the workers' own models
  run::Simulation sim(c, models);
  std::vector<run::LogRow> rows{sim.initial_row()};
  for (uint64_t k = 0; k < rounds; ++k) rows.push_back(sim.step());
  return rows;
}

// Two logs agree in every column a run's determinism promises (wall_s and the wire counters
// aside); oracle calls optionally, since a resynchronised worker evaluates once more.
inline void check_same_rows(const std::vector<run::LogRow>& a, const std::vector<run::LogRow>& b,
                            bool oracle_calls = true) {
  REQUIRE(a.size() == b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    CAPTURE(k);
    CHECK(*a[k].loss == *b[k].loss);
    CHECK(*a[k].grad_norm_sq == *b[k].grad_norm_sq);
    CHECK(a[k].full_sync == b[k].full_sync);
    CHECK(a[k].participants == b[k].participants);
    CHECK(a[k].bits_per_worker == b[k].bits_per_worker);
    if (oracle_calls) CHECK(a[k].oracle_calls == b[k].oracle_calls);
  }
}

// Real data fetched by scripts/fetch-data.sh (the README's test command runs it first).
inline std::filesystem::path dataset(const std::string& name) {
  const char* dir = std::getenv("MARINA_DATA_DIR");
  return std::filesystem::path(dir ? dir : MARINA_REPO_DATA_DIR) / name;
}

}  // namespace marina::test
