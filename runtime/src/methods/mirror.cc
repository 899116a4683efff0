#include "marina/methods/mirror.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "marina/methods/method.h"

namespace marina::methods {

bool ModelUpdate::operator==(const ModelUpdate& o) const {
  const auto a = dense_values();
  const auto b = o.dense_values();
  return kind == o.kind && std::equal(a.begin(), a.end(), b.begin(), b.end()) &&
         indices == o.indices && values == o.values;
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
    case UpdateKind::kDelta:
      if (u.indices.size() != u.values.size())
        throw ProtocolError("update: indices and values differ in length");
      for (std::size_t k = 0; k < u.indices.size(); ++k) {
        if (u.indices[k] >= n)
          throw ProtocolError("update: index " + std::to_string(u.indices[k]) +
                              " out of range for d = " + std::to_string(n));
        if (k > 0 && u.indices[k] <= u.indices[k - 1])
          throw ProtocolError("update: indices not strictly increasing");
        if (!std::isfinite(u.values[k])) throw ProtocolError("update: non-finite value");
      }
      return;
  }
  throw ProtocolError("update: unknown kind");
}

// The loops below work entry by entry, with no sum across entries, so the vectorized code that
// runtime/CMakeLists.txt asks for gives exactly the scalar results. Each folds the copy
// x_prev ← x and the divergence check into the pass that updates x: `bad` becomes 1 where
// |v| ≤ kExploded fails (so for NaN too) and never goes back, whatever the order of entries.
// (Written as a select on a double, the form GCC vectorizes for SSE2.)

bool bounded(const Eigen::VectorXd& x) {
  const double* xs = x.data();
  double bad = 0.0;
  for (Eigen::Index j = 0; j < x.size(); ++j) bad = std::abs(xs[j]) <= kExploded ? bad : 1.0;
  return bad == 0.0;
}

bool marina_advance(const ModelUpdate& u, double gamma, Eigen::VectorXd& g, Eigen::VectorXd& x,
                    Eigen::VectorXd& x_prev) {
  if (u.kind == UpdateKind::kNone) return bounded(x);
  const Eigen::Index d = x.size();
  double* __restrict gs = g.data();
  double* __restrict xs = x.data();
  double* __restrict ps = x_prev.data();
  double bad = 0.0;
  if (u.kind == UpdateKind::kDense) {
    const double* __restrict us = u.dense_values().data();
    for (Eigen::Index j = 0; j < d; ++j) {
      gs[j] = us[j];
      ps[j] = xs[j];
      xs[j] = xs[j] - gamma * us[j];
      bad = std::abs(xs[j]) <= kExploded ? bad : 1.0;
    }
    return bad == 0.0;
  }
  for (std::size_t k = 0; k < u.indices.size(); ++k) gs[u.indices[k]] += u.values[k];
  for (Eigen::Index j = 0; j < d; ++j) {
    ps[j] = xs[j];
    xs[j] = xs[j] - gamma * gs[j];
    bad = std::abs(xs[j]) <= kExploded ? bad : 1.0;
  }
  return bad == 0.0;
}

void diana_shift(double alpha, Eigen::Ref<const Eigen::VectorXd> m, Eigen::VectorXd& h_i) {
  for (Eigen::Index j = 0; j < h_i.size(); ++j)
    if (m[j] != 0.0) h_i[j] += alpha * m[j];
}

bool diana_advance(const ModelUpdate& u, double gamma, double alpha, Eigen::VectorXd& h,
                   Eigen::VectorXd& x, Eigen::VectorXd& x_prev) {
  if (u.kind == UpdateKind::kNone) return bounded(x);
  const Eigen::Index d = x.size();
  double* __restrict hs = h.data();
  double* __restrict xs = x.data();
  double* __restrict ps = x_prev.data();
  double bad = 0.0;
  // x ← x − γ(h + u) and h ← h + αu, touching u's non-zeros only where it is sparse.
  if (u.kind == UpdateKind::kDense) {
    const double* __restrict us = u.dense_values().data();
    for (Eigen::Index j = 0; j < d; ++j) {
      const double uj = us[j];
      ps[j] = xs[j];
      xs[j] = xs[j] - gamma * (hs[j] + uj);
      hs[j] = hs[j] + alpha * uj;
      bad = std::abs(xs[j]) <= kExploded ? bad : 1.0;
    }
    return bad == 0.0;
  }
  std::size_t k = 0;
  for (Eigen::Index j = 0; j < d; ++j) {
    double uj = 0.0;
    if (k < u.indices.size() && u.indices[k] == static_cast<uint32_t>(j)) uj = u.values[k++];
    ps[j] = xs[j];
    xs[j] = xs[j] - gamma * (hs[j] + uj);
    if (uj != 0.0) hs[j] += alpha * uj;
    bad = std::abs(xs[j]) <= kExploded ? bad : 1.0;
  }
  return bad == 0.0;
}

}  // namespace marina::methods
