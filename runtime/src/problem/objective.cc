#include "marina/problem/objective.h"

#include "marina/util/portable_math.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace marina::problem {
namespace {

// Σ v_i² in index order (Eigen's reductions sum in an order that depends on the SIMD width).
double sum_sq(const Eigen::VectorXd& v) {
  double s = 0.0;
  for (Eigen::Index i = 0; i < v.size(); ++i) s += v[i] * v[i];
  return s;
}

// The columns a compressed A uses, ascending, and for each of its non-zeros the place of its
// column among them: A with only those columns, in the same order (see shard_stats and
// Objective's gradient support).
struct UsedColumns {
  std::vector<uint32_t> columns;
  std::vector<int> place;  // per non-zero
};
UsedColumns used_columns(const data::SparseMatrix& A) {
  UsedColumns u;
  std::vector<int> at(static_cast<std::size_t>(A.cols()), -1);
  const int* inner = A.innerIndexPtr();
  const auto nnz = static_cast<std::size_t>(A.nonZeros());
  for (std::size_t k = 0; k < nnz; ++k) at[static_cast<std::size_t>(inner[k])] = 0;
  for (std::size_t c = 0; c < at.size(); ++c) {
    if (at[c] == 0) {
      at[c] = static_cast<int>(u.columns.size());
      u.columns.push_back(static_cast<uint32_t>(c));
    }
  }
  u.place.resize(nnz);
  for (std::size_t k = 0; k < nnz; ++k) u.place[k] = at[static_cast<std::size_t>(inner[k])];
  return u;
}

// φ(m) and φ'(m) for each loss, written to stay finite for any finite margin.
double phi(Loss loss, double m) {
  if (loss == Loss::kNonConvex) {
    const double one_minus_sigma = 1.0 / (1.0 + util::portable_exp(m));  // 1 − σ(m) = σ(−m)
    return one_minus_sigma * one_minus_sigma;
  }
  return m > 0 ? util::portable_log1p(util::portable_exp(-m))
               : -m + util::portable_log1p(util::portable_exp(m));
}

double dphi(Loss loss, double m) {
  if (loss == Loss::kNonConvex) {
    const double s = 1.0 / (1.0 + util::portable_exp(-m));  // σ(m)
    const double t = 1.0 / (1.0 + util::portable_exp(m));   // 1 − σ(m)
    return -2.0 * s * t * t;
  }
  return -1.0 / (1.0 + util::portable_exp(m));  // −σ(−m)
}

// φ(m) and φ'(m) together, each bit for bit what phi() and dphi() return: the exponentials the
// two share are evaluated once (for the paper's loss 2 of 3 per row; for the logistic loss 2 of
// 3 where m ≤ 0), and every other operation is the same, in the same order.
struct PhiDphi {
  double phi;
  double dphi;
};
PhiDphi phi_dphi(Loss loss, double m) {
  if (loss == Loss::kNonConvex) {
    const double t = 1.0 / (1.0 + util::portable_exp(m));   // 1 − σ(m)
    const double s = 1.0 / (1.0 + util::portable_exp(-m));  // σ(m)
    return {t * t, -2.0 * s * t * t};
  }
  const double e = util::portable_exp(m);
  const double slope = -1.0 / (1.0 + e);
  return {m > 0 ? util::portable_log1p(util::portable_exp(-m)) : -m + util::portable_log1p(e),
          slope};
}

}  // namespace

std::string_view to_string(Loss loss) {
  return loss == Loss::kNonConvex ? "nonconvex" : "logistic";
}

Loss parse_loss(std::string_view name) {
  if (name == "nonconvex") return Loss::kNonConvex;
  if (name == "logistic") return Loss::kLogistic;
  throw std::invalid_argument("unknown loss '" + std::string(name) +
                              "' (expected nonconvex or logistic)");
}

double curvature_bound(Loss loss) {
  return loss == Loss::kNonConvex ? 0.15405 : 0.25;
}

std::string describe(Loss loss, double l2, bool bias, std::optional<uint64_t> shuffle_seed) {
  // λ in hexadecimal: two workers agree exactly when their λ is the same double.
  char lambda[64];
  std::snprintf(lambda, sizeof lambda, "%a", l2);
  std::string s = "linear loss=" + std::string(to_string(loss)) + " l2=" + lambda;
  s += bias ? " bias=1" : " bias=0";
  s += " shuffle=" + (shuffle_seed ? std::to_string(*shuffle_seed) : std::string("none"));
  return s;
}

Objective::Objective(data::Dataset shard, Loss loss, double l2, std::string description)
    : data_(std::move(shard)), loss_(loss), l2_(l2), description_(std::move(description)) {
  if (data_.rows() == 0) throw std::invalid_argument("objective: shard has no rows");
  if (!(l2_ >= 0.0) || !std::isfinite(l2_))
    throw std::invalid_argument("objective: l2 must be a finite number >= 0");
  data_.A.makeCompressed();
  if (description_.empty()) description_ = describe(loss_, l2_, false, std::nullopt);
  if (l2_ == 0.0) {
    // Without an l2 term the gradient lives on the columns the shard uses. Say so only when
    // they are few enough that touching them one by one beats streaming over all d.
    UsedColumns used = used_columns(data_.A);
    if (used.columns.size() * kSupportFraction <= dim()) {
      support_ = std::move(used.columns);
      support_position_ = std::move(used.place);
      compact_.resize(support_.size());
    }
  }
}

void Objective::check(std::size_t size, const char* what) const {
  if (size != dim())
    throw std::invalid_argument(std::string("objective: ") + what + " has " + std::to_string(size) +
                                " entries, d = " + std::to_string(dim()));
}

double Objective::gradient(std::span<const double> x, std::span<double> grad) {
  check(x.size(), "x");
  check(grad.size(), "grad");
  return gradient_into(x.data(), grad.data());
}

double Objective::gradient_on_support(std::span<const double> x, std::span<double> grad) {
  check(x.size(), "x");
  check(grad.size(), "grad");
  return support_gradient_into(x.data(), grad.data());
}

void Objective::minibatch_gradient(std::span<const double> x, std::span<const uint32_t> batch,
                                   std::span<double> grad) {
  check(x.size(), "x");
  check(grad.size(), "grad");
  minibatch_into(x.data(), batch, grad.data());
}

void Objective::minibatch_difference(std::span<const double> x, std::span<const double> y,
                                     std::span<const uint32_t> batch, std::span<double> grad) {
  check(x.size(), "x");
  check(y.size(), "y");
  check(grad.size(), "grad");
  difference_into(x.data(), y.data(), batch, grad.data());
}

double Objective::margin(std::size_t row, const double* x) const {
  const auto& A = data_.A;
  const int* idx = A.innerIndexPtr();
  const double* val = A.valuePtr();
  double dot = 0.0;
  for (int k = A.outerIndexPtr()[row]; k < A.outerIndexPtr()[row + 1]; ++k)
    dot += val[k] * x[idx[k]];
  return data_.y[static_cast<Eigen::Index>(row)] * dot;
}

void Objective::add_row(std::size_t row, double scale, double* out) const {
  const auto& A = data_.A;
  const int* idx = A.innerIndexPtr();
  const double* val = A.valuePtr();
  for (int k = A.outerIndexPtr()[row]; k < A.outerIndexPtr()[row + 1]; ++k)
    out[idx[k]] += scale * val[k];
}

double Objective::value(const Eigen::VectorXd& x) const {
  double sum = 0.0;
  for (std::size_t j = 0; j < rows(); ++j) sum += phi(loss_, margin(j, x.data()));
  double f = sum / static_cast<double>(rows());
  if (l2_ > 0.0) f += 0.5 * l2_ * sum_sq(x);
  return f;
}

double Objective::gradient(const Eigen::VectorXd& x, Eigen::VectorXd& grad) const {
  check(static_cast<std::size_t>(x.size()), "x");
  grad.resize(static_cast<Eigen::Index>(dim()));
  return gradient_into(x.data(), grad.data());
}

void Objective::minibatch_gradient(const Eigen::VectorXd& x, std::span<const uint32_t> batch,
                                   Eigen::VectorXd& grad) const {
  check(static_cast<std::size_t>(x.size()), "x");
  grad.resize(static_cast<Eigen::Index>(dim()));
  minibatch_into(x.data(), batch, grad.data());
}

void Objective::minibatch_difference(const Eigen::VectorXd& x, const Eigen::VectorXd& y,
                                     std::span<const uint32_t> batch, Eigen::VectorXd& grad) const {
  check(static_cast<std::size_t>(x.size()), "x");
  check(static_cast<std::size_t>(y.size()), "y");
  grad.resize(static_cast<Eigen::Index>(dim()));
  difference_into(x.data(), y.data(), batch, grad.data());
}

double Objective::gradient_into(const double* x, double* grad) const {
  const std::size_t d = dim();
  std::fill(grad, grad + d, 0.0);
  double sum = 0.0;
  for (std::size_t j = 0; j < rows(); ++j) {
    const auto [value, slope] = phi_dphi(loss_, margin(j, x));
    sum += value;
    add_row(j, slope * data_.y[static_cast<Eigen::Index>(j)], grad);
  }
  const double inv = 1.0 / static_cast<double>(rows());
  for (std::size_t i = 0; i < d; ++i) grad[i] *= inv;
  double f = sum * inv;
  if (l2_ > 0.0) {
    double sq = 0.0;
    for (std::size_t i = 0; i < d; ++i) {
      grad[i] += l2_ * x[i];
      sq += x[i] * x[i];
    }
    f += 0.5 * l2_ * sq;
  }
  return f;
}

// gradient_into() for a `grad` that is zero outside support_. The rows are added into a
// contiguous vector of the support's entries (it stays in cache where grad's d entries would
// not), then each entry is scaled into grad: the same additions in the same order, so the same
// bits, with one pass over the support's entries of grad instead of three over all d.
double Objective::support_gradient_into(const double* x, double* grad) {
  if (support_.empty()) return gradient_into(x, grad);
  std::fill(compact_.begin(), compact_.end(), 0.0);
  const auto& A = data_.A;
  const double* val = A.valuePtr();
  const int* at = support_position_.data();
  double sum = 0.0;
  for (std::size_t j = 0; j < rows(); ++j) {
    const auto [value, slope] = phi_dphi(loss_, margin(j, x));
    sum += value;
    const double scale = slope * data_.y[static_cast<Eigen::Index>(j)];
    for (int k = A.outerIndexPtr()[j]; k < A.outerIndexPtr()[j + 1]; ++k)
      compact_[static_cast<std::size_t>(at[k])] += scale * val[k];
  }
  const double inv = 1.0 / static_cast<double>(rows());
  for (std::size_t p = 0; p < support_.size(); ++p) grad[support_[p]] = compact_[p] * inv;
  return sum * inv;  // no l2 term: support_ is empty when there is one
}

void Objective::minibatch_into(const double* x, std::span<const uint32_t> batch,
                               double* grad) const {
  const std::size_t d = dim();
  std::fill(grad, grad + d, 0.0);
  for (uint32_t j : batch)
    add_row(j, dphi(loss_, margin(j, x)) * data_.y[static_cast<Eigen::Index>(j)], grad);
  const double inv = 1.0 / static_cast<double>(batch.size());
  for (std::size_t i = 0; i < d; ++i) grad[i] = grad[i] * inv + l2_ * x[i];
}

void Objective::difference_into(const double* x, const double* y, std::span<const uint32_t> batch,
                                double* grad) const {
  const std::size_t d = dim();
  std::fill(grad, grad + d, 0.0);
  for (uint32_t j : batch) {
    const double label = data_.y[static_cast<Eigen::Index>(j)];
    const double scale = (dphi(loss_, margin(j, x)) - dphi(loss_, margin(j, y))) * label;
    add_row(j, scale, grad);
  }
  const double inv = 1.0 / static_cast<double>(batch.size());
  for (std::size_t i = 0; i < d; ++i) grad[i] = grad[i] * inv + l2_ * (x[i] - y[i]);
}

Smoothness Objective::smoothness() const {
  return problem::smoothness(shard_stats(data_), loss_, l2_);
}

namespace {

// λ_max(AᵀA/m) by power iteration from the constant vector 1/√d, in a fixed order of
// operations so that every process gets the same bits. Columns without a non-zero (`d` may be
// far wider than `A`, see shard_stats) keep v and w at exactly +0 after the first step and add
// exactly +0 to each sum, so leaving them out changes no bit of the result.
template <class Matrix>
double power_iteration(const Matrix& A, Eigen::Index d, double m) {
  double lambda = 0.0;
  const Eigen::Index cols = A.cols();
  Eigen::VectorXd v = Eigen::VectorXd::Constant(cols, 1.0 / std::sqrt(static_cast<double>(d)));
  Eigen::VectorXd av(A.rows()), w(cols);
  for (int it = 0; it < 1000; ++it) {
    av = A * v;
    w = A.transpose() * av;
    w /= m;
    double next = 0.0, sq = 0.0;  // sequential sums: the same order on every architecture
    for (Eigen::Index i = 0; i < cols; ++i) next += v[i] * w[i];  // Rayleigh quotient
    for (Eigen::Index i = 0; i < cols; ++i) sq += w[i] * w[i];
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

ShardStats shard_stats(const data::Dataset& shard) {
  ShardStats s;
  s.rows = shard.rows();
  if (s.rows == 0) return s;
  const auto& A = shard.A;
  const auto m = static_cast<double>(s.rows);
  for (Eigen::Index j = 0; j < A.rows(); ++j) {
    double r = 0.0;
    for (int k = A.outerIndexPtr()[j]; k < A.outerIndexPtr()[j + 1]; ++k)
      r += A.valuePtr()[k] * A.valuePtr()[k];
    s.mean_row_norm4 += r * r;
    s.max_row_norm_sq = std::max(s.max_row_norm_sq, r);
  }
  s.mean_row_norm4 /= m;

  // A shard of a wide sparse problem touches few of the d columns (a worker with 2 000 rows of
  // 20 non-zeros uses at most 40 000 of d = 10⁶). Iterating over only the columns it uses, in
  // their order, gives the same bits in O(nnz + used columns) per step instead of O(nnz + d):
  // at start-up this was the largest cost of such a worker, often more than its rounds.
  const Eigen::Index d = A.cols();
  if (!A.isCompressed()) {
    s.lambda_max = power_iteration(A, d, m);
    return s;
  }
  const UsedColumns used = used_columns(A);
  const auto cols = static_cast<Eigen::Index>(used.columns.size());
  if (cols == d) {
    s.lambda_max = power_iteration(A, d, m);
    return s;
  }
  // The same rows and entries in the same order, only the column numbers change.
  const Eigen::Map<const data::SparseMatrix> narrow(A.rows(), cols, A.nonZeros(), A.outerIndexPtr(),
                                                    used.place.data(), A.valuePtr());
  s.lambda_max = power_iteration(narrow, d, m);
  return s;
}

Smoothness smoothness(const ShardStats& s, Loss loss, double l2) {
  const double c = curvature_bound(loss);
  Smoothness out;
  out.L = c * s.lambda_max + l2;
  // (1/m) Σ (c r_j + λ)² = c² mean r² + 2cλ mean r + λ²; mean r ≤ sqrt(mean r²) keeps it an
  // upper bound without a second statistic.
  out.L_mean_sq = c * c * s.mean_row_norm4 + 2 * c * l2 * std::sqrt(s.mean_row_norm4) + l2 * l2;
  out.L_max = c * s.max_row_norm_sq + l2;
  return out;
}

Evaluation evaluate(std::span<const Objective> shards, const Eigen::VectorXd& x,
                    Eigen::VectorXd& scratch, Eigen::VectorXd& grad) {
  Evaluation e;
  grad.setZero(x.size());
  for (const auto& f : shards) {
    e.loss += f.gradient(x, scratch);
    e.local_grad_norm_sq += sum_sq(scratch);
    grad += scratch;
  }
  const double inv = 1.0 / static_cast<double>(shards.size());
  e.loss *= inv;
  e.local_grad_norm_sq *= inv;
  grad *= inv;
  e.grad_norm_sq = sum_sq(grad);
  return e;
}

}  // namespace marina::problem
