#include <bit>
#include <cmath>
#include <cstring>
#include <tuple>
#include <vector>

#include <Eigen/Eigenvalues>

#include <doctest/doctest.h>

#include "marina/problem/objective.h"
#include "marina/util/portable_math.h"
#include "test_support.h"

using namespace marina;

TEST_CASE("problem: gradients match central finite differences") {
  const auto data = test::synthetic(40, 7, 0.6, 11);
  for (const auto loss : {problem::Loss::kNonConvex, problem::Loss::kLogistic}) {
    for (const double l2 : {0.0, 0.1}) {
      CAPTURE(problem::to_string(loss));
      CAPTURE(l2);
      problem::Objective f(data, loss, l2);
      Eigen::VectorXd x(7);
      x << 0.3, -1.2, 0.5, 2.0, -0.7, 0.0, 1.1;
      Eigen::VectorXd g;
      const double fx = f.gradient(x, g);
      CHECK(fx == doctest::Approx(f.value(x)).epsilon(1e-14));
      for (Eigen::Index j = 0; j < x.size(); ++j) {
        const double h = 1e-6;
        Eigen::VectorXd xp = x, xm = x;
        xp[j] += h;
        xm[j] -= h;
        const double fd = (f.value(xp) - f.value(xm)) / (2 * h);
        CHECK(g[j] == doctest::Approx(fd).epsilon(1e-7).scale(1.0));
      }
    }
  }
}

TEST_CASE("problem: minibatch gradient over all rows equals the full gradient") {
  const auto data = test::synthetic(30, 5, 0.7, 3);
  problem::Objective f(data, problem::Loss::kNonConvex, 0.05);
  Eigen::VectorXd x = Eigen::VectorXd::LinSpaced(5, -1.0, 1.0);
  std::vector<uint32_t> all(30);
  for (uint32_t j = 0; j < 30; ++j) all[j] = j;
  Eigen::VectorXd full, mb, diff, zero = Eigen::VectorXd::Zero(5), at0;
  f.gradient(x, full);
  f.minibatch_gradient(x, all, mb);
  CHECK((full - mb).norm() <= 1e-14 * full.norm());
  f.minibatch_difference(x, zero, all, diff);
  f.gradient(zero, at0);
  CHECK((diff - (full - at0)).norm() <= 1e-13 * full.norm());
}

TEST_CASE("problem: the gradient's loss and slopes are exactly those evaluated one at a time") {
  // gradient() evaluates φ and φ' of a row together, sharing their exponentials; value() and
  // minibatch_gradient() evaluate each on its own. Margins from about ±0.1 to ±2000 reach both
  // branches of the logistic loss and exponentials that overflow. 64 rows: value() divides the
  // sum by the row count where gradient() multiplies by its inverse, the same for a power of two.
  const auto data = test::synthetic(64, 6, 0.8, 17);
  std::vector<uint32_t> all(64);
  for (uint32_t j = 0; j < 64; ++j) all[j] = j;
  for (const auto loss : {problem::Loss::kNonConvex, problem::Loss::kLogistic}) {
    for (const double scale : {0.1, 0.37, 1.0, 3.3, 30.0, 2000.0}) {
      CAPTURE(problem::to_string(loss));
      CAPTURE(scale);
      problem::Objective f(data, loss, 0.0);
      const Eigen::VectorXd x = scale * Eigen::VectorXd::LinSpaced(6, -1.0, 0.8);
      Eigen::VectorXd g, mb;
      const double fx = f.gradient(x, g);
      f.minibatch_gradient(x, all, mb);
      CHECK(fx == f.value(x));
      for (Eigen::Index j = 0; j < g.size(); ++j) CHECK(g[j] == mb[j]);
      std::vector<double> on_support(6, 0.0);
      CHECK(f.gradient_on_support(std::span<const double>(x.data(), 6), on_support) == fx);
      for (Eigen::Index j = 0; j < g.size(); ++j)
        CHECK(on_support[static_cast<std::size_t>(j)] == g[j]);
    }
  }
}

TEST_CASE("problem: evaluate gives f, ||grad f||^2 and the mean of the shards' ||grad f_i||^2") {
  std::vector<problem::Objective> shards;
  for (uint64_t seed : {1, 2, 3})
    shards.emplace_back(test::synthetic(12, 4, 0.5, seed), problem::Loss::kNonConvex, 0.0);
  const Eigen::VectorXd x = Eigen::VectorXd::LinSpaced(4, -0.5, 1.5);
  Eigen::VectorXd scratch, grad, g;
  const auto e = problem::evaluate(shards, x, scratch, grad);
  double loss = 0.0, local = 0.0;
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(4);
  for (const auto& f : shards) {
    loss += f.gradient(x, g);
    local += g.squaredNorm();
    sum += g;
  }
  CHECK(e.loss == doctest::Approx(loss / 3).epsilon(1e-15));
  CHECK(e.grad_norm_sq == doctest::Approx((sum / 3).squaredNorm()).epsilon(1e-14));
  CHECK(e.local_grad_norm_sq == doctest::Approx(local / 3).epsilon(1e-14));
  // Different shards: the mean of the local norms exceeds the norm of the mean (Jensen).
  CHECK(e.local_grad_norm_sq > e.grad_norm_sq * 1.01);
}

TEST_CASE("problem: smoothness bounds the loss curvature") {
  const auto data = test::synthetic(50, 6, 0.5, 5);
  problem::Objective f(data, problem::Loss::kNonConvex, 0.0);
  const double L = f.smoothness().L;
  // λ_max(AᵀA/m) directly, from a dense eigen-solve
  const Eigen::MatrixXd dense = Eigen::MatrixXd(data.A);
  const Eigen::MatrixXd H = dense.transpose() * dense / 50.0;
  const double lmax = H.selfadjointView<Eigen::Lower>().eigenvalues().maxCoeff();
  CHECK(L == doctest::Approx(0.15405 * lmax).epsilon(1e-8));
  // ‖∇f(x) − ∇f(y)‖ ≤ L‖x − y‖ on random pairs
  util::Rng rng(9);
  Eigen::VectorXd gx, gy;
  for (int t = 0; t < 50; ++t) {
    Eigen::VectorXd x(6), y(6);
    for (auto& v : x) v = 4 * rng.uniform() - 2;
    for (auto& v : y) v = 4 * rng.uniform() - 2;
    f.gradient(x, gx);
    f.gradient(y, gy);
    CHECK((gx - gy).norm() <= L * (x - y).norm() * (1 + 1e-12));
  }
  CHECK(f.smoothness().L_max >= std::sqrt(f.smoothness().L_mean_sq));
}

// A worker reports λ_max(AᵀA/m) when it joins, and every process must get the same bits. The
// iteration over only the columns a shard uses must give exactly what the plain iteration over
// all d columns (below, as shard_stats computed it before) gives.
namespace {
double power_iteration_over_all_columns(const data::SparseMatrix& A) {
  const double m = static_cast<double>(A.rows());
  const Eigen::Index d = A.cols();
  double lambda = 0.0;
  Eigen::VectorXd v = Eigen::VectorXd::Constant(d, 1.0 / std::sqrt(static_cast<double>(d)));
  Eigen::VectorXd av(A.rows()), w(d);
  for (int it = 0; it < 1000; ++it) {
    av = A * v;
    w = A.transpose() * av;
    w /= m;
    double next = 0.0, sq = 0.0;
    for (Eigen::Index i = 0; i < d; ++i) next += v[i] * w[i];
    for (Eigen::Index i = 0; i < d; ++i) sq += w[i] * w[i];
    const double norm = std::sqrt(sq);
    if (norm == 0.0) break;
    v = w / norm;
    const bool done = std::abs(next - lambda) <= 1e-12 * std::abs(next);
    lambda = next;
    if (done) break;
  }
  return lambda;
}
}  // namespace

TEST_CASE(
    "problem: λ_max of a shard that leaves columns empty is the all-columns iteration's, bit for "
    "bit") {
  util::Rng rng(21);
  for (const auto& [rows, d, per_row] : {std::tuple{40, 5000, 6}, std::tuple{7, 100000, 30},
                                         std::tuple{300, 40, 2}, std::tuple{60, 12, 12}}) {
    CAPTURE(rows);
    CAPTURE(d);
    std::vector<Eigen::Triplet<double, int>> entries;
    for (int j = 0; j < rows; ++j) {
      for (int k = 0; k < per_row; ++k) {
        entries.emplace_back(j, static_cast<int>(rng.below(static_cast<uint64_t>(d))),
                             4 * rng.uniform() - 2);
      }
    }
    data::Dataset shard;
    shard.A.resize(rows, d);
    shard.A.setFromTriplets(entries.begin(), entries.end());  // sums repeated columns
    shard.y = Eigen::VectorXd::Ones(rows);
    const double expected = power_iteration_over_all_columns(shard.A);
    const double got = problem::shard_stats(shard).lambda_max;
    CHECK(std::memcmp(&got, &expected, sizeof got) == 0);
    CHECK(got == expected);
    // and it is the largest eigenvalue (a dense solve where that is affordable)
    if (d <= 5000) {
      const Eigen::MatrixXd dense = Eigen::MatrixXd(shard.A);
      const Eigen::MatrixXd G = dense * dense.transpose() / static_cast<double>(rows);
      const double lmax = G.selfadjointView<Eigen::Lower>().eigenvalues().maxCoeff();
      CHECK(got == doctest::Approx(lmax).epsilon(1e-8));
    }
  }
}

TEST_CASE(
    "problem: the gradient support is the shard's columns, and the gradient on it is the same") {
  const auto data = test::synthetic(12, 400, 0.01, 4);  // about 4 non-zeros per row
  std::vector<bool> used(400, false);
  for (Eigen::Index k = 0; k < data.A.nonZeros(); ++k) used[data.A.innerIndexPtr()[k]] = true;
  std::vector<uint32_t> columns;
  for (uint32_t c = 0; c < 400; ++c)
    if (used[c]) columns.push_back(c);
  REQUIRE(columns.size() <= 100);

  problem::Objective f(data, problem::Loss::kNonConvex, 0.0);
  const auto support = f.gradient_support();
  CHECK(std::vector<uint32_t>(support.begin(), support.end()) == columns);
  // An l2 term makes every entry of the gradient non-zero: no support then.
  CHECK(problem::Objective(data, problem::Loss::kNonConvex, 0.1).gradient_support().empty());
  // Nor when more than a quarter of the columns are used (streaming over d is cheaper then).
  CHECK(problem::Objective(test::synthetic(40, 5, 0.9, 2), problem::Loss::kLogistic, 0.0)
            .gradient_support()
            .empty());
  CHECK(problem::Objective(test::synthetic(12, 60, 0.05, 4), problem::Loss::kLogistic, 0.0)
            .gradient_support()
            .empty());

  util::Rng rng(5);
  std::vector<double> x(400), full(400), on_support(400, 0.0);
  for (int t = 0; t < 5; ++t) {
    for (auto& v : x) v = 4 * rng.uniform() - 2;
    const double fx = f.gradient(x, full);
    const double fs = f.gradient_on_support(x, on_support);  // zero off the support, as required
    CHECK(std::memcmp(&fx, &fs, sizeof fx) == 0);
    CHECK(std::memcmp(full.data(), on_support.data(), 400 * sizeof(double)) == 0);
  }
}

TEST_CASE("problem: loss names") {
  CHECK(problem::parse_loss("logistic") == problem::Loss::kLogistic);
  CHECK_THROWS_WITH_AS((void)problem::parse_loss("hinge"),
                       "unknown loss 'hinge' (expected nonconvex or logistic)",
                       std::invalid_argument);
}

TEST_CASE("problem: portable exp scales by 2^k exactly as ldexp does, for every k it uses") {
  // y spans what portable_exp scales (about 1/sqrt(2) to sqrt(2)) and beyond, with mantissas
  // whose low bits are set, so that a subnormal result must round.
  util::Rng rng(7);
  std::vector<double> ys = {0.5, 0.7071067811865476, 1.0, 1.4142135623730951, 1.9999999999999998};
  for (int i = 0; i < 20; ++i) ys.push_back(0.5 + 1.5 * rng.uniform());
  int mismatches = 0;
  for (int k = -1100; k <= 1100; ++k) {
    for (const double y : ys) {
      const double fast = util::scale_by_power_of_two(y, k), libm = std::ldexp(y, k);
      if (std::bit_cast<uint64_t>(fast) != std::bit_cast<uint64_t>(libm)) ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("problem: portable exp and log1p stay within 1 and 2 ulp of the C library's") {
  const auto ulps = [](double a, double b) {
    if (a == b) return 0.0;
    return std::abs(a - b) / (std::nextafter(std::abs(b), INFINITY) - std::abs(b));
  };
  double worst_exp = 0, worst_log1p = 0;
  util::Rng rng(2021);
  for (int i = 0; i < 200000; ++i) {
    const double x = -745.0 + 1454.0 * rng.uniform();
    worst_exp = std::max(worst_exp, ulps(util::portable_exp(x), std::exp(x)));
    const double y = rng.uniform();
    worst_log1p = std::max(worst_log1p, ulps(util::portable_log1p(y), std::log1p(y)));
  }
  for (const double x : {-1e-300, 0.0, 1e-300, 1.0, 709.78, -745.1})
    CHECK(ulps(util::portable_exp(x), std::exp(x)) <= 1.0);
  CHECK(util::portable_exp(710.0) == INFINITY);
  CHECK(util::portable_exp(-746.0) == 0.0);
  CHECK(std::isnan(util::portable_exp(NAN)));
  CHECK(util::portable_log1p(1e-20) == 1e-20);
  MESSAGE("worst: exp ", worst_exp, " ulp, log1p ", worst_log1p, " ulp");
  CHECK(worst_exp <= 1.0);
  CHECK(worst_log1p <= 2.0);
}
