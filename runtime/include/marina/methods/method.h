#pragma once
// A method is split into a server half and a worker half, both sans-I/O state machines:
// they take decoded messages and return the messages to send, with no sockets, clocks or
// threads inside. The simulator steps them directly; the networked coordinator and workers
// drive the very same objects from their sockets.
//
// One round k:   server.begin_round() → Broadcast B_k → every worker.on_broadcast(B_k)
//                → Reply (from the participants) → server.accept(reply) ... → server.end_round()
// After end_round() the server holds x^{k+1}; the next broadcast carries the update that lets
// each worker compute the same x^{k+1} on its own.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "marina/compress/compressor.h"
#include "marina/methods/config.h"
#include "marina/methods/messages.h"
#include "marina/methods/server_state.h"
#include "marina/model.h"

namespace marina::methods {

// A message that does not fit the current state: wrong round, unexpected or duplicate
// sender, malformed payload. The state is unchanged when it is thrown.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a worker half that receives round k while expecting an earlier one: it missed
// broadcasts and must be resynchronised (restore()) before it can answer.
class OutOfSync : public ProtocolError {
 public:
  OutOfSync(uint64_t expected, uint64_t got);
  uint64_t expected;
  uint64_t got;
};

// The iterates became non-finite or exploded: "diverged at round k (‖g‖ = …); lower --gamma".
class Diverged : public std::runtime_error {
 public:
  Diverged(uint64_t round, double step_norm);
  // A worker's numbers left what a payload can carry (a value beyond float range, a decoded
  // value that overflows): `why` is the compressor's message.
  Diverged(uint64_t round, const std::string& why);
};

// Rounds may close without every reply (a worker dropped out, or was too late): the server
// aggregates over the responders R of the round. The MARINA family weighs each responder by
// multiplicity / Σ_{j∈R} multiplicity — the PP-MARINA estimator with R as the sampled set, so a
// compressed round adds (1/|R|) Σ_{i∈R} Q(Δ_i) and a full-sync round takes the mean of the
// gradients that arrived. DIANA weighs every reply by 1/n: a missing worker contributes
// m_i = 0, i.e. its shift h_i stands in for its gradient, and h stays the mean of the h_i.
// The next broadcast names the workers whose reply was expected but not aggregated (dropped).
class ServerHalf {
 public:
  ServerHalf(const MethodConfig& config);
  virtual ~ServerHalf() = default;
  ServerHalf(const ServerHalf&) = delete;
  ServerHalf& operator=(const ServerHalf&) = delete;

  // Opens round k = round() and returns its broadcast (valid until the next begin_round).
  [[nodiscard]] const Broadcast& begin_round();
  // Takes one reply of the open round: the second half of its validation, after the wire
  // decoder's stateless checks (shape, index order and range, finite values). Throws
  // ProtocolError (state unchanged) for a reply of another round, from a worker that was not
  // asked, a duplicate, a payload of another d, or one this round's compressor does not make
  // (kind, K, s; a dense gradient in full-sync rounds).
  void accept(const Reply& reply);
  // The same, but instead of copying a dense f64 payload it takes the reply's buffer (its
  // payload.dense, or the message its values are in, payload.received) and hands back the one
  // it kept from this worker's previous dense reply (contents unspecified); likewise a sparse or
  // seeded payload's values and indices, which come back holding this worker's previous ones
  // (sizes included: read payload.value_count() before). A driver that refills `reply` each
  // time then copies no vector of values and, after the first rounds, allocates nothing.
  // Everything but those buffers is left as it was.
  void accept_and_recycle(Reply& reply);
  // Derives the indices of this round's seeded replies ahead of them (their seeds are known
  // once the round is open), worker by worker among those still awaited, until `budget` has
  // passed (the clock is read every microsecond or so of work); true when all are ready. A driver
  // calls it while the workers compute: accepting a reply whose indices are ready then costs its
  // values only, and the others are derived in accept as before. The indices, and so every result,
  // are the same either way. Does nothing in rounds without seeded replies. `skip`: workers not
  // worth it (known gone, say).
  bool prepare(std::chrono::nanoseconds budget,
               const std::function<bool(uint32_t worker)>& skip = {});
  // True when every participant of the open round has replied.
  [[nodiscard]] bool complete() const;
  // Whether `worker` is asked to reply in the open round.
  [[nodiscard]] bool asked(uint32_t worker) const { return open_ && expects(worker); }
  // Whether `worker` is asked to reply in the open round and has not yet.
  [[nodiscard]] bool awaiting(uint32_t worker) const;
  // Ids of the participants that have not replied yet, ascending.
  [[nodiscard]] std::vector<uint32_t> missing() const;
  // Closes the round with the replies received so far (all of them, or fewer when the
  // driver's deadline passed): aggregates them in worker-id order, so the result does not
  // depend on arrival order, and advances to x^{k+1}. Throws Diverged (the state then holds the
  // non-finite iterate; the run is over) when a coordinate of x^{k+1} is not finite or beyond 1e15.
  void end_round();
  [[nodiscard]] bool is_open() const { return open_; }
  // Forgets the open round and its replies, as if begin_round() had not been called (a
  // coordinator that stops mid-round checkpoints the last closed round).
  void abandon_round();

  [[nodiscard]] uint64_t round() const { return round_; }
  [[nodiscard]] const Eigen::VectorXd& x() const { return x_; }
  [[nodiscard]] const MethodConfig& config() const { return config_; }
  [[nodiscard]] const compress::Compressor& compressor() const { return *q_; }
  // Number of distinct workers whose replies the last closed round aggregated.
  [[nodiscard]] uint32_t last_participants() const { return last_participants_; }
  // ‖x^k − x^{k−1}‖ / γ = ‖g^{k−1}‖, the length of the last step's direction.
  [[nodiscard]] double step_norm() const;
  // What `worker` needs to take part in round() after missing broadcasts or a restart.
  [[nodiscard]] Snapshot snapshot(uint32_t worker) const;
  // The complete state between rounds (for checkpoints), and its restoration; load() checks
  // every size against the configuration and throws std::invalid_argument on a mismatch.
  [[nodiscard]] ServerState save() const;
  void load(const ServerState& s);

 protected:
  // Method-specific parts. plan() fills the coin and participants of broadcast_ (round_,
  // round_seed and update are set by the base); aggregate() turns the decoded replies into
  // the next update and applies it to the server's mirror of the worker state, and returns
  // whether x^{k+1} stayed bounded (mirror.h's bounded(), found while x was updated).
  virtual void plan(Broadcast& b) = 0;
  virtual bool aggregate(ModelUpdate& next) = 0;
  // The method's own state: g^{k−1} or h^k as `aux`, per-worker mirrors as `worker_aux`.
  virtual void save_aux(ServerState& s) const = 0;
  virtual void load_aux(const ServerState& s) = 0;
  virtual void snapshot_aux(uint32_t worker, Snapshot& s) const = 0;
  // Weight of a responder's reply in this round's mean (see the class comment).
  [[nodiscard]] virtual double weight(uint32_t worker) const;
  // Σ_i weight(i)·decoded_i over the responders, in id order (valid until the next call or
  // sum_to_delta, which may clear it).
  // Sparse, seeded and quantized replies are kept as their (index, value) pairs and added at
  // those indices only: per entry the same additions in the same order as a dense sum, minus
  // the additions of c·0.0 = +0.0, which leave the sum unchanged (it starts at +0.0 and never
  // becomes −0.0). So it costs O(Σ K_i + d/64), plus O(d) in rounds with a dense reply or with
  // Σ K_i above d / kSparseShare.
  const Eigen::VectorXd& weighted_sum();
  // The nonzeros of the last weighted_sum() as a sparse delta update, in ascending order, from
  // the entries it touched (all of them after a dense reply).
  void sum_to_delta(ModelUpdate& out);
  // weighted_sum() then sum_to_delta(), with the same bits, for a server that needs only the
  // delta. With dense replies, or up to kInterleaved sparse ones that carry on average one
  // value or more per kBlock entries, the sum is built block by block: every reply adds its
  // values in one block of the sum, which stays in L1, and the block's nonzeros are read out
  // (and cleared) before the next one. The whole sum would otherwise be scattered into once per
  // reply and read again for the delta, one cache miss per value at large d. Each sparse
  // reply's indices ascend (compress::decode_sparse returns them so).
  void weighted_delta(ModelUpdate& out);
  // h_i += alpha·decoded_i at the nonzeros of worker i's reply of this round (DIANA's shift).
  void shift_by_reply(uint32_t worker, double alpha, Eigen::VectorXd& h_i) const;
  [[nodiscard]] bool received(uint32_t worker) const { return received_[worker]; }
  [[nodiscard]] uint32_t received_count() const { return received_count_; }

  MethodConfig config_;
  std::unique_ptr<compress::Compressor> q_;
  uint64_t round_ = 0;
  Eigen::VectorXd x_;       // x^k, k = round_
  Eigen::VectorXd x_prev_;  // x^{k−1}
  Broadcast broadcast_;

 private:
  [[nodiscard]] bool expects(uint32_t worker) const;
  void accept(const Reply& reply, Reply* recycle);
  // The received replies in id order as parts_ (and run_), with their tally.
  void collect_parts();
  // weighted_sum() of the parts collected.
  const Eigen::VectorXd& sum_parts();
  // sum_ += weight_r·dense_r for a run of m dense replies, in their order (see weighted_sum);
  // add_dense_block over entries [j0, j0 + len) only.
  void add_dense_run(const std::pair<const double*, double>* run, std::size_t m);
  void add_dense_block(double* s, const std::pair<const double*, double>* run, std::size_t m,
                       std::size_t j0, std::size_t len);
  // Zeroes whatever the last weighted_sum left in sum_.
  void clear_sum();

  bool open_ = false;
  ModelUpdate pending_;  // update for the next broadcast
  // Per worker, the decoded payload of this round: a dense d-vector (a copy, or with
  // accept_and_recycle the reply's own buffer or message) or, when sparse_[w], the indices of
  // its nonzeros (sent_[w].idx) and their values: as sent (float, kSparse and kSeeded:
  // kSentValues, sent_[w].val; with accept_and_recycle the reply's own buffers or message) or
  // decoded (double, QSGD: kDecodedValues, reply_values_[w]).
  static constexpr uint8_t kSentValues = 2, kDecodedValues = 1;
  std::vector<compress::DenseValues> dense_;
  std::vector<compress::SparseValues> sent_;
  // Per worker, 1 + the round whose seeded indices prepare() left in sent_[w].idx (0: none);
  // the next worker prepare() looks at.
  std::vector<uint64_t> prepared_;
  uint32_t prepare_next_ = 0;
  // Worker w's seeded indices for the open round into sent_[w].idx: a view of iota_ when they
  // are one run (RandBlock's block: nothing written per reply), else derived into
  // sent_[w].indices.
  void derive_indices(uint32_t w);
  std::vector<uint32_t> iota_;             // 0, 1, …, d − 1 once a run has been seen (4d bytes)
  std::optional<std::size_t> max_values_;  // compress::max_values: a compressed reply's bound
  std::vector<std::vector<double>> reply_values_;
  std::vector<uint8_t> sparse_;
  // The weighted sum, and the entries of it that may be nonzero: touched_ (each once, ascending)
  // or, when sum_dense_, any. sum_dense_ is chosen once sparse values exceed d / kSparseShare.
  // touched_bits_ (one bit per entry) is all zero between rounds; sum_zero_: sum_to_delta has
  // cleared the sum (it reads every entry that may be nonzero anyway).
  static constexpr std::size_t kSparseShare = 4;
  Eigen::VectorXd sum_;
  std::vector<uint32_t> touched_;
  std::vector<uint64_t> touched_bits_;
  bool sum_dense_ = false;
  bool sum_zero_ = true;
  std::vector<std::pair<const double*, double>> run_;  // the dense replies and their weights
  // The round's replies in id order: a sparse one (idx, val, and weighted_delta's next position
  // in it) or a run of dense ones (run_[run_begin, run_end)).
  struct Part {
    const uint32_t* idx = nullptr;
    const double* val = nullptr;  // decoded values, or
    const float* sent = nullptr;  // values as sent
    std::size_t size = 0;
    std::size_t split = 0;  // consecutive indices: where the second run starts (else 0)
    std::size_t pos = 0;
    double c = 0.0;
    std::size_t run_begin = 0;
    std::size_t run_end = 0;
  };
  static constexpr std::size_t kBlock = 4096;  // a multiple of 64
  static constexpr std::size_t kInterleaved = 16;
  std::vector<Part> parts_;
  std::size_t parts_sparse_values_ = 0;  // values of the sparse parts
  std::size_t parts_sparse_ = 0;         // sparse parts
  bool parts_dense_ = false;             // any dense reply
  std::vector<double> block_sum_;        // entries [j0, j0 + kBlock) of the sum
  std::vector<uint64_t> block_bits_;     // which of them were touched
  std::vector<uint32_t> multiplicity_;   // per worker, how often it is counted this round
  std::vector<bool> received_;
  std::vector<uint32_t> dropped_;  // for the next broadcast
  uint32_t expected_count_ = 0;
  uint32_t received_count_ = 0;
  uint32_t received_multiplicity_ = 0;
  uint32_t last_participants_ = 0;
};

// x⁰ of a run: zero, or uniform in [−init_scale, init_scale] from the run's seed.
[[nodiscard]] Eigen::VectorXd initial_point(const MethodConfig& config);

class WorkerHalf {
 public:
  // `model` is the worker's f_i; it must outlive the half. Its exceptions pass through.
  WorkerHalf(const MethodConfig& config, uint32_t id, Model& model);
  virtual ~WorkerHalf() = default;
  WorkerHalf(const WorkerHalf&) = delete;
  WorkerHalf& operator=(const WorkerHalf&) = delete;

  // Applies the broadcast's update (x^{k−1} → x^k) and, if this worker participates, fills
  // `reply` (its buffers are reused) and returns true. `b` is a ServerHalf's or was validated by
  // the wire decoder against this run's n and d (participant and dropped ids, the update's
  // size, index order and range, finite values). Throws OutOfSync when broadcasts were missed
  // and ProtocolError for a stale broadcast (state unchanged).
  [[nodiscard]] bool on_broadcast(const Broadcast& b, Reply& reply);
  // Adopts the server's state at snapshot.round; the next broadcast must be of that round.
  virtual void restore(const Snapshot& s);

  [[nodiscard]] uint32_t id() const { return id_; }
  [[nodiscard]] uint64_t next_round() const { return next_round_; }
  [[nodiscard]] const Eigen::VectorXd& x() const { return x_; }
  // Per-sample gradients spent to recover after restore() (re-evaluating at x^{k−1}): real
  // work, but not the method's, so replies do not report it.
  [[nodiscard]] uint64_t recovery_oracle_calls() const { return recovery_oracle_calls_; }

 protected:
  // Brings the mirrored server state from round k−1 to k (x_prev_ ← x_, then x_ ← x^k).
  virtual void advance(const ModelUpdate& u) = 0;
  // Fills reply.payload (and local_loss, oracle_calls) for broadcast b at x_.
  virtual void respond(const Broadcast& b, Reply& reply) = 0;
  // Called with each broadcast before advance(): whether this worker's previous reply was
  // aggregated (b.dropped). DIANA moves its shift only then.
  virtual void settle(const Broadcast& /*b*/) {}
  [[nodiscard]] compress::Context context(const Broadcast& b) const;
  // reply.payload = Q(v) for round b, and (if `decoded` is given) decoded += its decode, the
  // server's view of it. A value the payload cannot carry throws Diverged, not a parse error:
  // it is this worker's state that left the range, not a message that was malformed.
  void compress_reply(const Eigen::VectorXd& v, const Broadcast& b, Reply& reply,
                      Eigen::VectorXd* decoded = nullptr);
  // The model's functions on Eigen vectors; `out` is sized to d first (after the first round a
  // no-op, so steady-state rounds allocate nothing).
  double gradient(const Eigen::VectorXd& x, Eigen::VectorXd& out);
  // out = round `round`'s minibatch of `size` rows of this worker's shard, drawn as
  // config_.batch_sampling says from the stream derive(seed, {round, id, kMinibatch}).
  void draw_minibatch(uint64_t round, uint64_t size, std::vector<uint32_t>& out) const;
  void minibatch_gradient(const Eigen::VectorXd& x, std::span<const uint32_t> batch,
                          Eigen::VectorXd& out);
  void minibatch_difference(const Eigen::VectorXd& x, const Eigen::VectorXd& y,
                            std::span<const uint32_t> batch, Eigen::VectorXd& out);
  // When the model states a gradient support (Model::gradient_support), vectors that only ever
  // hold its gradients and differences of them are zero outside it, and these two touch only
  // the support: gradient() into such an `out` (a plain gradient() on first use), and
  // out ← a − out. Without a support they are gradient() and a dense difference.
  double gradient_on_support(const Eigen::VectorXd& x, Eigen::VectorXd& out);
  void subtract_on_support(const Eigen::VectorXd& a, Eigen::VectorXd& out) const;
  // compress_reply() for such a v: RandK then reads v only at the indices it draws within the
  // support (Compressor::compress_within), not at every one of them.
  void compress_on_support(const Eigen::VectorXd& v, const Broadcast& b, Reply& reply);

  MethodConfig config_;
  uint32_t id_;
  Model& f_;
  std::span<const uint32_t> support_;  // f_.gradient_support(), checked
  // support_ as a set of d bits (bit j of word j / 64), for Compressor::compress_within; empty
  // without a support.
  std::vector<uint64_t> support_bits_;
  std::unique_ptr<compress::Compressor> q_;
  Eigen::VectorXd x_;       // x^k
  Eigen::VectorXd x_prev_;  // x^{k−1}
  uint64_t next_round_ = 0;
  bool restored_ = false;  // x_ already holds the state of next_round_
  uint64_t recovery_oracle_calls_ = 0;

 private:
  void compress_within(const Eigen::VectorXd& v, const uint64_t* support, const Broadcast& b,
                       Reply& reply, Eigen::VectorXd* decoded);
};

[[nodiscard]] std::unique_ptr<ServerHalf> make_server(const MethodConfig& config);
[[nodiscard]] std::unique_ptr<WorkerHalf> make_worker(const MethodConfig& config, uint32_t id,
                                                      Model& model);

}  // namespace marina::methods
