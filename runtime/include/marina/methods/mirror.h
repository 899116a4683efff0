#pragma once
// The state that the server and every worker keep in lock-step. Both sides call these same
// functions with the same update, so their x^k are bit-identical without x ever being sent.

#include <Eigen/Core>

#include "marina/methods/messages.h"

namespace marina::methods {

// Checks an update against dimension d (sizes, index order and range, finite values);
// throws ProtocolError. Called on every received broadcast before anything changes.
void validate(const ModelUpdate& u, Eigen::Index d);

// MARINA family (and GD): g^{k−1} ← update (replace or add), then x^k = x^{k−1} − γ g^{k−1}.
void marina_advance(const ModelUpdate& u, double gamma, Eigen::VectorXd& g, Eigen::VectorXd& x,
                    Eigen::VectorXd& x_prev);

// DIANA family: the update is u = mean m_i of the previous round; g = h + u,
// x^k = x^{k−1} − γ g, h ← h + α u.
// DIANA's shift: h_i ← h_i + α m_i, with m_i decoded densely. The server's mirror of h_i and
// the worker's own h_i both move through this one function, so they stay bit-identical.
void diana_shift(double alpha, const Eigen::VectorXd& m, Eigen::VectorXd& h_i);

void diana_advance(const ModelUpdate& u, double gamma, double alpha, Eigen::VectorXd& h,
                   Eigen::VectorXd& x, Eigen::VectorXd& x_prev);

}  // namespace marina::methods
