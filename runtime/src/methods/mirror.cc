#include "marina/methods/mirror.h"

#include <cmath>
#include <string>

#include "marina/methods/method.h"

namespace marina::methods {

void validate(const ModelUpdate& u, Eigen::Index d) {
  const auto n = static_cast<std::size_t>(d);
  switch (u.kind) {
    case UpdateKind::kNone:
      return;
    case UpdateKind::kDense:
      if (u.dense.size() != n)
        throw ProtocolError("update: " + std::to_string(u.dense.size()) +
                            " values for d = " + std::to_string(n));
      for (double v : u.dense)
        if (!std::isfinite(v)) throw ProtocolError("update: non-finite value");
      return;
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

void marina_advance(const ModelUpdate& u, double gamma, Eigen::VectorXd& g, Eigen::VectorXd& x,
                    Eigen::VectorXd& x_prev) {
  if (u.kind == UpdateKind::kNone) return;
  if (u.kind == UpdateKind::kDense) {
    for (Eigen::Index j = 0; j < g.size(); ++j) g[j] = u.dense[static_cast<std::size_t>(j)];
  } else {
    for (std::size_t k = 0; k < u.indices.size(); ++k) g[u.indices[k]] += u.values[k];
  }
  x_prev = x;
  for (Eigen::Index j = 0; j < x.size(); ++j) x[j] -= gamma * g[j];
}

void diana_shift(double alpha, const Eigen::VectorXd& m, Eigen::VectorXd& h_i) {
  for (Eigen::Index j = 0; j < h_i.size(); ++j)
    if (m[j] != 0.0) h_i[j] += alpha * m[j];
}

void diana_advance(const ModelUpdate& u, double gamma, double alpha, Eigen::VectorXd& h,
                   Eigen::VectorXd& x, Eigen::VectorXd& x_prev) {
  if (u.kind == UpdateKind::kNone) return;
  x_prev = x;
  // x ← x − γ(h + u) and h ← h + αu, touching u's non-zeros only where it is sparse.
  if (u.kind == UpdateKind::kDense) {
    for (Eigen::Index j = 0; j < x.size(); ++j) {
      const double uj = u.dense[static_cast<std::size_t>(j)];
      x[j] -= gamma * (h[j] + uj);
      h[j] += alpha * uj;
    }
    return;
  }
  std::size_t k = 0;
  for (Eigen::Index j = 0; j < x.size(); ++j) {
    double uj = 0.0;
    if (k < u.indices.size() && u.indices[k] == static_cast<uint32_t>(j)) uj = u.values[k++];
    x[j] -= gamma * (h[j] + uj);
    if (uj != 0.0) h[j] += alpha * uj;
  }
}

}  // namespace marina::methods
