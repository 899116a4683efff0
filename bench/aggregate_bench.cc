// Aggregation: the server half of MARINA folding n replies into g^{k+1} and x^{k+1}, through
// the public round protocol (methods::make_server, begin_round / accept / end_round), on
// replies that are already decoded (the codec is measured by marina_bench_codec).
//
// Compressors: RandK (seeded replies: K float values, indices re-derived by the server) with
// K = 1, 1% and 10% of d, the identity (dense f64 replies), and PermK (seeded: each worker a
// block of d/n coordinates of the round's shared permutation; q = 4); and q = 5, 6, 7: RandK
// K = 1%, 10% and PermK ":indexed", whose replies carry their K indices beside the values (the
// same indices and values, twice the bytes up) so that the server derives nothing. p = 0, so
// every measured round is a compressed one; round 0 (the full sync) runs in the set-up. q = 8,
// 9: RandBlock K = 1% and 10% (seeded: K consecutive coordinates from one drawn offset, RandK's
// ω; the server derives the block, not a K-subset).
//
// Baseline, measured in the same process right before: the memory-bandwidth bound of a round,
// i.e. a streaming pass over exactly the bytes that arrived (n·K float values scattered into g
// at their indices, or n·d doubles summed into g for dense replies) plus the one O(d) pass that
// any server needs (x^{k−1} ← x^k, x^{k+1} = x^k − γ g). The ratio says how far the server half
// is from that bound.
//
// Seeded replies carry no indices: the server re-derives each reply's K indices from the round
// seed, work that the bound leaves out (its scatter reads them from memory, as an indexed
// reply's fold does; for indexed replies the bound is exactly a pass over what arrived). derive_ns
// is that work alone (n derivations of a fresh round, PermK's shuffle of π included; a
// RandBlock block that does not wrap is only drawn, as the server views it as a run), and
// ratio_with_derive = server / (bound + derive) is what remains beyond the inherent work.
// The coordinator derives a round's seeded indices right after its broadcast, while the workers
// compute (ServerHalf::prepare); a second loop of the same rounds does so (prepared_ns =
// ahead_ns + after_ns), and after_ns, what is left once the replies are in, gives
// ratio_after_replies = after_ns / bound.
//
// Replies are handed over as a driver does (accept_and_recycle): a dense reply's buffer is
// swapped with the one the server kept, so each round sees the same values again.
//
// Memory: the server half keeps one dense d-vector per worker (the buffer of its last dense
// reply, from round 0 on: n·d doubles), so n·d is capped at 1e8 (0.8 GB; dense replies add as
// much again); n = 1000 with d = 1e6 would need 8 GB.

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "bench_support.h"
#include "marina/compress/compressor.h"
#include "marina/methods/method.h"
#include "marina/util/heap.h"
#include "marina/util/random.h"
#include "marina/wire/codec.h"

namespace {

using namespace marina;

constexpr double kGamma = 1e-3;

// 0: K = 1, 1: K = d/100, 2: K = d/10, 3: identity (dense), 4: PermK (K = d/n per worker);
// 5, 6, 7: modes 1, 2 and 4 with ":indexed" (the replies carry their indices); 8, 9: RandBlock
// with the K of modes 1 and 2.
std::string compressor_of(int mode, std::size_t d) {
  const auto k = [d](std::size_t share) {
    return std::to_string(std::max<std::size_t>(1, d / share));
  };
  switch (mode) {
    case 8:
      return "randblock:" + k(100);
    case 9:
      return "randblock:" + k(10);
    case 5:
    case 6:
    case 7:
      return compressor_of(mode == 7 ? 4 : mode - 4, d) + ":indexed";
    case 4:
      return "permk";
    case 0:
      return "randk:1";
    case 1:
      return "randk:" + k(100);
    case 2:
      return "randk:" + k(10);
    default:
      return "identity";
  }
}

// What a round of either benchmark below folds: a MARINA server with p = 0 (every round after
// round 0 is a compressed one) and n replies of small values of alternating sign, which keep g
// and x bounded over any number of rounds. `idx`: the indices the baseline scatters the values
// at, those the server derives for a round (where they fall does not change a streaming pass's
// cost); indexed replies carry them.
struct Inputs {
  methods::MethodConfig config;
  std::unique_ptr<compress::Compressor> q;
  bool dense = false, indexed = false;
  std::size_t k = 0;
  std::vector<methods::Reply> replies;
  std::vector<std::vector<uint32_t>> idx;
};

Inputs make_inputs(uint32_t n, std::size_t d, int mode) {
  // The heap as the coordinator sets it up for the run's messages (drivers/coordinator.cc):
  // without it, blocks of d doubles are mapped and unmapped by glibc as the cells come and go.
  util::keep_message_blocks_in_heap(wire::max_message_bytes(d, n));
  Inputs in;
  in.dense = mode == 3;
  methods::MethodConfig& c = in.config;
  c.method = methods::Method::kMarina;
  c.compressor = compressor_of(mode, d);
  c.workers = n;
  c.dim = d;
  c.seed = 11;
  c.gamma = kGamma;
  c.p = 0.0;
  in.q = compress::make_compressor(c.compressor);
  in.k = in.dense ? d : static_cast<std::size_t>(compress::zeta(*in.q, d, n));
  in.indexed = in.q->payload_kind() == compress::PayloadKind::kSparse;
  in.idx.resize(in.dense ? 0 : n);
  for (uint32_t w = 0; w < in.idx.size(); ++w)
    in.q->seeded_indices(compress::Context{12345, w, n}, d, in.idx[w]);
  util::Rng rng(3);
  in.replies.resize(n);
  for (uint32_t w = 0; w < n; ++w) {
    auto& p = in.replies[w].payload;
    in.replies[w].worker = w;
    p.dim = static_cast<uint32_t>(d);
    if (in.dense) {
      p.kind = compress::PayloadKind::kDense64;
      p.dense.resize(d);
      for (auto& v : p.dense) v = (rng.uniform() - 0.5) * 1e-6;
    } else {
      p.kind = in.q->payload_kind();
      if (in.indexed) p.indices = in.idx[w];
      p.values.resize(in.k);
      for (auto& v : p.values) v = static_cast<float>((rng.uniform() - 0.5) * 1e-6);
    }
  }
  return in;
}

// A full sync's reply of zeros, for round 0 when the replies measured are not dense.
methods::Reply zero_gradient(std::size_t d) {
  methods::Reply r;
  r.payload.kind = compress::PayloadKind::kDense64;
  r.payload.dim = static_cast<uint32_t>(d);
  r.payload.dense.assign(d, 0.0);
  return r;
}

// The baseline's arithmetic: a streaming fold of every reply's values into g (at `idx`), then
// the one O(d) pass any server needs, at its least: x^{k−1} kept by a swap of storage and
// x^k = x^{k−1} − γ g written in one pass (three streams of d doubles, as the server's step).
void fold(const Inputs& in, Eigen::VectorXd& g, Eigen::VectorXd& x, Eigen::VectorXd& x_prev) {
  const double wgt = 1.0 / static_cast<double>(in.replies.size());
  for (std::size_t w = 0; w < in.replies.size(); ++w) {
    const auto& p = in.replies[w].payload;
    if (in.dense) {
      for (std::size_t j = 0; j < p.dense.size(); ++j)
        g[static_cast<Eigen::Index>(j)] += wgt * p.dense[j];
    } else {
      const auto& ix = in.idx[w];
      for (std::size_t i = 0; i < in.k; ++i) g[ix[i]] += wgt * p.values[i];
    }
  }
  x.swap(x_prev);
  x = x_prev - kGamma * g;
}

void BM_server_round(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto d = static_cast<std::size_t>(state.range(1));
  const int mode = static_cast<int>(state.range(2));
  Inputs in = make_inputs(n, d, mode);
  const bool dense = in.dense, indexed = in.indexed;
  const std::size_t k = in.k;
  const methods::MethodConfig& c = in.config;
  const compress::Compressor* const q = in.q.get();
  auto server = methods::make_server(c);
  std::vector<methods::Reply>& replies = in.replies;

  // Round 0 (full sync). The server copies the first dense reply of each worker, so with the
  // identity compressor it keeps a copy of that worker's reply, and the swaps of the measured
  // rounds trade equal values; otherwise one zero gradient serves every worker.
  {
    methods::Reply r = zero_gradient(d);
    const auto& b = server->begin_round();
    for (uint32_t w = 0; w < n; ++w) {
      if (dense) r.payload.dense = replies[w].payload.dense;
      r.worker = w;
      r.round = b.round;
      server->accept_and_recycle(r);
    }
    server->end_round();
  }

  Eigen::VectorXd g = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(d));
  Eigen::VectorXd x = g, x_prev = g;
  const double baseline_ns = bench::ns_per_call([&] {
    fold(in, g, x, x_prev);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  });

  // A fresh round seed per call, as every server round has: PermK shuffles π once per round
  // seed (and keeps it for the round's other replies), so a repeated seed would leave the
  // shuffle out.
  double derive_ns = 0.0;
  if (!dense && !indexed) {
    std::vector<uint32_t> scratch;
    uint64_t round_seed = 12345;
    derive_ns = bench::ns_per_call([&] {
      ++round_seed;
      for (uint32_t w = 0; w < n; ++w) {
        const compress::Context ctx{round_seed, w, n};
        if (q->seeded_run(ctx, d)) continue;  // a run: the server writes nothing out
        q->seeded_indices(ctx, d, scratch);
        benchmark::DoNotOptimize(scratch.data());
      }
    });
  }

  // Two untimed rounds first: the first compressed rounds size the server's per-reply buffers
  // (first-touch page faults, which a large d makes as slow as several steady rounds).
  const auto take_replies = [&](uint64_t open_round) {
    for (auto& r : replies) {
      r.round = open_round;
      r.payload.finite = true;  // as wire::Decoder leaves a reply it has checked
      server->accept_and_recycle(r);
    }
    server->end_round();
  };
  const auto round = [&] { take_replies(server->begin_round().round); };
  round();
  round();

  bench::LoopTimer timer;
  for (auto _ : state) round();
  const double server_ns = timer.ns_per_iteration(state);
  bench::report_ratio(state, server_ns, baseline_ns);
  state.counters["derive_ns"] = derive_ns;
  state.counters["ratio_with_derive"] = server_ns / (baseline_ns + derive_ns);

  // Seeded replies, as the coordinator takes them: the round's indices are derived by
  // ServerHalf::prepare right after the broadcast, while the workers compute (ahead), so what
  // is left once the replies arrive (after: accept + end_round) is the fold of what arrived.
  // The same number of rounds as the loop above, timed whole in CPU time (prepared_ns) and
  // split between the two parts in the proportion of their wall times (steady_clock, which
  // costs little enough to read twice a round).
  if (!dense && !indexed) {
    using Wall = std::chrono::steady_clock;
    Wall::duration ahead{}, after{};
    const double t0 = bench::thread_cpu_seconds();
    for (int64_t i = 0; i < state.iterations(); ++i) {
      const uint64_t open_round = server->begin_round().round;
      const auto w0 = Wall::now();
      (void)server->prepare(std::chrono::hours(1));
      const auto w1 = Wall::now();
      take_replies(open_round);
      ahead += w1 - w0;
      after += Wall::now() - w1;
    }
    const double prepared_ns =
        (bench::thread_cpu_seconds() - t0) * 1e9 / static_cast<double>(state.iterations());
    const double after_ns = prepared_ns * std::chrono::duration<double>(after).count() /
                            std::chrono::duration<double>(ahead + after).count();
    state.counters["prepared_ns"] = prepared_ns;
    state.counters["ahead_ns"] = prepared_ns - after_ns;
    state.counters["after_ns"] = after_ns;
    state.counters["ratio_after_replies"] = after_ns / baseline_ns;
  }
  state.counters["K"] = static_cast<double>(k);
  const double reply_bytes =
      dense ? 8.0 * static_cast<double>(d) : (indexed ? 8.0 : 4.0) * static_cast<double>(k);
  state.counters["in_bytes"] = n * reply_bytes;
  state.SetLabel(c.compressor);
}

void grid(benchmark::internal::Benchmark* b) {
  for (int64_t n : {10, 100, 1000})
    for (int64_t d : {10000, 100000, 1000000}) {
      if (n * d > 100'000'000) continue;  // see the memory note above
      for (int64_t mode : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
        b->Args({n, d, mode});  // n | d: PermK blocks
    }
}

BENCHMARK(BM_server_round)
    ->ArgNames({"n", "d", "q"})
    ->Apply(grid)
    ->MinTime(0.3)
    ->Unit(benchmark::kMicrosecond);

// The coordinator's side of a compressed round from the bytes that arrived, as
// drivers/coordinator.cc runs it: begin_round and prepare (the seeded indices, derived while
// the workers compute), then for each of the n replies the transport's copy into its receive
// buffer, wire::Decoder::decode_taking and ServerHalf::accept_and_recycle, then end_round.
// Modes 1, 5 and 3 of BM_server_round (RandK K = 1% seeded and indexed, dense). The replies are
// encoded again for each round (their round number changes), untimed. Baseline, same process:
// the same copies of the messages and a streaming fold of their values into g (at the indices
// the seeded ones stand for), plus the O(d) pass: what any receiver of those bytes must do.
void BM_coordinator_round(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto d = static_cast<std::size_t>(state.range(1));
  const int mode = static_cast<int>(state.range(2));
  Inputs in = make_inputs(n, d, mode);
  const bool dense = in.dense;
  std::vector<methods::Reply>& replies = in.replies;
  for (auto& r : replies) {
    r.oracle_calls = 1;
    r.payload.finite = true;
  }
  auto server = methods::make_server(in.config);

  wire::Encoder enc(1);
  wire::Decoder dec(wire::Limits{wire::max_message_bytes(d, n), d, n});
  wire::Inbox inbox;
  std::vector<std::vector<uint8_t>> messages(n);
  std::vector<uint8_t> received;
  const auto encode = [&](uint64_t round) {
    for (uint32_t w = 0; w < n; ++w) {
      replies[w].round = round;
      const auto bytes = enc.encode(replies[w]);
      messages[w].assign(bytes.begin(), bytes.end());
    }
  };
  const auto take = [&] {
    for (uint32_t w = 0; w < n; ++w) {
      received.assign(messages[w].begin(), messages[w].end());
      (void)dec.decode_taking(received, inbox);
      server->accept_and_recycle(inbox.reply);
    }
    server->end_round();
  };

  // Round 0, the full sync, from dense messages as the coordinator receives them.
  {
    methods::Reply r = zero_gradient(d);
    const auto& b = server->begin_round();
    for (uint32_t w = 0; w < n; ++w) {
      r.worker = w;
      r.round = b.round;
      replies[w].round = b.round;
      const auto bytes = enc.encode(dense ? replies[w] : r);
      received.assign(bytes.begin(), bytes.end());
      (void)dec.decode_taking(received, inbox);
      server->accept_and_recycle(inbox.reply);
    }
    server->end_round();
  }

  encode(1);
  Eigen::VectorXd g = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(d));
  Eigen::VectorXd x = g, x_prev = g;
  const double baseline_ns = bench::ns_per_call([&] {
    for (uint32_t w = 0; w < n; ++w) {
      received.assign(messages[w].begin(), messages[w].end());
      benchmark::DoNotOptimize(received.data());
    }
    fold(in, g, x, x_prev);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  });

  const auto round = [&](double* cpu) {
    const double t0 = bench::thread_cpu_seconds();
    const uint64_t open = server->begin_round().round;
    (void)server->prepare(std::chrono::hours(1));
    const double t1 = bench::thread_cpu_seconds();
    encode(open);
    const double t2 = bench::thread_cpu_seconds();
    take();
    if (cpu) *cpu += (t1 - t0) + (bench::thread_cpu_seconds() - t2);
  };
  round(nullptr);  // the per-reply buffers grow to the run's sizes
  round(nullptr);
  double cpu = 0.0;
  for (auto _ : state) round(&cpu);
  bench::report_ratio(state, cpu * 1e9 / static_cast<double>(state.iterations()), baseline_ns);
  state.counters["K"] = static_cast<double>(in.k);
  state.SetLabel(in.config.compressor);
}

BENCHMARK(BM_coordinator_round)
    ->ArgNames({"n", "d", "q"})
    ->ArgsProduct({{10, 100}, {10000, 100000, 1000000}, {1, 5, 3}})
    ->MinTime(0.3)
    ->Unit(benchmark::kMicrosecond);

// A worker's side of the same derivation: its own indices for a fresh round (worker
// w = iteration mod n, n = 10, so every block of PermK's π is taken in turn), as
// compress::Compressor::compress makes them every round before reading its K values.
// Baseline, same process: the generator alone making the draws that derivation makes (RandK:
// Floyd's K draws below d − K + 1 … d; PermK: the shuffle's draws up to the end of the worker's
// block, from a fresh π each round; RandBlock: the same K draws as RandK, which it replaces by
// one), summed so that they are not optimised away. The ratio is what the derivation costs
// beyond RandK's random numbers: marking, sorting, and for PermK the swaps over π.
void BM_worker_indices(benchmark::State& state) {
  constexpr uint32_t kN = 10;
  const auto d = static_cast<std::size_t>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  const auto q = compress::make_compressor(compressor_of(mode, d));
  const std::size_t k = static_cast<std::size_t>(compress::zeta(*q, d, kN));
  const uint64_t block = (d + kN - 1) / kN;

  uint64_t round = 0;
  const double baseline_ns = bench::ns_per_call([&] {
    ++round;
    util::Rng rng(round);
    uint64_t sum = 0;
    if (mode == 4) {
      const uint64_t padded = block * kN, end = std::min(padded - 1, (round % kN + 1) * block);
      for (uint64_t p = 0; p < end; ++p) sum += rng.below(padded - p);
    } else {
      for (uint64_t j = d - k; j < d; ++j) sum += rng.below(j + 1);
    }
    benchmark::DoNotOptimize(sum);
  });

  std::vector<uint32_t> out;
  round = 1000;
  bench::LoopTimer timer;
  for (auto _ : state) {
    ++round;
    q->seeded_indices(compress::Context{round, static_cast<uint32_t>(round % kN), kN}, d, out);
    benchmark::DoNotOptimize(out.data());
  }
  bench::report_ratio(state, timer.ns_per_iteration(state), baseline_ns);
  state.counters["K"] = static_cast<double>(k);
  state.SetLabel(q->name());
}

BENCHMARK(BM_worker_indices)
    ->ArgNames({"d", "q"})
    ->ArgsProduct({{10000, 100000, 1000000, 10000000}, {1, 2, 4, 8, 9}})
    ->MinTime(0.3)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
