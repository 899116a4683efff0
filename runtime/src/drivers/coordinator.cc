#include "marina/drivers/coordinator.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "marina/methods/method.h"
#include "marina/wire/codec.h"

namespace marina::drivers {
namespace {

using namespace std::chrono_literals;
using transport::Clock;

class Coordinator {
 public:
  Coordinator(transport::Hub& hub, const CoordinatorSettings& s)
      : hub_(hub),
        s_(s),
        n_(s.base.workers),
        enc_(s.session),
        dec_(wire::Limits{wire::max_message_bytes(1, 1), 0, s.base.workers}),
        peers_(n_),
        stats_(n_),
        acked_(n_, false) {}

  CoordinatorOutcome run() {
    try {
      gather_joins();
      welcome();
      confirm_subscriptions();
      rounds();
    } catch (const std::exception& e) {
      goodbye(std::string("coordinator stopped: ") + e.what());
      throw;
    }
    goodbye("run complete");
    return out_;
  }

 private:
  void info(const std::string& line) const {
    if (s_.on_info) s_.on_info(line);
  }

  // Decodes one incoming message; false (and counted) when it is malformed or foreign.
  bool decode(const transport::Incoming& in, wire::MessageKind& kind) {
    try {
      kind = dec_.decode(in.bytes, inbox_);
    } catch (const wire::DecodeError& e) {
      ++out_.rejected;
      info("rejected a message from peer '" + in.from + "': " + e.what());
      return false;
    }
    if (kind != wire::MessageKind::kJoin && inbox_.session != s_.session) {
      ++out_.rejected;
      return false;
    }
    return true;
  }

  // The worker id a peer joined as, if it did.
  std::optional<uint32_t> worker_of(const transport::Peer& peer) const {
    for (uint32_t w = 0; w < n_; ++w)
      if (peers_[w] == peer) return w;
    return std::nullopt;
  }

  void gather_joins() {
    const auto deadline = Clock::now() + s_.join_timeout;
    uint32_t joined = 0;
    std::optional<uint64_t> dim;
    while (joined < n_) {
      if (Clock::now() > deadline)
        throw std::runtime_error("only " + std::to_string(joined) + " of " + std::to_string(n_) +
                                 " workers joined within " +
                                 std::to_string(s_.join_timeout.count()) + " ms");
      wire::MessageKind kind;
      if (!hub_.receive(in_, 100ms) || !decode(in_, kind)) continue;
      if (kind != wire::MessageKind::kJoin) {  // nothing but joins makes sense yet
        ++out_.rejected;
        continue;
      }
      const wire::Join& j = inbox_.join;
      const std::string who = "worker " + std::to_string(j.worker_id);
      std::string problem;
      if (j.worker_id >= n_)
        problem = who + " is out of range (--workers " + std::to_string(n_) + ")";
      else if (dim && j.dim != *dim)
        problem =
            who + " has d = " + std::to_string(j.dim) + ", others d = " + std::to_string(*dim);
      else if (j.bias != s_.bias)
        problem = who + (j.bias ? " uses --bias" : " does not use --bias") + ", the coordinator " +
                  (s_.bias ? "does" : "does not");
      else if (j.shuffle_seed != s_.shuffle_seed)
        problem = who + " shuffles its rows differently (--shuffle-seed must match)";
      if (!problem.empty()) {
        info("refused: " + problem);
        const std::string why = "refused: " + problem;
        hub_.send(in_.from, enc_.encode(wire::Bye{wire::kCoordinatorId,
                                                  why.substr(0, wire::kMaxStringBytes)}));
        continue;
      }
      dim = j.dim;
      if (peers_[j.worker_id].empty()) ++joined;
      peers_[j.worker_id] = in_.from;  // a restarted worker replaces its earlier self
      stats_[j.worker_id] = j.stats;
      info(who + " joined (" + std::to_string(j.stats.rows) + " rows, " +
           (j.arch.empty() ? std::string("?") : j.arch) + ")");
    }
    const uint64_t rows = stats_.front().rows;
    if (s_.evaluation && !s_.evaluation->empty() && s_.evaluation->front().rows() != rows)
      throw std::runtime_error("workers hold " + std::to_string(rows) + " rows each, but --data " +
                               "split into " + std::to_string(n_) + " shards gives " +
                               std::to_string(s_.evaluation->front().rows()) +
                               ": the workers use another file or another --shard I/N");
    for (const auto& st : stats_)
      if (st.rows != rows)
        throw std::runtime_error("workers hold shards of different sizes (" + std::to_string(rows) +
                                 " and " + std::to_string(st.rows) +
                                 " rows): all must use the same --shard I/N of one file");
    std::vector<problem::Smoothness> sm;
    for (const auto& st : stats_) sm.push_back(problem::smoothness(st, s_.loss, s_.l2));
    methods::MethodConfig base = s_.base;
    base.dim = *dim;
    std::string why;
    config_ = methods::resolve(base, s_.choices, methods::combine(sm, rows), &why);
    out_.config = config_;
    info(why);
    dec_.set_limits(wire::Limits{wire::max_message_bytes(config_.dim, n_), config_.dim, n_});
  }

  void welcome() {
    for (uint32_t w = 0; w < n_; ++w) hub_.send(peers_[w], enc_.encode(welcome_for(w)));
  }

  void confirm_subscriptions() {
    const auto deadline = Clock::now() + s_.join_timeout;
    uint32_t confirmed = 0;
    const wire::Heartbeat probe{wire::kCoordinatorId, 0};
    auto next_probe = Clock::now();
    while (confirmed < n_) {
      if (Clock::now() > deadline)
        throw std::runtime_error(std::to_string(n_ - confirmed) +
                                 " workers never confirmed receiving broadcasts");
      if (Clock::now() >= next_probe) {
        hub_.publish(enc_.encode(probe));
        next_probe = Clock::now() + 20ms;
      }
      wire::MessageKind kind;
      if (!hub_.receive(in_, 20ms) || !decode(in_, kind)) continue;
      const auto w = worker_of(in_.from);
      if (kind == wire::MessageKind::kJoin && w) {
        hub_.send(in_.from, enc_.encode(welcome_for(*w)));  // its Welcome crossed a restart
      } else if (kind == wire::MessageKind::kHeartbeat && w && inbox_.heartbeat.worker == *w) {
        if (!acked_[*w]) {
          acked_[*w] = true;
          ++confirmed;
        }
      } else {
        ++out_.rejected;
      }
    }
  }

  wire::Welcome welcome_for(uint32_t w) const {
    wire::Welcome msg;
    msg.worker_id = w;
    msg.config = config_;
    msg.loss = s_.loss;
    msg.l2 = s_.l2;
    return msg;
  }

  void rounds() {
    auto server = methods::make_server(config_);
    run::Tally tally(n_);
    Eigen::VectorXd scratch, grad;
    const auto evaluate = [&](run::LogRow& row) {
      if (!s_.evaluation) return;
      const auto e = problem::evaluate(*s_.evaluation, server->x(), scratch, grad);
      row.loss = e.loss;
      row.grad_norm_sq = e.grad_norm_sq;
    };
    const auto start = Clock::now();
    // Without --data the coordinator learns f(x^k) only from the local losses of round k's
    // replies, so row k is held back until round k has closed.
    std::optional<run::LogRow> held;
    const auto publish_row = [&](const run::LogRow& r) {
      if (s_.evaluation)
        emit(r);
      else
        held = r;
    };
    run::LogRow row = tally.row();
    evaluate(row);
    out_.initial_grad_norm_sq = row.grad_norm_sq;
    publish_row(row);
    while (row.round < s_.rounds) {
      const methods::Broadcast& b = server->begin_round();
      const auto bytes = enc_.encode(b);
      broadcast_.assign(bytes.begin(), bytes.end());
      hub_.publish(broadcast_);
      tally.on_broadcast(broadcast_.size(), n_);
      local_loss_sum_ = 0.0;
      local_loss_count_ = 0;
      collect(*server, tally, b.round);
      if (held) {
        // f(x^k) = (1/n) Σ f_i(x^k) when every worker evaluated its whole shard.
        if (local_loss_count_ == n_) held->loss = local_loss_sum_ / static_cast<double>(n_);
        emit(*held);
        held.reset();
      }
      const bool full_sync = b.full_sync;
      server->end_round();
      tally.end_round(b.round, full_sync, server->last_participants());
      row = tally.row();
      row.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
      evaluate(row);
      publish_row(row);
      if (s_.stop_at && row.grad_norm_sq && out_.initial_grad_norm_sq &&
          *row.grad_norm_sq <= *s_.stop_at * *out_.initial_grad_norm_sq)
        break;
    }
    if (held) emit(*held);  // the last iterate: no round has evaluated it
    out_.last = row;
  }

  void emit(const run::LogRow& row) {
    if (s_.on_row) s_.on_row(row);
  }

  void collect(methods::ServerHalf& server, run::Tally& tally, uint64_t round) {
    int repairs = 0;
    auto deadline = Clock::now() + s_.round_timeout;
    while (!server.complete()) {
      const auto now = Clock::now();
      if (now >= deadline) {
        const auto missing = server.missing();
        std::string ids;
        for (uint32_t w : missing) ids += (ids.empty() ? "" : ", ") + std::to_string(w);
        if (repairs == s_.max_repairs)
          throw std::runtime_error("round " + std::to_string(round) + ": worker(s) " + ids +
                                   " did not reply within " +
                                   std::to_string(s_.round_timeout.count()) + " ms, " +
                                   std::to_string(repairs) + " repairs");
        // PUB may have dropped the broadcast: hand it to the missing workers directly.
        for (uint32_t w : missing) {
          hub_.send(peers_[w], broadcast_);
          tally.on_broadcast(broadcast_.size(), 1);
        }
        ++repairs;
        ++out_.repairs;
        info("round " + std::to_string(round) + ": repaired the broadcast to worker(s) " + ids);
        deadline = Clock::now() + s_.round_timeout;
        continue;
      }
      wire::MessageKind kind;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      if (!hub_.receive(in_, std::max(left, 1ms)) || !decode(in_, kind)) continue;
      const auto w = worker_of(in_.from);
      if (!w) {
        ++out_.rejected;
        continue;
      }
      switch (kind) {
        case wire::MessageKind::kReply: {
          if (inbox_.reply.worker != *w) {  // a peer may only speak for itself
            ++out_.rejected;
            info("peer of worker " + std::to_string(*w) + " sent a reply as worker " +
                 std::to_string(inbox_.reply.worker));
            break;
          }
          try {
            server.accept(inbox_.reply);
            tally.on_reply(inbox_.reply, in_.bytes.size());
            if (inbox_.reply.local_loss) {
              local_loss_sum_ += *inbox_.reply.local_loss;
              ++local_loss_count_;
            }
          } catch (const methods::ProtocolError& e) {
            ++out_.rejected;
            info(std::string("ignored: ") + e.what());
          }
          break;
        }
        case wire::MessageKind::kResyncRequest:
          ++out_.resyncs;
          hub_.send(in_.from, enc_.encode(server.snapshot()));
          break;
        case wire::MessageKind::kJoin:  // a worker restarted mid-run: welcome it back
          hub_.send(in_.from, enc_.encode(welcome_for(*w)));
          break;
        default:
          break;
      }
    }
  }

  void goodbye(const std::string& reason) {
    // The decoder refuses strings longer than kMaxStringBytes: cut, never lose the bye.
    const wire::Bye bye{wire::kCoordinatorId, reason.substr(0, wire::kMaxStringBytes)};
    const auto bytes = enc_.encode(bye);
    std::vector<uint8_t> copy(bytes.begin(), bytes.end());
    hub_.publish(copy);
    for (const auto& p : peers_)
      if (!p.empty()) hub_.send(p, copy);
  }

  transport::Hub& hub_;
  const CoordinatorSettings& s_;
  uint32_t n_;
  wire::Encoder enc_;
  wire::Decoder dec_;
  wire::Inbox inbox_;
  transport::Incoming in_;
  std::vector<transport::Peer> peers_;
  std::vector<problem::ShardStats> stats_;
  std::vector<bool> acked_;
  std::vector<uint8_t> broadcast_;
  methods::MethodConfig config_;
  CoordinatorOutcome out_;
  double local_loss_sum_ = 0.0;  // of the open round's accepted replies
  uint32_t local_loss_count_ = 0;
};

}  // namespace

CoordinatorOutcome run_coordinator(transport::Hub& hub, const CoordinatorSettings& settings) {
  return Coordinator(hub, settings).run();
}

}  // namespace marina::drivers
