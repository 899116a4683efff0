// Codec: encode + verify + decode of the messages a round moves, against memcpy of the same
// number of bytes (the least any serialisation could cost). Replies: dense (a full gradient, d
// doubles), sparse with indices (K = 1% of d index/value pairs), seeded RandK (K values, no
// indices) and QSGD (s = 4); broadcasts: a dense update (d doubles) and a sparse delta (the sum
// of n = 5 RandK replies: 5K index/double pairs). d ∈ {1e3, 1e4, 1e5}.
//
// The decoder runs with the limits a run with d and n = 5 would set, so every check the
// coordinator and worker make on a received message is included. The encoder encodes the same
// message again and again, as a worker encodes its reply every round: a reply of the shape the
// encoder holds is written over it (wire::Encoder), which is what a run's replies get.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.h"
#include "marina/compress/compressor.h"
#include "marina/util/random.h"
#include "marina/wire/codec.h"

namespace {

using namespace marina;

constexpr uint32_t kWorkers = 5;

std::size_t k_of(std::size_t d) {
  return std::max<std::size_t>(1, d / 100);
}

// K distinct indices in [0, d), strictly increasing (an even spread with a random offset is
// enough: the codec's cost does not depend on where the indices are).
std::vector<uint32_t> spread_indices(std::size_t d, std::size_t k, uint64_t seed) {
  util::Rng rng(seed);
  std::vector<uint32_t> idx(k);
  const std::size_t step = d / k;
  for (std::size_t i = 0; i < k; ++i)
    idx[i] = static_cast<uint32_t>(i * step + rng.below(static_cast<uint64_t>(step)));
  return idx;
}

std::vector<double> random_values(std::size_t n, uint64_t seed) {
  util::Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = rng.uniform() * 2.0 - 1.0;
  return v;
}

enum class Msg { kReplyDense, kReplySparse, kReplySeeded, kReplyQsgd, kBcastDense, kBcastDelta };

methods::Reply make_reply(Msg m, std::size_t d) {
  methods::Reply r;
  r.worker = 3;
  r.round = 12345;
  r.oracle_calls = 640;
  r.local_loss = 0.25;
  auto& p = r.payload;
  p.dim = static_cast<uint32_t>(d);
  const std::size_t k = k_of(d);
  switch (m) {
    case Msg::kReplyDense:
      p.kind = compress::PayloadKind::kDense64;
      p.dense = random_values(d, 1);
      break;
    case Msg::kReplySparse: {
      p.kind = compress::PayloadKind::kSparse;
      p.indices = spread_indices(d, k, 2);
      const auto v = random_values(k, 3);
      p.values.assign(v.begin(), v.end());
      break;
    }
    case Msg::kReplySeeded: {
      p.kind = compress::PayloadKind::kSeeded;
      const auto v = random_values(k, 4);
      p.values.assign(v.begin(), v.end());
      break;
    }
    case Msg::kReplyQsgd: {
      const auto q = compress::make_compressor("qsgd:4");
      const auto x = random_values(d, 5);
      q->compress(x, compress::Context{77, 3, kWorkers}, p);
      break;
    }
    default:
      break;
  }
  return r;
}

methods::Broadcast make_broadcast(Msg m, std::size_t d) {
  methods::Broadcast b;
  b.round = 12345;
  b.round_seed = 0x9e3779b97f4a7c15ull;
  if (m == Msg::kBcastDense) {
    b.full_sync = false;
    b.update.kind = methods::UpdateKind::kDense;
    b.update.dense = random_values(d, 6);
  } else {
    const std::size_t k = std::min(d, kWorkers * k_of(d));
    b.update.kind = methods::UpdateKind::kDelta;
    const auto indices = spread_indices(d, k, 7);
    const auto values = random_values(k, 8);
    b.update.indices.assign(indices.begin(), indices.end());
    b.update.values.assign(values.begin(), values.end());
  }
  return b;
}

// The receiving side decodes as the runtime does, with decode_taking: a dense reply's or
// update's values stay in the received buffer, which the receiver keeps (`slot` is where the
// Inbox holds it; the bench hands it back for the next iteration). Encoding
// and decoding are timed in two loops, each over bytes already in cache as they are when a
// message has just been built or received; the transport's copy between them is not the
// codec's (bench/loopback.py measures it).
template <class Message>
void run(benchmark::State& state, const Message& msg, std::size_t d,
         compress::InMessage& (*slot)(wire::Inbox&)) {
  wire::Encoder enc(42);
  wire::Decoder dec(wire::Limits{wire::max_message_bytes(d, kWorkers), d, kWorkers});
  wire::Inbox inbox;
  const auto first = enc.encode(msg);
  const std::size_t bytes = first.size();
  std::vector<uint8_t> received(first.begin(), first.end());  // as a transport leaves it
  (void)dec.decode(received, inbox);  // grows the inbox's vectors once, as a long run would

  // Source and destination 64-byte aligned and 2 KiB apart modulo 4 KiB: on this machine's CPU
  // glibc's memcpy (rep movsb) is up to 20x slower when dst − src is a few bytes past a multiple
  // of 4 KiB (4K aliasing), and the baseline is meant to be the floor.
  const std::size_t span = (bytes + 4095) / 4096 * 4096;
  std::vector<uint8_t> arena(2 * span + 2048 + 128);
  auto* src = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(arena.data()) + 63) & ~63ull);
  uint8_t* dst = src + span + 2048;
  std::memcpy(src, first.data(), bytes);
  const double memcpy_ns = bench::ns_per_call([&] {
    std::memcpy(dst, src, bytes);
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  });
  const double encode_ns = bench::ns_per_call(
      [&] {
        const auto out = enc.encode(msg);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
      },
      0.1);

  bench::LoopTimer timer;
  for (auto _ : state) {
    benchmark::DoNotOptimize(dec.decode_taking(received, inbox));
    if (compress::InMessage& kept = slot(inbox); kept.holds_any()) received.swap(kept.bytes);
    benchmark::ClobberMemory();
  }
  const double decode_ns = timer.ns_per_iteration(state);
  bench::report_ratio(state, encode_ns + decode_ns, memcpy_ns);
  state.counters["encode_ns"] = encode_ns;
  state.counters["decode_ns"] = decode_ns;
  state.counters["msg_bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void BM_reply(benchmark::State& state, Msg m) {
  const auto d = static_cast<std::size_t>(state.range(0));
  run(state, make_reply(m, d), d,
      [](wire::Inbox& in) -> compress::InMessage& { return in.reply.payload.received; });
}

void BM_broadcast(benchmark::State& state, Msg m) {
  const auto d = static_cast<std::size_t>(state.range(0));
  run(state, make_broadcast(m, d), d,
      [](wire::Inbox& in) -> compress::InMessage& { return in.broadcast.update.received; });
}

#define MARINA_DIMS ->Arg(1000)->Arg(10000)->Arg(100000)->MinTime(0.2)
BENCHMARK_CAPTURE(BM_reply, dense, Msg::kReplyDense) MARINA_DIMS;
BENCHMARK_CAPTURE(BM_reply, sparse_k1pct, Msg::kReplySparse) MARINA_DIMS;
BENCHMARK_CAPTURE(BM_reply, seeded_k1pct, Msg::kReplySeeded) MARINA_DIMS;
BENCHMARK_CAPTURE(BM_reply, qsgd_s4, Msg::kReplyQsgd) MARINA_DIMS;
BENCHMARK_CAPTURE(BM_broadcast, dense, Msg::kBcastDense) MARINA_DIMS;
BENCHMARK_CAPTURE(BM_broadcast, delta_5k, Msg::kBcastDelta) MARINA_DIMS;

}  // namespace

BENCHMARK_MAIN();
