#pragma once
// When a round closes and whom it waits for: pure functions of the round's state, the
// membership and the clock value passed in (no sockets, no sleeping), so they are tested
// without a network.
//
// A round waits for the live workers the server half still awaits, except those a fault plan
// says are absent (marina-sim). It closes as soon as they have all replied, or at its deadline:
// --round-timeout-ms for compressed rounds, the longer --sync-timeout-ms for full-sync rounds
// (a missing full gradient costs more than a missing compressed difference). Half-way to the
// deadline the broadcast is sent again directly to the workers still silent (PUB may have
// dropped it). While fewer than --min-workers are live the deadline is suspended: the round
// stays open for workers to return, up to --quorum-timeout-ms.

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "marina/drivers/membership.h"
#include "marina/methods/method.h"
#include "marina/transport/transport.h"

namespace marina::drivers {

// A simulated fault plan: true when `worker` is absent from `round` (marina-sim --dropout,
// --faults). Empty in a networked run.
using AbsentFn = std::function<bool(uint64_t round, uint32_t worker)>;

class RoundClock {
 public:
  using time_point = transport::Clock::time_point;
  // `repair_after` 0 means half the timeout.
  RoundClock(time_point opened, std::chrono::milliseconds timeout,
             std::chrono::milliseconds repair_after = {});
  [[nodiscard]] time_point repair_at() const { return repair_at_; }
  [[nodiscard]] time_point deadline() const { return deadline_; }
  // Quorum is back after a pause: the round gets a full timeout from now.
  void restart(time_point now);

 private:
  std::chrono::milliseconds timeout_, repair_after_;
  time_point repair_at_, deadline_;
};

// The workers the open round still waits for, ascending.
[[nodiscard]] std::vector<uint32_t> awaited(const methods::ServerHalf& server,
                                            const Membership& members, const AbsentFn& absent);

// Whether the open round still waits for anyone: asked after every message, so it costs O(n)
// per round, not per call (building awaited()'s list each time made a round O(n²)). Workers stop
// being awaited (a reply, a departure) far more often than they start again (one revived
// mid-round), so a cursor moves past those no longer awaited and never back; before answering
// "nobody" it confirms with one full pass. One cursor per round.
class AwaitedCursor {
 public:
  [[nodiscard]] bool any(const methods::ServerHalf& server, const Membership& members,
                         const AbsentFn& absent);

 private:
  uint32_t next_ = 0;
};

// The timeout of a round.
[[nodiscard]] std::chrono::milliseconds round_timeout(bool full_sync,
                                                      std::chrono::milliseconds compressed,
                                                      std::chrono::milliseconds sync);

}  // namespace marina::drivers
