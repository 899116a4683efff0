#pragma once
// Simulated dropouts for marina-sim: which worker is absent from which round, reproducibly.
// An absent worker does not see the round's broadcast and does not reply, exactly as a device
// that lost its link; when it is present again it notices the gap and resyncs.
//
//   --dropout q   each worker is absent from each round independently with probability q,
//                 drawn from (seed, round, worker)
//   --faults FILE a schedule, one "ROUND WORKER down|up" a line ('#' comments): from ROUND
//                 on the worker is down (absent) until an "up" line brings it back

#include <cstdint>
#include <filesystem>
#include <vector>

namespace marina::run {

struct Fault {
  uint64_t round = 0;
  uint32_t worker = 0;
  bool up = false;

  bool operator==(const Fault&) const = default;
};

// Reads a schedule; throws std::runtime_error "FILE:LINE: reason" on a malformed line or a
// worker id >= workers.
[[nodiscard]] std::vector<Fault> read_faults(const std::filesystem::path& file, uint32_t workers);

class FaultPlan {
 public:
  FaultPlan(uint32_t workers, uint64_t seed, double dropout, std::vector<Fault> schedule);
  [[nodiscard]] bool absent(uint64_t round, uint32_t worker) const;
  [[nodiscard]] bool empty() const { return dropout_ == 0.0 && !any_faults_; }

 private:
  uint64_t seed_;
  double dropout_;
  bool any_faults_ = false;
  std::vector<std::vector<Fault>> by_worker_;  // each sorted by round
};

}  // namespace marina::run
