// The one-hidden-layer perceptron of the mlp-device example (see mlp.h): forward pass, softmax
// cross-entropy and back-propagation, one sample at a time into buffers sized once.

#include "mlp.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <Eigen/Core>

namespace mlp_device {
namespace {

// exp and log from IEEE basic operations only (fdlibm's algorithms): glibc's versions round
// differently with and without FMA, which would make an armhf worker disagree with an x86-64
// one in the last bit. At most 1 ulp (exp) and 2 ulp (log) from the exact result.
double portable_exp(double x) {
  if (std::isnan(x)) return x;
  if (x > 709.782712893383973096) return HUGE_VAL;
  if (x < -745.13321910194110842) return 0.0;
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double inv_ln2 = 1.44269504088896338700e+00;
  constexpr double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03,
                   P3 = 6.61375632143793436117e-05, P4 = -1.65339022054652515390e-06,
                   P5 = 4.13813679705723846039e-08;
  const double k = std::nearbyint(x * inv_ln2);
  const double hi = x - k * ln2_hi;
  const double lo = k * ln2_lo;
  const double r = hi - lo;
  const double t = r * r;
  const double c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  const double y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
  return std::ldexp(y, static_cast<int>(k));
}

// log(u) for u ≥ 1 (here the softmax denominator, 1 ≤ u ≤ 10): u = 2^k·v with v in [1, 2),
// both exact, then fdlibm's e_log.c kernel on v.
double portable_log(double u) {
  int e = 0;
  double v = 2.0 * std::frexp(u, &e);  // frexp gives [0.5, 1)
  double k = e - 1;
  if (v > 1.41421356237309504880) {  // keeps f = v − 1 in [−0.29, 0.41], where the series holds
    v *= 0.5;
    k += 1.0;
  }
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                   Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                   Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                   Lg7 = 1.479819860511658591e-01;
  const double f = v - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s, w = z * z;
  const double R = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7))) + w * (Lg2 + w * (Lg4 + w * Lg6));
  const double hfsq = 0.5 * f * f;
  return k * ln2_hi - ((hfsq - (s * (hfsq + R) + k * ln2_lo)) - f);
}

// tanh(a) = 1 − 2/(e^{2a} + 1) for a ≥ 0, odd. The absolute error stays near 1e-16, which is
// all a hidden activation needs (the relative error of tiny a does not matter here).
double portable_tanh(double a) {
  const double t = 1.0 - 2.0 / (portable_exp(2.0 * std::fabs(a)) + 1.0);
  return a < 0 ? -t : t;
}

// Softmax cross-entropy of one sample: returns −log softmax(z)_y and, when probs is not null,
// writes softmax(z) there. Shifting by the largest logit keeps exp from overflowing.
double cross_entropy(const double* z, unsigned y, double* probs) {
  double top = z[0];
  for (std::size_t c = 1; c < kClasses; ++c) top = std::max(top, z[c]);
  double e[kClasses];
  double sum = 0.0;
  for (std::size_t c = 0; c < kClasses; ++c) {
    e[c] = portable_exp(z[c] - top);
    sum += e[c];
  }
  if (probs != nullptr)
    for (std::size_t c = 0; c < kClasses; ++c) probs[c] = e[c] / sum;
  return portable_log(sum) - (z[y] - top);
}

// The four blocks of a parameter (or gradient) vector, laid out as mlp.h describes.
template <typename T>
struct Blocks {
  using Matrix = std::conditional_t<std::is_const_v<T>, const Eigen::MatrixXd, Eigen::MatrixXd>;
  using Vector = std::conditional_t<std::is_const_v<T>, const Eigen::VectorXd, Eigen::VectorXd>;
  Eigen::Map<Matrix> W1, W2;
  Eigen::Map<Vector> b1, b2;

  Blocks(T* x, Eigen::Index h)
      : W1(x, h, kPixels),
        W2(x + (kPixels + 1) * h, kClasses, h),
        b1(x + kPixels * h, h),
        b2(x + (kPixels + 1 + kClasses) * h, kClasses) {}
};

std::string shortest(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return ec == std::errc{} ? std::string(buf, end) : std::string("?");
}

}  // namespace

Mlp::Mlp(Digits train, MlpOptions options)
    : train_(std::move(train)),
      hidden_(options.hidden),
      l2_(options.l2),
      data_(std::move(options.data)),
      dim_((kPixels + 1 + kClasses) * options.hidden + kClasses),
      scratch_(options.hidden) {
  if (train_.size() == 0) throw std::invalid_argument("mlp: the training shard is empty");
  if (train_.pixels.size() != train_.size() * kPixels)
    throw std::invalid_argument("mlp: the training pixels do not match the labels");
  if (hidden_ == 0) throw std::invalid_argument("mlp: needs at least 1 hidden unit");
  if (!(l2_ >= 0.0) || !std::isfinite(l2_))
    throw std::invalid_argument("mlp: l2 must be finite and >= 0");
  for (const uint8_t y : train_.labels)
    if (y >= kClasses) throw std::invalid_argument("mlp: a label is not a class 0..9");
  all_.resize(train_.size());
  for (std::size_t j = 0; j < all_.size(); ++j) all_[j] = static_cast<uint32_t>(j);
}

void Mlp::check_sizes(std::span<const double> x, std::span<const double> grad,
                      bool with_grad) const {
  if (x.size() != dim_)
    throw std::invalid_argument("mlp: x has " + std::to_string(x.size()) +
                                " entries, not d = " + std::to_string(dim_));
  if (with_grad && grad.size() != dim_)
    throw std::invalid_argument("mlp: grad has " + std::to_string(grad.size()) +
                                " entries, not d = " + std::to_string(dim_));
}

void Mlp::forward(std::span<const double> x, const double* pixels, Scratch& s) const {
  const auto h = static_cast<Eigen::Index>(hidden_);
  const Blocks<const double> p(x.data(), h);
  double* a = s.hidden.data();
  for (Eigen::Index u = 0; u < h; ++u) a[u] = p.b1[u];
  for (std::size_t i = 0; i < kPixels; ++i) {
    const double v = pixels[i];
    if (v == 0.0) continue;  // about half of the pixels are blank
    const double* w = p.W1.col(static_cast<Eigen::Index>(i)).data();
    for (Eigen::Index u = 0; u < h; ++u) a[u] += v * w[u];
  }
  for (Eigen::Index u = 0; u < h; ++u) a[u] = portable_tanh(a[u]);
  for (std::size_t c = 0; c < kClasses; ++c) s.logits[c] = p.b2[static_cast<Eigen::Index>(c)];
  for (Eigen::Index u = 0; u < h; ++u) {
    const double* w = p.W2.col(u).data();
    for (std::size_t c = 0; c < kClasses; ++c) s.logits[c] += a[u] * w[c];
  }
}

double Mlp::accumulate(std::span<const double> x, std::span<const uint32_t> batch,
                       std::span<double> grad) {
  const auto h = static_cast<Eigen::Index>(hidden_);
  const Blocks<const double> p(x.data(), h);
  Blocks<double> g(grad.data(), h);
  std::fill(grad.begin(), grad.end(), 0.0);
  Scratch& s = scratch_;
  double total = 0.0;
  for (const uint32_t j : batch) {
    const double* pixels = train_.sample(j);
    forward(x, pixels, s);
    const unsigned y = train_.labels[j];
    total += cross_entropy(s.logits, y, s.delta);
    s.delta[y] -= 1.0;  // ∂CE/∂logits = softmax − one-hot

    for (std::size_t c = 0; c < kClasses; ++c) g.b2[static_cast<Eigen::Index>(c)] += s.delta[c];
    for (Eigen::Index u = 0; u < h; ++u) {
      const double* w = p.W2.col(u).data();
      double* gw = g.W2.col(u).data();
      const double au = s.hidden[static_cast<std::size_t>(u)];
      double back = 0.0;
      for (std::size_t c = 0; c < kClasses; ++c) {
        gw[c] += au * s.delta[c];
        back += w[c] * s.delta[c];
      }
      s.back[static_cast<std::size_t>(u)] = (1.0 - au * au) * back;  // tanh' = 1 − tanh²
    }
    for (Eigen::Index u = 0; u < h; ++u) g.b1[u] += s.back[static_cast<std::size_t>(u)];
    for (std::size_t i = 0; i < kPixels; ++i) {
      const double v = pixels[i];
      if (v == 0.0) continue;
      double* gw = g.W1.col(static_cast<Eigen::Index>(i)).data();
      for (Eigen::Index u = 0; u < h; ++u) gw[u] += v * s.back[static_cast<std::size_t>(u)];
    }
  }
  return total;
}

double Mlp::gradient(std::span<const double> x, std::span<double> grad) {
  check_sizes(x, grad);
  const double total = accumulate(x, all_, grad);
  const double inv = 1.0 / static_cast<double>(all_.size());
  double sq = 0.0;
  for (std::size_t k = 0; k < dim_; ++k) {
    grad[k] = grad[k] * inv + l2_ * x[k];
    sq += x[k] * x[k];
  }
  return total * inv + 0.5 * l2_ * sq;
}

void Mlp::minibatch_gradient(std::span<const double> x, std::span<const uint32_t> batch,
                             std::span<double> grad) {
  check_sizes(x, grad);
  if (batch.empty()) throw std::invalid_argument("mlp: empty minibatch");
  for (const uint32_t j : batch)
    if (j >= train_.size())
      throw std::out_of_range("mlp: minibatch index " + std::to_string(j) +
                              " >= " + std::to_string(train_.size()) + " samples");
  (void)accumulate(x, batch, grad);
  const double inv = 1.0 / static_cast<double>(batch.size());
  for (std::size_t k = 0; k < dim_; ++k) grad[k] = grad[k] * inv + l2_ * x[k];
}

marina::Smoothness Mlp::smoothness() {
  if (!smoothness_) {
    // At x = 0 every hidden unit is the same and the curvature is atypical; the probe sits
    // where a run started with --init-scale 0.1 begins.
    std::vector<double> probe(dim_);
    SplitMix64 rng(0x6d6c702d70726f62ULL);
    for (double& v : probe) v = kProbeScale * (2.0 * rng.uniform() - 1.0);
    smoothness_ = marina::Smoothness{
        marina::estimate_smoothness(*this, probe, 8, 1e-3, 1, kSmoothnessMargin)};
  }
  return *smoothness_;
}

std::string Mlp::description() const {
  std::string text = "mlp " + std::to_string(kPixels) + "-" + std::to_string(hidden_) + "-" +
                     std::to_string(kClasses) + " tanh softmax-xent l2=" + shortest(l2_);
  if (!data_.empty()) text += " " + data_;
  return text;
}

double Mlp::loss(std::span<const double> x, const Digits& rows) const {
  check_sizes(x, {}, false);
  if (rows.size() == 0) throw std::invalid_argument("mlp: loss of no samples");
  Scratch s(hidden_);
  double total = 0.0;
  for (std::size_t j = 0; j < rows.size(); ++j) {
    forward(x, rows.sample(j), s);
    total += cross_entropy(s.logits, rows.labels[j], nullptr);
  }
  double sq = 0.0;
  for (const double v : x) sq += v * v;
  // Scaled as in gradient(), so that the loss of the training shard is f_i(x) to the bit.
  return total * (1.0 / static_cast<double>(rows.size())) + 0.5 * l2_ * sq;
}

double Mlp::accuracy(std::span<const double> x, const Digits& rows) const {
  check_sizes(x, {}, false);
  if (rows.size() == 0) throw std::invalid_argument("mlp: accuracy of no samples");
  Scratch s(hidden_);
  std::size_t right = 0;
  for (std::size_t j = 0; j < rows.size(); ++j) {
    forward(x, rows.sample(j), s);
    const auto best = static_cast<std::size_t>(std::max_element(s.logits, s.logits + kClasses) -
                                               s.logits);  // the first maximum
    if (best == rows.labels[j]) ++right;
  }
  return static_cast<double>(right) / static_cast<double>(rows.size());
}

}  // namespace mlp_device
