#include "marina/drivers/worker.h"

#include <sys/utsname.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "marina/methods/method.h"
#include "marina/problem/objective.h"
#include "marina/wire/codec.h"

namespace marina::drivers {
namespace {

using namespace std::chrono_literals;
using transport::Clock;

std::string machine() {
  utsname u{};
  return uname(&u) == 0 ? std::string(u.machine) : std::string();
}

class Worker {
 public:
  Worker(transport::Link& link, WorkerSettings s)
      : link_(link),
        s_(std::move(s)),
        enc_(0),
        dec_(wire::Limits{wire::max_message_bytes(s_.shard.dim(), 1), s_.shard.dim(), 0}) {}

  WorkerOutcome run() {
    join();
    serve();
    return out_;
  }

 private:
  void info(const std::string& line) const {
    if (s_.on_info) s_.on_info(line);
  }

  // Decodes one message; false (and counted) when malformed or of another session.
  bool decode(wire::MessageKind& kind) {
    try {
      kind = dec_.decode(bytes_, inbox_);
    } catch (const wire::DecodeError& e) {
      ++out_.rejected;
      info(std::string("ignored a malformed message: ") + e.what());
      return false;
    }
    if (session_ && inbox_.session != *session_) {
      ++out_.rejected;
      return false;
    }
    return true;
  }

  void join() {
    wire::Join j;
    j.worker_id = s_.id;
    j.shard_rows = s_.shard.rows();
    j.dim = s_.shard.dim();
    j.arch = machine();
    j.stats = problem::shard_stats(s_.shard);
    j.bias = s_.bias;
    j.shuffle_seed = s_.shuffle_seed;
    const auto bytes = enc_.encode(j);
    join_bytes_.assign(bytes.begin(), bytes.end());

    const auto deadline = Clock::now() + s_.connect_timeout;
    auto backoff = 100ms;
    for (;;) {
      link_.send(join_bytes_);
      const auto until = Clock::now() + backoff;
      while (Clock::now() < until) {
        wire::MessageKind kind;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (!link_.receive(bytes_, std::max(left, 1ms)) || !decode(kind)) continue;
        if (kind == wire::MessageKind::kBye)
          throw std::runtime_error("coordinator: " + inbox_.bye.reason);
        if (kind == wire::MessageKind::kWelcome && inbox_.welcome.worker_id == s_.id) {
          start(inbox_.welcome, inbox_.session);
          return;
        }
      }
      if (Clock::now() > deadline)
        throw std::runtime_error("no coordinator answered within " +
                                 std::to_string(s_.connect_timeout.count()) + " ms");
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  void start(const wire::Welcome& w, uint64_t session) {
    const auto& c = w.config;
    if (c.dim != s_.shard.dim() || c.workers == 0 || s_.id >= c.workers)
      throw std::runtime_error("welcome does not fit this worker (d = " + std::to_string(c.dim) +
                               ", n = " + std::to_string(c.workers) + ")");
    if (s_.shard_count && *s_.shard_count != c.workers)
      throw std::runtime_error("the coordinator runs n = " + std::to_string(c.workers) +
                               " workers but this worker holds a shard of a split into " +
                               std::to_string(*s_.shard_count) + " (--shard I/N)");
    session_ = session;
    enc_.set_session(session);
    dec_.set_limits(wire::Limits{wire::max_message_bytes(c.dim, c.workers), c.dim, c.workers});
    objective_ = std::make_unique<problem::Objective>(std::move(s_.shard), w.loss, w.l2);
    half_ = methods::make_worker(c, s_.id, *objective_);
    info("welcomed: " + std::string(methods::to_string(c.method)) + " with " + c.compressor +
         ", n = " + std::to_string(c.workers) + ", d = " + std::to_string(c.dim));
  }

  void serve() {
    auto last_heard = Clock::now();
    for (;;) {
      if (!link_.receive(bytes_, 500ms)) {
        if (Clock::now() - last_heard > s_.idle_timeout)
          throw std::runtime_error("coordinator silent for " +
                                   std::to_string(s_.idle_timeout.count()) + " ms");
        continue;
      }
      last_heard = Clock::now();
      wire::MessageKind kind;
      if (!decode(kind)) continue;
      switch (kind) {
        case wire::MessageKind::kHeartbeat:  // start-up probe: confirm the subscription
          link_.send(enc_.encode(wire::Heartbeat{s_.id, half_->next_round()}));
          break;
        case wire::MessageKind::kBroadcast:
          handle(inbox_.broadcast);
          break;
        case wire::MessageKind::kResyncResponse:
          if (pending_ && inbox_.resync.round == pending_->round) {
            try {
              half_->restore(inbox_.resync);
              ++out_.resyncs;
              const methods::Broadcast b = std::move(*pending_);
              pending_.reset();
              handle(b);
            } catch (const methods::ProtocolError& e) {
              ++out_.rejected;
              info(std::string("bad snapshot: ") + e.what());
            }
          }
          break;
        case wire::MessageKind::kBye:
          out_.bye_reason = inbox_.bye.reason;
          return;
        case wire::MessageKind::kWelcome:
          break;  // a repeated welcome (our join was answered twice)
        default:
          ++out_.rejected;
          break;
      }
    }
  }

  void handle(const methods::Broadcast& b) {
    try {
      if (half_->on_broadcast(b, reply_)) {
        const auto bytes = enc_.encode(reply_);
        last_reply_.assign(bytes.begin(), bytes.end());
        last_reply_round_ = b.round;
        link_.send(last_reply_);
        ++out_.replies;
      }
      ++out_.rounds;
    } catch (const methods::OutOfSync& e) {
      // Broadcasts were lost: ask for the server's state at this round, keep the broadcast.
      pending_ = b;
      link_.send(enc_.encode(wire::ResyncRequest{s_.id, e.expected, e.got}));
      info(std::string(e.what()) + "; asking for a resync");
    } catch (const methods::ProtocolError& e) {
      // A repeat of a round already answered (a repair crossing our reply) gets the same
      // reply again; anything else stale or malformed is ignored.
      if (b.round == last_reply_round_ && !last_reply_.empty()) {
        link_.send(last_reply_);
      } else {
        ++out_.rejected;
      }
    }
  }

  transport::Link& link_;
  WorkerSettings s_;
  wire::Encoder enc_;
  wire::Decoder dec_;
  wire::Inbox inbox_;
  std::vector<uint8_t> bytes_, join_bytes_, last_reply_;
  std::optional<uint64_t> session_;
  std::unique_ptr<problem::Objective> objective_;
  std::unique_ptr<methods::WorkerHalf> half_;
  methods::Reply reply_;
  std::optional<methods::Broadcast> pending_;
  uint64_t last_reply_round_ = UINT64_MAX;
  WorkerOutcome out_;
};

}  // namespace

WorkerOutcome run_worker(transport::Link& link, WorkerSettings settings) {
  return Worker(link, std::move(settings)).run();
}

}  // namespace marina::drivers
