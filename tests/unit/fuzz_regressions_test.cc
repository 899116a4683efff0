// Runtime bugs that the fuzz harnesses (tests/fuzz) found, one case each, so that they stay
// fixed in the normal and the sanitize builds.

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <sstream>

#include "marina/data/dataset.h"
#include "marina/methods/method.h"
#include "marina/problem/objective.h"

using namespace marina;

TEST_CASE("fuzz: a MARINA worker answers a compressed round 0 without a cached gradient") {
  // fuzz_decode: a broadcast of round 0 without full_sync made MarinaWorker::respond take the
  // sentinel "no gradient yet" (UINT64_MAX, + 1 wraps to 0) for "gradient of round -1 cached"
  // and subtract an empty vector: an out-of-bounds read (Eigen asserts in a debug build).
  std::istringstream rows("+1 1:0.5 2:1 3:-1\n-1 1:-0.25 3:2\n+1 2:0.75\n");
  problem::Objective f(data::parse_libsvm(rows, "rows"), problem::Loss::kNonConvex, 0.0);
  for (const methods::Method method : {methods::Method::kMarina, methods::Method::kPpMarina}) {
    CAPTURE(methods::to_string(method));
    methods::MethodConfig config;
    config.method = method;
    config.compressor = "randk:1";
    config.workers = 2;
    config.dim = 3;
    config.gamma = 0.1;
    config.p = 0.5;
    config.clients = 1;
    const std::unique_ptr<methods::WorkerHalf> worker = methods::make_worker(config, 1, f);
    methods::Broadcast b;  // round 0, full_sync = false, no update: what a hostile peer can send
    methods::Reply reply;
    REQUIRE(worker->on_broadcast(b, reply));
    CHECK(reply.round == 0);
    CHECK(reply.payload.dim == 3);
    for (const float v : reply.payload.values) CHECK(std::isfinite(v));
    // x^{-1} = x^0, so the gradient difference is zero.
    for (const float v : reply.payload.values) CHECK(v == 0.0f);
  }
}

TEST_CASE("fuzz: a worker whose state leaves the float range stops as diverged, not as malformed") {
  // fuzz_decode: a snapshot with a huge shift h_i made a DIANA worker's QSGD estimate decode to
  // inf; the compressor's std::invalid_argument escaped on_broadcast as if the message were
  // malformed. The worker's own numbers overflowed: that is divergence.
  std::istringstream rows("+1 1:0.5 2:1 3:-1\n-1 1:-0.25 3:2\n+1 2:0.75\n");
  problem::Objective f(data::parse_libsvm(rows, "rows"), problem::Loss::kNonConvex, 0.0);
  for (const char* compressor : {"qsgd:4", "randk:1", "natural"}) {
    CAPTURE(compressor);
    methods::MethodConfig config;
    config.method = methods::Method::kDiana;
    config.compressor = compressor;
    config.workers = 2;
    config.dim = 3;
    config.gamma = 0.1;
    config.alpha = 0.1;
    const std::unique_ptr<methods::WorkerHalf> worker = methods::make_worker(config, 1, f);
    methods::Snapshot s;
    s.round = 4;
    s.x = {0.0, 0.0, 0.0};
    s.aux = {0.0, 0.0, 0.0};
    s.worker_aux = {1e308, -1e308, 1e308};  // h_i
    worker->restore(s);
    methods::Broadcast b;
    b.round = 4;
    methods::Reply reply;
    CHECK_THROWS_AS((void)worker->on_broadcast(b, reply), methods::Diverged);
  }
}
