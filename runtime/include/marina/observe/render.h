#pragma once
// The documents of the coordinator's HTTP view (docs/OBSERVE.md), rendered from copies taken
// out of the Store: pure functions, so tests can render them from a synthetic store.

#include <span>
#include <string>

#include "marina/observe/store.h"
#include "marina/run/events.h"
#include "marina/run/log.h"

namespace marina::observe {

// Prometheus text exposition format 0.0.4: # HELP and # TYPE for every family, base units,
// counters named *_total. Metrics unknown so far (no row yet, no loss without --data) are
// omitted rather than reported as zero.
[[nodiscard]] std::string metrics_text(const Summary& s);

// /api/status: configuration, membership with per-worker fields, totals, finished flag.
[[nodiscard]] std::string status_json(const Summary& s);

// /api/log: a JSON array of objects named like the CSV's columns; numbers shortest round-trip,
// null for an unknown loss or ||grad f||^2; full_sync is 0 or 1 as in the CSV.
[[nodiscard]] std::string rows_json(std::span<const run::LogRow> rows);

// /api/events: a JSON array of the events' objects, each as one line of --events writes it.
[[nodiscard]] std::string events_json(std::span<const run::Event> events);

// A JSON number that parses back to the same double; null when not finite (JSON has neither).
[[nodiscard]] std::string json_number(double v);

// The event kinds the coordinator emits (docs/ARCHITECTURE.md), so every marina_events_total
// series exists from the start and rate() works on its first increment.
[[nodiscard]] std::span<const char* const> known_event_kinds();

// The dashboard: one self-contained HTML page (inline script and styles; fetches nothing but
// this server's /api endpoints).
[[nodiscard]] std::string_view dashboard_page();

}  // namespace marina::observe
