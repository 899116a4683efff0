#include "marina/run/faults.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "marina/util/random.h"

namespace marina::run {

std::vector<Fault> read_faults(const std::filesystem::path& file, uint32_t workers) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open the fault schedule");
  std::vector<Fault> out;
  std::string line;
  for (uint64_t number = 1; std::getline(in, line); ++number) {
    const auto where = [&] { return file.string() + ":" + std::to_string(number) + ": "; };
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string round, worker, what, extra;
    if (!(words >> round)) continue;  // blank or comment
    if (!(words >> worker >> what) || (words >> extra))
      throw std::runtime_error(where() + "expected 'ROUND WORKER down|up', got '" + line + "'");
    Fault f;
    try {
      std::size_t used = 0;
      f.round = std::stoull(round, &used);
      if (used != round.size() || round[0] == '-') throw std::invalid_argument(round);
      const unsigned long id = std::stoul(worker, &used);
      if (used != worker.size() || worker[0] == '-') throw std::invalid_argument(worker);
      if (id >= workers)
        throw std::runtime_error(where() + "worker " + worker +
                                 " out of range (n = " + std::to_string(workers) + ")");
      f.worker = static_cast<uint32_t>(id);
    } catch (const std::logic_error&) {
      throw std::runtime_error(where() + "ROUND and WORKER must be non-negative integers, got '" +
                               line + "'");
    }
    if (what != "down" && what != "up")
      throw std::runtime_error(where() + "expected down or up, got '" + what + "'");
    f.up = what == "up";
    out.push_back(f);
  }
  return out;
}

FaultPlan::FaultPlan(uint32_t workers, uint64_t seed, double dropout, std::vector<Fault> schedule)
    : seed_(seed), dropout_(dropout), by_worker_(workers) {
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw std::invalid_argument("--dropout must be in [0, 1), got " + std::to_string(dropout));
  for (const Fault& f : schedule) {
    if (f.worker >= workers)
      throw std::invalid_argument("fault for worker " + std::to_string(f.worker) +
                                  " out of range (n = " + std::to_string(workers) + ")");
    by_worker_[f.worker].push_back(f);
    any_faults_ = true;
  }
  // Stable: of two lines for the same round, the later one wins.
  for (auto& v : by_worker_)
    std::stable_sort(v.begin(), v.end(),
                     [](const Fault& a, const Fault& b) { return a.round < b.round; });
}

bool FaultPlan::absent(uint64_t round, uint32_t worker) const {
  const auto& v = by_worker_.at(worker);
  // The last schedule line at or before this round decides.
  const auto it = std::upper_bound(v.begin(), v.end(), round,
                                   [](uint64_t r, const Fault& f) { return r < f.round; });
  if (it != v.begin() && !std::prev(it)->up) return true;
  if (dropout_ == 0.0) return false;
  util::Rng rng(util::derive(seed_, {round, worker, util::tag(util::Stream::kDropout)}));
  return rng.bernoulli(dropout_);
}

}  // namespace marina::run
