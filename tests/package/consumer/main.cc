// A device program on the public API alone: a model f(x) = ½‖x − c‖² and a worker whose
// coordinator does not answer. Joining must give up after connect_timeout with
// marina::WorkerError; that proves headers, archive, libzmq and the runtime work together.
// Exit 0 and "consumer: WorkerError: ..." on success.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "marina/model.h"
#include "marina/worker.h"

namespace {

class Quadratic final : public marina::Model {
 public:
  explicit Quadratic(std::vector<double> c) : c_(std::move(c)) {}
  std::size_t dim() const override { return c_.size(); }
  std::size_t samples() const override { return 1; }
  double gradient(std::span<const double> x, std::span<double> grad) override {
    double f = 0.0;
    for (std::size_t j = 0; j < c_.size(); ++j) {
      grad[j] = x[j] - c_[j];
      f += 0.5 * grad[j] * grad[j];
    }
    return f;
  }
  marina::Smoothness smoothness() override { return {.L = 1.0}; }
  std::string description() const override { return "quadratic"; }

 private:
  std::vector<double> c_;
};

}  // namespace

int main() {
  Quadratic model({1.0, -2.0, 0.5});
  // The library's own code (src/api/model.cc): the Hessian is the identity, so L = 1.
  const std::vector<double> x0(model.dim(), 0.0);
  const double L = marina::estimate_smoothness(model, x0);
  if (std::fabs(L - 1.0) > 1e-6) {
    std::fprintf(stderr, "consumer: estimate_smoothness gave %.9g, not 1\n", L);
    return 1;
  }

  marina::WorkerOptions options;
  options.coordinator = "tcp://127.0.0.1:9";  // discard: nothing listens there
  options.id = 0;
  options.connect_timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  try {
    marina::Worker worker(model, options);
    worker.run();
  } catch (const marina::WorkerError& e) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    std::printf("consumer: WorkerError after %lld ms: %s\n", static_cast<long long>(ms), e.what());
    return 0;
  }
  std::fprintf(stderr, "consumer: run() returned without a coordinator\n");
  return 1;
}
