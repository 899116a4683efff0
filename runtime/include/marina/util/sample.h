#pragma once
// k distinct indices of [0, d), every k-subset equally likely, in ascending order: RandK's
// coordinates (compress/compressor.cc) and a minibatch drawn without replacement
// (methods::BatchSampling). Both sides of a run derive the same set from the same generator
// state, so the algorithm is part of the protocol: changing it changes every seeded run.

#include <cstdint>
#include <vector>

#include "marina/util/random.h"

namespace marina::util {

// Floyd's algorithm: exactly k calls of rng.below(), for j = d − k … d − 1: t = below(j + 1),
// and j itself when t was drawn before. Requires k ≤ d < 2^32 − 1 (throws std::invalid_argument
// otherwise). Allocation-free once its thread-local tables have grown to the largest k (or d).
void sample_sorted(Rng& rng, uint32_t d, uint32_t k, std::vector<uint32_t>& out);

}  // namespace marina::util
