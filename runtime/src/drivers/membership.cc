#include "marina/drivers/membership.h"

namespace marina::drivers {

const char* to_string(MemberState s) {
  switch (s) {
    case MemberState::kAbsent:
      return "absent";
    case MemberState::kLive:
      return "live";
    case MemberState::kGone:
      return "gone";
  }
  return "?";
}

Membership::Membership(uint32_t workers, uint32_t miss_limit)
    : miss_limit_(miss_limit == 0 ? 1 : miss_limit), members_(workers) {}

std::optional<uint32_t> Membership::live_worker_of(const transport::Peer& peer) const {
  const auto it = live_by_peer_.find(peer);
  if (it == live_by_peer_.end()) return std::nullopt;
  return it->second;
}

void Membership::index(uint32_t w) {
  ++live_count_;
  const auto [it, added] = live_by_peer_.try_emplace(members_[w].peer, w);
  if (!added && w < it->second) it->second = w;
}

void Membership::unindex(uint32_t w) {
  --live_count_;
  const auto it = live_by_peer_.find(members_[w].peer);
  if (it == live_by_peer_.end() || it->second != w) return;
  // Another id live behind the same peer takes over (rare: a scan only then).
  for (uint32_t v = w + 1; v < members_.size(); ++v) {
    if (members_[v].state == MemberState::kLive && members_[v].peer == members_[w].peer) {
      it->second = v;
      return;
    }
  }
  live_by_peer_.erase(it);
}

std::vector<uint32_t> Membership::live_ids() const {
  std::vector<uint32_t> out;
  for (uint32_t w = 0; w < members_.size(); ++w)
    if (members_[w].state == MemberState::kLive) out.push_back(w);
  return out;
}

std::string Membership::missing_text() const {
  std::string out;
  for (uint32_t w = 0; w < members_.size(); ++w)
    if (members_[w].state != MemberState::kLive)
      out += (out.empty() ? "" : ", ") + std::to_string(w);
  return out;
}

Membership::Admission Membership::classify(uint32_t w, const transport::Peer& peer) const {
  const Member& m = members_.at(w);
  switch (m.state) {
    case MemberState::kAbsent:
      return Admission::kNew;
    case MemberState::kGone:
      return Admission::kReturn;
    case MemberState::kLive:
      break;
  }
  return m.peer == peer ? Admission::kRepeat : Admission::kContested;
}

void Membership::admit(uint32_t w, const transport::Peer& peer, const std::string& arch,
                       transport::Clock::time_point now, const std::string& user) {
  Member& m = members_.at(w);
  if (m.state == MemberState::kGone) ++m.returns;
  if (m.state == MemberState::kLive) unindex(w);
  m.state = MemberState::kLive;
  m.peer = peer;
  index(w);
  m.arch = arch;
  m.last_seen = now;
  m.misses = 0;
  m.gone_reason.clear();
  m.user = user;
  m.pending_miss.reset();
}

void Membership::seen(uint32_t w, transport::Clock::time_point now) {
  members_.at(w).last_seen = now;
}

void Membership::answered(uint32_t w, transport::Clock::time_point now, double latency_s) {
  Member& m = members_.at(w);
  m.last_seen = now;
  m.last_latency_s = latency_s;
  m.misses = 0;
  m.pending_miss.reset();
  ++m.answered;
}

bool Membership::missed(uint32_t w, uint64_t round, bool full_sync,
                        transport::Clock::time_point now) {
  Member& m = members_.at(w);
  if (m.state != MemberState::kLive) return false;
  if (!m.pending_miss) m.pending_miss = Member::Miss{round, now, full_sync};
  if (++m.misses < miss_limit_) return false;
  mark_gone(w, std::to_string(m.misses) + " deadlines missed in a row");
  return true;
}

std::optional<std::pair<Member::Miss, transport::Clock::duration>> Membership::late(
    uint32_t w, uint64_t round, transport::Clock::time_point now) {
  Member& m = members_.at(w);
  if (!m.pending_miss || round < m.pending_miss->round) return std::nullopt;
  const Member::Miss miss = *m.pending_miss;
  m.pending_miss.reset();
  if (round > miss.round) return std::nullopt;
  return std::make_pair(miss, now - miss.at);
}

void Membership::mark_gone(uint32_t w, const std::string& reason) {
  Member& m = members_.at(w);
  if (m.state == MemberState::kLive) unindex(w);
  m.state = MemberState::kGone;
  m.gone_reason = reason;
  m.misses = 0;
}

}  // namespace marina::drivers
