#pragma once
// The state that the server and every worker keep in lock-step. Both sides call these same
// functions with the same update, so their x^k are bit-identical without x ever being sent.

#include <Eigen/Core>

#include "marina/methods/messages.h"

namespace marina::methods {

// Checks an update against dimension d (sizes, index order and range, finite values);
// throws ProtocolError. Called on every received broadcast before anything changes.
void validate(const ModelUpdate& u, Eigen::Index d);

// Beyond this an iterate has exploded: no model of these losses has weights near 1e15 (the
// sigmoid saturates long before), and a huge stepsize would otherwise land on a flat region
// far out and look converged.
constexpr double kExploded = 1e15;

// Whether every coordinate of x is finite and at most kExploded in magnitude.
[[nodiscard]] bool bounded(const Eigen::VectorXd& x);

// MARINA family (and GD): g^{k−1} ← update (replace or add), then x^k = x^{k−1} − γ g^{k−1}.
// Returns bounded(x^k), found in the same pass (the server's divergence check; workers ignore it).
bool marina_advance(const ModelUpdate& u, double gamma, Eigen::VectorXd& g, Eigen::VectorXd& x,
                    Eigen::VectorXd& x_prev);

// DIANA family: the update is u = mean m_i of the previous round; g = h + u,
// x^k = x^{k−1} − γ g, h ← h + α u.
// DIANA's shift: h_i ← h_i + α m_i, with m_i decoded densely. The server's mirror of h_i and
// the worker's own h_i both move through this one function, so they stay bit-identical.
void diana_shift(double alpha, Eigen::Ref<const Eigen::VectorXd> m, Eigen::VectorXd& h_i);

// Returns bounded(x^k), as marina_advance does.
bool diana_advance(const ModelUpdate& u, double gamma, double alpha, Eigen::VectorXd& h,
                   Eigen::VectorXd& x, Eigen::VectorXd& x_prev);

}  // namespace marina::methods
