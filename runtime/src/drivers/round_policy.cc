#include "marina/drivers/round_policy.h"

#include <algorithm>

namespace marina::drivers {

RoundClock::RoundClock(time_point opened, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds repair_after)
    : timeout_(timeout),
      repair_after_(repair_after.count() > 0 ? std::min(repair_after, timeout) : timeout / 2) {
  restart(opened);
}

void RoundClock::restart(time_point now) {
  repair_at_ = now + repair_after_;
  deadline_ = now + timeout_;
}

namespace {

bool is_awaited(const methods::ServerHalf& server, const Membership& members,
                const AbsentFn& absent, uint32_t w) {
  return members.live(w) && server.awaiting(w) && !(absent && absent(server.round(), w));
}

}  // namespace

std::vector<uint32_t> awaited(const methods::ServerHalf& server, const Membership& members,
                              const AbsentFn& absent) {
  std::vector<uint32_t> out;
  for (uint32_t w = 0; w < members.size(); ++w)
    if (is_awaited(server, members, absent, w)) out.push_back(w);
  return out;
}

bool AwaitedCursor::any(const methods::ServerHalf& server, const Membership& members,
                        const AbsentFn& absent) {
  const uint32_t n = members.size();
  for (; next_ < n; ++next_)
    if (is_awaited(server, members, absent, next_)) return true;
  for (uint32_t w = 0; w < n; ++w) {
    if (is_awaited(server, members, absent, w)) {
      next_ = w;
      return true;
    }
  }
  return false;
}

std::chrono::milliseconds round_timeout(bool full_sync, std::chrono::milliseconds compressed,
                                        std::chrono::milliseconds sync) {
  return full_sync ? std::max(sync, compressed) : compressed;
}

}  // namespace marina::drivers
