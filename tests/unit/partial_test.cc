// Rounds that close without every reply: the estimators of a partial round, DIANA's mirrored
// shifts, and the server state that checkpoints carry. Method halves only, no transport.

#include <cmath>

#include <doctest/doctest.h>

#include "marina/methods/diana.h"
#include "marina/methods/method.h"
#include "test_support.h"

using namespace marina;
using methods::Method;

namespace {

methods::MethodConfig config(Method m, const std::string& q, uint32_t n, uint64_t d) {
  methods::MethodConfig c;
  c.method = m;
  c.compressor = q;
  c.workers = n;
  c.dim = d;
  c.seed = 11;
  c.gamma = 0.3;
  c.p = 0.2;
  c.alpha = 0.4;
  c.batch = 3;
  c.clients = 3;
  return c;
}

struct Fleet {
  std::unique_ptr<methods::ServerHalf> server;
  std::vector<std::unique_ptr<methods::WorkerHalf>> workers;
};

Fleet make_fleet(const methods::MethodConfig& c, std::vector<problem::Objective>& shards) {
  Fleet f{methods::make_server(c), {}};
  for (uint32_t i = 0; i < c.workers; ++i)
    f.workers.push_back(methods::make_worker(c, i, shards[i]));
  return f;
}

// One round in which the workers for which `away(i)` holds neither receive the broadcast nor
// reply; the others answer in id order.
void step(Fleet& f, const std::function<bool(uint32_t)>& away) {
  const auto& b = f.server->begin_round();
  methods::Reply r;
  for (uint32_t i = 0; i < f.workers.size(); ++i) {
    if (away(i)) continue;
    try {
      if (f.workers[i]->on_broadcast(b, r)) f.server->accept(r);
    } catch (const methods::OutOfSync&) {
      f.workers[i]->restore(f.server->snapshot(i));
      if (f.workers[i]->on_broadcast(b, r)) f.server->accept(r);
    }
  }
  f.server->end_round();
}

}  // namespace

TEST_CASE("partial: a compressed MARINA round averages over the replies that arrived") {
  auto shards = test::shards_of(test::synthetic(120, 6, 0.6, 41), 4);
  auto c = config(Method::kMarina, "identity", 4, 6);
  c.p = 0.0;  // round 0 is a full sync, every later round compressed
  auto f = make_fleet(c, shards);
  step(f, [](uint32_t) { return false; });
  // Round 1 without workers 1 and 3: with the identity compressor the update of g must be the
  // mean of the two responders' exact gradient differences.
  const Eigen::VectorXd x1 = f.server->x();
  const auto before = f.server->save();
  step(f, [](uint32_t i) { return i == 1 || i == 3; });
  CHECK(f.server->last_participants() == 2);
  Eigen::VectorXd g0(6), g1(6), a(6), b(6);
  const Eigen::VectorXd x0 = Eigen::Map<const Eigen::VectorXd>(before.x_prev.data(), 6);
  shards[0].gradient(x1, a);
  shards[0].gradient(x0, b);
  Eigen::VectorXd expected = a - b;
  shards[2].gradient(x1, a);
  shards[2].gradient(x0, b);
  expected = 0.5 * (expected + (a - b));
  const auto after = f.server->save();
  for (int j = 0; j < 6; ++j)
    CHECK(after.aux[j] - before.aux[j] == doctest::Approx(expected[j]).epsilon(1e-12));
  // The next broadcast names the two replies that were not aggregated.
  const auto& next = f.server->begin_round();
  CHECK(next.dropped == std::vector<uint32_t>{1, 3});
}

TEST_CASE("partial: a full-sync round without replies keeps g, one with some renormalises") {
  auto shards = test::shards_of(test::synthetic(90, 5, 0.6, 42), 3);
  auto c = config(Method::kGd, "identity", 3, 5);
  auto f = make_fleet(c, shards);
  step(f, [](uint32_t i) { return i == 0; });
  // g^0 is the mean of workers 1 and 2 only.
  Eigen::VectorXd g1(5), g2(5);
  const Eigen::VectorXd x0 = Eigen::VectorXd::Zero(5);
  shards[1].gradient(x0, g1);
  shards[2].gradient(x0, g2);
  const Eigen::VectorXd expected = 0.5 * (g1 + g2);
  auto s = f.server->save();
  for (int j = 0; j < 5; ++j) CHECK(s.aux[j] == doctest::Approx(expected[j]).epsilon(1e-14));
  const auto g_before = s.aux;
  step(f, [](uint32_t) { return true; });
  CHECK(f.server->last_participants() == 0);
  CHECK(f.server->save().aux == g_before);
}

TEST_CASE("partial: DIANA's server mirrors every shift h_i exactly through dropouts and resyncs") {
  auto shards = test::shards_of(test::synthetic(150, 8, 0.5, 43), 5);
  for (const Method m : {Method::kDiana, Method::kVrDiana}) {
    CAPTURE(methods::to_string(m));
    const auto c = config(m, "randk:2", 5, 8);
    auto f = make_fleet(c, shards);
    util::Rng rng(5);
    for (int k = 0; k < 60; ++k) {
      // Workers drop out at random; worker 4 restarts (a fresh half) at round 30.
      if (k == 30) f.workers[4] = methods::make_worker(c, 4, shards[4]);
      step(f, [&](uint32_t) { return rng.uniform() < 0.3; });
    }
    step(f, [](uint32_t) { return false; });  // everyone catches up and replies
    // The next broadcast confirms the last round's replies: each worker moves its shift.
    const auto& b = f.server->begin_round();
    methods::Reply r;
    for (auto& w : f.workers) (void)w->on_broadcast(b, r);
    const auto& server = dynamic_cast<const methods::DianaServer&>(*f.server);
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(8);
    for (uint32_t i = 0; i < 5; ++i) {
      CAPTURE(i);
      const auto& worker = dynamic_cast<const methods::DianaWorker&>(*f.workers[i]);
      // Bit for bit: both sides move h_i through the same function with the same m_i.
      CHECK(server.shift(i) == worker.shift());
      mean += worker.shift() / 5.0;
    }
    CHECK((server.mean_shift() - mean).norm() <= 1e-12 * (1.0 + mean.norm()));
    CHECK(std::isfinite(server.x().norm()));
  }
}

TEST_CASE("partial: save and load continue a run exactly") {
  auto shards = test::shards_of(test::synthetic(120, 7, 0.5, 44), 4);
  for (const Method m : {Method::kMarina, Method::kPpMarina, Method::kDiana}) {
    CAPTURE(methods::to_string(m));
    const auto c = config(m, "randk:2", 4, 7);
    auto f = make_fleet(c, shards);
    const std::function<bool(uint32_t)> away = [](uint32_t i) { return i == 2; };
    const std::function<bool(uint32_t)> none = [](uint32_t) { return false; };
    for (int k = 0; k < 15; ++k) step(f, k % 4 == 1 ? away : none);
    const methods::ServerState saved = f.server->save();
    // A new server loads the state and carries on with the same workers.
    auto twin = methods::make_server(c);
    twin->load(saved);
    CHECK(twin->save() == saved);
    Fleet g{std::move(twin), std::move(f.workers)};
    auto ref = make_fleet(c, shards);
    for (int k = 0; k < 15; ++k) step(ref, k % 4 == 1 ? away : none);
    for (int k = 0; k < 10; ++k) {
      step(g, [](uint32_t) { return false; });
      step(ref, [](uint32_t) { return false; });
    }
    CHECK(g.server->x() == ref.server->x());
  }
}

TEST_CASE("partial: loading a state of the wrong shape is refused") {
  const auto c = config(Method::kDiana, "randk:2", 3, 4);
  auto server = methods::make_server(c);
  auto s = server->save();
  s.worker_aux.pop_back();
  CHECK_THROWS_AS(server->load(s), std::invalid_argument);
  s = server->save();
  s.x.push_back(1.0);
  CHECK_THROWS_AS(server->load(s), std::invalid_argument);
  s = server->save();
  s.dropped = {7};
  CHECK_THROWS_AS(server->load(s), std::invalid_argument);
}

TEST_CASE("partial: a diverging run stops with the round and the step length") {
  auto shards = test::shards_of(test::synthetic(60, 4, 0.8, 45), 2);
  auto c = config(Method::kGd, "identity", 2, 4);
  c.gamma = 1e120;
  auto f = make_fleet(c, shards);
  bool threw = false;
  try {
    step(f, [](uint32_t) { return false; });  // x^1 = −γ g^0 is far beyond 1e15
  } catch (const methods::Diverged& e) {
    threw = true;
    CHECK(std::string(e.what()).find("diverged at round") == 0);
    CHECK(std::string(e.what()).find("lower --gamma") != std::string::npos);
  }
  CHECK(threw);
}
