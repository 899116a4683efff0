#include "marina/methods/mirror.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "marina/methods/method.h"

namespace marina::methods {

bool ModelUpdate::operator==(const ModelUpdate& o) const {
  const auto same = [](auto a, auto b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  };
  return kind == o.kind && same(dense_values(), o.dense_values()) &&
         same(delta_indices(), o.delta_indices()) && same(delta_values(), o.delta_values());
}

void validate(const ModelUpdate& u, Eigen::Index d) {
  const auto n = static_cast<std::size_t>(d);
  switch (u.kind) {
    case UpdateKind::kNone:
      return;
    case UpdateKind::kDense: {
      const auto dense = u.dense_values();
      if (dense.size() != n)
        throw ProtocolError("update: " + std::to_string(dense.size()) +
                            " values for d = " + std::to_string(n));
      for (double v : dense)
        if (!std::isfinite(v)) throw ProtocolError("update: non-finite value");
      return;
    }
    case UpdateKind::kDelta: {
      const auto indices = u.delta_indices();
      const auto values = u.delta_values();
      if (indices.size() != values.size())
        throw ProtocolError("update: indices and values differ in length");
      for (std::size_t k = 0; k < indices.size(); ++k) {
        if (indices[k] >= n)
          throw ProtocolError("update: index " + std::to_string(indices[k]) +
                              " out of range for d = " + std::to_string(n));
        if (k > 0 && indices[k] <= indices[k - 1])
          throw ProtocolError("update: indices not strictly increasing");
        if (!std::isfinite(values[k])) throw ProtocolError("update: non-finite value");
      }
      return;
    }
  }
  throw ProtocolError("update: unknown kind");
}

// The loops below work entry by entry, with no sum across entries, so the vectorized code that
// runtime/CMakeLists.txt asks for gives exactly the scalar results. Each folds the copy
// x_prev ← x and a first divergence check into the pass that updates x.

bool bounded(const Eigen::VectorXd& x) {
  // `bad` becomes 1 where |v| ≤ kExploded fails (so for NaN too) and never goes back, whatever
  // the order of entries. (Written as a select on a double, the form GCC vectorizes for SSE2.)
  const double* xs = x.data();
  double bad = 0.0;
  for (Eigen::Index j = 0; j < x.size(); ++j) bad = std::abs(xs[j]) <= kExploded ? bad : 1.0;
  return bad == 0.0;
}

namespace {

// The update passes' check: bit 63 of the OR of large(v) over a vector is set iff some |v| is
// 2^49 or more, or NaN (the masked exponent plus a constant carries into the sign bit exactly
// when the exponent is at least 49's). 2^49 < kExploded, so a vector that fails bounded() is
// always flagged, and only a flagged one (a run close to diverging) takes bounded()'s pass.
// The select in bounded() chains every vector of the pass through the blend's latency: as the
// update's check it held the pass at 0.9-1.1 ms for d = 1e6, where the OR takes 0.5-0.7 ms.
static_assert(0x1p49 <= kExploded && kExploded < 0x1p50);
constexpr uint64_t kExponentBits = 0x7ff0000000000000ULL;
constexpr uint64_t kLargeCarry = uint64_t{2048 - (1023 + 49)} << 52;

inline uint64_t large(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u & kExponentBits) + kLargeCarry;
}

// marina_advance's block: 8 KB of g, which stays in L1 between the delta's adds and the step.
constexpr Eigen::Index kStepBlock = 1024;

inline bool bounded_after(uint64_t any_large, const Eigen::VectorXd& x) {
  return (any_large >> 63) == 0 || bounded(x);
}

}  // namespace

bool marina_advance(const ModelUpdate& u, double gamma, Eigen::VectorXd& g, Eigen::VectorXd& x,
                    Eigen::VectorXd& x_prev) {
  if (u.kind == UpdateKind::kNone) return bounded(x);
  const Eigen::Index d = x.size();
  // x^{k−1} takes x^k's storage (a swap of pointers) and x^k is written over the older one: one
  // stream of d doubles fewer to write than copying x into x_prev first.
  x.swap(x_prev);
  double* __restrict gs = g.data();
  double* __restrict xs = x.data();
  const double* __restrict ps = x_prev.data();
  uint64_t any_large = 0;
  if (u.kind == UpdateKind::kDense) {
    const double* __restrict us = u.dense_values().data();
    for (Eigen::Index j = 0; j < d; ++j) {
      gs[j] = us[j];
      xs[j] = ps[j] - gamma * us[j];
      any_large |= large(xs[j]);
    }
    return bounded_after(any_large, x);
  }
  // Block by block: the delta's entries in a block are added into g, and the step reads that
  // block of g right after, from L1. A scatter over the whole delta and then the step's pass
  // took g through memory twice: at d = 1e6 this function took 1.49-1.64 ms with a delta of
  // 0.63·d entries and 1.15-1.19 ms with 0.1·d, blocked 1.14-1.33 and 0.90-1.00 ms; at d = 1e5,
  // within the caches, the same either way (docs/PERFORMANCE.md, aggregation). The indices
  // ascend (validate(), or the server's delta).
  const auto indices = u.delta_indices();
  const double* __restrict values = u.delta_values().data();
  const std::size_t nnz = indices.size();
  std::size_t k = 0;
  for (Eigen::Index j0 = 0; j0 < d; j0 += kStepBlock) {
    const Eigen::Index j1 = std::min(d, j0 + kStepBlock);
    for (; k < nnz && indices[k] < j1; ++k) gs[indices[k]] += values[k];
    for (Eigen::Index j = j0; j < j1; ++j) {
      xs[j] = ps[j] - gamma * gs[j];
      any_large |= large(xs[j]);
    }
  }
  return bounded_after(any_large, x);
}

void diana_shift(double alpha, Eigen::Ref<const Eigen::VectorXd> m, Eigen::VectorXd& h_i) {
  for (Eigen::Index j = 0; j < h_i.size(); ++j)
    if (m[j] != 0.0) h_i[j] += alpha * m[j];
}

bool diana_advance(const ModelUpdate& u, double gamma, double alpha, Eigen::VectorXd& h,
                   Eigen::VectorXd& x, Eigen::VectorXd& x_prev) {
  if (u.kind == UpdateKind::kNone) return bounded(x);
  const Eigen::Index d = x.size();
  x.swap(x_prev);  // as in marina_advance
  double* __restrict hs = h.data();
  double* __restrict xs = x.data();
  const double* __restrict ps = x_prev.data();
  uint64_t any_large = 0;
  // x ← x − γ(h + u) and h ← h + αu, touching u's non-zeros only where it is sparse.
  if (u.kind == UpdateKind::kDense) {
    const double* __restrict us = u.dense_values().data();
    for (Eigen::Index j = 0; j < d; ++j) {
      const double uj = us[j];
      xs[j] = ps[j] - gamma * (hs[j] + uj);
      hs[j] = hs[j] + alpha * uj;
      any_large |= large(xs[j]);
    }
    return bounded_after(any_large, x);
  }
  const auto indices = u.delta_indices();
  const auto values = u.delta_values();
  std::size_t k = 0;
  for (Eigen::Index j = 0; j < d; ++j) {
    double uj = 0.0;
    if (k < indices.size() && indices[k] == static_cast<uint32_t>(j)) uj = values[k++];
    xs[j] = ps[j] - gamma * (hs[j] + uj);
    if (uj != 0.0) hs[j] += alpha * uj;
    any_large |= large(xs[j]);
  }
  return bounded_after(any_large, x);
}

}  // namespace marina::methods
