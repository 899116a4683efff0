#include "marina/drivers/coordinator.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include "marina/drivers/membership.h"
#include "marina/methods/method.h"
#include "marina/security/keys.h"
#include "marina/util/heap.h"
#include "marina/wire/codec.h"

namespace marina::drivers {
namespace {

using namespace std::chrono_literals;
using transport::Clock;

std::string ms(std::chrono::milliseconds t) {
  return std::to_string(t.count()) + " ms";
}

constexpr uint64_t kLoggedPerReason = 100;
// The most a round spends deriving seeded replies' indices before it reads its first reply
// (ServerHalf::prepare); what is left is derived as the replies are accepted.
constexpr auto kPrepareBudget = 50ms;

class Coordinator {
 public:
  Coordinator(transport::Hub& hub, const CoordinatorSettings& s)
      : hub_(hub),
        s_(s),
        n_(s.base.workers),
        min_workers_(s.min_workers == 0 ? (n_ + 1) / 2 : std::min(s.min_workers, n_)),
        sync_timeout_(s.sync_timeout.count() > 0 ? s.sync_timeout : 3 * s.round_timeout),
        enc_(s.session),
        dec_(wire::Limits{wire::max_message_bytes(1, 1), 0, s.base.workers}),
        members_(n_, s.miss_limit),
        smoothness_(n_),
        local_losses_(n_),
        start_(Clock::now()) {
    ready_.reserve(2);
    if (s_.resume)
      start_ -= std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(s_.resume->wall_s));
  }

  CoordinatorOutcome run() {
    try {
      admit_initial();
      if (!stopping()) {
        welcome_all();
        confirm_subscriptions();
      }
      if (!stopping()) rounds();
      write_rows();
      if (stopping()) {
        out_.interrupted = true;
        if (server_) {
          server_->abandon_round();
          checkpoint("stopped");
        }
        goodbye("coordinator stopped by a signal");
        return std::move(out_);
      }
    } catch (const QuorumLost& e) {
      flush_on_the_way_out();
      if (server_) {
        server_->abandon_round();
        on_the_way_out("the checkpoint", [&] { checkpoint("quorum lost"); });
      }
      goodbye(std::string("coordinator stopped: ") + e.what());
      throw std::runtime_error(e.what());
    } catch (const std::exception& e) {
      flush_on_the_way_out();
      goodbye(std::string("coordinator stopped: ") + e.what());
      throw;
    }
    goodbye("run complete");
    return std::move(out_);
  }

 private:
  struct QuorumLost : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  // ---- facts ------------------------------------------------------------------------------

  void info(const std::string& line) const {
    if (s_.on_info) s_.on_info(line);
  }

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  uint64_t round_now() const {
    if (server_) return server_->round();
    return s_.resume ? s_.resume->server.round : 0;
  }

  void event(const std::string& kind, std::optional<uint32_t> worker, const std::string& detail) {
    run::Event e{round_now(), elapsed(), worker, kind, detail};
    out_.events.add(kind);
    if (s_.on_event) s_.on_event(e);
    std::string line = "round " + std::to_string(e.round) + ": ";
    if (worker) line += "worker " + std::to_string(*worker) + " ";
    info(line + kind + (detail.empty() ? "" : " (" + detail + ")"));
  }

  // Every message turned away is counted by reason; `log` adds an event (not for the
  // expected kinds, like late replies after a deadline, which would flood the events file).
  void reject(const std::string& reason, std::optional<uint32_t> worker, const std::string& detail,
              bool log = true) {
    ++out_.rejected;
    const uint64_t count = ++out_.rejected_by[reason];
    // A flood (an attacker, a revoked device still sending) must not flood the events file:
    // the first 100 of each reason are events, the rest only counted in the summary.
    if (!log || count > kLoggedPerReason) return;
    event("rejected", worker,
          reason + (detail.empty() ? "" : ": " + detail) +
              (count == kLoggedPerReason ? " (further ones only counted)" : ""));
  }

  bool stopping() const { return s_.stop && s_.stop->load(); }

  std::optional<std::string> workers_exited() const {
    return s_.workers_exited ? s_.workers_exited() : std::nullopt;
  }

  // ---- messages ---------------------------------------------------------------------------

  // Decodes one incoming message; false (and counted) when it is malformed or foreign. A dense
  // reply keeps its values in the received buffer, which moves into inbox_ (in.bytes gets
  // another buffer): the server half takes it from there without copying d doubles.
  bool decode(transport::Incoming& in, wire::MessageKind& kind) {
    in_size_ = in.bytes.size();
    try {
      kind = dec_.decode_taking(in.bytes, inbox_);
    } catch (const wire::VersionError& e) {
      // Another release: tell it (a peer of that release names both versions in its error).
      reject("protocol version", std::nullopt, e.what());
      const std::string why = std::string("refused: ") + e.what();
      hub_.send(in.from,
                enc_.encode(wire::Bye{wire::kCoordinatorId, why.substr(0, wire::kMaxStringBytes)}));
      return false;
    } catch (const wire::DecodeError& e) {
      reject("malformed", std::nullopt, e.what());
      return false;
    }
    if (kind != wire::MessageKind::kJoin && inbox_.session != s_.session) {
      // A worker of an earlier session (it rejoins on our heartbeat), or a replay.
      reject("foreign session", std::nullopt, std::string(wire::to_string(kind)), false);
      return false;
    }
    return true;
  }

  void send(uint32_t w, std::span<const uint8_t> bytes) {
    if (!hub_.send(members_[w].peer, bytes) && members_.live(w)) {
      members_.mark_gone(w, "unreachable");
      event("gone", w, "its connection is closed (send failed)");
    }
  }

  void publish(std::span<const uint8_t> bytes) {
    hub_.publish(bytes);
    last_publish_ = Clock::now();
  }

  // Heartbeats keep silent stretches (quorum waits, long rounds) distinguishable from a dead
  // coordinator, and make workers of an earlier session rejoin. Workers answer each one. A
  // live worker not heard from within a heartbeat is also pinged directly: a send that fails
  // means its connection is gone (the kernel closes one whose data stays unacknowledged).
  void heartbeat_tick(Clock::time_point now) {
    check_keys();
    const bool publish_due = now - last_publish_ >= s_.heartbeat;
    const bool ping_due = welcomed_ && now - last_ping_ >= s_.heartbeat;
    if (!publish_due && !ping_due) return;
    const auto bytes = enc_.encode(wire::Heartbeat{wire::kCoordinatorId, round_now()});
    std::vector<uint8_t> copy(bytes.begin(), bytes.end());
    if (publish_due) publish(copy);
    if (!ping_due) return;
    last_ping_ = now;
    for (uint32_t w : members_.live_ids())
      if (now - members_[w].last_seen > s_.heartbeat) send(w, copy);
  }

  // Keys refused at the handshake, and keys revoked since (SIGHUP): a revoked worker leaves the
  // run at once; its connection may stay open, but nothing it sends is accepted.
  void check_keys() {
    if (s_.refused_keys)
      for (const std::string& what : s_.refused_keys()) reject("unknown key", std::nullopt, what);
    if (!s_.identify || !s_.keys_changed || !s_.keys_changed()) return;
    for (uint32_t w : members_.live_ids()) {
      if (s_.identify(members_[w].user) == w) continue;
      members_.mark_gone(w, "key revoked");
      event("revoked", w, "its key is no longer in the allowlist");
      hub_.send(members_[w].peer,
                enc_.encode(wire::Bye{wire::kCoordinatorId, "refused: its key was revoked"}));
    }
  }

  std::string compatibility_problem(const wire::Join& j) const {
    const std::string who = "worker " + std::to_string(j.worker_id);
    // Bounds before anything is allocated from them: the server keeps n·d doubles per vector.
    const uint64_t max_dim = s_.evaluation && !s_.evaluation->empty()
                                 ? static_cast<uint64_t>(s_.evaluation->front().dim())
                                 : s_.max_dim;
    if (j.dim == 0 || (j.dim > max_dim && !(s_.evaluation && !s_.evaluation->empty())))
      return who + " declares d = " + std::to_string(j.dim) + " features; this coordinator takes " +
             "1 to " + std::to_string(max_dim) + " (--max-dim)";
    if (j.shard_rows == 0 || j.shard_rows > (uint64_t{1} << 40))
      return who + " declares " + std::to_string(j.shard_rows) + " rows";
    if (j.worker_id >= n_)
      return who + " is out of range: the run has --workers " + std::to_string(n_) + " (ids 0.." +
             std::to_string(n_ - 1) + ")";
    if (j.shard_count != 0 && j.shard_count != n_)
      return who + " holds a shard of a split into " + std::to_string(j.shard_count) +
             " (--shard I/" + std::to_string(j.shard_count) +
             "), the run has n = " + std::to_string(n_) + ": use --shard I/" + std::to_string(n_);
    // The model first: a --bias mismatch also shows as d + 1.
    if (const std::string& run_model = s_.model.empty() ? model_.value_or(j.model) : s_.model;
        j.model != run_model)
      return who + "'s model differs from the run's: " + model_difference(j.model, run_model) +
             (s_.model.empty() ? "" : " (the coordinator's --data and its flags)");
    if (dim_ && j.dim != *dim_)
      return who + " has d = " + std::to_string(j.dim) +
             " features, the run has d = " + std::to_string(*dim_) +
             ": every worker and --data must use the same data file";
    if (s_.evaluation && !s_.evaluation->empty() &&
        j.dim != static_cast<uint64_t>(s_.evaluation->front().dim()))
      return who + " has d = " + std::to_string(j.dim) +
             " features but the coordinator's --data has d = " +
             std::to_string(s_.evaluation->front().dim()) +
             ": the workers use another data file (or --bias differs)";
    if (rows_ && j.shard_rows != *rows_)
      return who + " holds " + std::to_string(j.shard_rows) + " samples, the others " +
             std::to_string(*rows_) +
             ": every worker must hold as many (the same --shard I/N of one file)";
    if (s_.evaluation && !s_.evaluation->empty() &&
        j.shard_rows != static_cast<uint64_t>(s_.evaluation->front().rows()))
      return who + " holds " + std::to_string(j.shard_rows) + " rows, but --data split into " +
             std::to_string(n_) + " shards gives " + std::to_string(s_.evaluation->front().rows()) +
             ": the workers use another file or another --shard I/N";
    return {};
  }

  void refuse(const transport::Peer& peer, const std::string& problem) {
    event("refused", std::nullopt, problem);
    const std::string why = "refused: " + problem;
    hub_.send(peer,
              enc_.encode(wire::Bye{wire::kCoordinatorId, why.substr(0, wire::kMaxStringBytes)}));
  }

  // A Join at any time. Returns the admitted id, if any.
  std::optional<uint32_t> on_join(const transport::Incoming& in) {
    const wire::Join& j = inbox_.join;
    // With keys, the key decides who may join as which id.
    bool key_matches = false;
    if (s_.identify) {
      const auto id = s_.identify(in.user);
      if (id != j.worker_id) {
        reject(id ? "impersonation" : "revoked key", std::nullopt,
               id ? "the key of worker " + std::to_string(*id) + " joined as worker " +
                        std::to_string(j.worker_id)
                  : "a join with a key no longer allowed");
        return std::nullopt;
      }
      key_matches = true;
    }
    if (const std::string problem = compatibility_problem(j); !problem.empty()) {
      refuse(in.from, problem);
      refusals_[j.worker_id] = problem;
      return std::nullopt;
    }
    const uint32_t w = j.worker_id;
    const auto now = Clock::now();
    switch (members_.classify(w, in.from)) {
      case Membership::Admission::kNew:
        members_.admit(w, in.from, j.arch, now, in.user);
        event("join", w,
              std::to_string(j.shard_rows) + " rows, " + (j.arch.empty() ? "?" : j.arch));
        break;
      case Membership::Admission::kReturn:
        members_.admit(w, in.from, j.arch, now, in.user);
        event("returned", w, "joined again");
        break;
      case Membership::Admission::kRepeat:
        members_.admit(w, in.from, j.arch, now, in.user);
        break;
      case Membership::Admission::kContested: {
        // The id is live behind another peer. With keys, the id's key decides at once; in
        // plaintext only proof that that peer is gone lets the newcomer in, otherwise it keeps
        // retrying until liveness decides (a forged join cannot displace a running worker).
        if (key_matches) {
          members_.mark_gone(w, "replaced by a new process with its key");
          event("gone", w, "a new process with its key takes its id");
        } else {
          const auto probe = enc_.encode(wire::Heartbeat{wire::kCoordinatorId, round_now()});
          if (hub_.send(members_[w].peer, probe)) return std::nullopt;
          members_.mark_gone(w, "replaced by a new process");
          event("gone", w, "its connection is closed; a new process takes its id");
        }
        members_.admit(w, in.from, j.arch, now, in.user);
        event("returned", w, "new process");
        break;
      }
    }
    dim_ = j.dim;
    rows_ = j.shard_rows;
    model_ = j.model;
    smoothness_[w] = j.smoothness;
    if (welcomed_) bring_up_to_date(w);
    return w;
  }

  // A worker that joins or comes back mid-run: its Welcome, the server state it needs for the
  // open round, and that round's broadcast if it is awaited.
  void bring_up_to_date(uint32_t w) {
    send(w, enc_.encode(welcome_for(w)));
    if (!server_) return;
    send(w, enc_.encode(server_->snapshot(w)));
    if (server_->awaiting(w) && !broadcast_.empty()) send(w, broadcast_);
  }

  // ---- start-up ---------------------------------------------------------------------------

  void admit_initial() {
    const auto deadline = Clock::now() + s_.join_timeout;
    // Who is still missing, after 5 s and then every 30 s: without a terminal there is no
    // progress line, and a coordinator waiting for a worker that cannot reach it looks hung.
    auto next_note = Clock::now() + 5s;
    while (members_.live_count() < n_) {
      if (stopping()) return;
      if (const auto now = Clock::now(); now >= next_note) {
        next_note = now + 30s;
        std::string missing = members_.missing_text();
        if (missing.size() > 60) missing = missing.substr(0, missing.rfind(',', 60)) + ", ...";
        info(std::to_string(members_.live_count()) + " of " + std::to_string(n_) +
             " workers joined; waiting for " + missing + " until the join timeout (" +
             ms(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)) + " left)");
      }
      const auto exited = workers_exited();
      if (exited || Clock::now() > deadline) {
        const std::string when = exited ? "before " + *exited : "within " + ms(s_.join_timeout);
        if (members_.live_count() >= min_workers_) {
          event("start_partial", std::nullopt,
                std::to_string(members_.live_count()) + " of " + std::to_string(n_) + " joined " +
                    when + "; missing: " + members_.missing_text());
          break;
        }
        throw std::runtime_error("only " + std::to_string(members_.live_count()) + " of " +
                                 std::to_string(n_) + " workers joined " + when +
                                 " (need --min-workers " + std::to_string(min_workers_) +
                                 "); missing: " + members_.missing_text() + refusal_text());
      }
      heartbeat_tick(Clock::now());
      wire::MessageKind kind;
      if (!hub_.receive(in_, 100ms) || !decode(in_, kind)) continue;
      if (kind == wire::MessageKind::kJoin)
        (void)on_join(in_);
      else
        reject("unexpected message", std::nullopt,
               "a " + std::string(wire::to_string(kind)) + " before the run started", false);
    }
    resolve();
  }

  void resolve() {
    if (s_.resume) {
      config_ = s_.resume->config;
      if (config_.dim != *dim_ || config_.workers != n_)
        throw std::runtime_error(
            "the checkpoint is of a run with n = " + std::to_string(config_.workers) + ", d = " +
            std::to_string(config_.dim) + "; the workers have d = " + std::to_string(*dim_) +
            " and the coordinator n = " + std::to_string(n_));
      info("resuming at round " + std::to_string(s_.resume->server.round) +
           " with gamma = " + run::exact(config_.gamma) + ", p = " + run::exact(config_.p));
    } else {
      std::vector<problem::Smoothness> sm;
      for (uint32_t w = 0; w < n_; ++w)
        if (members_[w].state != MemberState::kAbsent) sm.push_back(smoothness_[w]);
      methods::MethodConfig base = s_.base;
      base.dim = *dim_;
      std::string why;
      config_ = methods::resolve(base, s_.choices, methods::combine(sm, *rows_), &why);
      info(why);
    }
    out_.config = config_;
    dec_.set_limits(wire::Limits{wire::max_message_bytes(config_.dim, n_), config_.dim, n_});
    util::keep_message_blocks_in_heap(dec_.limits().max_bytes);  // dense rounds: util/heap.h
    server_ = methods::make_server(config_);
    if (s_.resume) server_->load(s_.resume->server);
  }

  wire::Welcome welcome_for(uint32_t w) const {
    wire::Welcome msg;
    msg.worker_id = w;
    msg.config = config_;
    return msg;
  }

  void welcome_all() {
    welcomed_ = true;
    for (uint32_t w : members_.live_ids()) {
      send(w, enc_.encode(welcome_for(w)));
      if (server_->round() > 0) send(w, enc_.encode(server_->snapshot(w)));
    }
  }

  void confirm_subscriptions() {
    const auto deadline = Clock::now() + s_.join_timeout;
    std::vector<bool> acked(n_, false);
    const auto probe = enc_.encode(wire::Heartbeat{wire::kCoordinatorId, 0});
    const std::vector<uint8_t> probe_bytes(probe.begin(), probe.end());
    auto next_probe = Clock::now();
    for (;;) {
      bool all = true;
      for (uint32_t w : members_.live_ids()) all = all && acked[w];
      if (all || stopping()) return;
      if (Clock::now() > deadline) {
        for (uint32_t w : members_.live_ids()) {
          if (acked[w]) continue;
          members_.mark_gone(w, "never confirmed receiving broadcasts");
          event("gone", w, "never confirmed receiving broadcasts");
        }
        if (members_.live_count() < min_workers_)
          throw std::runtime_error("only " + std::to_string(members_.live_count()) +
                                   " workers confirmed receiving broadcasts (need --min-workers " +
                                   std::to_string(min_workers_) + ")");
        return;
      }
      if (Clock::now() >= next_probe) {
        publish(probe_bytes);
        next_probe = Clock::now() + 20ms;
      }
      wire::MessageKind kind;
      if (!hub_.receive(in_, 20ms) || !decode(in_, kind)) continue;
      if (kind == wire::MessageKind::kJoin) {
        if (const auto w = on_join(in_)) acked[*w] = false;
        continue;
      }
      const auto w = members_.live_worker_of(in_.from);
      if (kind == wire::MessageKind::kHeartbeat && w && inbox_.heartbeat.worker == *w) {
        members_.seen(*w, Clock::now());
        acked[*w] = true;
      } else {
        reject("unexpected message", w,
               "a " + std::string(wire::to_string(kind)) + " during start-up", false);
      }
    }
  }

  // ---- rounds -----------------------------------------------------------------------------

  void evaluate(run::LogRow& row) {
    if (!s_.evaluation) return;
    const auto e = problem::evaluate(*s_.evaluation, server_->x(), scratch_, grad_);
    row.loss = e.loss;
    row.grad_norm_sq = e.grad_norm_sq;
    row.local_grad_norm_sq = e.local_grad_norm_sq;
  }

  [[nodiscard]] bool reached_stop(const run::LogRow& row) const {
    return s_.stop_at && row.grad_norm_sq && out_.initial_grad_norm_sq &&
           *row.grad_norm_sq <= *s_.stop_at * *out_.initial_grad_norm_sq;
  }

  // Evaluates and publishes the row whose evaluation waited for the next broadcast, into `row`
  // (server_->x() is still that row's iterate while the next round is open); true when it
  // reaches --stop-at.
  bool settle_unevaluated(run::LogRow& row) {
    if (!unevaluated_) return false;
    row = *unevaluated_;
    unevaluated_.reset();
    evaluate(row);
    publish_row(row);
    status(false);
    return reached_stop(row);
  }

  // Without --data the coordinator learns f(x^k) only from the local losses of round k's
  // replies, so row k is held back until round k has closed.
  void publish_row(const run::LogRow& r) {
    if (s_.evaluation)
      emit(r);
    else
      held_ = r;
  }

  // A finished row is written (CSV, the view) after the next broadcast has gone out, off the
  // round's critical path; checkpoints and every way out write it first.
  void emit(const run::LogRow& row) { ready_.push_back(row); }

  void write_rows() {
    std::size_t done = 0;
    try {
      if (s_.on_row)
        for (; done < ready_.size(); ++done) s_.on_row(ready_[done]);
    } catch (...) {
      ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(done));
      throw;  // what was written is not written again
    }
    ready_.clear();
  }

  // On the way out after another error, writing the pending rows or the checkpoint may fail
  // as well (the same full disk). That is reported ("error: …", which the programs print even
  // when quiet), not thrown: it must neither replace the error being handled nor keep the
  // workers from their bye.
  void on_the_way_out(const std::string& what, const std::function<void()>& step) {
    try {
      step();
    } catch (const std::exception& e) {
      info("error: " + what + " failed as well: " + e.what());
    }
  }

  void flush_on_the_way_out() {
    if (unevaluated_) {
      on_the_way_out("evaluating the row of round " + std::to_string(unevaluated_->round), [&] {
        run::LogRow row;
        (void)settle_unevaluated(row);
      });
    }
    if (ready_.empty()) return;
    const std::string rows = std::to_string(ready_.size()) + " row(s) of the log (rounds " +
                             std::to_string(ready_.front().round) + "–" +
                             std::to_string(ready_.back().round) + ")";
    on_the_way_out("writing " + rows, [&] { write_rows(); });
  }

  void rounds() {
    run::LogRow row;
    if (s_.resume) {
      tally_.restore(s_.resume->tally);
      held_ = s_.resume->held;
      out_.initial_grad_norm_sq = s_.resume->initial_grad_norm_sq;
      row = tally_.row();
    } else {
      row = tally_.row();
      evaluate(row);
      out_.initial_grad_norm_sq = row.grad_norm_sq;
      publish_row(row);
    }
    while (row.round < s_.rounds) {
      const methods::Broadcast& b = server_->begin_round();
      const auto bytes = enc_.encode(b);
      broadcast_.assign(bytes.begin(), bytes.end());
      publish(broadcast_);
      opened_ = Clock::now();
      write_rows();
      // While the workers compute: the indices of their seeded replies, which accepting a
      // reply would otherwise derive (bounded, so a huge round still reads its queue soon).
      (void)server_->prepare(kPrepareBudget, [this](uint32_t w) {
        return !members_.live(w) || (s_.absent && s_.absent(server_->round(), w));
      });
      tally_.on_broadcast(broadcast_.size(), members_.live_count());
      if (unevaluated_) {
        // x^k's row, evaluated while the workers compute round k. When it reaches --stop-at,
        // round k is taken back (the workers' replies to it are not awaited): the run ends at
        // x^k, as it would have before broadcasting.
        if (settle_unevaluated(row)) {
          server_->abandon_round();
          broadcast_.clear();
          break;
        }
        write_rows();
        opened_ = Clock::now();  // the round's deadline counts from when replies are read
      }
      std::fill(local_losses_.begin(), local_losses_.end(), std::nullopt);
      if (!collect(b.full_sync)) return;  // stopped
      if (held_) {
        // f(x^k) = (1/n) Σ f_i(x^k) when every worker evaluated its whole shard, summed in
        // worker-id order: the log must not depend on which reply came first.
        double sum = 0.0;
        bool all = true;
        for (const auto& l : local_losses_) {
          all = all && l.has_value();
          if (l) sum += *l;
        }
        if (all) held_->loss = sum / static_cast<double>(n_);
        emit(*held_);
        held_.reset();
      }
      const bool full_sync = b.full_sync;
      const uint64_t closing = b.round;
      try {
        server_->end_round();
      } catch (const methods::Diverged& e) {
        event("diverged", std::nullopt, e.what());
        throw std::runtime_error(e.what());
      }
      broadcast_.clear();
      if (full_sync && server_->last_participants() < n_)
        event("sync_partial", std::nullopt,
              "full-sync round " + std::to_string(closing) + ": g is the mean of " +
                  std::to_string(server_->last_participants()) + " of " + std::to_string(n_) +
                  " gradients (renormalised)");
      tally_.end_round(closing, full_sync, server_->last_participants());
      row = tally_.row();
      row.wall_s = elapsed();
      const bool checkpoint_due = s_.checkpoint_every > 0 && row.round % s_.checkpoint_every == 0;
      if (s_.evaluation && row.round < s_.rounds && !checkpoint_due) {
        // Evaluating f and ∇f on all the data takes as long as a few rounds of a small problem:
        // it waits until the next broadcast is out (the loop's top), off the round's path.
        unevaluated_ = row;
        continue;
      }
      evaluate(row);
      publish_row(row);
      if (checkpoint_due) checkpoint("periodic");
      status(false);
      if (reached_stop(row)) break;
    }
    if (held_) {  // the last iterate: no round has evaluated it
      emit(*held_);
      held_.reset();
    }
    write_rows();
    out_.last = row;
    if (!s_.checkpoint_dir.empty()) checkpoint("final");
    status(true);
  }

  void status(bool finished) {
    if (!s_.on_status) return;
    const auto now = Clock::now();
    if (!finished && now - last_status_ < s_.status_interval) return;
    last_status_ = now;
    FleetStatus f;
    f.time_s = elapsed();
    f.round = round_now();
    f.live = members_.live_count();
    f.min_workers = min_workers_;
    f.finished = finished;
    f.repairs = out_.repairs;
    f.resyncs = out_.resyncs;
    f.rejected = out_.rejected;
    f.config = config_;
    for (uint32_t w = 0; w < n_; ++w) {
      const Member& m = members_[w];
      WorkerStatus ws;
      ws.id = w;
      ws.state = m.state;
      ws.arch = m.arch;
      ws.answered = m.answered;
      ws.returns = m.returns;
      if (m.state != MemberState::kAbsent)
        ws.last_seen_age_s = std::chrono::duration<double>(now - m.last_seen).count();
      ws.last_latency_s = m.last_latency_s;
      ws.gone_reason = m.gone_reason;
      if (!m.user.empty())  // "<worker id> <public key>"
        ws.key_fingerprint = security::fingerprint(m.user.substr(m.user.find(' ') + 1));
      f.workers.push_back(std::move(ws));
    }
    s_.on_status(f);
  }

  // Collects the open round's replies until it can close; false when asked to stop.
  bool collect(bool full_sync) {
    const auto timeout = round_timeout(full_sync, s_.round_timeout, sync_timeout_);
    RoundClock clock(Clock::now(), timeout, s_.repair_after);
    bool repaired = false;
    std::optional<Clock::time_point> below_quorum_since;
    AwaitedCursor awaiting;
    // The clock is read once per message: the time a message arrived serves its handling and
    // the next turn's deadlines (a handling as long as a dense fold delays those by its length).
    std::optional<Clock::time_point> arrived;
    for (;;) {
      if (stopping()) return false;
      const auto now = arrived ? *arrived : Clock::now();
      arrived.reset();
      if (members_.live_count() < min_workers_) {
        if (!below_quorum_since) {
          below_quorum_since = now;
          event("quorum_lost", std::nullopt,
                std::to_string(members_.live_count()) + " live, --min-workers " +
                    std::to_string(min_workers_) + "; waiting up to " + ms(s_.quorum_timeout) +
                    " for: " + members_.missing_text());
        } else if (now - *below_quorum_since > s_.quorum_timeout) {
          throw QuorumLost(quorum_message());
        } else if (const auto exited = workers_exited()) {
          throw QuorumLost(quorum_message(*exited));
        }
      } else if (below_quorum_since) {
        below_quorum_since.reset();
        event("quorum_back", std::nullopt, std::to_string(members_.live_count()) + " live");
        clock.restart(now);
        repaired = false;
      }
      if (!below_quorum_since && !awaiting.any(*server_, members_, s_.absent)) return true;
      if (!below_quorum_since && now >= clock.deadline()) {
        for (uint32_t w : awaited(*server_, members_, s_.absent)) {
          event("deadline_miss", w, "no reply within " + ms(timeout));
          if (members_.missed(w, server_->round(), full_sync, now))
            event("gone", w, members_[w].gone_reason);
        }
        return true;
      }
      if (!repaired && now >= clock.repair_at()) {
        // PUB may have dropped the broadcast: hand it to the silent workers directly.
        repaired = true;
        for (uint32_t w : awaited(*server_, members_, s_.absent)) {
          send(w, broadcast_);
          if (!members_.live(w)) continue;
          tally_.on_broadcast(broadcast_.size(), 1);
          ++out_.repairs;
          event("repair", w, "broadcast sent again directly");
        }
        continue;  // a send may have found a worker gone: the round may be complete now
      }
      heartbeat_tick(now);
      auto until =
          below_quorum_since ? now + s_.heartbeat : std::min(clock.deadline(), now + s_.heartbeat);
      if (!repaired) until = std::min(until, clock.repair_at());
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
      wire::MessageKind kind;
      if (!hub_.receive(in_, std::clamp(left, 1ms, s_.heartbeat))) continue;
      arrived = Clock::now();
      if (decode(in_, kind)) handle(kind, *arrived);
    }
  }

  // "; refused: worker 0 has d = 74 ..., worker 1 ..." (the reasons the missing were turned
  // away, so that the coordinator's own error says what to fix).
  std::string refusal_text() const {
    std::string out;
    for (const auto& [w, why] : refusals_)
      if (w >= n_ || !members_.live(w)) out += (out.empty() ? "; refused: " : "; ") + why;
    return out;
  }

  // `exited`: why the wait ended before the quorum timeout.
  std::string quorum_message(const std::optional<std::string>& exited = std::nullopt) const {
    std::string detail;
    for (uint32_t w = 0; w < n_; ++w) {
      if (members_.live(w)) continue;
      const Member& m = members_[w];
      detail += (detail.empty() ? "" : "; ") + std::to_string(w) + ": " +
                (m.state == MemberState::kAbsent ? std::string("never joined") : m.gone_reason);
    }
    return "only " + std::to_string(members_.live_count()) + " of " + std::to_string(n_) +
           " workers live " + (exited ? "and " + *exited : "for " + ms(s_.quorum_timeout)) +
           " (--min-workers " + std::to_string(min_workers_) + ") at round " +
           std::to_string(round_now()) + "; missing workers " + members_.missing_text() + " (" +
           detail + ")" + refusal_text();
  }

  // One message during a round.
  void handle(wire::MessageKind kind, Clock::time_point now) {
    if (kind == wire::MessageKind::kJoin) {
      (void)on_join(in_);
      return;
    }
    auto w = members_.live_worker_of(in_.from);
    if (!w) w = revive(in_.from);
    if (!w) {
      reject("unknown peer", std::nullopt, std::string(wire::to_string(kind)));
      return;
    }
    // A peer speaks only for the worker it joined as, and with keys only with that id's key.
    if (const uint32_t claimed = claimed_id(kind); claimed != *w) {
      reject("impersonation", *w,
             "its peer sent a " + std::string(wire::to_string(kind)) + " as worker " +
                 std::to_string(claimed));
      return;
    }
    if (!authenticated_as(*w)) return;
    members_.seen(*w, now);
    switch (kind) {
      case wire::MessageKind::kReply: {
        methods::Reply& r = inbox_.reply;  // accept_and_recycle takes its buffers
        // The round's gate: stale, future, duplicate or unasked replies never reach the method.
        if (r.round < server_->round()) {
          reject("late reply", *w, "", false);
          // The reply to the first round it missed: say by how much, so that a deadline too
          // short for a slow link or a large d shows as such, not only as misses.
          if (const auto late = members_.late(*w, r.round, now)) {
            const auto& [miss, after] = *late;
            event("late_reply", *w,
                  "the reply to round " + std::to_string(r.round) + " came " +
                      ms(std::chrono::duration_cast<std::chrono::milliseconds>(after)) +
                      " after its deadline; " +
                      (miss.full_sync ? "--sync-timeout-ms (full syncs)"
                                      : "--round-timeout-ms (compressed rounds)") +
                      " must cover this worker's replies");
          }
          break;
        }
        if (r.round > server_->round()) {
          reject("future round", *w, "round " + std::to_string(r.round));
          break;
        }
        if (!server_->awaiting(*w)) {
          reject(server_->asked(*w) ? "duplicate" : "not asked", *w,
                 "round " + std::to_string(r.round));
          break;
        }
        const std::size_t values_sent = r.payload.value_count();  // before the buffers go
        try {
          server_->accept_and_recycle(r);
        } catch (const methods::ProtocolError& e) {
          reject("bad payload", *w, e.what());
          break;
        }
        members_.answered(*w, now, std::chrono::duration<double>(now - opened_).count());
        tally_.on_reply(values_sent, r.oracle_calls, in_size_);
        local_losses_[*w] = r.local_loss;
        break;
      }
      case wire::MessageKind::kResyncRequest:
        ++out_.resyncs;
        event("resync", *w,
              "had round " + std::to_string(inbox_.resync_request.have_round) + ", got round " +
                  std::to_string(inbox_.resync_request.want_round));
        send(*w, enc_.encode(server_->snapshot(*w)));
        break;
      case wire::MessageKind::kHeartbeat:
        break;
      case wire::MessageKind::kBye: {
        const std::string& why = inbox_.bye.reason;
        members_.mark_gone(*w, "left: " + why);
        event(why.rfind("error", 0) == 0 ? "worker_error" : "leave", *w, why);
        break;
      }
      default:
        reject("unexpected message", *w, "a " + std::string(wire::to_string(kind)));
        break;
    }
  }

  // The worker id a message says it comes from.
  uint32_t claimed_id(wire::MessageKind kind) const {
    switch (kind) {
      case wire::MessageKind::kJoin:
        return inbox_.join.worker_id;
      case wire::MessageKind::kReply:
        return inbox_.reply.worker;
      case wire::MessageKind::kResyncRequest:
        return inbox_.resync_request.worker;
      case wire::MessageKind::kHeartbeat:
        return inbox_.heartbeat.worker;
      case wire::MessageKind::kBye:
        return inbox_.bye.worker;
      default:
        return wire::kCoordinatorId;  // workers send nothing else
    }
  }

  // With keys: the message's authenticated identity (its key, checked at the handshake) must
  // still be bound to worker w. Without keys every message passes.
  bool authenticated_as(uint32_t w) {
    if (!s_.identify) return true;
    const auto id = s_.identify(in_.user);
    if (id == w) return true;
    reject(id ? "impersonation" : "revoked key", w,
           id ? "the key of worker " + std::to_string(*id) + " spoke as worker " + std::to_string(w)
              : "a key no longer allowed");
    return false;
  }

  // A message from the peer of a worker marked gone (a paused process, a link that came
  // back): the worker is alive after all. It gets a snapshot and takes part again.
  std::optional<uint32_t> revive(const transport::Peer& peer) {
    for (uint32_t w = 0; w < n_; ++w) {
      const Member& m = members_[w];
      if (m.state != MemberState::kGone || m.peer != peer) continue;
      if (m.gone_reason.rfind("left", 0) == 0) return std::nullopt;      // said bye: must rejoin
      if (s_.identify && s_.identify(m.user) != w) return std::nullopt;  // its key was revoked
      members_.admit(w, peer, m.arch, Clock::now(), m.user);             // keeps its key identity
      event("returned", w, "heard from again");
      send(w, enc_.encode(server_->snapshot(w)));
      if (server_->awaiting(w) && !broadcast_.empty()) send(w, broadcast_);
      return w;
    }
    return std::nullopt;
  }

  // ---- checkpoints and the end --------------------------------------------------------------

  void checkpoint(const std::string& why) {
    write_rows();  // the log position saved below must include them
    if (s_.checkpoint_dir.empty() || !server_ || server_->is_open()) return;
    if (last_checkpoint_ == server_->round()) return;  // this state is on disk already
    last_checkpoint_ = server_->round();
    Checkpoint c;
    c.config = config_;
    c.settings = resume_settings(s_);
    c.server = server_->save();
    c.tally = tally_.state();
    c.held = held_;
    c.initial_grad_norm_sq = out_.initial_grad_norm_sq;
    if (s_.log_position) {
      const LogPosition p = s_.log_position();
      c.log_rows = p.rows;
      c.log_bytes = p.bytes;
      c.events_bytes = p.events_bytes;
    }
    c.wall_s = elapsed();
    for (uint32_t w = 0; w < n_; ++w)
      if (members_[w].state != MemberState::kAbsent) c.members.push_back(w);
    const auto file = write_checkpoint(s_.checkpoint_dir, c);
    event("checkpoint", std::nullopt, why + ": " + file.string());
  }

  void goodbye(const std::string& reason) {
    // The decoder refuses strings longer than kMaxStringBytes: cut, never lose the bye.
    const wire::Bye bye{wire::kCoordinatorId, reason.substr(0, wire::kMaxStringBytes)};
    const auto bytes = enc_.encode(bye);
    std::vector<uint8_t> copy(bytes.begin(), bytes.end());
    hub_.publish(copy);
    for (uint32_t w = 0; w < n_; ++w)
      if (members_[w].state != MemberState::kAbsent) hub_.send(members_[w].peer, copy);
  }

  transport::Hub& hub_;
  const CoordinatorSettings& s_;
  uint32_t n_;
  uint32_t min_workers_;
  std::chrono::milliseconds sync_timeout_;
  wire::Encoder enc_;
  wire::Decoder dec_;
  wire::Inbox inbox_;
  transport::Incoming in_;
  std::size_t in_size_ = 0;  // bytes of the last message decoded from in_
  Membership members_;
  std::vector<Smoothness> smoothness_;               // as each worker reported it
  std::vector<std::optional<double>> local_losses_;  // of the open round's accepted replies
  std::optional<uint64_t> dim_, rows_;
  std::optional<std::string> model_;  // the description of the first admitted worker
  bool welcomed_ = false;
  std::vector<uint8_t> broadcast_;  // the open round's, for repairs and late joiners
  // The last closed round's row while its evaluation waits for the next broadcast (--data).
  std::optional<run::LogRow> unevaluated_;
  methods::MethodConfig config_;
  std::unique_ptr<methods::ServerHalf> server_;
  run::Tally tally_{n_};
  std::optional<run::LogRow> held_;
  std::vector<run::LogRow> ready_;  // reserved in the constructor: a round must not allocate
  Eigen::VectorXd scratch_, grad_;
  CoordinatorOutcome out_;
  Clock::time_point start_;
  Clock::time_point last_publish_{};
  Clock::time_point last_ping_{};
  std::map<uint32_t, std::string> refusals_;  // the last refusal of each worker id, for errors
  Clock::time_point opened_{};                // when the open round's broadcast went out
  Clock::time_point last_status_{};
  std::optional<uint64_t> last_checkpoint_;  // round of the last checkpoint written
};

}  // namespace

std::string model_difference(const std::string& worker, const std::string& run) {
  // Descriptions are usually "name key=value key=value ...": name the keys that differ.
  auto words = [](const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  };
  const auto a = words(worker), b = words(run);
  std::string diff;
  if (a.size() == b.size()) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i]) diff += (diff.empty() ? "" : ", ") + a[i] + " (run: " + b[i] + ")";
    if (!diff.empty()) return diff;
  }
  return "'" + worker + "' (run: '" + run + "')";
}

std::string resume_settings(const CoordinatorSettings& s) {
  std::ostringstream o;
  const methods::MethodConfig& c = s.base;
  o << "method=" << methods::to_string(c.method) << '\n'
    << "compressor=" << c.compressor << '\n'
    << "workers=" << c.workers << '\n'
    << "seed=" << c.seed << '\n'
    << "batch=" << c.batch << '\n'
    << "online_batch=" << c.online_batch << '\n'
    << "clients=" << c.clients << '\n'
    << "gamma=" << (s.choices.gamma ? run::exact(*s.choices.gamma) : "auto") << '\n'
    << "p=" << (s.choices.p ? run::exact(*s.choices.p) : "auto") << '\n'
    << "init_scale=" << run::exact(c.init_scale) << '\n'
    << "model=" << s.model << '\n';
  // Written only when not the default, so that checkpoints of earlier versions still resume.
  if (s.choices.smoothness == methods::SmoothnessBound::kRowMax) o << "smoothness=row-max\n";
  if (c.batch_sampling != methods::BatchSampling::kWithReplacement)
    o << "batch_sampling=" << methods::to_string(c.batch_sampling) << '\n';
  return o.str();
}

void check_resume(const CoordinatorSettings& settings) {
  if (settings.resume) {
    const std::string now = resume_settings(settings);
    if (now != settings.resume->settings) {
      // Name every setting that differs.
      std::istringstream a(settings.resume->settings), b(now);
      std::string la, lb, diff;
      auto add = [&diff](const std::string& item) { diff += (diff.empty() ? "" : ", ") + item; };
      for (;;) {
        const bool ha = static_cast<bool>(std::getline(a, la));
        const bool hb = static_cast<bool>(std::getline(b, lb));
        if (!ha && !hb) break;
        if (ha && hb) {
          if (la != lb) add(lb + " (checkpoint: " + la + ")");
        } else {
          add(ha ? la.substr(0, la.find('=')) + "=(default) (checkpoint: " + la + ")"
                 : lb + " (checkpoint: none)");
        }
      }
      throw std::runtime_error("--resume: the flags differ from the checkpointed run's: " +
                               (diff.empty() ? std::string("format") : diff));
    }
  }
}

CoordinatorOutcome run_coordinator(transport::Hub& hub, const CoordinatorSettings& settings) {
  check_resume(settings);
  return Coordinator(hub, settings).run();
}

}  // namespace marina::drivers
