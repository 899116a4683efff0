#include "marina/drivers/worker.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "marina/methods/method.h"
#include "marina/util/finite.h"
#include "marina/util/heap.h"
#include "marina/wire/codec.h"

namespace marina::drivers {
namespace {

using namespace std::chrono_literals;
using transport::Clock;

std::string machine() {
  utsname u{};
  return uname(&u) == 0 ? std::string(u.machine) : std::string();
}

// Whether a reply may go out. A compressor has checked what it produced (Payload::finite); a
// full-sync round's gradient goes out uncompressed and is checked here, at the speed of
// reading it.
bool finite(const methods::Reply& r) {
  const auto& p = r.payload;
  if (!p.finite && (util::find_non_finite(p.dense.data(), p.dense.size()) ||
                    util::find_non_finite(p.values.data(), p.values.size())))
    return false;
  return std::isfinite(p.norm) && (!r.local_loss || std::isfinite(*r.local_loss));
}

class Worker {
 public:
  Worker(transport::Link& link, WorkerSettings s)
      : link_(link),
        s_(std::move(s)),
        enc_(0),
        dec_(wire::Limits{wire::max_message_bytes(model().dim(), 1), model().dim(), 0}) {}

  WorkerOutcome run() {
    prepare_join();
    if (!join(s_.connect_timeout, "no coordinator answered within ")) return finish();
    serve();
    return finish();
  }

 private:
  Model& model() const {
    if (!s_.model) throw std::invalid_argument("run_worker: no model");
    return *s_.model;
  }

  void info(const std::string& line) const {
    if (s_.on_info) s_.on_info(line);
  }

  bool stopping() const { return s_.stop && s_.stop->load(); }

  // Reports progress at most every 0.5 s, or now when `force`; `t` is the caller's reading of
  // the clock (the serving loop reads it once per message).
  void progress(Clock::time_point t, bool force = false) {
    if (!s_.on_progress) return;
    if (!force && t - last_progress_ < 500ms) return;
    last_progress_ = t;
    s_.on_progress(
        WorkerProgress{joined_, half_ ? half_->next_round() : 0, out_.replies, out_.rejoins});
  }

  WorkerOutcome finish() {
    if (half_) {
      out_.recovery_oracle_calls = half_->recovery_oracle_calls();
      out_.x.assign(half_->x().data(), half_->x().data() + half_->x().size());
    }
    return std::move(out_);
  }

  // Decodes one message; false (and counted) when malformed. An update's vectors stay in the
  // received buffer, which moves into inbox_ (bytes_ gets its previous one): no copy of d
  // doubles per full-sync round, nor of a sparse update's indices and values.
  bool decode(wire::MessageKind& kind) {
    try {
      kind = dec_.decode_taking(bytes_, inbox_);
    } catch (const wire::VersionError& e) {
      // While joining, the coordinator of another release: stop rather than retry forever.
      if (!session_)
        throw std::runtime_error(std::string("the coordinator runs another release: ") + e.what());
      ++out_.rejected;
      return false;
    } catch (const wire::DecodeError& e) {
      ++out_.rejected;
      info(std::string("ignored a malformed message: ") + e.what());
      return false;
    }
    return true;
  }

  void prepare_join() {
    wire::Join j;
    j.worker_id = s_.id;
    Model& f = model();
    j.shard_rows = f.samples();
    j.dim = f.dim();
    j.arch = machine();
    j.smoothness = f.smoothness();
    j.model = f.description();
    if (j.model.size() > wire::kMaxStringBytes)
      throw std::invalid_argument("the model's description has " + std::to_string(j.model.size()) +
                                  " bytes; at most " + std::to_string(wire::kMaxStringBytes) +
                                  " cross the wire");
    for (double v : {j.smoothness.L, j.smoothness.L_mean_sq, j.smoothness.L_max})
      if (!std::isfinite(v) || v < 0)
        throw std::invalid_argument("the model's smoothness constants must be finite and >= 0");
    j.shard_count = s_.shard_count.value_or(0);
    const auto bytes = enc_.encode(j);
    join_bytes_.assign(bytes.begin(), bytes.end());
  }

  void leave(const std::string& reason) {
    link_.send(enc_.encode(wire::Bye{s_.id, reason.substr(0, wire::kMaxStringBytes)}));
  }

  static constexpr std::chrono::seconds kSayWaiting{5};

  // Sends Join with backoff (100 ms doubling to 2 s) until a Welcome arrives; false when
  // stopped or when the run ended meanwhile. Throws after `timeout` or on a refusal.
  bool join(std::chrono::milliseconds timeout, const std::string& what) {
    const auto started = Clock::now();
    const auto deadline = started + timeout;
    auto backoff = 100ms;
    bool said_waiting = false;  // silence would look like a hang
    for (;;) {
      if (!said_waiting && Clock::now() - started >= kSayWaiting) {
        said_waiting = true;
        info("no welcome after " + std::to_string(kSayWaiting.count()) +
             " s; still asking (is the coordinator up, at that address, and not behind a "
             "firewall?)");
      }
      link_.send(join_bytes_);
      const auto until = Clock::now() + backoff;
      for (auto now = Clock::now(); now < until; now = Clock::now()) {
        progress(now);
        if (stopping()) {
          out_.left = true;
          return false;
        }
        wire::MessageKind kind;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
        if (!link_.receive(bytes_, std::clamp(left, 1ms, 200ms)) || !decode(kind)) continue;
        if (kind == wire::MessageKind::kBye) {
          if (inbox_.bye.reason.rfind("refused", 0) == 0 || !session_)
            throw std::runtime_error("coordinator: " + inbox_.bye.reason);
          if (inbox_.session == *session_) {  // our run ended while we were away
            out_.bye_reason = inbox_.bye.reason;
            return false;
          }
          continue;  // a bye of another session is not ours
        }
        if (kind == wire::MessageKind::kWelcome && inbox_.welcome.worker_id == s_.id) {
          start(inbox_.welcome, inbox_.session);
          joined_ = true;
          progress(Clock::now(), true);
          return true;
        }
      }
      if (Clock::now() > deadline)
        throw std::runtime_error(what + std::to_string(timeout.count()) + " ms");
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  void start(const wire::Welcome& w, uint64_t session) {
    const auto& c = w.config;
    if (c.dim != model().dim() || c.workers == 0 || s_.id >= c.workers)
      throw std::runtime_error("welcome does not fit this worker (d = " + std::to_string(c.dim) +
                               ", n = " + std::to_string(c.workers) + ")");
    if (s_.shard_count && *s_.shard_count != c.workers)
      throw std::runtime_error("the coordinator runs n = " + std::to_string(c.workers) +
                               " workers but this worker holds a shard of a split into " +
                               std::to_string(*s_.shard_count) + " (--shard I/N)");
    const bool same_session = session_ && *session_ == session;
    session_ = session;
    enc_.set_session(session);
    const std::size_t max_bytes = wire::max_message_bytes(c.dim, c.workers);
    dec_.set_limits(wire::Limits{max_bytes, c.dim, c.workers});
    util::keep_message_blocks_in_heap(max_bytes);  // dense rounds: see util/heap.h
    // The same coordinator welcoming us back keeps our state (a snapshot follows); a new
    // session is a new or resumed run: a fresh half, brought to the run's round by a snapshot.
    if (same_session && half_) return;
    if (half_) out_.recovery_oracle_calls += half_->recovery_oracle_calls();
    half_ = methods::make_worker(c, s_.id, model());
    pending_.reset();
    last_reply_round_ = UINT64_MAX;
    info("welcomed: " + std::string(methods::to_string(c.method)) + " with " + c.compressor +
         ", n = " + std::to_string(c.workers) + ", d = " + std::to_string(c.dim));
  }

  bool rejoin(const std::string& why) {
    ++out_.rejoins;
    joined_ = false;
    info(why + "; joining again");
    return join(s_.idle_timeout, "no coordinator for ");
  }

  void serve() {
    auto last_heard = Clock::now();
    for (;;) {
      if (stopping()) {
        leave("leaving: stopped by a signal");
        out_.left = true;
        return;
      }
      const bool received = link_.receive(bytes_, 200ms);
      const auto now = Clock::now();  // the loop's one reading of the clock
      progress(now);
      if (now - losses_read_at_ >= 1s) {  // keeps the link's event queue short
        losses_seen_ = link_.connection_losses();
        losses_read_at_ = now;
      }
      if (!received) {
        if (now - last_heard > s_.liveness) {
          if (!rejoin("coordinator silent for " + std::to_string(s_.liveness.count()) + " ms"))
            return;
          last_heard = Clock::now();
        }
        continue;
      }
      wire::MessageKind kind;
      if (!decode(kind)) continue;
      if (inbox_.session != *session_) {
        // A coordinator of another session announces itself: ours restarted.
        if (kind == wire::MessageKind::kHeartbeat || kind == wire::MessageKind::kBroadcast) {
          if (!rejoin("the coordinator restarted (new session)")) return;
          last_heard = Clock::now();
        } else {
          ++out_.rejected;
        }
        continue;
      }
      last_heard = now;
      switch (kind) {
        case wire::MessageKind::kHeartbeat:  // probe or liveness ping: answer it
          link_.send(enc_.encode(wire::Heartbeat{s_.id, half_->next_round()}));
          break;
        case wire::MessageKind::kBroadcast:
          handle(inbox_.broadcast);
          break;
        case wire::MessageKind::kResyncResponse:
          on_snapshot(inbox_.resync);
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

  void on_snapshot(const methods::Snapshot& s) {
    if (s.round < half_->next_round()) return;  // older than what we have: a stale answer
    try {
      half_->restore(s);
    } catch (const methods::ProtocolError& e) {
      ++out_.rejected;
      info(std::string("bad snapshot: ") + e.what());
      return;
    }
    ++out_.resyncs;
    if (!pending_) return;
    if (pending_->round == s.round) {
      const methods::Broadcast b = std::move(*pending_);
      pending_.reset();
      handle(b);
    } else if (pending_->round < s.round) {
      pending_.reset();
    } else {  // the run moved on again while the snapshot travelled
      link_.send(enc_.encode(wire::ResyncRequest{s_.id, half_->next_round(), pending_->round}));
    }
  }

  void handle(const methods::Broadcast& b) {
    if (s_.absent && s_.absent(b.round)) return;  // simulated: never arrived
    try {
      if (half_->on_broadcast(b, reply_)) {
        if (!finite(reply_))
          throw std::runtime_error("non-finite local gradient at round " + std::to_string(b.round));
        queued_reply(link_.send(enc_.encode(reply_)));
        last_reply_round_ = b.round;
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
      // reply again if the first may have been lost: it was dropped at once, or the connection
      // was lost since it was queued. Otherwise it is still on its way (a large reply on a slow
      // link), and a second copy would only double what the link has to carry. Anything else
      // stale or malformed is ignored.
      if (b.round == last_reply_round_) {
        losses_seen_ = link_.connection_losses();
        if (!reply_queued_at_ || *reply_queued_at_ != losses_seen_) {
          // reply_ still holds that round's reply (a stale broadcast is refused before it is
          // touched): encoding it again saves keeping a copy of every encoded reply.
          queued_reply(link_.send(enc_.encode(reply_)));
          ++out_.resent;
        }
      } else {
        ++out_.rejected;
      }
    } catch (const std::exception& e) {
      leave(std::string("error: ") + e.what());
      throw;
    }
  }

  // A reply was queued (or dropped at once): what it is known to have been queued after.
  void queued_reply(bool queued) {
    reply_queued_at_ = queued ? std::optional<uint64_t>(losses_seen_) : std::nullopt;
  }

  transport::Link& link_;
  WorkerSettings s_;
  wire::Encoder enc_;
  wire::Decoder dec_;
  wire::Inbox inbox_;
  std::vector<uint8_t> bytes_, join_bytes_;
  std::optional<uint64_t> session_;
  std::unique_ptr<methods::WorkerHalf> half_;
  methods::Reply reply_;
  std::optional<methods::Broadcast> pending_;
  uint64_t last_reply_round_ = UINT64_MAX;
  // The link's connection losses as last read (at most a second old, or at a repeat), and as
  // read before the last reply was queued (nullopt: it was dropped at once). A loss not yet
  // read when the reply was queued only makes a repeat send it again unneeded.
  uint64_t losses_seen_ = 0;
  Clock::time_point losses_read_at_{};
  std::optional<uint64_t> reply_queued_at_;
  bool joined_ = false;
  Clock::time_point last_progress_{};
  WorkerOutcome out_;
};

}  // namespace

WorkerOutcome run_worker(transport::Link& link, WorkerSettings settings) {
  return Worker(link, std::move(settings)).run();
}

}  // namespace marina::drivers
