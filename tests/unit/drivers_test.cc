// The coordinator and worker drivers over the in-process transport: the same code paths as a
// networked run, with a transport that can drop published messages on purpose.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>

#include "marina/drivers/coordinator.h"
#include "marina/drivers/membership.h"
#include "marina/drivers/round_policy.h"
#include "marina/drivers/worker.h"
#include "marina/methods/theory.h"
#include "marina/transport/inproc_transport.h"
#include "marina/util/random.h"
#include "marina/wire/codec.h"
#include "test_support.h"

using namespace marina;
using namespace std::chrono_literals;

namespace {

struct Run {
  std::vector<run::LogRow> rows;
  drivers::CoordinatorOutcome out;
  std::vector<drivers::WorkerOutcome> workers;
  std::string error;  // what run_coordinator threw (only a run with `tweak` may throw)
};

Run run_inproc(
    methods::Method method, const std::string& q, const data::Dataset& all, uint32_t n,
    uint64_t rounds, std::function<bool(transport::Bytes, uint32_t)> drop = {},
    std::function<void(transport::Link&)> rogue = {}, bool evaluate = true,
    std::function<bool(transport::Bytes, uint32_t)> drop_up = {},
    std::function<void(drivers::CoordinatorSettings&)> tweak = {},
    std::function<std::unique_ptr<transport::Link>(transport::Link&, uint32_t)> wrap_link = {}) {
  auto shards = test::shards_of(all, n);
  drivers::CoordinatorSettings s;
  s.base.method = method;
  s.base.compressor = q;
  s.base.workers = n;
  s.base.seed = 7;
  s.base.batch = 3;
  s.base.clients = 2;
  s.rounds = rounds;
  s.session = 99;
  // Lossy runs repair quickly; the deadline stays long enough that a loaded machine never
  // closes a round without a reply that is merely slow.
  s.round_timeout = std::chrono::milliseconds(20000);
  s.repair_after = std::chrono::milliseconds(drop || drop_up || wrap_link ? 30 : 0);
  s.miss_limit = 1000;
  s.join_timeout = std::chrono::milliseconds(20000);
  if (evaluate) s.evaluation = &shards;
  Run r;
  s.on_row = [&](const run::LogRow& row) { r.rows.push_back(row); };
  if (tweak) tweak(s);
  transport::InProcNetwork net(n);
  if (drop) net.set_publish_filter(drop);
  if (drop_up) net.set_send_filter(drop_up);
  r.workers.resize(n);
  std::vector<std::unique_ptr<transport::Link>> wrapped(n);
  for (uint32_t i = 0; i < n && wrap_link; ++i) wrapped[i] = wrap_link(net.link(i), i);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      drivers::WorkerSettings w;
      w.id = i;
      // A run that may end in an error must not leave a worker waiting for two minutes: the
      // test fails (no bye) instead of hanging.
      if (tweak) w.idle_timeout = std::chrono::milliseconds(5000);
      problem::Objective f = shards[i];  // each worker its own model
      w.model = &f;
      try {
        r.workers[i] = drivers::run_worker(wrapped[i] ? *wrapped[i] : net.link(i), std::move(w));
      } catch (const std::exception& e) {
        r.workers[i].bye_reason = std::string("(worker threw: ") + e.what() + ")";
      }
    });
  }
  // A hostile sender sharing worker 0's connection (as an unauthenticated peer could).
  // Half of it is queued before the coordinator starts (so it is certainly processed), half
  // arrives while rounds run.
  if (rogue) {
    rogue(net.link(0));
    threads.emplace_back([&] { rogue(net.link(0)); });
  }
  try {
    r.out = drivers::run_coordinator(net.hub(), s);
  } catch (const std::exception& e) {
    r.error = e.what();  // the worker threads are joined first
  }
  for (auto& t : threads) t.join();
  if (!tweak) REQUIRE_MESSAGE(r.error.empty(), r.error);
  return r;
}

// A worker's uplink on which every message takes `delay` to arrive and none is lost (a slow
// link): what it sends is queued and handed on by a thread of its own, in order.
class SlowUplink : public transport::Link {
 public:
  SlowUplink(transport::Link& inner, std::chrono::milliseconds delay)
      : inner_(inner), delay_(delay), pump_([this] { pump(); }) {}
  ~SlowUplink() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    pump_.join();
  }
  bool send(transport::Bytes m) override {
    {
      std::lock_guard lock(mu_);
      queue_.emplace_back(transport::Clock::now() + delay_,
                          std::vector<uint8_t>(m.begin(), m.end()));
    }
    cv_.notify_all();
    return true;
  }
  uint64_t connection_losses() override { return inner_.connection_losses(); }
  bool receive(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout) override {
    return inner_.receive(bytes, timeout);
  }

 private:
  void pump() {
    std::unique_lock lock(mu_);
    while (!stop_ || !queue_.empty()) {
      if (queue_.empty()) {
        cv_.wait(lock);
      } else if (transport::Clock::now() < queue_.front().first) {
        cv_.wait_until(lock, queue_.front().first);
      } else {
        const auto m = std::move(queue_.front().second);
        queue_.pop_front();
        lock.unlock();
        (void)inner_.send(m);
        lock.lock();
      }
    }
  }

  transport::Link& inner_;
  std::chrono::milliseconds delay_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<transport::Clock::time_point, std::vector<uint8_t>>> queue_;
  bool stop_ = false;
  std::thread pump_;  // last: starts once the rest is in place
};

// Which round a message carries, if it is of that kind (a reply or a broadcast).
std::optional<uint64_t> round_of(transport::Bytes bytes, wire::MessageKind kind) {
  static thread_local wire::Decoder dec(wire::Limits{1u << 20, 0, 0});
  static thread_local wire::Inbox inbox;
  try {
    const auto got = dec.decode(bytes, inbox);
    if (got == kind && kind == wire::MessageKind::kReply) return inbox.reply.round;
    if (got == kind && kind == wire::MessageKind::kBroadcast) return inbox.broadcast.round;
  } catch (const wire::DecodeError&) {
  }
  return std::nullopt;
}

std::optional<uint64_t> reply_round(transport::Bytes bytes) {
  return round_of(bytes, wire::MessageKind::kReply);
}

std::optional<uint64_t> broadcast_round(transport::Bytes bytes) {
  return round_of(bytes, wire::MessageKind::kBroadcast);
}

}  // namespace

TEST_CASE("drivers: the in-process run logs what the reference simulation logs") {
  const auto all = test::synthetic(120, 8, 0.5, 21);
  const auto r = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 40);
  // The reference: the halves stepped directly, with the parameters the coordinator chose.
  const auto ref = test::simulate(r.out.config, test::shards_of(all, 4), 40);
  test::check_same_rows(r.rows, ref);
  CHECK(r.rows.back().wire_bytes_up > 0);
  CHECK(r.rows.back().wire_bytes_down > 0);
  for (const auto& w : r.workers) CHECK(w.bye_reason == "run complete");
}

TEST_CASE("drivers: a dropped broadcast is repaired and changes nothing") {
  const auto all = test::synthetic(120, 8, 0.5, 22);
  const auto clean = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30);
  const auto lossy = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30,
                                [](transport::Bytes b, uint32_t w) {
                                  const auto k = broadcast_round(b);
                                  return w == 1 && k && (*k == 5 || *k == 17);
                                });
  CHECK(lossy.out.repairs >= 2);  // more if a worker was slower than the 30 ms timeout
  test::check_same_rows(clean.rows, lossy.rows);
}

TEST_CASE("drivers: a lost reply is sent again when the repaired broadcast arrives") {
  const auto all = test::synthetic(120, 8, 0.5, 24);
  const auto clean = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30);
  // Worker 2's first replies to rounds 6 and 19 are lost: the coordinator repairs (sends the
  // broadcast again directly), and the worker, which has answered that round already, must
  // answer with the same reply, or the round would close without it at the deadline.
  auto lost = std::make_shared<std::atomic<int>>(0);
  const auto lossy =
      run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30, {}, {}, true,
                 [lost](transport::Bytes b, uint32_t w) {
                   const auto k = reply_round(b);
                   if (w != 2 || !k || (*k != 6 && *k != 19)) return false;
                   const int bit = *k == 6 ? 1 : 2;
                   return (lost->fetch_or(bit) & bit) == 0;  // only the first copy of each
                 });
  CHECK(lost->load() == 3);
  CHECK(lossy.out.repairs >= 2);
  CHECK(lossy.workers[2].resent >= 2);
  CHECK(lossy.out.events.count("deadline_miss") == 0);
  test::check_same_rows(clean.rows, lossy.rows);
}

TEST_CASE("drivers: a repaired round whose reply is still on its way gets no second copy") {
  const auto all = test::synthetic(120, 8, 0.5, 25);
  const auto clean = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 20);
  // Worker 2's messages take 80 ms to arrive; the coordinator repairs its rounds after 30 ms,
  // while the reply is on its way. Nothing is lost, so a second copy would only load the link.
  const auto slow =
      run_inproc(methods::Method::kMarina, "randk:2", all, 4, 20, {}, {}, true, {}, {},
                 [](transport::Link& link, uint32_t w) -> std::unique_ptr<transport::Link> {
                   if (w != 2) return nullptr;
                   return std::make_unique<SlowUplink>(link, std::chrono::milliseconds(80));
                 });
  CHECK(slow.out.repairs >= 20);
  CHECK(slow.workers[2].resent == 0);
  CHECK(slow.workers[2].replies == clean.workers[2].replies);
  CHECK(slow.out.events.count("deadline_miss") == 0);
  test::check_same_rows(clean.rows, slow.rows);
}

TEST_CASE("drivers: a worker that missed a round it sat out resyncs (PP-MARINA)") {
  const auto all = test::synthetic(150, 8, 0.5, 23);
  const auto clean = run_inproc(methods::Method::kPpMarina, "randk:2", all, 5, 40);
  // Drop every broadcast to worker 3 between rounds 10 and 20: it is then not drawn in some
  // of them (no repair needed) and sees a gap at the next one it receives.
  const auto lossy = run_inproc(methods::Method::kPpMarina, "randk:2", all, 5, 40,
                                [](transport::Bytes b, uint32_t w) {
                                  const auto k = broadcast_round(b);
                                  return w == 3 && k && *k >= 10 && *k <= 20;
                                });
  CHECK(lossy.out.resyncs >= 1);
  CHECK(lossy.workers[3].resyncs >= 1);
  test::check_same_rows(clean.rows, lossy.rows, /*oracle_calls=*/false);
}

TEST_CASE("drivers: hostile messages are rejected and change nothing") {
  const auto all = test::synthetic(120, 8, 0.5, 24);
  const auto clean = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30);
  const auto attacked =
      run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30, {}, [](transport::Link& link) {
        thread_local uint64_t calls = 0;
        util::Rng rng(77 + calls++);
        wire::Encoder enc(99);  // the run's session: the attacker has seen it
        std::vector<uint8_t> junk;
        for (int i = 0; i < 200; ++i) {
          if (i % 4 == 0) {  // random bytes
            junk.resize(1 + rng.below(300));
            for (auto& b : junk) b = static_cast<uint8_t>(rng.below(256));
            link.send(junk);
          } else if (i % 4 == 1) {  // worker 0's own peer and id: NaN, or a round far ahead
            methods::Reply own;
            own.worker = 0;
            own.round = i % 8 == 1 ? 1000000 + i : rng.below(30);
            own.payload.kind = compress::PayloadKind::kDense64;
            own.payload.dim = 8;
            own.payload.dense.assign(8, 0.5);
            if (i % 8 != 1) own.payload.dense[rng.below(8)] = std::nan("");
            link.send(enc.encode(own));
          } else {  // a well-formed reply that claims to come from another worker
            methods::Reply fake;
            fake.worker = 1 + static_cast<uint32_t>(rng.below(3));
            fake.round = rng.below(30);
            fake.payload.kind = compress::PayloadKind::kDense64;
            fake.payload.dim = 8;
            fake.payload.dense.assign(8, 1e6);
            link.send(enc.encode(fake));
          }
          if (i % 16 == 0) std::this_thread::yield();
        }
      });
  CHECK(attacked.out.rejected >= 200);
  test::check_same_rows(clean.rows, attacked.rows);
}

TEST_CASE("drivers: without the data the log reports the loss from the workers' local losses") {
  const auto all = test::synthetic(120, 8, 0.5, 25);
  const auto with_data = run_inproc(methods::Method::kDiana, "randk:2", all, 4, 20);
  const auto blind = run_inproc(methods::Method::kDiana, "randk:2", all, 4, 20, {}, {}, false);
  REQUIRE(blind.rows.size() == with_data.rows.size());
  for (std::size_t k = 0; k + 1 < blind.rows.size(); ++k) {
    CAPTURE(k);
    REQUIRE(blind.rows[k].loss.has_value());
    CHECK(*blind.rows[k].loss == doctest::Approx(*with_data.rows[k].loss).epsilon(1e-14));
    CHECK_FALSE(blind.rows[k].grad_norm_sq.has_value());
    CHECK(blind.rows[k].bits_per_worker == with_data.rows[k].bits_per_worker);
  }
  CHECK_FALSE(blind.rows.back().loss.has_value());  // no round evaluated the last iterate
}

TEST_CASE(
    "drivers: a log that cannot be written ends the run with that error, and the workers "
    "get their bye") {
  // The disk fills at round 5: the row's write fails in the round loop, and again on the way
  // out. The second failure must not replace the first error nor skip the bye (before, the
  // workers were left to notice a silent coordinator), and the unwritten rows are reported.
  const auto all = test::synthetic(120, 8, 0.5, 25);
  const std::string full = "log.csv: No space left on device";
  std::vector<std::string> infos;
  const auto r = run_inproc(methods::Method::kMarina, "randk:2", all, 4, 30, {}, {}, true, {},
                            [&](drivers::CoordinatorSettings& s) {
                              s.on_row = [&](const run::LogRow& row) {
                                if (row.round >= 5) throw std::runtime_error(full);
                              };
                              s.on_info = [&](const std::string& line) { infos.push_back(line); };
                            });
  CHECK(r.error == full);
  for (const auto& w : r.workers) CHECK(w.bye_reason == "coordinator stopped: " + full);
  const bool reported = std::any_of(infos.begin(), infos.end(), [&](const std::string& line) {
    return line.rfind("error: writing 1 row(s) of the log (rounds 5–5) failed as well: " + full,
                      0) == 0;
  });
  CHECK_MESSAGE(reported, "the unwritten row is reported");
}

TEST_CASE(
    "drivers: membership finds the live worker behind a peer through joins, rejoins and "
    "departures") {
  drivers::Membership m(4, 2);
  const auto now = transport::Clock::now();
  CHECK(m.live_count() == 0);
  CHECK_FALSE(m.live_worker_of("a"));
  m.admit(0, "a", "x86_64", now);
  m.admit(1, "b", "x86_64", now);
  CHECK(m.live_count() == 2);
  CHECK(m.live_worker_of("a") == 0u);
  CHECK(m.live_worker_of("b") == 1u);
  CHECK_FALSE(m.live_worker_of("c"));

  // One peer that joined as two ids speaks for the lower one, then for the other once that
  // one is gone.
  m.admit(3, "a", "x86_64", now);
  CHECK(m.live_count() == 3);
  CHECK(m.live_worker_of("a") == 0u);
  m.mark_gone(0, "test");
  CHECK(m.live_worker_of("a") == 3u);
  CHECK(m.live_count() == 2);
  m.mark_gone(3, "test");
  CHECK_FALSE(m.live_worker_of("a"));
  m.mark_gone(3, "again");  // already gone: counted once
  CHECK(m.live_count() == 1);

  // A live id taken over by a new peer (a restarted process) no longer answers to the old one.
  m.admit(1, "b2", "arm64", now);
  CHECK(m.live_count() == 1);
  CHECK_FALSE(m.live_worker_of("b"));
  CHECK(m.live_worker_of("b2") == 1u);

  // Missed deadlines make it gone; a join brings it back, from any peer.
  CHECK_FALSE(m.missed(1, 7, false, now));
  CHECK(m.missed(1, 8, true, now + 2s));
  CHECK(m.live_count() == 0);
  // Its reply to the first round it missed, arriving after all, says by how much (once); a
  // reply to an earlier round does not, nor a second copy.
  CHECK_FALSE(m.late(1, 6, now + 3s));
  const auto late = m.late(1, 7, now + 1500ms);
  REQUIRE(late);
  CHECK(late->first.round == 7u);
  CHECK_FALSE(late->first.full_sync);
  CHECK(late->second == 1500ms);
  CHECK_FALSE(m.late(1, 7, now + 4s));
  m.admit(1, "b3", "arm64", now);
  CHECK(m.live_worker_of("b3") == 1u);
  CHECK(m[1].returns == 1u);
  CHECK(m.live_count() == 1);

  // A reply to a later round than the pending miss drops it: that round's reply will not come.
  CHECK_FALSE(m.missed(1, 20, true, now));
  REQUIRE(m[1].pending_miss);
  CHECK_FALSE(m.late(1, 21, now + 1s));
  CHECK_FALSE(m[1].pending_miss);
  CHECK_FALSE(m.late(1, 20, now + 2s));
  // An answer in time drops it too.
  m.admit(2, "c", "x86_64", now);
  CHECK_FALSE(m.missed(2, 30, false, now));
  REQUIRE(m[2].pending_miss);
  m.answered(2, now + 1s, 0.001);
  CHECK_FALSE(m[2].pending_miss);
  CHECK_FALSE(m.late(2, 30, now + 2s));
}

TEST_CASE("drivers: a round waits until no live worker is awaited, and again for one revived") {
  methods::MethodConfig c;
  c.method = methods::Method::kGd;
  c.compressor = "identity";
  c.workers = 4;
  c.dim = 3;
  c.gamma = 0.1;
  auto server = methods::make_server(c);
  drivers::Membership members(4, 3);
  const auto now = transport::Clock::now();
  for (uint32_t w = 0; w < 4; ++w) members.admit(w, "peer" + std::to_string(w), "x86_64", now);
  (void)server->begin_round();
  const auto reply = [&](uint32_t w) {
    methods::Reply r;
    r.worker = w;
    r.round = server->round();
    r.payload.kind = compress::PayloadKind::kDense64;
    r.payload.dim = 3;
    r.payload.dense = {0.5, -1.0, 2.0};
    server->accept(r);
  };
  const drivers::AbsentFn none;
  drivers::AwaitedCursor cursor;
  CHECK(cursor.any(*server, members, none));
  reply(1);
  reply(0);  // out of order, and behind the cursor
  CHECK(cursor.any(*server, members, none));
  members.mark_gone(2, "test");
  CHECK(drivers::awaited(*server, members, none) == std::vector<uint32_t>{3});
  CHECK(cursor.any(*server, members, none));
  reply(3);
  CHECK_FALSE(cursor.any(*server, members, none));  // worker 2 is gone: nobody is awaited
  CHECK(drivers::awaited(*server, members, none).empty());
  // Worker 2 comes back before the round closes: behind the cursor, but awaited again.
  members.admit(2, "peer2-new", "x86_64", now);
  CHECK(cursor.any(*server, members, none));
  CHECK(cursor.any(*server, members, none));
  reply(2);
  CHECK_FALSE(cursor.any(*server, members, none));
  // A fault plan's absentees are not awaited either.
  server->end_round();
  (void)server->begin_round();
  drivers::AwaitedCursor next;
  const drivers::AbsentFn all_absent = [](uint64_t, uint32_t) { return true; };
  CHECK_FALSE(next.any(*server, members, all_absent));
  CHECK(next.any(*server, members, none));
}
