#pragma once
// Compression operators Q (table: docs/ARCHITECTURE.md). Each is a pure function of its
// input and a Context; all randomness comes from the Context's seeds, so a compression can be
// replayed (and a seeded payload's indices re-derived on the server).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "marina/compress/payload.h"

namespace marina::compress {

struct Context {
  uint64_t round_seed = 0;  // shared by the server and all workers in one round
  uint32_t worker = 0;      // worker id in [0, workers)
  uint32_t workers = 1;     // n
};

// The indices [begin, begin + size).
struct IndexRun {
  uint32_t begin = 0;
  uint32_t size = 0;
};

class Compressor {
 public:
  virtual ~Compressor() = default;

  // The spec it was made from, e.g. "randk:5".
  [[nodiscard]] virtual std::string name() const = 0;
  // Variance parameter: E||Q(x) − x||² ≤ ω ||x||². NaN for biased compressors.
  [[nodiscard]] virtual double omega(std::size_t d) const = 0;
  // Expected density ζ = sup_x E||Q(x)||_0.
  [[nodiscard]] virtual double zeta(std::size_t d) const = 0;
  [[nodiscard]] virtual bool unbiased() const { return true; }

  // Q(x) into `out` (its buffers are reused: no allocation once they have grown).
  virtual void compress(std::span<const double> x, const Context& ctx, Payload& out) const = 0;
  // Q(x) for an x that is zero wherever `support`, a set of x.size() bits (bit j of word
  // j / 64), has none: what compress() makes, but a value there is sent as +0.0 without x
  // being read (where x held −0.0 too). RandK reads x only at the indices it draws, and a
  // worker's difference of gradients that live on few columns would otherwise take a cache
  // miss at most of them. The others read all of x, or a block of it, and ignore the set.
  virtual void compress_within(std::span<const double> x, const uint64_t* support,
                               const Context& ctx, Payload& out) const {
    (void)support;
    compress(x, ctx, out);
  }

  // Indices of a kSeeded payload, strictly increasing (only seeded compressors implement it).
  virtual void seeded_indices(const Context& ctx, std::size_t d, std::vector<uint32_t>& out) const;
  // The same indices when they are one run (RandBlock's block, unless it wraps past d − 1), so
  // that a receiver need not write them out; nullopt otherwise, and for every other compressor.
  [[nodiscard]] virtual std::optional<IndexRun> seeded_run(const Context& /*ctx*/,
                                                           std::size_t /*d*/) const {
    return std::nullopt;
  }

  // The one payload kind this compressor makes.
  [[nodiscard]] virtual PayloadKind payload_kind() const = 0;
  // The compressor's part of validating a received payload, which the wire decoder has
  // already checked on its own (shape, index order and range, finite values): why `p` is not
  // a payload this compressor makes (its kind; K values of RandK and TopK, s of QSGD), or ""
  // when it is. A seeded payload's count under PermK depends on the round and is checked
  // where its indices are derived (accumulate).
  [[nodiscard]] virtual std::string mismatch(const Payload& p) const;
};

// ω and ζ of `q` in a run with `workers` workers (PermK's depend on n; the others forward to
// the members).
[[nodiscard]] double omega(const Compressor& q, std::size_t d, uint32_t workers);
[[nodiscard]] double zeta(const Compressor& q, std::size_t d, uint32_t workers);
// The most values one reply of `q` can carry where nothing else bounds it: PermK's block of
// ⌈d/n⌉ positions (what bounds an indexed PermK reply, whose count nobody derives). nullopt
// for the others: mismatch() checks RandK's and TopK's K, the decoder bounds the rest by d.
[[nodiscard]] std::optional<std::size_t> max_values(const Compressor& q, std::size_t d,
                                                    uint32_t workers);

// Parses "identity", "randk:K", "randk:K:indexed", "randblock:K", "permk", "permk:indexed",
// "qsgd:S", "natural", "topk:K" (":indexed": the same compressor, its replies carrying their
// indices).
// Throws std::invalid_argument naming the spec and what is wrong.
[[nodiscard]] std::unique_ptr<Compressor> make_compressor(std::string_view spec);

// acc += weight · decode(payload). The payload must have been validated where it entered: by
// the wire decoder (shape against its own dim, index order and range, finite values) and by
// q.mismatch() (or be q's own output). What only this computation can see is still checked,
// and throws std::invalid_argument with acc unchanged: the dimension against acc, a seeded
// payload's count against the indices it re-derives, and that no entry becomes non-finite.
void accumulate(const Payload& payload, const Compressor& q, const Context& ctx, double weight,
                Eigen::Ref<Eigen::VectorXd> acc);

// Dense decode: out = decode(payload).
void decode(const Payload& payload, const Compressor& q, const Context& ctx, Eigen::VectorXd& out);

// Sparse decode of a kSparse, kSeeded or kQuantized payload: its non-zero positions (strictly
// increasing; for kSeeded re-derived from ctx) and the values decode() would leave there, bit
// for bit. Like accumulate, it takes a validated payload and checks only what it alone sees (a
// seeded payload's count against its derived indices, finite values unless payload.finite). Returns
// false, and touches nothing, for the dense kinds (use decode()). The buffers keep their capacity.
bool decode_sparse(const Payload& payload, const Compressor& q, const Context& ctx,
                   std::vector<uint32_t>& indices, std::vector<double>& values);

// A kSparse or kSeeded payload's indices and float values as a receiver keeps them (the server
// half, until its round closes): `idx` and `val` are where they are. That is `indices` and
// `values` (copied, or exchanged with the payload's; a kSeeded payload's indices are derived
// into `indices`, or are a run the receiver views elsewhere), or, taken from Payload::received,
// the message they came in (`message`).
struct SparseValues {
  std::vector<uint32_t> indices;
  std::vector<float> values;
  std::vector<uint8_t> message;
  std::span<const uint32_t> idx;
  std::span<const float> val;
};

// The indices and values of a kSparse or kSeeded payload as sent (float values, unconverted),
// for a receiver that folds them itself: checked as decode_sparse checks them (finite values
// unless payload.finite, a seeded payload's count against its derived indices); on an error
// the payload and `out` are untouched (a kSeeded payload's indices, derived into out.indices
// as decode_sparse derives them, may be there already). With `recycle` (the payload itself)
// nothing is copied: a payload whose vectors are in its message (Payload::received) hands the
// message to out.message and gets out.message's previous buffer (emptied, and first grown to
// the capacity of the one it gave) in its place, unless that would grow out.message to more
// than twice the message (a buffer grown for a much larger message stays with the payload,
// and the values are copied out of it); any other one exchanges its vectors with
// out.values and out.indices once they have buffers to give back (its indices (kSparse) and
// values then hold their previous contents, sizes included). Either way, if it gave anything
// up, it is then no longer marked finite. Returns false, touching nothing,
// for the other kinds. `indices_derived`: out.idx already views a kSeeded payload's derivation
// for `ctx` (in out.indices or wherever the receiver keeps it: derived ahead of the reply, or
// as one run), so only its count is checked and out.idx is left as it is.
bool take_sparse(const Payload& payload, const Compressor& q, const Context& ctx, SparseValues& out,
                 Payload* recycle = nullptr, bool indices_derived = false);

// A dense payload's d values as a receiver keeps them (the server half, until its round
// closes): a copy in `copy`, or, taken from the payload, its `dense` buffer (in `copy`) or the
// message its values are in (`message`). `data` points at the values in whichever holds them.
struct DenseValues {
  std::vector<double> copy;
  std::vector<uint8_t> message;
  const double* data = nullptr;
};

// Dense decode of a kDense64 or kDense32 payload: what decode() leaves (0.0 + 1.0·v, the same
// number, and +0.0 for −0.0), checked the same way unless payload.finite (a non-finite value
// throws std::invalid_argument and leaves `out` as it was). With `recycle` (the payload itself,
// kDense64) the values are taken instead of copied: the message they are in
// (Payload::received) is swapped with out.message, or, once out.copy has a buffer to give back,
// the payload's `dense` with out.copy (which leaves it a buffer of capacity d and unspecified
// contents); `recycle` is then no longer marked finite. Taken values keep −0.0 entries as −0.0,
// which a caller that only adds c·v (c > 0) to sums that are never −0.0, and skips v == 0.0, cannot
// tell from +0.0 (the server half does exactly that).
void decode_dense(const Payload& payload, DenseValues& out, Payload* recycle = nullptr);

}  // namespace marina::compress
