#pragma once
// Deterministic randomness that is identical on every architecture.
//
// Every random choice in the runtime (the coin c_k, RandK indices, minibatches, stochastic
// rounding) is drawn from a generator seeded by derive(seed, tags...). The coordinator and the
// workers therefore agree on shared randomness without sending it, and a networked run makes
// the same draws as a simulated one. The standard <random> distributions are avoided on
// purpose: their algorithms are implementation-defined.

#include <cstdint>
#include <initializer_list>

namespace marina::util {

// SplitMix64 finaliser: a bijective 64-bit mixer.
[[nodiscard]] constexpr uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Derives an independent stream seed from a base seed and a list of tags
// (for example {round, worker, purpose}).
[[nodiscard]] constexpr uint64_t derive(uint64_t seed, std::initializer_list<uint64_t> tags) {
  uint64_t h = mix64(seed);
  for (uint64_t t : tags) h = mix64(h ^ mix64(t + 0x632be59bd9b4e019ULL));
  return h;
}

// Purposes, used as the last tag of derive() so that streams never collide.
enum class Stream : uint64_t {
  kCoin = 1,       // server: c_k ~ Bernoulli(p)
  kRoundSeed = 2,  // server: the shared round seed for compressors
  kClients = 3,    // server: PP-MARINA client draws
  kCompress = 4,   // worker: private compressor randomness
  kMinibatch = 5,  // worker: minibatch indices
  kReference = 6,  // worker: VR-DIANA reference-point coin
  kShuffle = 7,    // data: row shuffle
  kDropout = 8,    // simulation: a worker absent from a round (marina-sim --dropout)
  kInit = 9,       // x⁰ (MethodConfig::init_scale)
};

[[nodiscard]] constexpr uint64_t tag(Stream s) {
  return static_cast<uint64_t>(s);
}

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
class Rng {
 public:
  explicit constexpr Rng(uint64_t seed) {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      w = mix64(seed - 0x9e3779b97f4a7c15ULL);
    }
  }

  [[nodiscard]] constexpr uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform double in [0, 1) with 53 random bits.
  [[nodiscard]] constexpr double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method). 32-bit ARM targets
  // lack __int128: mul128 has a portable fallback.
  [[nodiscard]] constexpr uint64_t below(uint64_t n) {
    uint64_t hi = 0;
    uint64_t lo = mul128(next(), n, hi);
    if (lo < n) {
      const uint64_t threshold = (0 - n) % n;
      while (lo < threshold) lo = mul128(next(), n, hi);
    }
    return hi;
  }

  [[nodiscard]] constexpr bool bernoulli(double p) { return uniform() < p; }

  // Rng(seed).below(n), for a generator that makes that one draw: RandK:1's index, RandBlock's
  // offset, for every reply of a round. The first output depends on one word of the state,
  // so the other three are seeded only when the draw is rejected (probability below n / 2^64).
  [[nodiscard]] static constexpr uint64_t first_below(uint64_t seed, uint64_t n) {
    const uint64_t s1 = mix64(seed + 0x9e3779b97f4a7c15ULL);  // the constructor's s_[1]
    uint64_t hi = 0;
    if (mul128(rotl(s1 * 5, 7) * 9, n, hi) >= n) return hi;  // below()'s first test
    return Rng(seed).below(n);
  }

 private:
  // Full 64x64 -> 128-bit product; returns the low half, stores the high half. An exact
  // integer product, so the native one (a single instruction where there is one) and the
  // portable one agree bit for bit.
  static constexpr uint64_t mul128(uint64_t a, uint64_t b, uint64_t& hi) {
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 u128;  // __extension__: no -Wpedantic warning
    const u128 p = static_cast<u128>(a) * b;
    hi = static_cast<uint64_t>(p >> 64);
    return static_cast<uint64_t>(p);
#else
    const uint64_t a_lo = a & 0xffffffffULL, a_hi = a >> 32;
    const uint64_t b_lo = b & 0xffffffffULL, b_hi = b >> 32;
    const uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
    const uint64_t mid = (ll >> 32) + (lh & 0xffffffffULL) + (hl & 0xffffffffULL);
    hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return (mid << 32) | (ll & 0xffffffffULL);
#endif
  }
  static constexpr uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
  }
  uint64_t s_[4]{};
};

}  // namespace marina::util
