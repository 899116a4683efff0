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

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>

#include "marina/compress/compressor.h"
#include "marina/methods/config.h"
#include "marina/methods/messages.h"
#include "marina/problem/objective.h"

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

class ServerHalf {
 public:
  ServerHalf(const MethodConfig& config);
  virtual ~ServerHalf() = default;
  ServerHalf(const ServerHalf&) = delete;
  ServerHalf& operator=(const ServerHalf&) = delete;

  // Opens round k = round() and returns its broadcast (valid until the next begin_round).
  [[nodiscard]] const Broadcast& begin_round();
  // Takes one reply of the open round. Throws ProtocolError (state unchanged) for a reply of
  // another round, from a worker that was not asked, a duplicate, or a malformed payload.
  void accept(const Reply& reply);
  // True when every participant of the open round has replied.
  [[nodiscard]] bool complete() const;
  // Ids of the participants that have not replied yet, ascending.
  [[nodiscard]] std::vector<uint32_t> missing() const;
  // Closes the round (requires complete()): aggregates the replies in worker-id order, so the
  // result does not depend on arrival order, and advances to x^{k+1}.
  void end_round();

  [[nodiscard]] uint64_t round() const { return round_; }
  [[nodiscard]] const Eigen::VectorXd& x() const { return x_; }
  [[nodiscard]] const MethodConfig& config() const { return config_; }
  [[nodiscard]] const compress::Compressor& compressor() const { return *q_; }
  // Number of distinct workers that replied in the last closed round.
  [[nodiscard]] uint32_t last_participants() const { return last_participants_; }
  // What a worker needs to take part in round() after missing broadcasts.
  [[nodiscard]] virtual Snapshot snapshot() const = 0;

 protected:
  // Method-specific parts. plan() fills the coin and participants of broadcast_ (round_,
  // round_seed and update are set by the base); aggregate() turns the decoded replies into
  // the next update and applies it to the server's mirror of the worker state.
  virtual void plan(Broadcast& b) = 0;
  virtual void aggregate(ModelUpdate& next) = 0;
  // Weight of worker i's reply in this round's mean (1/n, or multiplicity/r for PP).
  [[nodiscard]] double weight(uint32_t worker) const;
  // Σ_i weight(i)·decoded_i over the participants, in id order, into out.
  void weighted_sum(Eigen::VectorXd& out) const;
  // Turns the nonzeros of a dense vector into a sparse delta update.
  static void to_delta(const Eigen::VectorXd& v, ModelUpdate& out);

  MethodConfig config_;
  std::unique_ptr<compress::Compressor> q_;
  uint64_t round_ = 0;
  Eigen::VectorXd x_;       // x^k, k = round_
  Eigen::VectorXd x_prev_;  // x^{k−1}
  Broadcast broadcast_;

 private:
  [[nodiscard]] bool expects(uint32_t worker) const;

  bool open_ = false;
  ModelUpdate pending_;                   // update for the next broadcast
  std::vector<Eigen::VectorXd> decoded_;  // per worker, the decoded payload of this round
  std::vector<uint32_t> multiplicity_;    // per worker, how often it is counted this round
  std::vector<bool> received_;
  uint32_t expected_count_ = 0;
  uint32_t received_count_ = 0;
  uint32_t last_participants_ = 0;
};

class WorkerHalf {
 public:
  WorkerHalf(const MethodConfig& config, uint32_t id, const problem::Objective& objective);
  virtual ~WorkerHalf() = default;
  WorkerHalf(const WorkerHalf&) = delete;
  WorkerHalf& operator=(const WorkerHalf&) = delete;

  // Applies the broadcast's update (x^{k−1} → x^k) and, if this worker participates, fills
  // `reply` (its buffers are reused) and returns true. Throws OutOfSync when broadcasts were
  // missed and ProtocolError for a stale or malformed broadcast (state unchanged).
  [[nodiscard]] bool on_broadcast(const Broadcast& b, Reply& reply);
  // Adopts the server's state at snapshot.round; the next broadcast must be of that round.
  virtual void restore(const Snapshot& s);

  [[nodiscard]] uint32_t id() const { return id_; }
  [[nodiscard]] uint64_t next_round() const { return next_round_; }
  [[nodiscard]] const Eigen::VectorXd& x() const { return x_; }

 protected:
  // Brings the mirrored server state from round k−1 to k (x_prev_ ← x_, then x_ ← x^k).
  virtual void advance(const ModelUpdate& u) = 0;
  // Fills reply.payload (and local_loss, oracle_calls) for broadcast b at x_.
  virtual void respond(const Broadcast& b, Reply& reply) = 0;
  [[nodiscard]] compress::Context context(const Broadcast& b) const;

  MethodConfig config_;
  uint32_t id_;
  const problem::Objective& f_;
  std::unique_ptr<compress::Compressor> q_;
  Eigen::VectorXd x_;       // x^k
  Eigen::VectorXd x_prev_;  // x^{k−1}
  uint64_t next_round_ = 0;
  bool restored_ = false;  // x_ already holds the state of next_round_
};

[[nodiscard]] std::unique_ptr<ServerHalf> make_server(const MethodConfig& config);
[[nodiscard]] std::unique_ptr<WorkerHalf> make_worker(const MethodConfig& config, uint32_t id,
                                                      const problem::Objective& objective);

}  // namespace marina::methods
