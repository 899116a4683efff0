// Tests of the compressors (docs/ARCHITECTURE.md), the payload and accumulate/decode.
//
// The Monte Carlo checks are principled rather than tuned: each compares a sample mean over
// T = 20000 seeded draws with its exact expectation, allowing 6 standard errors computed from the
// empirical variance (plus float rounding where values cross the wire as float). The seeds are
// fixed, so the outcome is deterministic. Set MARINA_TEST_VERBOSE=1 to print the measured ω.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "marina/compress/compressor.h"
#include "marina/compress/payload.h"
#include "marina/methods/method.h"
#include "marina/util/bitmap.h"
#include "marina/util/random.h"
#include "marina/wire/codec.h"

namespace marina::compress {
// Defined in runtime/src/compress/compressor.cc, proposed for compressor.h.
double omega(const Compressor& q, std::size_t d, uint32_t workers);
double zeta(const Compressor& q, std::size_t d, uint32_t workers);
}  // namespace marina::compress

namespace mc = marina::compress;
namespace util = marina::util;
namespace methods = marina::methods;
namespace wire = marina::wire;

namespace {

constexpr int kDraws = 20000;
constexpr double kSigmas = 6.0;
constexpr double kFloatRel = 1e-6;  // > 2^-24: rounding to float on the wire

// A fixed, non-trivial vector: mixed signs and magnitudes, a zero, an exact power of two.
std::vector<double> test_vector(std::size_t d) {
  std::vector<double> x(d);
  for (std::size_t j = 0; j < d; ++j) {
    x[j] = std::sin(1.3 * static_cast<double>(j) + 0.4) * static_cast<double>(1 + j % 5);
  }
  if (d > 3) x[3] = 0.0;
  if (d > 7) x[7] = -0.5;
  return x;
}

double norm2(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v * v;
  return s;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no std::invalid_argument>";
}

bool verbose() {
  return std::getenv("MARINA_TEST_VERBOSE") != nullptr;
}

struct MonteCarlo {
  std::vector<double> mean, var;    // of each coordinate of Q(x)
  std::vector<double> hit;          // fraction of draws where coordinate j is non-zero
  double err_mean = 0, err_se = 0;  // of ||Q(x) − x||²
  double nnz_mean = 0, nnz_se = 0;
  std::size_t nnz_min = 0, nnz_max = 0;
};

MonteCarlo run(const mc::Compressor& q, const std::vector<double>& x, mc::Context ctx,
               int draws = kDraws) {
  const std::size_t d = x.size();
  MonteCarlo m;
  m.mean.assign(d, 0.0);
  m.var.assign(d, 0.0);
  m.hit.assign(d, 0.0);
  m.nnz_min = d;
  double e1 = 0, e2 = 0, n1 = 0, n2 = 0;
  mc::Payload p;
  Eigen::VectorXd dec;
  for (int t = 0; t < draws; ++t) {
    ctx.round_seed = util::derive(0xC0FFEE, {static_cast<uint64_t>(t)});
    q.compress(x, ctx, p);
    mc::decode(p, q, ctx, dec);
    double err = 0;
    std::size_t nnz = 0;
    for (std::size_t j = 0; j < d; ++j) {
      const double v = dec[static_cast<Eigen::Index>(j)];
      m.mean[j] += v;
      m.var[j] += v * v;
      m.hit[j] += v != 0.0 ? 1.0 : 0.0;
      err += (v - x[j]) * (v - x[j]);
      nnz += v != 0.0;
    }
    e1 += err;
    e2 += err * err;
    n1 += static_cast<double>(nnz);
    n2 += static_cast<double>(nnz * nnz);
    m.nnz_min = std::min(m.nnz_min, nnz);
    m.nnz_max = std::max(m.nnz_max, nnz);
  }
  const double T = draws;
  for (std::size_t j = 0; j < d; ++j) {
    m.mean[j] /= T;
    m.var[j] = std::max(0.0, m.var[j] / T - m.mean[j] * m.mean[j]);
    m.hit[j] /= T;
  }
  m.err_mean = e1 / T;
  m.err_se = std::sqrt(std::max(0.0, e2 / T - m.err_mean * m.err_mean) / T);
  m.nnz_mean = n1 / T;
  m.nnz_se = std::sqrt(std::max(0.0, n2 / T - m.nnz_mean * m.nnz_mean) / T);
  return m;
}

// E[Q(x)] = x: every coordinate's sample mean within 6 standard errors (+ float rounding).
void check_unbiased(const MonteCarlo& m, const std::vector<double>& x, double scale) {
  for (std::size_t j = 0; j < x.size(); ++j) {
    INFO("coordinate " << j << ": x = " << x[j] << ", mean = " << m.mean[j]);
    const double se = std::sqrt(m.var[j] / kDraws);
    CHECK(std::fabs(m.mean[j] - x[j]) <= kSigmas * se + kFloatRel * scale * std::fabs(x[j]));
  }
}

// E||Q(x) − x||² = `exact` (within 6 standard errors), and exact ≤ ω||x||².
void check_variance(const MonteCarlo& m, const std::vector<double>& x, double exact, double omega,
                    const std::string& label) {
  const double nx = norm2(x);
  const double slack = kSigmas * m.err_se + 1e-5 * exact;
  if (verbose()) {
    MESSAGE(label << ": empirical omega = " << m.err_mean / nx << " +- " << m.err_se / nx
                  << " (exact for this x " << exact / nx << ", bound " << omega
                  << "), mean nnz = " << m.nnz_mean);
  }
  CHECK(std::fabs(m.err_mean - exact) <= slack);
  CHECK(m.err_mean <= omega * nx + slack);
  CHECK(exact <= omega * nx * (1 + 1e-12));
}

std::vector<uint32_t> seeded(const mc::Compressor& q, const mc::Context& ctx, std::size_t d) {
  std::vector<uint32_t> idx;
  q.seeded_indices(ctx, d, idx);
  return idx;
}

bool strictly_increasing(const std::vector<uint32_t>& v) {
  return std::adjacent_find(v.begin(), v.end(), std::greater_equal<>()) == v.end();
}

bool same(const mc::Payload& a, const mc::Payload& b) {
  return a.kind == b.kind && a.dim == b.dim && a.dense == b.dense && a.values == b.values &&
         a.indices == b.indices && a.levels == b.levels && a.norm == b.norm &&
         a.levels_s == b.levels_s;
}

}  // namespace

TEST_CASE("compress: parse specs, names, omega and zeta") {
  const std::size_t d = 100;
  auto id = mc::make_compressor("identity");
  CHECK(id->name() == "identity");
  CHECK(id->omega(d) == 0.0);
  CHECK(id->zeta(d) == 100.0);
  CHECK(id->unbiased());

  auto rk = mc::make_compressor("randk:5");
  CHECK(rk->name() == "randk:5");
  CHECK(rk->omega(d) == doctest::Approx(19.0));
  CHECK(rk->zeta(d) == 5.0);
  CHECK(mc::make_compressor("randk:007")->name() == "randk:7");

  auto pk = mc::make_compressor("permk");
  CHECK(pk->name() == "permk");
  CHECK(pk->unbiased());
  CHECK_THROWS_AS((void)pk->omega(d), std::logic_error);  // needs n
  CHECK(mc::omega(*pk, d, 5) == 4.0);
  CHECK(mc::zeta(*pk, d, 5) == 20.0);
  CHECK(mc::omega(*rk, d, 5) == rk->omega(d));

  auto qs = mc::make_compressor("qsgd:4");
  CHECK(qs->name() == "qsgd:4");
  CHECK(qs->omega(d) == doctest::Approx(std::min(100.0 / 16, 10.0 / 4)));
  CHECK(qs->zeta(d) == doctest::Approx(std::min(100.0, 4.0 * (4 + 10))));
  CHECK(mc::make_compressor("qsgd:1")->zeta(d) == doctest::Approx(11.0));
  CHECK(mc::make_compressor("qsgd:127")->name() == "qsgd:127");

  auto nat = mc::make_compressor("natural");
  CHECK(nat->omega(d) == 0.125);
  CHECK(nat->zeta(d) == 100.0);

  auto tk = mc::make_compressor("topk:3");
  CHECK_FALSE(tk->unbiased());
  CHECK(std::isnan(tk->omega(d)));
  CHECK(tk->zeta(d) == 3.0);

  CHECK(message_of([] { (void)mc::make_compressor("rank:3"); }) ==
        "unknown compressor 'rank:3' (expected identity, randk:K, randk:K:indexed, randblock:K, "
        "permk, permk:indexed, qsgd:S, natural, topk:K)");
  // ":indexed": the same operator (ω, ζ), its indices on the wire.
  auto rki = mc::make_compressor("randk:5:indexed");
  CHECK(rki->name() == "randk:5:indexed");
  CHECK(rki->omega(d) == rk->omega(d));
  CHECK(rki->zeta(d) == 5.0);
  CHECK(rki->payload_kind() == mc::PayloadKind::kSparse);
  CHECK(rk->payload_kind() == mc::PayloadKind::kSeeded);
  auto pki = mc::make_compressor("permk:indexed");
  CHECK(pki->name() == "permk:indexed");
  CHECK(pki->payload_kind() == mc::PayloadKind::kSparse);
  CHECK(mc::omega(*pki, d, 5) == 4.0);
  CHECK(mc::zeta(*pki, d, 5) == 20.0);
  const auto starts = [](const std::string& spec, const std::string& prefix) {
    const std::string m = message_of([&] { (void)mc::make_compressor(spec); });
    INFO(spec << " -> " << m);
    CHECK(m.rfind(prefix, 0) == 0);
  };
  starts("randk:0", "randk:0: K must be a positive integer");
  starts("randk", "randk: K must be a positive integer");
  starts("randk:", "randk:: K must be a positive integer");
  starts("randk:-3", "randk:-3: K must be a positive integer");
  starts("randk:+3", "randk:+3: K must be a positive integer");
  starts("randk:3x", "randk:3x: K must be a positive integer");
  starts("randk: 3", "randk: 3: K must be a positive integer");
  starts("randk:99999999999999999999", "randk:99999999999999999999: K must be");
  starts("topk:0", "topk:0: K must be a positive integer");
  starts("qsgd:0", "qsgd:0: S must be an integer in [1, 127]");
  starts("qsgd:128", "qsgd:128: S must be an integer in [1, 127]");
  starts("qsgd", "qsgd: S must be an integer in [1, 127]");
  starts("identity:2", "identity:2: identity takes no parameter");
  starts("permk:4", "permk:4: permk takes no parameter");
  starts("randk:3:Indexed",
         "randk:3:Indexed: K must be a positive integer (expected randk:K or "
         "randk:K:indexed");
  starts("randk:3:indexed:", "randk:3:indexed:: K must be a positive integer");
  starts("randk::indexed", "randk::indexed: K must be a positive integer");
  starts("topk:3:indexed", "topk:3:indexed: K must be a positive integer (expected topk:K,");
  starts("permk:indexed:2", "permk:indexed:2: permk takes no parameter");
  starts("randblock", "randblock: K must be a positive integer (expected randblock:K, e.g.");
  starts("randblock:0", "randblock:0: K must be a positive integer");
  starts("randblock:3:indexed", "randblock:3:indexed: K must be a positive integer");
  starts("", "unknown compressor ''");
  starts("RandK:3", "unknown compressor 'RandK:3'");
}

TEST_CASE("compress: identity is exact") {
  const auto x = test_vector(33);
  auto q = mc::make_compressor("identity");
  mc::Payload p;
  q->compress(x, {}, p);
  CHECK(p.kind == mc::PayloadKind::kDense64);
  CHECK(p.dim == 33);
  CHECK(p.dense == x);
  CHECK(p.value_count() == 33);
  Eigen::VectorXd out;
  mc::decode(p, *q, {}, out);
  for (std::size_t j = 0; j < x.size(); ++j) CHECK(out[static_cast<Eigen::Index>(j)] == x[j]);
}

TEST_CASE("compress: randk and randblock are unbiased with omega = d/K - 1 and exactly K values") {
  const auto x = test_vector(32);
  const std::size_t d = x.size();
  for (const std::string spec : {"randk:", "randblock:"})
    for (uint32_t k : {1u, 5u, 16u}) {
      CAPTURE(spec);
      CAPTURE(k);
      auto q = mc::make_compressor(spec + std::to_string(k));
      CHECK(q->omega(d) == static_cast<double>(d) / k - 1.0);
      CHECK(q->zeta(d) == k);
      const MonteCarlo m = run(*q, x, {0, 1, 4});
      check_unbiased(m, x, static_cast<double>(d) / k);
      const double omega = q->omega(d);
      check_variance(m, x, omega * norm2(x), omega, q->name());
      // Exactly K coordinates every time (x has one zero, which decodes as 0 when picked).
      CHECK(m.nnz_max <= k);
      CHECK(m.nnz_min >= k - 1);
      // Each coordinate is picked with probability K/d.
      const double p = static_cast<double>(k) / d;
      for (std::size_t j = 0; j < d; ++j) {
        if (x[j] == 0.0) continue;
        CHECK(std::fabs(m.hit[j] - p) <= kSigmas * std::sqrt(p * (1 - p) / kDraws));
      }
    }
}

TEST_CASE("compress: randk seeded indices are re-derived by the server") {
  const auto x = test_vector(50);
  auto q = mc::make_compressor("randk:7");
  const mc::Context ctx{123456789, 2, 5};
  mc::Payload p;
  q->compress(x, ctx, p);
  CHECK(p.kind == mc::PayloadKind::kSeeded);
  CHECK(p.dim == 50);
  CHECK(p.values.size() == 7);
  CHECK(p.indices.empty());  // the indices never cross the wire
  CHECK(p.value_count() == 7);

  const auto idx = seeded(*q, ctx, 50);
  REQUIRE(idx.size() == 7);
  CHECK(strictly_increasing(idx));
  CHECK(idx.back() < 50);
  // What the worker meant: x_j·d/K at its indices, in ascending index order.
  for (std::size_t i = 0; i < idx.size(); ++i) {
    CHECK(p.values[i] == static_cast<float>(x[idx[i]] * 50.0 / 7.0));
  }
  Eigen::VectorXd dec;
  mc::decode(p, *q, ctx, dec);
  for (Eigen::Index j = 0; j < 50; ++j) {
    const auto it = std::find(idx.begin(), idx.end(), static_cast<uint32_t>(j));
    const double want =
        it == idx.end() ? 0.0
                        : static_cast<double>(p.values[static_cast<std::size_t>(it - idx.begin())]);
    CHECK(dec[j] == want);
  }

  // Deterministic; worker-specific; round-specific.
  mc::Payload again;
  q->compress(x, ctx, again);
  CHECK(same(p, again));
  CHECK(seeded(*q, {123456789, 3, 5}, 1000) != seeded(*q, ctx, 1000));
  CHECK(seeded(*q, {123456790, 2, 5}, 1000) != seeded(*q, ctx, 1000));
  // The stream is derive(round_seed, {worker, kCompress}) and nothing else: n does not matter.
  CHECK(seeded(*q, {123456789, 2, 9}, 1000) == seeded(*q, ctx, 1000));

  // K = d keeps everything; K > d is an error at compress time.
  auto all = mc::make_compressor("randk:50");
  std::vector<uint32_t> every(50);
  for (uint32_t j = 0; j < 50; ++j) every[j] = j;
  CHECK(seeded(*all, ctx, 50) == every);
  auto big = mc::make_compressor("randk:51");
  CHECK(message_of([&] { big->compress(x, ctx, p); }) == "randk:51 needs K ≤ d = 50");

  // K ≪ d costs O(K log K): a dimension of 4·10^9 would take seconds if anything were O(d).
  const auto huge = seeded(*q, ctx, 4'000'000'000ULL);
  CHECK(huge.size() == 7);
  CHECK(strictly_increasing(huge));
  CHECK(huge.back() < 4'000'000'000ULL);
}

// The block a seeded RandBlock index set stands for: its offset o, or nullopt when the set is
// not {(o + j) mod d : j < K} for any o.
std::optional<uint32_t> block_offset(const std::vector<uint32_t>& idx, uint32_t d) {
  const auto k = static_cast<uint32_t>(idx.size());
  for (uint32_t o = 0; o < d; ++o) {
    std::vector<uint32_t> want(k);
    for (uint32_t j = 0; j < k; ++j) want[j] = (o + j) % d;
    std::sort(want.begin(), want.end());
    if (want == idx) return o;
  }
  return std::nullopt;
}

TEST_CASE("compress: randblock is K consecutive coordinates from a uniform offset") {
  constexpr uint32_t d = 12;
  for (uint32_t k : {1u, 5u, 12u}) {
    CAPTURE(k);
    auto q = mc::make_compressor("randblock:" + std::to_string(k));
    CHECK(q->name() == "randblock:" + std::to_string(k));
    CHECK(q->payload_kind() == mc::PayloadKind::kSeeded);
    std::vector<int> offsets(d, 0);
    int wrapped = 0;
    for (int t = 0; t < kDraws; ++t) {
      const auto idx = seeded(*q, {util::derive(77, {static_cast<uint64_t>(t)}), 1, 4}, d);
      REQUIRE(idx.size() == k);
      REQUIRE(strictly_increasing(idx));
      REQUIRE(idx.back() < d);
      const auto o = block_offset(idx, d);
      REQUIRE(o.has_value());
      ++offsets[*o % d];
      wrapped += *o + k > d ? 1 : 0;
    }
    if (k == d) continue;  // every offset gives the same set: block_offset() reports 0
    // Each offset with probability 1/d, so each coordinate is kept with probability K/d.
    const double p = 1.0 / d;
    for (uint32_t o = 0; o < d; ++o) {
      CAPTURE(o);
      CHECK(std::fabs(offsets[o] / double(kDraws) - p) <=
            kSigmas * std::sqrt(p * (1 - p) / kDraws));
    }
    if (k > 1) CHECK(wrapped > 0);  // the wrapping blocks were drawn and are sorted
  }
}

TEST_CASE("compress: randblock's seeded run is its indices when its block does not wrap") {
  auto q = mc::make_compressor("randblock:7");
  int runs = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    const mc::Context ctx{seed, 2, 5};
    const auto idx = seeded(*q, ctx, 30);
    const bool wraps = idx.back() - idx.front() + 1 != idx.size();
    const auto run = q->seeded_run(ctx, 30);
    CAPTURE(seed);
    REQUIRE(run.has_value() == !wraps);
    if (!run) continue;
    ++runs;
    CHECK(run->size == 7);
    CHECK(run->begin == idx.front());
  }
  CHECK(runs > 100);
  CHECK(runs < 200);  // some blocks wrapped
  // The other seeded compressors draw sets that are no run.
  for (const char* spec : {"randk:7", "permk"})
    CHECK_FALSE(mc::make_compressor(spec)->seeded_run({1, 2, 5}, 30).has_value());
}

TEST_CASE("compress: randblock sends the values of its block, which the server re-derives") {
  const auto x = test_vector(50);
  auto q = mc::make_compressor("randblock:7");
  // A context whose block wraps past d − 1, and one whose block does not.
  for (const bool wrap : {true, false}) {
    CAPTURE(wrap);
    mc::Context ctx{1, 2, 5};
    const auto wraps = [&] {
      const auto i = seeded(*q, ctx, 50);
      return i.back() - i.front() + 1 != i.size();
    };
    while (wraps() != wrap) ++ctx.round_seed;
    mc::Payload p;
    q->compress(x, ctx, p);
    CHECK(p.kind == mc::PayloadKind::kSeeded);
    CHECK(p.dim == 50);
    CHECK(p.indices.empty());
    const auto idx = seeded(*q, ctx, 50);
    REQUIRE(idx.size() == 7);
    CHECK(block_offset(idx, 50).has_value());
    CHECK(q->mismatch(p).empty());
    REQUIRE(p.values.size() == 7);
    for (std::size_t i = 0; i < idx.size(); ++i)
      CHECK(p.values[i] == static_cast<float>(x[idx[i]] * 50.0 / 7.0));
    Eigen::VectorXd dec;
    mc::decode(p, *q, ctx, dec);
    for (Eigen::Index j = 0; j < 50; ++j) {
      const auto it = std::find(idx.begin(), idx.end(), static_cast<uint32_t>(j));
      CHECK(dec[j] == (it == idx.end() ? 0.0 : static_cast<double>(p.values[it - idx.begin()])));
    }
  }
  // Worker- and round-specific; n does not matter.
  const mc::Context ctx{123456789, 2, 5};
  CHECK(seeded(*q, {123456789, 3, 5}, 1000) != seeded(*q, ctx, 1000));
  CHECK(seeded(*q, {123456790, 2, 5}, 1000) != seeded(*q, ctx, 1000));
  CHECK(seeded(*q, {123456789, 2, 9}, 1000) == seeded(*q, ctx, 1000));
  // K = d keeps everything; K > d is refused; a wrong count is named.
  std::vector<uint32_t> every(50);
  std::iota(every.begin(), every.end(), 0u);
  CHECK(seeded(*mc::make_compressor("randblock:50"), ctx, 50) == every);
  mc::Payload p;
  CHECK(message_of([&] { mc::make_compressor("randblock:51")->compress(x, ctx, p); }) ==
        "randblock:51 needs K ≤ d = 50");
  q->compress(x, ctx, p);
  p.values.pop_back();
  CHECK(q->mismatch(p) == "seeded payload has 6 values, randblock:7 sends 7");
  // O(K): a dimension of 4·10^9 costs what 50 does.
  const auto huge = seeded(*q, ctx, 4'000'000'000ULL);
  CHECK(huge.size() == 7);
  CHECK(strictly_increasing(huge));
  CHECK(huge.back() < 4'000'000'000ULL);
}

TEST_CASE("compress: indexed randk and permk send the seeded indices and the same values") {
  const auto x = test_vector(103);  // PermK padded: 7 does not divide 103
  for (const auto& [plain, indexed] :
       {std::pair{"randk:9", "randk:9:indexed"}, std::pair{"randk:60", "randk:60:indexed"},
        std::pair{"permk", "permk:indexed"}}) {
    CAPTURE(indexed);
    auto q = mc::make_compressor(plain);
    auto qi = mc::make_compressor(indexed);
    for (uint32_t w = 0; w < 7; ++w) {
      CAPTURE(w);
      const mc::Context ctx{987654321 + w / 3, w, 7};
      mc::Payload a, b;
      q->compress(x, ctx, a);
      qi->compress(x, ctx, b);
      CHECK(b.kind == mc::PayloadKind::kSparse);
      CHECK(b.dim == 103);
      CHECK(b.indices == seeded(*q, ctx, 103));
      CHECK(b.values == a.values);
      CHECK(b.finite);
      CHECK(b.value_count() == a.value_count());  // bits as the paper counts them: the same
      CHECK(qi->mismatch(b).empty());
      CHECK(qi->mismatch(a) ==
            "seeded payload, but " + std::string(indexed) + " makes sparse payloads");
      CHECK(q->mismatch(b) ==
            "sparse payload, but " + std::string(plain) + " makes seeded payloads");
      // Decoded on the server: the same vector, without deriving anything.
      Eigen::VectorXd da, db;
      mc::decode(a, *q, ctx, da);
      mc::decode(b, *qi, ctx, db);
      CHECK(da == db);
    }
  }
  // RandK's count is checked for both forms.
  auto qi = mc::make_compressor("randk:9:indexed");
  mc::Payload p;
  qi->compress(x, {5, 1, 7}, p);
  p.values.pop_back();
  p.indices.pop_back();
  CHECK(qi->mismatch(p) == "sparse payload has 8 values, randk:9:indexed sends 9");
}

TEST_CASE("compress: randk indices are Floyd's sample, sorted, with the hash set and the bitmap") {
  // Reference: Floyd's algorithm with a std::set, drawing from the same stream as RandK
  // (runtime/src/compress/compressor.cc: worker_seed). K = 1 is one draw; below K = d/512 RandK
  // keeps a hash set and sorts; from there on a bitmap, read out word by word, or (up to K = d/32)
  // from a list of the non-empty words; all must give this set exactly.
  for (uint32_t d : {1u, 7u, 64u, 65u, 1000u, 4097u, 100000u}) {
    for (uint32_t k :
         {1u, 2u, d / 600, d / 512, d / 100, d / 32, d / 32 + 1, d / 10, d / 3, d - 1, d}) {
      if (k == 0 || k > d) continue;
      CAPTURE(d);
      CAPTURE(k);
      auto q = mc::make_compressor("randk:" + std::to_string(k));
      for (uint32_t w = 0; w < 3; ++w) {
        const mc::Context ctx{0x5eed + d + k, w, 3};
        util::Rng rng(util::derive(ctx.round_seed, {w, util::tag(util::Stream::kCompress)}));
        std::set<uint32_t> want;
        for (uint64_t j = d - k; j < d; ++j) {
          const auto t = static_cast<uint32_t>(rng.below(j + 1));
          if (!want.insert(t).second) want.insert(static_cast<uint32_t>(j));
        }
        CHECK(seeded(*q, ctx, d) == std::vector<uint32_t>(want.begin(), want.end()));
      }
    }
  }
}

TEST_CASE("compress: RandK within a support reads x only there and sends what compress sends") {
  // A worker whose gradients live on a stated support compresses their difference with
  // compress_within: RandK must send the payload compress() sends for an x that is +0.0 off
  // the support, without reading x there (NaN there: compress() refuses it, compress_within
  // must not see it). The other compressors read x whole and ignore the set.
  std::mt19937_64 gen(31);
  for (const uint32_t d : {1u, 64u, 65u, 1000u}) {
    std::vector<uint64_t> support((d + 63) / 64, 0);
    std::vector<double> x(d, 0.0), poisoned(d, std::nan(""));
    for (uint32_t j = 0; j < d; ++j) {
      if (d > 1 && gen() % 10 != 0) continue;  // about a tenth of the columns
      support[j / 64] |= uint64_t{1} << (j % 64);
      x[j] = poisoned[j] = std::ldexp(static_cast<double>(gen() % 2001) - 1000.0, -7);
    }
    for (const std::string& spec :
         std::vector<std::string>{"randk:1", "randk:7:indexed", "randk:" + std::to_string(d),
                                  "identity", "permk", "qsgd:4", "randblock:5"}) {
      if (spec.starts_with("randk:7") && d < 7) continue;
      if (spec == "randblock:5" && d < 5) continue;
      CAPTURE(d);
      CAPTURE(spec);
      const auto q = mc::make_compressor(spec);
      for (uint32_t w = 0; w < 3; ++w) {
        const mc::Context ctx{0xab + d, w, 3};
        mc::Payload want, got;
        q->compress(x, ctx, want);
        q->compress_within(x, support.data(), ctx, got);
        const auto bits_of = [](const mc::Payload& p) {
          const auto b = std::as_bytes(std::span(p.values));
          return std::vector<std::byte>(b.begin(), b.end());
        };
        CHECK(same(got, want));
        CHECK(bits_of(got) == bits_of(want));
        if (!spec.starts_with("randk")) continue;
        mc::Payload within_nan;
        q->compress_within(poisoned, support.data(), ctx, within_nan);
        CHECK(same(within_nan, want));
        CHECK(bits_of(within_nan) == bits_of(want));
      }
    }
  }
}

TEST_CASE("compress: a bitmap's set bits are read out in order at every density") {
  // util::read_set_bits lists the non-empty words first up to one bit in 32, then reads every
  // word four slots a turn, and from one bit in 12 on eight slots a turn. Each bitmap here has
  // words of 0, 1, 4, 5, 8, 9, 17, 63 and 64 bits among its random ones, and a k that puts it on
  // each path. Reference: the bits one by one.
  std::mt19937_64 gen(29);
  for (const std::size_t words :
       {std::size_t{1}, std::size_t{9}, std::size_t{40}, std::size_t{200}}) {
    for (const double density : {0.001, 0.02, 0.05, 0.1, 0.3, 0.9}) {
      CAPTURE(words);
      CAPTURE(density);
      std::vector<uint64_t> bits(words, 0);
      std::bernoulli_distribution on(density);
      for (std::size_t j = 0; j < words * 64; ++j)
        if (on(gen)) bits[j / 64] |= uint64_t{1} << (j % 64);
      const int counts[] = {0, 1, 4, 5, 8, 9, 17, 63, 64};
      for (std::size_t i = 0; i < words && words > 1; i += 4) {  // some words of given counts
        uint64_t w = 0;
        for (int c = 0; c < counts[(i / 4) % 9];) {
          const uint64_t b = uint64_t{1} << (gen() % 64);
          c += (w & b) == 0;
          w |= b;
        }
        bits[i] = w;
      }
      std::vector<uint32_t> want;
      for (std::size_t j = 0; j < words * 64; ++j)
        if (bits[j / 64] >> (j % 64) & 1) want.push_back(static_cast<uint32_t>(j));
      std::vector<uint32_t> got = {7, 7, 7};  // what was there before is not kept
      util::read_set_bits(bits.data(), words, want.size(), got);
      CHECK(got == want);
    }
  }
}

TEST_CASE("compress: a single draw without the whole generator is the generator's draw") {
  // util::Rng::first_below seeds one word of the state for RandK:1's index and RandBlock's
  // offset; a rejected draw falls back to the full generator. n near 2^63 and 2^64 rejects
  // about half of the draws (the threshold 2^64 mod n is then about n), small n almost never.
  std::mt19937_64 gen(23);
  for (const uint64_t n :
       {uint64_t{1}, uint64_t{2}, uint64_t{12}, uint64_t{100000}, uint64_t{4294967294},
        (uint64_t{1} << 63) + 1, ~uint64_t{0} - 1, ~uint64_t{0}}) {
    CAPTURE(n);
    int differ = 0;
    for (int t = 0; t < 2000; ++t) {
      const uint64_t seed = t < 1000 ? static_cast<uint64_t>(t) : gen();
      util::Rng rng(seed);
      differ += util::Rng::first_below(seed, n) != rng.below(n) ? 1 : 0;
    }
    CHECK(differ == 0);
  }
  // The draws RandBlock makes, through the compressor: its block starts at the draw.
  auto q = mc::make_compressor("randblock:3");
  for (uint64_t t = 0; t < 2000; ++t) {  // blocks that wrap too (3 offsets in 1 000)
    const mc::Context ctx{util::derive(5, {t}), 2, 4};
    util::Rng rng(util::derive(ctx.round_seed, {2, util::tag(util::Stream::kCompress)}));
    const auto o = static_cast<uint32_t>(rng.below(1000));
    const auto idx = seeded(*q, ctx, 1000);
    std::vector<uint32_t> want = {o, (o + 1) % 1000, (o + 2) % 1000};
    std::sort(want.begin(), want.end());
    CHECK(idx == want);
  }
}

TEST_CASE("compress: a run of bits is marked word by word, each new bit reported once in order") {
  // util::mark_range marks the server's record of a run of consecutive indices (RandBlock's
  // block) a word at a time. Runs start and end inside a word, on its edges, and span several;
  // some overlap bits already set. Reference: one bit at a time.
  std::mt19937_64 gen(17);
  constexpr std::size_t kBits = 640;
  std::vector<uint64_t> bits(kBits / 64, 0), want(kBits / 64, 0);
  const std::vector<std::pair<std::size_t, std::size_t>> runs = {
      {0, 1},     {63, 1},  {64, 64}, {5, 3},   {60, 10},  {128, 200},
      {100, 130}, {330, 0}, {639, 1}, {0, 640}, {200, 64}, {191, 129}};
  for (int round = 0; round < 3; ++round) {
    std::vector<std::pair<std::size_t, std::size_t>> cases = runs;
    for (int t = 0; t < 40; ++t) {
      const std::size_t first = gen() % kBits;
      cases.emplace_back(first, gen() % (kBits - first + 1));
    }
    std::fill(bits.begin(), bits.end(), 0);
    std::fill(want.begin(), want.end(), 0);
    for (const auto& [first, len] : cases) {
      CAPTURE(first);
      CAPTURE(len);
      std::vector<std::size_t> fresh, want_fresh;
      for (std::size_t j = first; j < first + len; ++j) {
        const uint64_t bit = uint64_t{1} << (j & 63);
        if ((want[j >> 6] & bit) == 0) want_fresh.push_back(j);
        want[j >> 6] |= bit;
      }
      util::mark_range(bits.data(), first, len, [&](std::size_t j) { fresh.push_back(j); });
      CHECK(fresh == want_fresh);
      CHECK(bits == want);
    }
  }
}

TEST_CASE("compress: randk indices are uniform K-subsets") {
  // d = 5, K = 2: all 10 subsets equally likely (chi-square-free check: each within 6 sigma).
  auto q = mc::make_compressor("randk:2");
  std::vector<int> count(25, 0);
  const int draws = 20000;
  for (int t = 0; t < draws; ++t) {
    const auto idx = seeded(*q, {static_cast<uint64_t>(t), 0, 1}, 5);
    REQUIRE(idx.size() == 2);
    REQUIRE(idx[0] < idx[1]);
    ++count[idx[0] * 5 + idx[1]];
  }
  const double p = 0.1, se = std::sqrt(p * (1 - p) / draws);
  for (int a = 0; a < 5; ++a) {
    for (int b = a + 1; b < 5; ++b) {
      CAPTURE(a);
      CAPTURE(b);
      CHECK(std::fabs(count[a * 5 + b] / static_cast<double>(draws) - p) <= kSigmas * se);
    }
  }
}

TEST_CASE("compress: permk blocks partition 0..d-1 and average to x") {
  auto q = mc::make_compressor("permk");
  for (auto [d, n] : {std::pair<std::size_t, uint32_t>{30, 5}, {32, 5}, {7, 7}, {3, 5}, {40, 1}}) {
    CAPTURE(d);
    CAPTURE(n);
    const auto x = test_vector(d);
    for (uint64_t seed : {1ULL, 99ULL, 0xdeadbeefULL}) {
      std::vector<int> owner(d, -1);
      Eigen::VectorXd sum = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(d));
      mc::Payload p;
      for (uint32_t i = 0; i < n; ++i) {
        const mc::Context ctx{seed, i, n};
        const auto idx = seeded(*q, ctx, d);
        CHECK(strictly_increasing(idx));
        CHECK(idx.size() <= (d + n - 1) / n);
        if (d % n == 0) CHECK(idx.size() == d / n);  // exact blocks when n | d
        for (uint32_t j : idx) {
          REQUIRE(j < d);
          CHECK(owner[j] == -1);
          owner[j] = static_cast<int>(i);
        }
        q->compress(x, ctx, p);
        CHECK(p.kind == mc::PayloadKind::kSeeded);
        REQUIRE(p.values.size() == idx.size());
        for (std::size_t k = 0; k < idx.size(); ++k) {
          CHECK(p.values[k] == static_cast<float>(x[idx[k]] * n));
        }
        mc::accumulate(p, *q, ctx, 1.0 / n, sum);
      }
      CHECK(std::count(owner.begin(), owner.end(), -1) == 0);  // every coordinate, once
      for (std::size_t j = 0; j < d; ++j) {
        CHECK(std::fabs(sum[static_cast<Eigen::Index>(j)] - x[j]) <= kFloatRel * std::fabs(x[j]));
      }
    }
  }
  CHECK_THROWS_AS(seeded(*q, {1, 5, 5}, 30), std::invalid_argument);
  CHECK_THROWS_AS(seeded(*q, {1, 0, 0}, 30), std::invalid_argument);
}

// PermK's blocks as first specified: a fresh Fisher–Yates prefix of the padded range per call.
static std::vector<uint32_t> permk_reference(uint64_t round_seed, uint32_t worker, uint32_t n,
                                             std::size_t d) {
  const uint64_t block = (d + n - 1) / n, padded = block * n;
  std::vector<uint32_t> perm(padded);
  std::iota(perm.begin(), perm.end(), 0u);
  marina::util::Rng rng(
      marina::util::derive(round_seed, {marina::util::tag(marina::util::Stream::kCompress)}));
  const uint64_t end = (worker + 1) * block;
  for (uint64_t p = 0; p < end && p + 1 < padded; ++p)
    std::swap(perm[p], perm[p + rng.below(padded - p)]);
  std::vector<uint32_t> out;
  for (uint64_t p = worker * block; p < end; ++p)
    if (perm[p] < d) out.push_back(perm[p]);
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("compress: permk derives the same blocks in any order of workers and rounds") {
  // The shuffle is continued across calls of a round (the server asks for every worker's
  // block): interleaved rounds and workers in random order must not change any block.
  auto q = mc::make_compressor("permk");
  marina::util::Rng order(5);
  for (auto [d, n] : {std::pair<std::size_t, uint32_t>{1000, 100},
                      {1000, 3},
                      {33, 5},
                      {3, 5},
                      {4097, 2},
                      {100'003, 7},
                      {130, 1}}) {
    CAPTURE(d);
    CAPTURE(n);
    const uint64_t seeds[] = {11, 12, 11};  // back to a round already seen
    for (uint64_t seed : seeds) {
      std::vector<uint32_t> workers(n);
      std::iota(workers.begin(), workers.end(), 0u);
      for (std::size_t i = n; i > 1; --i) std::swap(workers[i - 1], workers[order.below(i)]);
      for (uint32_t w : workers) {
        CAPTURE(w);
        CHECK(seeded(*q, {seed, w, n}, d) == permk_reference(seed, w, n, d));
      }
    }
  }
}

TEST_CASE("compress: permk is unbiased per worker with omega = n - 1") {
  auto q = mc::make_compressor("permk");
  // n | d (plain blocks) and n ∤ d (padded permutation), for a middle and the last worker.
  for (auto [d, n, worker] :
       {std::tuple<std::size_t, uint32_t, uint32_t>{30, 5, 2}, {32, 5, 4}, {32, 5, 0}}) {
    CAPTURE(d);
    CAPTURE(n);
    CAPTURE(worker);
    const auto x = test_vector(d);
    const MonteCarlo m = run(*q, x, {0, worker, n});
    check_unbiased(m, x, n);
    const double omega = mc::omega(*q, d, n);
    CHECK(omega == n - 1.0);
    check_variance(m, x, omega * norm2(x), omega,
                   "permk d=" + std::to_string(d) + " n=" + std::to_string(n));
    // Density: each coordinate lands in the block with probability 1/n, so E nnz = d/n
    // (x has one zero entry, which decodes as 0).
    const double zeta = mc::zeta(*q, d, n);
    CHECK(std::fabs(m.nnz_mean - (zeta - 1.0 / n)) <= kSigmas * m.nnz_se + 1e-12);
    CHECK(m.nnz_max <= (d + n - 1) / n);
  }
}

TEST_CASE("compress: qsgd is unbiased, within omega and zeta") {
  const auto x = test_vector(40);
  const std::size_t d = x.size();
  const double nx = std::sqrt(norm2(x));
  for (uint32_t s : {1u, 2u, 8u}) {
    CAPTURE(s);
    auto q = mc::make_compressor("qsgd:" + std::to_string(s));
    const MonteCarlo m = run(*q, x, {0, 3, 5});
    check_unbiased(m, x, 1.0);
    double exact = 0;  // Σ_j ||x||²/s² · f_j (1 − f_j), f_j the fractional part of |x_j|/||x||·s
    for (double v : x) {
      const double r = std::fabs(v) / nx * s, f = r - std::floor(r);
      exact += nx * nx / (s * s) * f * (1 - f);
    }
    check_variance(m, x, exact, q->omega(d), q->name());
    CHECK(m.nnz_mean <= q->zeta(d));

    mc::Payload p;
    q->compress(x, {42, 3, 5}, p);
    CHECK(p.kind == mc::PayloadKind::kQuantized);
    CHECK(p.levels_s == s);
    CHECK(p.norm == doctest::Approx(nx).epsilon(1e-14));
    CHECK(strictly_increasing(p.indices));
    CHECK(p.levels.size() == p.indices.size());
    CHECK(p.value_count() == p.indices.size() + 1);
    for (std::size_t i = 0; i < p.levels.size(); ++i) {
      CHECK(p.levels[i] != 0);
      CHECK(std::abs(p.levels[i]) <= static_cast<int>(s));
      CHECK((p.levels[i] < 0) == (x[p.indices[i]] < 0));
    }
  }
  // x = 0: no levels, norm 0.
  auto q = mc::make_compressor("qsgd:4");
  mc::Payload p;
  q->compress(std::vector<double>(9, 0.0), {1, 0, 1}, p);
  CHECK(p.dim == 9);
  CHECK(p.norm == 0.0);
  CHECK(p.indices.empty());
  CHECK(p.levels.empty());
  CHECK(p.value_count() == 1);
  // Extreme magnitudes: the norm neither overflows nor underflows.
  q->compress(std::vector<double>{1e300, -1e300, 0.0}, {1, 0, 1}, p);
  CHECK(p.norm == doctest::Approx(std::sqrt(2.0) * 1e300));
  q->compress(std::vector<double>{1e-310, 0.0}, {1, 0, 1}, p);
  CHECK(p.norm == 1e-310);
  REQUIRE(p.levels.size() == 1);
  CHECK(p.levels[0] == 4);
}

TEST_CASE("compress: natural rounds to neighbouring powers of two without bias") {
  auto x = test_vector(24);
  x[5] = 3.0e-40;  // subnormal in float: its powers of two are still exact
  const std::size_t d = x.size();
  auto q = mc::make_compressor("natural");
  const MonteCarlo m = run(*q, x, {0, 1, 2});
  check_unbiased(m, x, 1.0);
  double exact = 0;  // Σ_j (|x_j| − 2^e)(2^{e+1} − |x_j|)
  for (double v : x) {
    if (v == 0) continue;
    int e = 0;
    std::frexp(std::fabs(v), &e);
    const double a = std::ldexp(1.0, e - 1);
    exact += (std::fabs(v) - a) * (2 * a - std::fabs(v));
  }
  check_variance(m, x, exact, q->omega(d), q->name());

  mc::Payload p;
  q->compress(x, {77, 1, 2}, p);
  CHECK(p.kind == mc::PayloadKind::kDense32);
  REQUIRE(p.values.size() == d);
  CHECK(p.value_count() == d);
  for (std::size_t j = 0; j < d; ++j) {
    CAPTURE(j);
    const double v = p.values[j];
    if (x[j] == 0) {
      CHECK(v == 0.0);
      continue;
    }
    int e = 0;
    CHECK(std::frexp(std::fabs(v), &e) == 0.5);  // a power of two
    CHECK(std::signbit(v) == std::signbit(x[j]));
    CHECK(std::fabs(v) <= 2 * std::fabs(x[j]));
    CHECK(std::fabs(v) * 2 > std::fabs(x[j]));
  }
  CHECK(p.values[7] == -0.5f);  // powers of two are kept as they are

  // The bound is attained at |x_j| = (4/3)·2^e: E||Q(x) − x||² = ||x||²/8 exactly.
  std::vector<double> worst(20);
  for (std::size_t j = 0; j < worst.size(); ++j) {
    worst[j] = (j % 2 ? -4.0 : 4.0) / 3.0 * std::ldexp(1.0, static_cast<int>(j % 7) - 3);
  }
  const MonteCarlo w = run(*q, worst, {0, 0, 1});
  check_unbiased(w, worst, 1.0);
  check_variance(w, worst, norm2(worst) / 8, q->omega(worst.size()), "natural, worst case");
}

TEST_CASE("compress: topk keeps the largest magnitudes, ties to the lower index") {
  auto q = mc::make_compressor("topk:2");
  const std::vector<double> x{1.0, -3.0, 3.0, 2.0, -3.0, 0.5};
  mc::Payload p;
  q->compress(x, {}, p);
  CHECK(p.kind == mc::PayloadKind::kSparse);
  CHECK(p.dim == 6);
  CHECK(p.indices == std::vector<uint32_t>{1, 2});
  CHECK(p.values == std::vector<float>{-3.0f, 3.0f});
  CHECK(p.value_count() == 2);
  mc::make_compressor("topk:4")->compress(x, {}, p);
  CHECK(p.indices == std::vector<uint32_t>{1, 2, 3, 4});
  mc::make_compressor("topk:6")->compress(x, {}, p);
  CHECK(p.indices == std::vector<uint32_t>{0, 1, 2, 3, 4, 5});
  CHECK_THROWS_AS(mc::make_compressor("topk:7")->compress(x, {}, p), std::invalid_argument);

  const auto y = test_vector(40);
  mc::make_compressor("topk:5")->compress(y, {9, 1, 3}, p);
  REQUIRE(p.indices.size() == 5);
  CHECK(strictly_increasing(p.indices));
  double kept_min = std::numeric_limits<double>::infinity();
  for (uint32_t j : p.indices) kept_min = std::min(kept_min, std::fabs(y[j]));
  for (std::size_t j = 0; j < y.size(); ++j) {
    if (std::find(p.indices.begin(), p.indices.end(), j) == p.indices.end()) {
      CHECK(std::fabs(y[j]) <= kept_min);
    }
  }
}

TEST_CASE("compress: same context gives the same payload, pinned across machines") {
  const auto x = test_vector(30);
  for (const char* spec :
       {"identity", "randk:4", "randblock:4", "permk", "qsgd:3", "natural", "topk:4"}) {
    CAPTURE(spec);
    auto q = mc::make_compressor(spec);
    mc::Payload a, b, c;
    q->compress(x, {2024, 1, 3}, a);
    q->compress(x, {2024, 1, 3}, b);
    q->compress(x, {2025, 1, 3}, c);
    CHECK(same(a, b));
    if (std::string(spec) != "identity" && std::string(spec) != "topk:4") CHECK_FALSE(same(a, c));
  }
  // Golden values: the draws must not change between standard libraries or architectures
  // (x86-64, arm64, armhf), nor silently between versions. Update only on purpose. The input
  // uses exact arithmetic only (no libm), so it is the same everywhere too.
  std::vector<double> g(30);
  for (std::size_t j = 0; j < g.size(); ++j) {
    g[j] = (static_cast<double>((j * 37) % 23) - 11.0) / 8.0 + static_cast<double>(j % 3) * 0.03;
  }
  auto rk = mc::make_compressor("randk:4");
  CHECK(seeded(*rk, {2024, 1, 3}, 1000) == std::vector<uint32_t>{157, 161, 503, 752});
  auto rb = mc::make_compressor("randblock:4");
  CHECK(seeded(*rb, {2024, 1, 3}, 1000) == std::vector<uint32_t>{754, 755, 756, 757});
  CHECK(seeded(*rb, {17, 1, 3}, 30) == std::vector<uint32_t>{0, 27, 28, 29});  // wraps
  auto pk = mc::make_compressor("permk");  // d = 20, n = 3: padded to 21
  CHECK(seeded(*pk, {2024, 1, 3}, 20) == std::vector<uint32_t>{0, 3, 8, 11, 18, 19});
  mc::Payload p;
  mc::make_compressor("qsgd:3")->compress(g, {2024, 1, 3}, p);
  CHECK(p.indices ==
        std::vector<uint32_t>{0, 1, 2, 3, 6, 7, 8, 13, 15, 18, 19, 21, 23, 24, 25, 26, 29});
  CHECK(p.levels == std::vector<int8_t>{-1, 1, -1, 1, 1, -1, 1, 1, -1, 1, 1, 1, -1, 1, -1, 1, 1});
  mc::make_compressor("natural")->compress(g, {2024, 1, 3}, p);
  CHECK(p.values == std::vector<float>{-1.0f, 0.5f,   -1.0f, 1.0f,    -0.125f, -2.0f, 0.5f,   -0.5f,
                                       2.0f,  0.0f,   -2.0f, 1.0f,    -0.5f,   1.0f,  0.25f,  -1.0f,
                                       1.0f,  -0.25f, 2.0f,  0.25f,   -0.5f,   0.5f,  -0.25f, -2.0f,
                                       0.25f, -1.0f,  1.0f,  -0.125f, -1.0f,   1.0f});
}

TEST_CASE("compress: a reused payload keeps its buffers") {
  const auto x = test_vector(64);
  for (const char* spec : {"identity", "randk:8", "randblock:8", "permk", "natural", "topk:8"}) {
    CAPTURE(spec);
    auto q = mc::make_compressor(spec);
    mc::Payload p;
    q->compress(x, {1, 0, 4}, p);
    const void* dense = p.dense.data();
    const void* values = p.values.data();
    const void* indices = p.indices.data();
    for (uint64_t t = 2; t < 50; ++t) {
      q->compress(x, {t, 0, 4}, p);
      CHECK(static_cast<const void*>(p.dense.data()) == dense);
      CHECK(static_cast<const void*>(p.values.data()) == values);
      CHECK(static_cast<const void*>(p.indices.data()) == indices);
    }
  }
}

TEST_CASE("compress: payload value_count and clear") {
  mc::Payload p;
  p.kind = mc::PayloadKind::kDense64;
  p.dim = 12;
  p.dense.assign(12, 1.0);
  CHECK(p.value_count() == 12);
  p.kind = mc::PayloadKind::kDense32;
  CHECK(p.value_count() == 12);
  p.kind = mc::PayloadKind::kSparse;
  p.values.assign(3, 1.0f);
  CHECK(p.value_count() == 3);
  p.kind = mc::PayloadKind::kSeeded;
  CHECK(p.value_count() == 3);
  p.kind = mc::PayloadKind::kQuantized;
  p.indices.assign(5, 0);
  CHECK(p.value_count() == 6);
  const std::size_t cap = p.dense.capacity();
  p.clear();
  CHECK(p.dim == 0);
  CHECK(p.dense.empty());
  CHECK(p.values.empty());
  CHECK(p.indices.empty());
  CHECK(p.levels.empty());
  CHECK(p.norm == 0.0);
  CHECK(p.levels_s == 0);
  CHECK(p.dense.capacity() == cap);
}

TEST_CASE("compress: non-finite input is refused at compress time") {
  std::vector<double> x = test_vector(10);
  x[4] = std::numeric_limits<double>::quiet_NaN();
  mc::Payload p;
  for (const char* spec :
       {"identity", "randk:10", "randblock:10", "permk", "qsgd:2", "natural", "topk:3"}) {
    CAPTURE(spec);
    CHECK_THROWS_AS(mc::make_compressor(spec)->compress(x, {1, 0, 1}, p), std::invalid_argument);
  }
  // Beyond float range on the wire.
  std::vector<double> big{1e39, 1.0};
  CHECK_THROWS_AS(mc::make_compressor("topk:1")->compress(big, {}, p), std::invalid_argument);
  CHECK_THROWS_AS(mc::make_compressor("natural")->compress(big, {}, p), std::invalid_argument);
}

TEST_CASE("compress: accumulate adds weight times the decoded payload") {
  const auto x = test_vector(20);
  for (const char* spec :
       {"identity", "randk:6", "randblock:6", "permk", "qsgd:5", "natural", "topk:6"}) {
    CAPTURE(spec);
    auto q = mc::make_compressor(spec);
    const mc::Context ctx{31337, 1, 4};
    mc::Payload p;
    q->compress(x, ctx, p);
    Eigen::VectorXd dec;
    mc::decode(p, *q, ctx, dec);
    REQUIRE(dec.size() == 20);
    Eigen::VectorXd acc = Eigen::VectorXd::LinSpaced(20, -1.0, 1.0);
    const Eigen::VectorXd before = acc;
    mc::accumulate(p, *q, ctx, 0.25, acc);
    for (Eigen::Index j = 0; j < 20; ++j) CHECK(acc[j] == before[j] + 0.25 * dec[j]);
  }
}

namespace {

// Payloads of each kind for d = 13, for the tests of hostile input.
mc::Payload dense64(uint32_t d) {
  mc::Payload p;
  p.kind = mc::PayloadKind::kDense64;
  p.dim = d;
  p.dense.assign(d, 1.0);
  return p;
}
mc::Payload dense32(uint32_t d) {
  mc::Payload p;
  p.kind = mc::PayloadKind::kDense32;
  p.dim = d;
  p.values.assign(d, 1.0f);
  return p;
}
mc::Payload sparse(std::vector<uint32_t> idx) {
  mc::Payload p;
  p.kind = mc::PayloadKind::kSparse;
  p.dim = 13;
  p.values.assign(idx.size(), 2.0f);
  p.indices = std::move(idx);
  return p;
}
mc::Payload seeded3(std::size_t n) {
  mc::Payload p;
  p.kind = mc::PayloadKind::kSeeded;
  p.dim = 13;
  p.values.assign(n, 2.0f);
  return p;
}
mc::Payload quantized(std::vector<uint32_t> idx, std::vector<int8_t> lv) {
  mc::Payload p;
  p.kind = mc::PayloadKind::kQuantized;
  p.dim = 13;
  p.norm = 3.0;
  p.levels_s = 4;
  p.indices = std::move(idx);
  p.levels = std::move(lv);
  return p;
}

}  // namespace

// A received payload is validated once, where it enters: the wire decoder checks what it can
// see on its own (shape against its own d and the run's, index order and range, finite values),
// then the open round's gate (ServerHalf::accept) what depends on the round and the compressor
// (kind, K, s). Each hostile payload must be refused by one of them, before the server's state
// changes; accumulate then only checks what the arithmetic sees (dimension, seeded count
// against the indices it derives, overflow).
TEST_CASE("compress: hostile payloads are refused at the boundary, before the server changes") {
  auto identity = mc::make_compressor("identity");
  auto randk = mc::make_compressor("randk:3");
  auto qsgd = mc::make_compressor("qsgd:4");
  auto topk = mc::make_compressor("topk:3");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();

  // The way in of worker 1's reply in a DIANA run with d = 13, n = 2 (every round compressed):
  // the reason it is refused, or "" when it is accepted.
  const auto refused = [](const mc::Payload& p, const mc::Compressor& q) -> std::string {
    methods::Reply r;
    r.worker = 1;
    r.payload = p;
    wire::Encoder enc(9);
    wire::Decoder dec(wire::Limits{wire::max_message_bytes(13, 2), 13, 2});
    wire::Inbox in;
    try {
      (void)dec.decode(enc.encode(r), in);
    } catch (const wire::DecodeError& e) {
      return e.what();
    }
    methods::MethodConfig c;
    c.method = methods::Method::kDiana;
    c.compressor = q.name();
    c.workers = 2;
    c.dim = 13;
    c.gamma = 0.1;
    c.alpha = 0.1;
    const auto server = methods::make_server(c);
    (void)server->begin_round();
    try {
      server->accept(in.reply);
    } catch (const methods::ProtocolError& e) {
      CHECK(server->awaiting(1));  // nothing of it was taken
      return e.what();
    }
    return {};
  };

  struct Case {
    std::string label;
    mc::Payload payload;
    const mc::Compressor* q;
    std::string reason;  // a part of the refusal
  };
  std::vector<Case> cases;
  cases.push_back({"wrong dim", dense64(12), identity.get(), "payload for d = 12 but d = 13"});
  {
    auto p = dense64(13);
    p.dense.pop_back();
    cases.push_back({"dense64 short", p, identity.get(), "12 values for d = 13"});
    p = dense64(13);
    p.dense[12] = nan;
    cases.push_back({"dense64 NaN", p, identity.get(), "value[12] is nan"});
    p = dense64(13);
    p.dense[12] = -inf;
    cases.push_back({"dense64 Inf", p, identity.get(), "value[12] is -inf"});
  }
  {
    auto p = dense32(13);
    p.values.push_back(1.0f);
    cases.push_back({"dense32 long", p, identity.get(), "14 values for d = 13"});
    p = dense32(13);
    p.values[11] = std::numeric_limits<float>::quiet_NaN();
    cases.push_back({"dense32 NaN", p, identity.get(), "value[11] is nan"});
  }
  cases.push_back(
      {"sparse out of range", sparse({0, 5, 17}), topk.get(), "index[2] = 17 >= d = 13"});
  cases.push_back({"sparse index = d", sparse({0, 13}), topk.get(), "index[1] = 13 >= d = 13"});
  cases.push_back({"sparse duplicate", sparse({1, 4, 4}), topk.get(),
                   "index not strictly increasing at position 2 (4 then 4)"});
  cases.push_back({"sparse decreasing", sparse({1, 9, 4}), topk.get(),
                   "index not strictly increasing at position 2"});
  {
    auto p = sparse({1, 2, 3});
    p.values.pop_back();
    cases.push_back({"sparse count", p, topk.get(), "3 indices but 2 values"});
    p = sparse({1, 2, 3});
    p.values[2] = std::numeric_limits<float>::infinity();
    cases.push_back({"sparse Inf", p, topk.get(), "value[2] is inf"});
  }
  cases.push_back({"sparse for topk:3 with 2", sparse({1, 2}), topk.get(),
                   "sparse payload has 2 values, topk:3 sends 3"});
  cases.push_back({"sparse for identity", sparse({1, 2, 3}), identity.get(),
                   "sparse payload, but identity makes dense64 payloads"});
  cases.push_back(
      {"seeded short", seeded3(2), randk.get(), "seeded payload has 2 values, randk:3 sends 3"});
  cases.push_back(
      {"seeded long", seeded3(4), randk.get(), "seeded payload has 4 values, randk:3 sends 3"});
  {
    auto p = seeded3(3);
    p.values[2] = std::numeric_limits<float>::quiet_NaN();
    cases.push_back({"seeded NaN", p, randk.get(), "value[2] is nan"});
  }
  cases.push_back({"seeded for identity", seeded3(3), identity.get(),
                   "seeded payload, but identity makes dense64 payloads"});
  {
    auto p = seeded3(3);
    p.dim = 2;
    cases.push_back({"seeded wrong dim", p, randk.get(), "payload for d = 2 but d = 13"});
  }
  cases.push_back(
      {"level > s", quantized({1, 2}, {1, 5}), qsgd.get(), "level[1] = 5 outside [-s, s]"});
  cases.push_back(
      {"level < -s", quantized({1, 2}, {-128, 1}), qsgd.get(), "level[0] = -128 outside [-s, s]"});
  {
    auto p = quantized({1, 2}, {1, 1});
    p.levels_s = 0;
    cases.push_back({"s = 0", p, qsgd.get(), "s = 0 levels"});
    p.levels_s = 200;
    cases.push_back({"s = 200", p, qsgd.get(), "s = 200 levels, qsgd:4 uses 4"});
    p.levels_s = 5;
    cases.push_back({"s = 5 for qsgd:4", p, qsgd.get(), "s = 5 levels, qsgd:4 uses 4"});
    p = quantized({1, 2}, {1, 1});
    p.norm = nan;
    cases.push_back({"norm NaN", p, qsgd.get(), "norm is nan"});
    p.norm = -1.0;
    cases.push_back({"norm < 0", p, qsgd.get(), "norm = -1 < 0"});
    p.norm = inf;
    cases.push_back({"norm Inf", p, qsgd.get(), "norm is inf"});
  }
  cases.push_back({"quantized out of range", quantized({1, 13}, {1, 1}), qsgd.get(),
                   "index[1] = 13 >= d = 13"});
  cases.push_back(
      {"quantized count", quantized({1, 2, 3}, {1, 1}), qsgd.get(), "3 indices but 2 levels"});
  cases.push_back(
      {"quantized order", quantized({2, 1}, {1, 1}), qsgd.get(), "index not strictly increasing"});
  cases.push_back({"dense for qsgd", dense64(13), qsgd.get(),
                   "dense64 payload, but qsgd:4 makes quantized payloads"});

  for (const auto& c : cases) {
    CAPTURE(c.label);
    const std::string why = refused(c.payload, *c.q);
    INFO("refused with: " << why);
    CHECK(why.find(c.reason) != std::string::npos);
  }

  // The well-formed versions are accepted (the refusals above are not vacuous).
  CHECK(refused(dense64(13), *identity).empty());
  CHECK(refused(sparse({0, 5, 12}), *topk).empty());
  CHECK(refused(seeded3(3), *randk).empty());
  CHECK(refused(quantized({1, 2}, {-4, 4}), *qsgd).empty());
}

TEST_CASE("compress: accumulate refuses what only the arithmetic sees and leaves acc unchanged") {
  auto identity = mc::make_compressor("identity");
  auto randk = mc::make_compressor("randk:3");
  auto permk = mc::make_compressor("permk");
  auto qsgd = mc::make_compressor("qsgd:4");
  const mc::Context ctx{5, 0, 2};
  const double nan = std::numeric_limits<double>::quiet_NaN();

  std::vector<uint32_t> mine;
  permk->seeded_indices(ctx, 13, mine);
  struct Case {
    std::string label;
    mc::Payload payload;
    const mc::Compressor* q;
    std::string message;  // expected prefix
  };
  std::vector<Case> cases;
  cases.push_back(
      {"wrong dim", dense64(12), identity.get(), "payload: dimension 12 does not match d = 13"});
  {
    auto p = dense64(13);
    p.dense[12] = std::numeric_limits<double>::max();
    cases.push_back({"dense64 overflow", p, identity.get(), "payload: value"});
  }
  cases.push_back({"permk count", seeded3(mine.size() + 1), permk.get(),
                   "payload: seeded payload has " + std::to_string(mine.size() + 1) +
                       " values, permk draws " + std::to_string(mine.size())});
  cases.push_back({"seeded for identity", seeded3(3), identity.get(),
                   "identity does not produce seeded payloads"});
  {
    auto p = quantized({1, 2}, {1, 1});
    p.norm = std::numeric_limits<double>::max();
    cases.push_back({"quantized overflow", p, qsgd.get(), "payload: value"});
  }

  for (const auto& c : cases) {
    CAPTURE(c.label);
    Eigen::VectorXd acc = Eigen::VectorXd::LinSpaced(13, -6.0, 6.0);
    acc[12] = std::numeric_limits<double>::max();  // so that a huge addition overflows
    acc[1] = std::numeric_limits<double>::max();
    const Eigen::VectorXd before = acc;
    const std::string m = message_of([&] { mc::accumulate(c.payload, *c.q, ctx, 1.0, acc); });
    INFO("message: " << m);
    CHECK(m.rfind(c.message, 0) == 0);
    CHECK(acc == before);
  }

  // The well-formed versions are accepted.
  Eigen::VectorXd acc = Eigen::VectorXd::Zero(13);
  mc::accumulate(dense64(13), *identity, ctx, 1.0, acc);
  mc::accumulate(dense32(13), *identity, ctx, 1.0, acc);
  mc::accumulate(sparse({0, 5, 12}), *identity, ctx, 1.0, acc);
  mc::accumulate(seeded3(3), *randk, ctx, 1.0, acc);
  mc::accumulate(seeded3(mine.size()), *permk, ctx, 1.0, acc);
  mc::accumulate(quantized({1, 2}, {-4, 4}), *qsgd, ctx, 1.0, acc);
  const auto idx = seeded(*randk, ctx, 13);
  const auto picked = [&](const std::vector<uint32_t>& set, uint32_t j) {
    return std::find(set.begin(), set.end(), j) != set.end() ? 2.0 : 0.0;
  };
  CHECK(acc[0] == 1.0 + 1.0 + 2.0 + picked(idx, 0) + picked(mine, 0));
  CHECK(acc[1] == 1.0 + 1.0 - 3.0 + picked(idx, 1) + picked(mine, 1));
  CHECK(acc[2] == 1.0 + 1.0 + 3.0 + picked(idx, 2) + picked(mine, 2));
  CHECK_THROWS_AS(mc::accumulate(dense64(13), *identity, ctx, nan, acc), std::invalid_argument);
}

TEST_CASE("compress: take_sparse copies, then exchanges buffers, and refuses before touching") {
  const auto x = test_vector(64);
  auto qi = mc::make_compressor("randk:5:indexed");
  const mc::Context ctx{77, 1, 4};
  mc::Payload a, b;
  qi->compress(x, ctx, a);
  qi->compress(x, {78, 1, 4}, b);
  mc::SparseValues out;
  const auto idx = [&out] { return std::vector<uint32_t>(out.idx.begin(), out.idx.end()); };
  const auto val = [&out] { return std::vector<float>(out.val.begin(), out.val.end()); };
  // No buffer to give back yet: copied, the payload untouched.
  mc::Payload r = a;
  REQUIRE(mc::take_sparse(r, *qi, ctx, out, &r));
  CHECK(idx() == a.indices);
  CHECK(val() == a.values);
  CHECK(out.val.data() == out.values.data());
  CHECK(r.values == a.values);
  CHECK(r.finite);
  // Then exchanged: the payload holds what the receiver had (the previous reply).
  r = b;
  REQUIRE(mc::take_sparse(r, *qi, ctx, out, &r));
  CHECK(idx() == b.indices);
  CHECK(val() == b.values);
  CHECK(r.indices == a.indices);
  CHECK(r.values == a.values);
  CHECK_FALSE(r.finite);
  // A NaN in a payload not known finite: refused, nothing exchanged.
  r = a;
  r.values[2] = std::numeric_limits<float>::quiet_NaN();
  r.finite = false;
  CHECK(message_of([&] { (void)mc::take_sparse(r, *qi, ctx, out, &r); }) ==
        "payload: value nan at index " + std::to_string(a.indices[2]) + " is not finite");
  CHECK(idx() == b.indices);
  CHECK(val() == b.values);
  CHECK(std::isnan(r.values[2]));
  // Seeded: indices derived, the count checked against them.
  auto q = mc::make_compressor("randk:5");
  mc::Payload s;
  q->compress(x, ctx, s);
  REQUIRE(mc::take_sparse(s, *q, ctx, out));
  CHECK(idx() == a.indices);
  CHECK(val() == a.values);
  s.values.push_back(1.0f);
  CHECK(message_of([&] { (void)mc::take_sparse(s, *q, ctx, out); }) ==
        "payload: seeded payload has 6 values, randk:5 draws 5 this round");
  CHECK(val() == a.values);
  // Other kinds are not its business.
  mc::Payload dense;
  mc::make_compressor("identity")->compress(x, ctx, dense);
  CHECK_FALSE(mc::take_sparse(dense, *q, ctx, out));
  CHECK(val() == a.values);
}

namespace {

// `p` as wire::Decoder::decode_taking leaves a reply: its indices and values inside a message
// (here at offsets 8 and 8 + 4·indices), the vectors empty.
mc::Payload in_message(const mc::Payload& p) {
  mc::Payload m = p;
  const std::size_t k = p.values.size(), ni = p.indices.size();
  m.received.bytes.assign(8 + 4 * ni + 4 * k, uint8_t{0xAB});
  if (ni != 0) std::memcpy(m.received.bytes.data() + 8, p.indices.data(), 4 * ni);
  if (k != 0) std::memcpy(m.received.bytes.data() + 8 + 4 * ni, p.values.data(), 4 * k);
  if (ni != 0) m.received.indices_at = mc::InMessage::Range{8, ni};
  m.received.floats_at = mc::InMessage::Range{8 + 4 * ni, k};
  m.indices.clear();
  m.values.clear();
  return m;
}

}  // namespace

TEST_CASE("compress: take_sparse takes a reply's message, and refuses before touching it") {
  // The coordinator decodes with wire::Decoder::decode_taking, which leaves a sparse or seeded
  // reply's vectors in the message: the server half keeps that message until its round closes
  // and hands back the one it kept before, to be received into.
  const auto x = test_vector(64);
  const mc::Context ctx{77, 1, 4}, next{78, 1, 4};
  auto indexed = mc::make_compressor("randk:5:indexed");
  for (const char* spec : {"randk:5:indexed", "randk:5"}) {
    CAPTURE(spec);
    auto q = mc::make_compressor(spec);
    mc::Payload a, b, a_sent, b_sent;
    q->compress(x, ctx, a);
    q->compress(x, next, b);
    indexed->compress(x, ctx, a_sent);  // the same draws, with the indices in the payload
    indexed->compress(x, next, b_sent);
    mc::SparseValues out;
    const auto idx = [&out] { return std::vector<uint32_t>(out.idx.begin(), out.idx.end()); };
    const auto val = [&out] { return std::vector<float>(out.val.begin(), out.val.end()); };
    const auto inside = [&out](const void* p) {
      const auto* at = static_cast<const uint8_t*>(p);
      return at >= out.message.data() && at < out.message.data() + out.message.size();
    };

    mc::Payload r = in_message(a);
    const uint8_t* first = r.received.bytes.data();
    REQUIRE(mc::take_sparse(r, *q, ctx, out, &r));
    CHECK(idx() == a_sent.indices);
    CHECK(val() == a.values);
    CHECK(out.message.data() == first);
    CHECK(inside(out.val.data()));
    CHECK(inside(out.idx.data()) == (a.kind == mc::PayloadKind::kSparse));
    CHECK_FALSE(r.received.holds_any());
    CHECK(r.received.bytes.empty());
    CHECK(r.value_view().empty());
    CHECK_FALSE(r.finite);
    // What the caller holds now is its own to overwrite.
    std::vector<uint8_t> scratch(64, uint8_t{0xFF});
    r.received.bytes.swap(scratch);
    CHECK(val() == a.values);

    // The next reply's message takes its place, and the first one's buffer goes back.
    r = in_message(b);
    const uint8_t* second = r.received.bytes.data();
    REQUIRE(mc::take_sparse(r, *q, next, out, &r));
    CHECK(idx() == b_sent.indices);
    CHECK(val() == b.values);
    CHECK(out.message.data() == second);

    // A NaN in a message not known finite: refused, nothing taken or exchanged.
    mc::Payload bad = in_message(a);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(bad.received.bytes.data() + bad.received.floats_at->offset + 2 * sizeof(float),
                &nan, sizeof nan);
    bad.finite = false;
    const std::vector<uint8_t> bad_bytes = bad.received.bytes;
    CHECK(message_of([&] { (void)mc::take_sparse(bad, *q, ctx, out, &bad); }) ==
          "payload: value nan at index " + std::to_string(a_sent.indices[2]) + " is not finite");
    CHECK(out.message.data() == second);
    CHECK(val() == b.values);
    CHECK(bad.received.bytes == bad_bytes);
    CHECK(bad.received.floats_at.has_value());

    // Without a payload to give back to, the vectors are copied out of the message.
    const mc::Payload kept = in_message(a);
    REQUIRE(mc::take_sparse(kept, *q, ctx, out));
    CHECK(val() == a.values);
    CHECK(out.val.data() == out.values.data());
    CHECK(out.idx.data() == out.indices.data());
    CHECK(kept.received.floats_at.has_value());
  }
}

TEST_CASE("compress: a payload is marked finite only by code that has checked it") {
  // The mark lets the server half skip a second scan of a long vector (the wire Decoder or the
  // compressor has checked it); a payload without the mark is still checked, at every position.
  const auto x = test_vector(37);
  mc::Payload p;
  for (const char* spec : {"identity", "randk:6", "permk", "natural", "topk:6"}) {
    CAPTURE(spec);
    mc::make_compressor(spec)->compress(x, {7, 1, 4}, p);
    CHECK(p.finite);
    p.clear();
    CHECK_FALSE(p.finite);
  }
  CHECK_FALSE(dense64(13).finite);

  // Unmarked: a NaN or an infinity anywhere is found (the scan takes up to 64 bytes at a time,
  // then a scalar tail: 37 positions cover both, for both widths) and named.
  mc::DenseValues out;
  for (uint32_t i = 0; i < 37; ++i) {
    CAPTURE(i);
    const std::string at = "at index " + std::to_string(i) + " ";
    auto p64 = dense64(37);
    p64.dense[i] =
        i % 2 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH_AS(mc::decode_dense(p64, out), doctest::Contains(at.c_str()),
                         std::invalid_argument);
    auto p32 = dense32(37);
    p32.values[i] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(mc::decode_dense(p32, out), doctest::Contains(at.c_str()),
                         std::invalid_argument);
  }
  // The extremes of the finite range pass.
  auto edge = dense64(37);
  edge.dense[0] = std::numeric_limits<double>::max();
  edge.dense[36] = -std::numeric_limits<double>::denorm_min();
  CHECK_NOTHROW(mc::decode_dense(edge, out));

  // The recycling swap hands back a buffer of unspecified contents: no longer marked.
  mc::make_compressor("identity")->compress(x, {}, p);
  REQUIRE(p.finite);
  out.copy.assign(37, 0.0);
  mc::decode_dense(p, out, &p);
  CHECK(out.copy == x);
  CHECK(out.data == out.copy.data());
  CHECK_FALSE(p.finite);

  // The server half refuses an unmarked reply with a non-finite value, naming the worker.
  methods::MethodConfig c;
  c.method = methods::Method::kMarina;
  c.compressor = "identity";
  c.workers = 2;
  c.dim = 37;
  auto server = methods::make_server(c);
  const auto& b = server->begin_round();
  methods::Reply r;
  r.worker = 1;
  r.round = b.round;
  r.payload = dense64(37);
  r.payload.dense[20] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(server->accept(r), doctest::Contains("reply of worker 1"),
                       methods::ProtocolError);
  r.payload.dense[20] = 0.5;
  CHECK_NOTHROW(server->accept(r));
}
