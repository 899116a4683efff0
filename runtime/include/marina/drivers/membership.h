#pragma once
// Who is in the run: the only place that maps transport peers to worker ids. A worker's
// identity is its id; the peer (transport address) it speaks from may change when the worker
// restarts or reconnects. Pure bookkeeping: no sockets, and the clock is passed in.
//
//   absent ──join──▶ live ──miss-limit deadlines in a row, send failure, bye──▶ gone
//                     ▲                                                        │
//                     └──────────────────────── join (rejoin) ◀────────────────┘

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "marina/transport/transport.h"

namespace marina::drivers {

enum class MemberState : uint8_t { kAbsent, kLive, kGone };

[[nodiscard]] const char* to_string(MemberState s);

struct Member {
  MemberState state = MemberState::kAbsent;
  transport::Peer peer;
  std::string arch;
  transport::Clock::time_point last_seen{};
  uint32_t misses = 0;         // deadlines missed in a row
  uint64_t answered = 0;       // replies aggregated
  double last_latency_s = -1;  // broadcast to reply, of its last aggregated reply (-1: none)
  uint64_t returns = 0;        // times it came back after being gone
  std::string gone_reason;     // why it is gone, for the quorum error
  std::string user;            // the transport's authenticated identity (CurveZMQ), if any
  // The oldest deadline it missed since its last reply was taken: a late reply to that round
  // reports it (Membership::late). Kept while later deadlines pass, so that replies queued
  // behind one another on a slow link still find the round they answer.
  struct Miss {
    uint64_t round = 0;
    transport::Clock::time_point at{};  // when the deadline passed
    bool full_sync = false;             // which deadline: --sync-timeout-ms or --round-timeout-ms
  };
  std::optional<Miss> pending_miss;
};

// Finding the worker a message speaks for and counting the live ones are O(1): the coordinator
// asks both for every message, so a scan over the members there made a round cost O(n²).
class Membership {
 public:
  Membership(uint32_t workers, uint32_t miss_limit);

  [[nodiscard]] uint32_t size() const { return static_cast<uint32_t>(members_.size()); }
  [[nodiscard]] const Member& operator[](uint32_t w) const { return members_.at(w); }
  // The live worker a peer speaks for, if any.
  [[nodiscard]] std::optional<uint32_t> live_worker_of(const transport::Peer& peer) const;
  [[nodiscard]] bool live(uint32_t w) const { return members_.at(w).state == MemberState::kLive; }
  [[nodiscard]] uint32_t live_count() const { return live_count_; }
  [[nodiscard]] std::vector<uint32_t> live_ids() const;
  // Ids that are not live, ascending, as "3, 5" (for messages).
  [[nodiscard]] std::string missing_text() const;

  // What a Join from `peer` for id `w` means (the caller has checked the Join's contents).
  enum class Admission {
    kNew,        // first join of this id
    kReturn,     // the id was gone: it comes back (possibly from a new peer)
    kRepeat,     // the live id's own peer joins again (its Welcome was lost, or it rejoined)
    kContested,  // the id is live behind another peer: wait until that peer is known gone
  };
  [[nodiscard]] Admission classify(uint32_t w, const transport::Peer& peer) const;
  // Binds `peer` to `w` and makes it live (kNew, kReturn, kRepeat).
  void admit(uint32_t w, const transport::Peer& peer, const std::string& arch,
             transport::Clock::time_point now, const std::string& user = {});

  // Any valid message from the worker.
  void seen(uint32_t w, transport::Clock::time_point now);
  void answered(uint32_t w, transport::Clock::time_point now, double latency_s);
  // The deadline of `round` passed at `now` without the worker's reply; true when that made it
  // gone.
  bool missed(uint32_t w, uint64_t round, bool full_sync, transport::Clock::time_point now);
  // A reply to `round` that arrived at `now`, after the round closed: how long after its
  // deadline, when `round` is the worker's pending miss (once; a reply to a later round drops
  // the pending miss, whose reply will not come).
  std::optional<std::pair<Member::Miss, transport::Clock::duration>> late(
      uint32_t w, uint64_t round, transport::Clock::time_point now);
  void mark_gone(uint32_t w, const std::string& reason);

 private:
  // Live `w` enters or leaves the peer index (before its state or peer changes).
  void index(uint32_t w);
  void unindex(uint32_t w);

  uint32_t miss_limit_;
  std::vector<Member> members_;
  uint32_t live_count_ = 0;
  // Each peer with a live worker → the lowest such id (one peer may have joined as several).
  std::unordered_map<transport::Peer, uint32_t> live_by_peer_;
};

}  // namespace marina::drivers
