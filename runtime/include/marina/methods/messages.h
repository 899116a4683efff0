#pragma once
// The messages that the server half and the worker halves of a method exchange. They are
// plain structs: the simulator passes them through the wire codec in one thread, the
// networked drivers through ZeroMQ. Nothing here knows about sockets.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "marina/compress/payload.h"
#include "marina/util/buffer.h"

namespace marina::methods {

// How the broadcast of round k brings a worker's copy of the server state from round k−1 to k.
enum class UpdateKind : uint8_t {
  kNone,   // nothing to apply (round 0)
  kDense,  // the new vector itself (e.g. g^{k−1} after a full-sync round)
  kDelta,  // a sparse difference to add (the aggregated compressed replies)
};

struct ModelUpdate {
  UpdateKind kind = UpdateKind::kNone;
  std::vector<double> dense;  // kDense: d values, unless in `received` (dense_values())
  // kDelta: strictly increasing, unless in `received`. Buffers (util/buffer.h): the server
  // sizes them to a bound and cuts them back every round.
  util::Buffer<uint32_t> indices;
  util::Buffer<double> values;  // kDelta, unless in `received`
  // An update as wire::Decoder::decode_taking leaves it (a worker's decode), sparing a copy of
  // its vectors: the message it came in, with received.at set (the values of a kDense or
  // kDelta update) and, for kDelta, received.indices_at; `dense`, `indices` and `values` are
  // then not read. Read the update through the accessors below.
  compress::InMessage received;

  // The kDense values, wherever they are.
  [[nodiscard]] std::span<const double> dense_values() const {
    return received.indices_at ? std::span<const double>(dense) : received.doubles_or(dense);
  }
  // The kDelta indices and values, wherever they are (a taken delta has both ranges set).
  [[nodiscard]] std::span<const uint32_t> delta_indices() const {
    return received.indices_or(indices);
  }
  [[nodiscard]] std::span<const double> delta_values() const {
    return received.indices_at ? received.doubles() : std::span<const double>(values);
  }
  // Compares the update, not where its values are kept.
  bool operator==(const ModelUpdate& o) const;
};

// Server → all workers, once per round.
struct Broadcast {
  uint64_t round = 0;
  bool full_sync = false;   // every participant sends a dense gradient this round
  uint64_t round_seed = 0;  // shared randomness for compressors (RandK/PermK indices)
  // Worker ids asked to reply, ascending, repeated when drawn more than once (PP-MARINA
  // draws with replacement). Empty means every worker.
  std::vector<uint32_t> participants;
  ModelUpdate update;
  // Workers whose reply to round k−1 was expected but not aggregated (it came late, was lost,
  // or the worker was absent), ascending. Usually empty.
  std::vector<uint32_t> dropped;
};

// Worker → server, in answer to the broadcast of `round`.
struct Reply {
  uint32_t worker = 0;
  uint64_t round = 0;
  compress::Payload payload;
  std::optional<double> local_loss;  // f_i(x^k) when the worker evaluated its whole shard
  uint64_t oracle_calls = 0;         // per-sample gradient evaluations spent on this reply
};

// What a worker needs to rejoin at round k after it missed broadcasts: the server's state as
// the worker half mirrors it. `aux` is method-specific (g^{k−1} for the MARINA family, the
// shift h^k for DIANA-type methods). x_prev = x^{k−1} lets a worker form the gradient
// difference ∇f_i(x^k) − ∇f_i(x^{k−1}) exactly (empty at round 0).
struct Snapshot {
  uint64_t round = 0;
  std::vector<double> x;
  std::vector<double> x_prev;
  std::vector<double> aux;
  // The receiving worker's own state as the server mirrors it: DIANA's shift h_i (empty for
  // methods whose workers keep none).
  std::vector<double> worker_aux;
};

}  // namespace marina::methods
