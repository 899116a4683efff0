#include "marina/observe/store.h"

#include <algorithm>

namespace marina::observe {
namespace {

// Rows or events copied per lock: a reader delays the round loop by at most one such copy.
constexpr std::size_t kChunk = 512;

}  // namespace

void Store::add_row(const run::LogRow& row) {
  const std::lock_guard lock(mu_);
  rows_.push_back(row);
  if (row.full_sync) ++full_sync_rounds_;
}

void Store::add_event(const run::Event& e) {
  run::Event copy = e;  // the strings are copied before the lock, not under it
  const std::lock_guard lock(mu_);
  ++event_counts_[copy.kind];
  events_.push_back(std::move(copy));
}

void Store::set_status(const drivers::FleetStatus& status) {
  auto fresh = std::make_shared<const drivers::FleetStatus>(status);
  {
    const std::lock_guard lock(mu_);
    status_.swap(fresh);
    status_at_ = Clock::now();
  }
  // `fresh` now holds the previous status: freed here, outside the lock (or by the last reader).
}

void Store::finish(const std::string& outcome) {
  const std::lock_guard lock(mu_);
  finished_ = true;
  outcome_ = outcome;
}

Summary Store::summary() const {
  Summary s;
  s.info = info_;
  const std::lock_guard lock(mu_);
  if (!rows_.empty()) s.last_row = rows_.back();
  s.rows = rows_.size();
  s.events = events_.size();
  s.full_sync_rounds = full_sync_rounds_;
  s.event_counts = event_counts_;
  s.status = status_;
  if (status_) s.status_age_s = std::chrono::duration<double>(Clock::now() - status_at_).count();
  s.finished = finished_;
  s.outcome = outcome_;
  return s;
}

std::vector<run::LogRow> Store::rows_since(uint64_t round, std::size_t limit) const {
  std::vector<run::LogRow> out;
  std::size_t next = 0;
  {
    // Rows arrive in round order, so the first wanted one is found by bisection.
    const std::lock_guard lock(mu_);
    next = static_cast<std::size_t>(
        std::lower_bound(rows_.begin(), rows_.end(), round,
                         [](const run::LogRow& r, uint64_t k) { return r.round < k; }) -
        rows_.begin());
  }
  // Held rows never move or change, so index `next` stays valid between the chunks.
  while (out.size() < limit) {
    const std::lock_guard lock(mu_);
    if (next >= rows_.size()) break;
    const std::size_t take = std::min({kChunk, limit - out.size(), rows_.size() - next});
    out.insert(out.end(), rows_.begin() + static_cast<std::ptrdiff_t>(next),
               rows_.begin() + static_cast<std::ptrdiff_t>(next + take));
    next += take;
  }
  return out;
}

std::vector<run::Event> Store::events_since(uint64_t index, std::size_t limit) const {
  std::vector<run::Event> out;
  uint64_t next = index;
  while (out.size() < limit) {
    const std::lock_guard lock(mu_);
    if (next >= events_.size()) break;
    const std::size_t take = static_cast<std::size_t>(
        std::min<uint64_t>({kChunk, limit - out.size(), events_.size() - next}));
    const auto first = events_.begin() + static_cast<std::ptrdiff_t>(next);
    out.insert(out.end(), first, first + static_cast<std::ptrdiff_t>(take));
    next += take;
  }
  return out;
}

}  // namespace marina::observe
