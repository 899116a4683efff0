// The public API (marina/model.h, marina/worker.h) as a device program uses it: a hand-written
// model, marina::Worker over real ZeroMQ sockets on loopback, a coordinator in this process.

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "marina/drivers/coordinator.h"
#include "marina/transport/zmq_transport.h"
#include "marina/wire/codec.h"
#include "marina/worker.h"

namespace marina {
namespace {

using namespace std::chrono_literals;

// f_i(x) = (1/m) Σ_j ½‖x − c_ij‖² with c_ij = (i + j + 1)·e_(j mod d): smooth (L = 1), minimum
// at the mean of the c_ij. Optionally throws from gradient() at a given call.
class Quadratic final : public Model {
 public:
  Quadratic(uint32_t worker, std::size_t d, std::size_t m) : worker_(worker), d_(d), m_(m) {}
  std::size_t dim() const override { return d_; }
  std::size_t samples() const override { return m_; }
  double gradient(std::span<const double> x, std::span<double> grad) override {
    if (++calls_ == fail_at_) throw std::runtime_error("sensor unplugged");
    const bool poison = calls_ == nan_at_;
    double f = 0.0;
    for (std::size_t k = 0; k < d_; ++k) grad[k] = 0.0;
    for (std::size_t j = 0; j < m_; ++j)
      for (std::size_t k = 0; k < d_; ++k) {
        const double r = x[k] - target(j, k);
        f += 0.5 * r * r;
        grad[k] += r;
      }
    for (std::size_t k = 0; k < d_; ++k) grad[k] /= static_cast<double>(m_);
    if (poison) grad[d_ - 1] = std::numeric_limits<double>::quiet_NaN();
    return f / static_cast<double>(m_);
  }
  Smoothness smoothness() override { return {1.0}; }
  std::string description() const override { return "quadratic d=" + std::to_string(d_); }
  void fail_at(uint64_t call) { fail_at_ = call; }
  void nan_at(uint64_t call) { nan_at_ = call; }  // a NaN in that call's gradient

 private:
  double target(std::size_t j, std::size_t k) const {
    return k == j % d_ ? static_cast<double>(worker_ + j + 1) : 0.0;
  }
  uint32_t worker_;
  std::size_t d_, m_;
  uint64_t calls_ = 0;
  uint64_t fail_at_ = 0;  // 0: never
  uint64_t nan_at_ = 0;   // 0: never
};

struct Coordinator {
  transport::ZmqHub hub;
  drivers::CoordinatorSettings settings;
  std::thread thread;
  std::mutex mu;
  std::vector<run::Event> events;
  std::vector<run::LogRow> rows;
  std::string error;
  drivers::CoordinatorOutcome out;

  Coordinator(uint32_t n, uint64_t rounds)
      : hub(transport::parse_endpoint("tcp://127.0.0.1:0"), wire::max_message_bytes(8, n)) {
    settings.base.method = methods::Method::kMarina;
    settings.base.compressor = "randk:2";
    settings.base.workers = n;
    settings.base.seed = 5;
    settings.choices.gamma = 0.5;
    settings.choices.p = 0.25;
    settings.rounds = rounds;
    settings.session = 77;
    settings.min_workers = n;
    settings.round_timeout = 3000ms;
    settings.join_timeout = 20000ms;
    settings.quorum_timeout = 2000ms;
    settings.on_event = [this](const run::Event& e) {
      std::lock_guard lock(mu);
      events.push_back(e);
    };
    settings.on_row = [this](const run::LogRow& r) {
      std::lock_guard lock(mu);
      rows.push_back(r);
    };
  }
  void start() {
    thread = std::thread([this] {
      try {
        out = drivers::run_coordinator(hub, settings);
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
  }
  std::string address() const { return "tcp://127.0.0.1:" + std::to_string(hub.endpoint().port); }
  bool has_event(const std::string& kind, const std::string& detail_part) {
    std::lock_guard lock(mu);
    for (const auto& e : events)
      if (e.kind == kind && e.detail.find(detail_part) != std::string::npos) return true;
    return false;
  }
};

WorkerOptions options_for(const Coordinator& c, uint32_t id) {
  WorkerOptions o;
  o.coordinator = c.address();
  o.id = id;
  o.connect_timeout = 20000ms;
  return o;
}

TEST_CASE("api: a hand-written model trains through marina::Worker to the bye") {
  constexpr uint32_t n = 2;
  Coordinator coord(n, 60);
  coord.start();
  std::vector<Quadratic> models{Quadratic(0, 4, 3), Quadratic(1, 4, 3)};
  std::vector<WorkerSummary> done(n);
  std::vector<std::string> errors(n);
  std::atomic<int> statuses{0};
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        WorkerOptions o = options_for(coord, i);
        o.on_status = [&](const WorkerStatus& s) {
          if (s.joined) ++statuses;
        };
        Worker w(models[i], o);
        done[i] = w.run();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  coord.thread.join();
  REQUIRE(coord.error.empty());
  for (uint32_t i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(errors[i].empty());
    CHECK_FALSE(done[i].stopped);
    CHECK(done[i].rounds == 60);  // rounds 0..59 (the log has 61 rows: x^0 .. x^60)
    REQUIRE(done[i].x.size() == 4);
  }
  CHECK(statuses.load() > 0);
  // Both workers end on the same iterate, the server's, and the gradient norm fell.
  CHECK(done[0].x == done[1].x);
  REQUIRE(coord.rows.size() == 61);
  // The loss is known on full-sync rounds (every worker evaluated its whole f_i).
  std::vector<double> losses;
  for (const auto& r : coord.rows)
    if (r.loss) losses.push_back(*r.loss);
  REQUIRE(losses.size() >= 2);
  CHECK(losses.back() < losses.front());
}

TEST_CASE("api: stop() from another thread ends run() with a bye") {
  Coordinator coord(1, 1000000);
  coord.settings.min_workers = 1;
  coord.start();
  Quadratic model(0, 4, 2);
  Worker w(model, options_for(coord, 0));
  WorkerSummary s;
  std::string error;
  std::thread runner([&] {
    try {
      s = w.run();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (w.status().replies < 5 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(w.status().joined);
  CHECK(w.status().replies >= 5);
  w.stop();
  runner.join();
  CHECK(error.empty());
  CHECK(s.stopped);
  CHECK(s.replies >= 5);
  CHECK_THROWS_AS(w.run(), WorkerError);  // once per Worker
  // The coordinator saw it leave, lost its quorum of one and ended the run.
  coord.thread.join();
  CHECK(coord.has_event("leave", "stopped"));
}

// One worker on `model` against a coordinator that needs only it, run to its end: what run()
// threw, or how it returned. The coordinator has finished too when this returns, so a test
// that fails does so cleanly (no thread left joinable).
std::string run_alone(Coordinator& coord, Quadratic& model) {
  coord.settings.min_workers = 1;
  coord.start();
  Worker w(model, options_for(coord, 0));
  std::string what;
  try {
    const WorkerSummary out = w.run();
    what = "(returned after " + std::to_string(out.rounds) + " rounds: " + out.bye_reason + ")";
  } catch (const WorkerError& e) {
    what = e.what();
  }
  coord.thread.join();
  return what;
}

TEST_CASE("api: an exception in the model reaches the caller and the coordinator") {
  Coordinator coord(1, 1000000);
  Quadratic model(0, 4, 2);
  model.fail_at(20);
  const std::string error = run_alone(coord, model);
  CHECK_MESSAGE(error.find("sensor unplugged") != std::string::npos, error);
  CHECK(coord.has_event("worker_error", "sensor unplugged"));
}

TEST_CASE("api: a NaN in a full-sync gradient ends the run with an error, never on the wire") {
  // Round 0 is a full sync: the gradient goes out uncompressed, so the worker checks it (in a
  // compressed round the compressor checks the values it sends: compress_test).
  Coordinator coord(1, 1000000);
  Quadratic model(0, 4, 2);
  model.nan_at(1);
  const std::string error = run_alone(coord, model);
  const std::string expected = "non-finite local gradient at round 0";
  CHECK_MESSAGE(error.find(expected) != std::string::npos, error);
  CHECK(coord.has_event("worker_error", expected));
  CHECK(coord.rows.empty());  // not even round 0 closed: no NaN reached the server
}

TEST_CASE("api: invalid options and unreachable coordinators are WorkerErrors") {
  Quadratic model(0, 4, 2);
  WorkerOptions o;
  o.coordinator = "not-an-endpoint";
  CHECK_THROWS_AS(Worker(model, o), WorkerError);
  o.coordinator = "tcp://127.0.0.1:0";
  CHECK_THROWS_AS(Worker(model, o), WorkerError);
  o.coordinator = "tcp://127.0.0.1:9";
  o.curve_secret_file = "worker.key";  // without server_key
  CHECK_THROWS_AS(Worker(model, o), WorkerError);
  o.curve_secret_file.clear();
  o.shard_count = 1;
  o.id = 1;
  CHECK_THROWS_AS(Worker(model, o), WorkerError);
  o.shard_count.reset();
  o.id = 0;
  o.connect_timeout = 300ms;
  Worker w(model, o);
  try {
    (void)w.run();
    FAIL("run() returned without a coordinator");
  } catch (const WorkerError& e) {
    CHECK(std::string(e.what()).find("no coordinator answered") != std::string::npos);
  }
}

TEST_CASE("api: a worker whose model differs from the run's is refused with the difference") {
  Coordinator coord(2, 20);
  coord.settings.model = "quadratic d=4";  // what the run expects
  coord.settings.join_timeout = 3000ms;
  coord.start();
  class Other final : public Model {
   public:
    std::size_t dim() const override { return 4; }
    std::size_t samples() const override { return 1; }
    double gradient(std::span<const double>, std::span<double> g) override {
      for (double& v : g) v = 0.0;
      return 0.0;
    }
    Smoothness smoothness() override { return {1.0}; }
    std::string description() const override { return "quadratic d=5"; }
  } other;
  WorkerOptions o = options_for(coord, 1);
  o.connect_timeout = 5000ms;
  Worker w(other, o);
  try {
    (void)w.run();
    FAIL("a worker with another model was admitted");
  } catch (const WorkerError& e) {
    CHECK(std::string(e.what()).find("d=5 (run: d=4)") != std::string::npos);
  }
  coord.thread.join();  // too few joined: the coordinator gives up
  CHECK_FALSE(coord.error.empty());
}

}  // namespace
}  // namespace marina
