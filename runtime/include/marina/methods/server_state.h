#pragma once
// The server half of a method between two rounds, as plain data: what a checkpoint stores and
// ServerHalf::save() / ServerHalf::load() exchange. No randomness is stored: every random draw
// is derived from (seed, round, worker), so the round number is the RNG position.

#include <cstdint>
#include <vector>

#include "marina/methods/messages.h"

namespace marina::methods {

struct ServerState {
  uint64_t round = 0;           // the next round to open
  std::vector<double> x;        // x^k
  std::vector<double> x_prev;   // x^{k−1}
  std::vector<double> aux;      // g^{k−1} (MARINA family, GD) or h^k (DIANA family)
  // Per-worker mirrors, worker-major (n·d values): DIANA's shifts h_i. Empty for methods
  // that keep none.
  std::vector<double> worker_aux;
  ModelUpdate pending;             // the update the next broadcast carries
  std::vector<uint32_t> dropped;   // the next broadcast's list of replies not aggregated

  bool operator==(const ServerState&) const = default;
};

}  // namespace marina::methods
