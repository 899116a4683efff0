// The compressors (docs/ARCHITECTURE.md, "Compressors and the loss") and make_compressor().
//
// Conventions shared by all of them:
// - all randomness comes from util::Rng streams derived from the Context (never <random>), so a
//   compression is identical on every architecture and can be replayed; the per-worker stream is
//   derive(round_seed, {worker, kCompress}), PermK's shared one derive(round_seed, {kCompress});
// - values are rounded to the wire precision here (float, or double for identity), and a value
//   that is not finite at that precision (NaN/Inf input, or |v| > FLT_MAX) makes compress throw
//   std::invalid_argument: a compressor never emits a payload that accumulate() would reject;
// - `out` is cleared (capacity kept) and refilled; scratch space lives in thread_local vectors,
//   so compress does not allocate once the buffers have grown.

#include <algorithm>
#include <array>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "marina/compress/compressor.h"
#include "marina/util/bitmap.h"
#include "marina/util/finite.h"
#include "marina/util/random.h"
#include "marina/util/sample.h"

namespace marina::compress {
namespace {

constexpr uint32_t kEmptySlot = 0xffffffffu;  // never an index: d ≤ 2^32 − 1

uint64_t worker_seed(const Context& ctx) {
  return util::derive(ctx.round_seed, {ctx.worker, util::tag(util::Stream::kCompress)});
}

uint64_t shared_seed(const Context& ctx) {
  return util::derive(ctx.round_seed, {util::tag(util::Stream::kCompress)});
}

uint32_t checked_dim(std::size_t d, const std::string& name) {
  if (d >= kEmptySlot) {
    throw std::invalid_argument(name + ": dimension " + std::to_string(d) +
                                " does not fit in a payload (at most 2^32 - 2)");
  }
  return static_cast<uint32_t>(d);
}

void check_k_fits(uint32_t k, std::size_t d, const std::string& name) {
  if (k > d) throw std::invalid_argument(name + " needs K ≤ d = " + std::to_string(d));
}

[[noreturn]] void throw_not_finite(const std::string& name, std::size_t j, double v,
                                   const char* precision) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  throw std::invalid_argument(name + ": value " + buf + " at index " + std::to_string(j) +
                              " is not finite in " + precision);
}

// The whole input at memory speed (util/finite.h); element by element only to name the culprit.
void check_finite(std::span<const double> x, const std::string& name) {
  if (const auto j = util::find_non_finite(x.data(), x.size()))
    throw_not_finite(name, *j, x[*j], "the input");
}

// Rounds to float (the wire precision); throws if the result would not be finite.
float to_wire(double v, const std::string& name, std::size_t j) {
  if (!(std::fabs(v) <= static_cast<double>(FLT_MAX))) throw_not_finite(name, j, v, "float");
  return static_cast<float>(v);
}

class Identity final : public Compressor {
 public:
  [[nodiscard]] std::string name() const override { return name_; }
  [[nodiscard]] double omega(std::size_t /*d*/) const override { return 0.0; }
  [[nodiscard]] double zeta(std::size_t d) const override { return static_cast<double>(d); }
  [[nodiscard]] PayloadKind payload_kind() const override { return PayloadKind::kDense64; }

  void compress(std::span<const double> x, const Context& /*ctx*/, Payload& out) const override {
    const uint32_t d = checked_dim(x.size(), name_);
    check_finite(x, name_);
    out.clear();
    out.kind = PayloadKind::kDense64;
    out.dim = d;
    out.dense.assign(x.begin(), x.end());
    out.finite = true;  // check_finite above
  }

 private:
  std::string name_ = "identity";
};

// Where RandK and PermK derive a reply's indices: into the payload when they are sent
// (":indexed"), else into a scratch buffer that the server re-derives.
std::vector<uint32_t>& index_buffer(bool indexed, Payload& out) {
  thread_local std::vector<uint32_t> scratch;
  return indexed ? out.indices : scratch;
}

// What RandK and RandBlock share: K of the d coordinates, each kept with probability K/d and
// scaled by d/K, so ω = d/K − 1 and ζ = K; a reply carries exactly K values.
class KOfD : public Compressor {
 public:
  KOfD(uint32_t k, std::string name) : k_(k), name_(std::move(name)) {}

  [[nodiscard]] std::string name() const override { return name_; }
  // K > d has no ω (d/K − 1 < 0 would give DIANA α > 1 and MARINA a too large γ): refused
  // where a run's parameters are chosen, before any worker starts, not at the first compress.
  [[nodiscard]] double omega(std::size_t d) const override {
    check_k_fits(k_, d, name_);
    return static_cast<double>(d) / k_ - 1.0;
  }
  [[nodiscard]] double zeta(std::size_t d) const override {
    check_k_fits(k_, d, name_);
    return k_;
  }
  [[nodiscard]] std::string mismatch(const Payload& p) const override {
    if (auto why = Compressor::mismatch(p); !why.empty()) return why;
    if (p.value_view().size() == k_) return {};
    return std::string(to_string(p.kind)) + " payload has " +
           std::to_string(p.value_view().size()) + " values, " + name_ + " sends " +
           std::to_string(k_);
  }

 protected:
  uint32_t k_;
  std::string name_;
};

class RandK final : public KOfD {
 public:
  RandK(uint32_t k, bool indexed)
      : KOfD(k, "randk:" + std::to_string(k) + (indexed ? ":indexed" : "")), indexed_(indexed) {}

  [[nodiscard]] PayloadKind payload_kind() const override {
    return indexed_ ? PayloadKind::kSparse : PayloadKind::kSeeded;
  }

  void compress(std::span<const double> x, const Context& ctx, Payload& out) const override {
    compress_within(x, nullptr, ctx, out);
  }

  void compress_within(std::span<const double> x, const uint64_t* support, const Context& ctx,
                       Payload& out) const override {
    out.clear();
    std::vector<uint32_t>& idx = index_buffer(indexed_, out);
    seeded_indices(ctx, x.size(), idx);
    out.kind = payload_kind();
    out.dim = static_cast<uint32_t>(x.size());
    out.values.resize(k_);
    const double scale = static_cast<double>(x.size()) / k_;
    for (uint32_t i = 0; i < k_; ++i) {
      const uint32_t j = idx[i];
      const bool in_support = support == nullptr || (support[j >> 6] >> (j & 63) & 1) != 0;
      out.values[i] = in_support ? to_wire(x[j] * scale, name_, j) : 0.0f;
    }
    out.finite = true;  // to_wire throws for a value that is not
  }

  void seeded_indices(const Context& ctx, std::size_t d,
                      std::vector<uint32_t>& out) const override {
    const uint32_t d32 = checked_dim(d, name_);
    check_k_fits(k_, d32, name_);
    if (k_ == 1) {  // Floyd's single step: one draw (sample_sorted makes the same)
      out.assign(1, static_cast<uint32_t>(util::Rng::first_below(worker_seed(ctx), d32)));
      return;
    }
    util::Rng rng(worker_seed(ctx));
    util::sample_sorted(rng, d32, k_, out);
  }

 private:
  bool indexed_;
};

// RandBlock: K consecutive coordinates from a uniform offset o, wrapping past d − 1 to 0, so
// S = {(o + j) mod d : j < K}. Each coordinate lies in S for exactly K of the d offsets, so
// P(j ∈ S) = K/d for every j and, scaled by d/K, Q(x) is unbiased with
// E||Q(x)||² = Σ_j (d/K)² x_j² K/d = (d/K)||x||²: the same ω = d/K − 1 and ζ = K as RandK,
// which is all the methods' theory uses of a compressor. What differs is the cost of S: one
// draw instead of K (Floyd's), and a fold into g that walks memory in order. Seeded only: there
// is nothing worth sending that the server cannot derive from one number.
class RandBlock final : public KOfD {
 public:
  explicit RandBlock(uint32_t k) : KOfD(k, "randblock:" + std::to_string(k)) {}

  [[nodiscard]] PayloadKind payload_kind() const override { return PayloadKind::kSeeded; }

  void compress(std::span<const double> x, const Context& ctx, Payload& out) const override {
    out.clear();
    const auto [first, second] = ranges(ctx, x.size());
    out.kind = PayloadKind::kSeeded;
    out.dim = static_cast<uint32_t>(x.size());
    out.values.resize(k_);
    const double scale = static_cast<double>(x.size()) / k_;
    float* v = out.values.data();
    for (const Range& r : {first, second})
      for (uint32_t j = r.begin; j < r.end; ++j) *v++ = to_wire(x[j] * scale, name_, j);
    out.finite = true;  // to_wire throws for a value that is not
  }

  void seeded_indices(const Context& ctx, std::size_t d,
                      std::vector<uint32_t>& out) const override {
    const auto [first, second] = ranges(ctx, d);
    out.resize(k_);
    uint32_t* i = out.data();
    for (const Range& r : {first, second})
      for (uint32_t j = r.begin; j < r.end; ++j) *i++ = j;
  }

  std::optional<IndexRun> seeded_run(const Context& ctx, std::size_t d) const override {
    const auto [first, second] = ranges(ctx, d);
    if (second.end != 0) return std::nullopt;
    return IndexRun{first.begin, k_};
  }

 private:
  struct Range {
    uint32_t begin = 0, end = 0;
  };

  // S in ascending order: [0, o + K − d) then [o, d) when the block wraps, else [o, o + K).
  std::pair<Range, Range> ranges(const Context& ctx, std::size_t d) const {
    const uint32_t d32 = checked_dim(d, name_);
    check_k_fits(k_, d32, name_);
    const auto o = static_cast<uint32_t>(util::Rng::first_below(worker_seed(ctx), d32));
    if (k_ <= d32 - o) return {Range{o, o + k_}, Range{}};
    return {Range{0, k_ - (d32 - o)}, Range{o, d32}};
  }
};

// Steps [from, to) of the Fisher–Yates shuffle of perm[0, padded), to < padded: step p swaps
// perm[p] with perm[p + below(padded − p)]. The draws do not depend on perm, so
// they are made kBatch at a time ahead of their swaps and the entries to swap are prefetched:
// π takes 4 bytes per coordinate (4 MB at d = 1e6, beyond the core's own caches), and one step
// at a time waited for each miss in turn. The swaps still run in step order: the same π.
void shuffle_prefix(uint32_t* perm, uint64_t padded, uint64_t from, uint64_t to, util::Rng& state) {
  constexpr uint64_t kBatch = 64;
  util::Rng rng = state;  // a local copy stays in registers
  uint64_t p = from;
  for (; p + kBatch <= to; p += kBatch) {
    std::array<uint64_t, kBatch> other;
    for (uint64_t t = 0; t < kBatch; ++t) {
      other[t] = p + t + rng.below(padded - p - t);
      __builtin_prefetch(perm + other[t], 1);
    }
    for (uint64_t t = 0; t < kBatch; ++t) std::swap(perm[p + t], perm[other[t]]);
  }
  for (; p < to; ++p) std::swap(perm[p], perm[p + rng.below(padded - p)]);
  state = rng;
}

// PermK (Szlendak et al. 2021). The round's permutation π is shared by all workers; worker i
// keeps the coordinates π[p] for p in block i and scales them by n. When n does not divide d,
// π permutes the padded range [0, d'), d' = n·⌈d/n⌉, and padding positions (π[p] ≥ d) are
// dropped: every coordinate then lands in block i with probability exactly 1/n, so each
// worker's Q_i is unbiased with E||Q_i(x) − x||² = (n − 1)||x||², and the n blocks still
// partition [0, d) (mean over workers of Q_i(x) = x). With n | d this is exactly the plain
// split [i·d/n, (i+1)·d/n); with d < n some workers get an empty block. Costs O(d): the
// shuffle stops after block i.
class PermK final : public Compressor {
 public:
  explicit PermK(bool indexed) : indexed_(indexed), name_(indexed ? "permk:indexed" : "permk") {}

  [[nodiscard]] std::string name() const override { return name_; }
  // ω = n − 1 and ζ = d/n depend on the number of workers, which these cannot see. Throwing
  // (rather than returning a number for some n) makes a caller that forgets it fail loudly;
  // omega(q, d, n) / zeta(q, d, n) below answer for a given n.
  [[nodiscard]] double omega(std::size_t /*d*/) const override {
    throw std::logic_error("permk: ω = n − 1 depends on the number of workers n");
  }
  [[nodiscard]] double zeta(std::size_t /*d*/) const override {
    throw std::logic_error("permk: ζ = d/n depends on the number of workers n");
  }
  [[nodiscard]] PayloadKind payload_kind() const override {
    return indexed_ ? PayloadKind::kSparse : PayloadKind::kSeeded;
  }

  void compress(std::span<const double> x, const Context& ctx, Payload& out) const override {
    out.clear();
    std::vector<uint32_t>& idx = index_buffer(indexed_, out);
    seeded_indices(ctx, x.size(), idx);
    out.kind = payload_kind();
    out.dim = static_cast<uint32_t>(x.size());
    out.values.resize(idx.size());
    const auto scale = static_cast<double>(ctx.workers);
    for (std::size_t i = 0; i < idx.size(); ++i) {
      out.values[i] = to_wire(x[idx[i]] * scale, name_, idx[i]);
    }
    out.finite = true;  // to_wire throws for a value that is not
  }

  void seeded_indices(const Context& ctx, std::size_t d,
                      std::vector<uint32_t>& out) const override {
    checked_dim(d, name_);
    const uint64_t n = ctx.workers;
    if (n == 0 || ctx.worker >= n) {
      throw std::invalid_argument(name_ + ": worker " + std::to_string(ctx.worker) +
                                  " is not in [0, n) for n = " + std::to_string(n));
    }
    const uint64_t block = (d + n - 1) / n;
    const uint64_t padded = block * n;
    if (padded >= kEmptySlot) {
      throw std::invalid_argument(name_ + ": d = " + std::to_string(d) +
                                  " with n = " + std::to_string(n) + " workers is too large");
    }
    // The server derives every worker's block of the same round's π: the shuffle is kept per
    // thread and continued where the last call stopped, so a round costs one O(d) shuffle
    // rather than one per reply. (The prefix is final whoever stops where, see above.)
    thread_local Shuffle sh{0, 0, 0, util::Rng(0), {}};
    const uint64_t seed = shared_seed(ctx);
    if (sh.padded != padded || sh.seed != seed || sh.perm.empty()) {
      sh.seed = seed;
      sh.padded = padded;
      sh.done = 0;
      sh.rng = util::Rng(seed);
      sh.perm.resize(padded);
      std::iota(sh.perm.begin(), sh.perm.end(), 0u);
    }
    const uint64_t begin = ctx.worker * block;
    const uint64_t end = begin + block;
    // The last step (p = padded − 1) would swap an entry with itself: it is not taken.
    if (const uint64_t stop = std::min(end, padded > 0 ? padded - 1 : 0); sh.done < stop) {
      shuffle_prefix(sh.perm.data(), padded, sh.done, stop, sh.rng);
      sh.done = stop;
    }
    // Ascending order: a sort of the block when it is tiny against d (about a thousand workers
    // or more, util::bitmap_beats_sort), else marking a d-bit bitmap and reading it out,
    // O(block + d/64); both give the same sorted set.
    out.resize(block);  // then cut to the entries that are not padding (π[p] ≥ d)
    const uint32_t* const slice = sh.perm.data() + begin;
    std::size_t kept = 0;
    for (uint64_t t = 0; t < block; ++t) {
      out[kept] = slice[t];
      kept += slice[t] < d;
    }
    out.resize(kept);
    if (!util::bitmap_beats_sort(out.size(), d)) {
      std::sort(out.begin(), out.end());
      return;
    }
    thread_local std::vector<uint64_t> mine;
    const std::size_t words = (d + 63) / 64;
    mine.assign(words, 0);
    for (uint32_t j : out) mine[j >> 6] |= uint64_t{1} << (j & 63);
    util::read_set_bits(mine.data(), words, out.size(), out);
  }

 private:
  struct Shuffle {
    uint64_t seed, padded, done;  // π of this seed over [0, padded), final in [0, done)
    util::Rng rng;                // where the shuffle continues
    std::vector<uint32_t> perm;
  };
  bool indexed_;
  std::string name_;
};

// QSGD / random dithering with s levels: value_j = ||x||·sign(x_j)·ξ_j/s, ξ_j ∈ {l, l + 1} the
// unbiased stochastic rounding of r = |x_j|/||x||·s. The norm is computed scaled by max|x_j|,
// so it neither overflows nor underflows for extreme inputs.
class Qsgd final : public Compressor {
 public:
  explicit Qsgd(uint32_t s) : s_(s), name_("qsgd:" + std::to_string(s)) {}

  [[nodiscard]] std::string name() const override { return name_; }
  [[nodiscard]] PayloadKind payload_kind() const override { return PayloadKind::kQuantized; }
  [[nodiscard]] std::string mismatch(const Payload& p) const override {
    if (auto why = Compressor::mismatch(p); !why.empty()) return why;
    if (p.levels_s == s_) return {};
    return "quantized payload with s = " + std::to_string(p.levels_s) + " levels, " + name_ +
           " uses " + std::to_string(s_);
  }
  [[nodiscard]] double omega(std::size_t d) const override {
    const double dd = static_cast<double>(d), s = s_;
    return std::min(dd / (s * s), std::sqrt(dd) / s);
  }
  [[nodiscard]] double zeta(std::size_t d) const override {
    const double dd = static_cast<double>(d), s = s_;
    return std::min(dd, s * (s + std::sqrt(dd)));
  }

  void compress(std::span<const double> x, const Context& ctx, Payload& out) const override {
    const uint32_t d = checked_dim(x.size(), name_);
    check_finite(x, name_);
    out.clear();
    out.kind = PayloadKind::kQuantized;
    out.dim = d;
    out.levels_s = s_;
    double amax = 0.0;
    for (double v : x) amax = std::max(amax, std::fabs(v));
    if (amax == 0.0) return;  // x = 0: no levels, norm 0
    double sum = 0.0;
    for (double v : x) {
      const double t = v / amax;
      sum += t * t;
    }
    const double norm = amax * std::sqrt(sum);
    if (!std::isfinite(norm)) throw_not_finite(name_, 0, norm, "the norm");
    out.norm = norm;
    const double s = s_;
    util::Rng rng(worker_seed(ctx));
    for (uint32_t j = 0; j < d; ++j) {
      if (x[j] == 0.0) continue;
      const double r = std::min(std::fabs(x[j]) / norm * s, s);
      double level = std::floor(r);
      const double up = r - level;
      if (up > 0.0 && rng.uniform() < up) level += 1.0;
      if (level == 0.0) continue;
      out.indices.push_back(j);
      out.levels.push_back(static_cast<int8_t>(x[j] < 0.0 ? -level : level));
    }
  }

 private:
  uint32_t s_;
  std::string name_;
};

// Natural compression (Horváth et al.): |x_j| ∈ [2^e, 2^{e+1}) goes to 2^{e+1} with probability
// (|x_j| − 2^e)/2^e, else to 2^e; the sign is kept. Powers of two are exact in float from 2^-149
// to 2^127; an input below ~2^-150 (≈ 7e-46) rounds to 0 in float (a bias nobody will see), and
// one that rounds to 2^128 or above makes compress throw.
class Natural final : public Compressor {
 public:
  [[nodiscard]] std::string name() const override { return name_; }
  [[nodiscard]] double omega(std::size_t /*d*/) const override { return 0.125; }
  [[nodiscard]] double zeta(std::size_t d) const override { return static_cast<double>(d); }
  [[nodiscard]] PayloadKind payload_kind() const override { return PayloadKind::kDense32; }

  void compress(std::span<const double> x, const Context& ctx, Payload& out) const override {
    const uint32_t d = checked_dim(x.size(), name_);
    out.clear();
    out.kind = PayloadKind::kDense32;
    out.dim = d;
    out.values.resize(d);
    util::Rng rng(worker_seed(ctx));
    for (uint32_t j = 0; j < d; ++j) {
      const double v = x[j];
      if (!std::isfinite(v)) throw_not_finite(name_, j, v, "the input");
      if (v == 0.0) {
        out.values[j] = 0.0f;
        continue;
      }
      int e = 0;
      const double m = std::frexp(std::fabs(v), &e);  // |v| = m·2^e, m ∈ [1/2, 1)
      const double lower = std::fabs(v) / (2.0 * m);  // 2^(e−1), exact
      const double up = 2.0 * m - 1.0;                // exact
      const double r = (up > 0.0 && rng.uniform() < up) ? 2.0 * lower : lower;
      out.values[j] = to_wire(std::copysign(r, v), name_, j);
    }
    out.finite = true;  // to_wire throws for a value that is not
  }

 private:
  std::string name_ = "natural";
};

// TopK (biased): the K largest |x_j|, ties to the lower index, so the choice is deterministic.
class TopK final : public Compressor {
 public:
  explicit TopK(uint32_t k) : k_(k), name_("topk:" + std::to_string(k)) {}

  [[nodiscard]] std::string name() const override { return name_; }
  [[nodiscard]] double omega(std::size_t d) const override {
    check_k_fits(k_, d, name_);
    return std::numeric_limits<double>::quiet_NaN();
  }
  [[nodiscard]] double zeta(std::size_t d) const override {
    check_k_fits(k_, d, name_);
    return k_;
  }
  [[nodiscard]] PayloadKind payload_kind() const override { return PayloadKind::kSparse; }
  [[nodiscard]] std::string mismatch(const Payload& p) const override {
    if (auto why = Compressor::mismatch(p); !why.empty()) return why;
    if (p.value_view().size() == k_) return {};
    return "sparse payload has " + std::to_string(p.value_view().size()) + " values, " + name_ +
           " sends " + std::to_string(k_);
  }
  [[nodiscard]] bool unbiased() const override { return false; }

  void compress(std::span<const double> x, const Context& /*ctx*/, Payload& out) const override {
    const uint32_t d = checked_dim(x.size(), name_);
    check_k_fits(k_, d, name_);
    check_finite(x, name_);  // NaN would break the strict ordering below
    thread_local std::vector<uint32_t> idx;
    idx.resize(d);
    std::iota(idx.begin(), idx.end(), 0u);
    const auto before = [&x](uint32_t a, uint32_t b) {
      const double fa = std::fabs(x[a]), fb = std::fabs(x[b]);
      return fa > fb || (fa == fb && a < b);
    };
    const auto kth = idx.begin() + k_;
    if (k_ < d) std::nth_element(idx.begin(), kth, idx.end(), before);
    std::sort(idx.begin(), kth);
    out.clear();
    out.kind = PayloadKind::kSparse;
    out.dim = d;
    out.indices.assign(idx.begin(), kth);
    out.values.resize(k_);
    for (uint32_t i = 0; i < k_; ++i) out.values[i] = to_wire(x[idx[i]], name_, idx[i]);
    out.finite = true;  // to_wire throws for a value that is not
  }

 private:
  uint32_t k_;
  std::string name_;
};

constexpr const char* kAccepted =
    "(expected identity, randk:K, randk:K:indexed, randblock:K, permk, permk:indexed, qsgd:S, "
    "natural, topk:K)";

// Decimal digits only (no sign, no spaces); nullopt if empty, malformed or out of range.
std::optional<uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

void Compressor::seeded_indices(const Context& /*ctx*/, std::size_t /*d*/,
                                std::vector<uint32_t>& /*out*/) const {
  throw std::invalid_argument(name() + " does not produce seeded payloads");
}

std::string Compressor::mismatch(const Payload& p) const {
  if (p.kind == payload_kind()) return {};
  return std::string(to_string(p.kind)) + " payload, but " + name() + " makes " +
         std::string(to_string(payload_kind())) + " payloads";
}

std::unique_ptr<Compressor> make_compressor(std::string_view spec) {
  const std::string s(spec);
  const auto colon = spec.find(':');
  const std::string_view head = spec.substr(0, colon);
  const bool has_arg = colon != std::string_view::npos;
  const std::string_view arg = has_arg ? spec.substr(colon + 1) : std::string_view{};

  // ":indexed" after RandK's or PermK's spec: the replies carry their indices (kSparse)
  // instead of leaving the server to re-derive them from the seed (kSeeded). The same indices
  // and values, so the same run; twice the bytes up, no derivation on the server.
  if (head == "permk" && arg == "indexed") return std::make_unique<PermK>(true);
  if (head == "identity" || head == "permk" || head == "natural") {
    if (has_arg) {
      throw std::invalid_argument(s + ": " + std::string(head) + " takes no parameter " +
                                  kAccepted);
    }
    if (head == "identity") return std::make_unique<Identity>();
    if (head == "permk") return std::make_unique<PermK>(false);
    return std::make_unique<Natural>();
  }
  if (head == "randk" || head == "topk" || head == "randblock") {
    const auto second = arg.find(':');
    const bool indexed =
        head == "randk" && second != std::string_view::npos && arg.substr(second + 1) == "indexed";
    const auto k = parse_uint(indexed ? arg.substr(0, second) : arg);
    if (!k || *k == 0 || *k >= kEmptySlot) {
      const std::string h(head);
      throw std::invalid_argument(s + ": K must be a positive integer (expected " + h + ":K" +
                                  (head == "randk" ? " or randk:K:indexed" : "") + ", e.g. " + h +
                                  ":5)");
    }
    if (head == "randk") return std::make_unique<RandK>(static_cast<uint32_t>(*k), indexed);
    if (head == "randblock") return std::make_unique<RandBlock>(static_cast<uint32_t>(*k));
    return std::make_unique<TopK>(static_cast<uint32_t>(*k));
  }
  if (head == "qsgd") {
    const auto levels = parse_uint(arg);
    if (!levels || *levels < 1 || *levels > 127) {
      throw std::invalid_argument(s + ": S must be an integer in [1, 127] (expected qsgd:S)");
    }
    return std::make_unique<Qsgd>(static_cast<uint32_t>(*levels));
  }
  throw std::invalid_argument("unknown compressor '" + s + "' " + kAccepted);
}

// PermK's ω = n − 1 and ζ = d/n depend on n, which the members cannot see.

double omega(const Compressor& q, std::size_t d, uint32_t workers) {
  if (dynamic_cast<const PermK*>(&q) != nullptr) {
    if (workers == 0) throw std::invalid_argument("permk: needs n ≥ 1 workers");
    return static_cast<double>(workers) - 1.0;
  }
  return q.omega(d);
}

double zeta(const Compressor& q, std::size_t d, uint32_t workers) {
  if (dynamic_cast<const PermK*>(&q) != nullptr) {
    if (workers == 0) throw std::invalid_argument("permk: needs n ≥ 1 workers");
    return static_cast<double>(d) / workers;
  }
  return q.zeta(d);
}

std::optional<std::size_t> max_values(const Compressor& q, std::size_t d, uint32_t workers) {
  if (dynamic_cast<const PermK*>(&q) == nullptr) return std::nullopt;
  if (workers == 0) throw std::invalid_argument("permk: needs n ≥ 1 workers");
  return (d + workers - 1) / workers;
}

}  // namespace marina::compress
