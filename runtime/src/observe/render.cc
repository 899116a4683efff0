#include "marina/observe/render.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "marina/drivers/membership.h"

namespace marina::observe {
namespace {

constexpr const char* kEventKinds[] = {
    "join",          "returned", "gone",     "leave",        "worker_error", "deadline_miss",
    "late_reply",    "repair",   "resync",   "sync_partial", "quorum_lost",  "quorum_back",
    "start_partial", "refused",  "rejected", "revoked",      "checkpoint",   "diverged"};

// Prometheus sample values: Go's float syntax, which spells the non-finite ones its own way.
std::string prom_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return run::exact(v);
}

std::string prom_label_value(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// One metric family at a time: HELP and TYPE first, then its samples.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // fixed text without backslashes or line breaks
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // A sample of the current family; `labels` is "" or `a="x",b="y"` (values escaped).
  void sample(const std::string& labels, const std::string& value) {
    out_ += name_;
    if (!labels.empty()) out_ += '{' + labels + '}';
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void sample(const std::string& value) { sample("", value); }
  void one(std::string_view name, std::string_view type, std::string_view help,
           const std::string& value) {
    family(name, type, help);
    sample(value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  std::string name_;
};

std::string label(std::string_view key, std::string_view value) {
  return std::string(key) + "=\"" + prom_label_value(value) + '"';
}

std::string u64(uint64_t v) {
  return std::to_string(v);
}

const methods::MethodConfig& config_of(const Summary& s) {
  // Until the workers have joined, only what was asked is known (dim 0, gamma unresolved).
  return s.status && s.status->config.dim != 0 ? s.status->config : s.info.config;
}

bool finished(const Summary& s) {
  return s.finished || (s.status && s.status->finished);
}

// A worker's "seconds since its last message" grows while the status that reported it ages.
double last_seen_age(const drivers::WorkerStatus& w, const Summary& s) {
  return w.last_seen_age_s < 0 ? -1.0 : w.last_seen_age_s + s.status_age_s;
}

double elapsed(const Summary& s) {
  if (!s.status) return 0.0;
  return s.status->time_s + (finished(s) ? 0.0 : s.status_age_s);
}

void key(std::string& out, std::string_view k) {
  if (out.back() != '{' && out.back() != '[') out += ',';
  out += '"';
  out += k;
  out += "\":";
}

void field(std::string& out, std::string_view k, const std::string& raw) {
  key(out, k);
  out += raw;
}

void text(std::string& out, std::string_view k, std::string_view v) {
  field(out, k, run::json_string(v));
}

std::string optional_number(const std::optional<double>& v) {
  return v ? json_number(*v) : "null";
}

std::string age_or_null(double v) {
  return v < 0 ? "null" : json_number(v);
}

}  // namespace

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

std::span<const char* const> known_event_kinds() {
  return kEventKinds;
}

std::string metrics_text(const Summary& s) {
  Exposition m;
  if (s.last_row) {
    const run::LogRow& r = *s.last_row;
    m.one("marina_rounds_total", "counter", "Rounds closed (the round of the last logged row).",
          u64(r.round));
    m.one("marina_participants", "gauge", "Replies aggregated in the last closed round.",
          u64(r.participants));
    m.one("marina_full_sync_rounds_total", "counter",
          "Full-sync rounds logged by this coordinator process.", u64(s.full_sync_rounds));
    m.one("marina_uplink_bits_per_worker_total", "counter",
          "Uplink bits per worker, 32 per value as the paper counts (CSV bits_per_worker).",
          prom_number(r.bits_per_worker));
    m.one("marina_wire_bytes_up_total", "counter", "Bytes of all encoded replies.",
          u64(r.wire_bytes_up));
    m.one("marina_wire_bytes_down_total", "counter",
          "Bytes of broadcasts times their receivers, repairs included.", u64(r.wire_bytes_down));
    m.one("marina_oracle_calls_per_worker_total", "counter",
          "Per-sample gradients evaluated per worker (CSV oracle_calls).",
          prom_number(r.oracle_calls));
    if (r.loss)
      m.one("marina_loss", "gauge", "Loss f(x^k) of the last logged row.", prom_number(*r.loss));
    if (r.grad_norm_sq)
      m.one("marina_grad_norm_sq", "gauge", "Squared gradient norm of f at the last logged row.",
            prom_number(*r.grad_norm_sq));
  }
  m.family("marina_events_total", "counter", "Events of the run by kind (this process's).");
  for (const char* kind : kEventKinds) {
    const auto it = s.event_counts.find(kind);
    m.sample(label("event", kind), u64(it == s.event_counts.end() ? 0 : it->second));
  }
  for (const auto& [kind, n] : s.event_counts) {
    bool known = false;
    for (const char* k : kEventKinds) known = known || kind == k;
    if (!known) m.sample(label("event", kind), u64(n));
  }
  m.one("marina_run_finished", "gauge", "1 once the run is over (the server may linger).",
        finished(s) ? "1" : "0");
  m.one("marina_workers", "gauge", "Workers of the run (n).", u64(config_of(s).workers));
  if (!s.status) return m.take();
  const drivers::FleetStatus& f = *s.status;
  m.one("marina_run_seconds", "gauge", "Seconds since the run started.", prom_number(elapsed(s)));
  m.one("marina_repairs_total", "counter", "Broadcasts sent again directly to silent workers.",
        u64(f.repairs));
  m.one("marina_resyncs_total", "counter", "Snapshots sent to workers that asked for a resync.",
        u64(f.resyncs));
  m.one("marina_rejected_messages_total", "counter",
        "Messages that failed validation (changed nothing).", u64(f.rejected));
  m.one("marina_workers_live", "gauge", "Workers live now.", u64(f.live));
  m.one("marina_workers_min", "gauge", "The run goes on while at least this many are live.",
        u64(f.min_workers));

  const auto per_worker = [&](std::string_view name, std::string_view type, std::string_view help,
                              auto value) {
    m.family(name, type, help);
    for (const auto& w : f.workers) {
      const std::string v = value(w);
      if (!v.empty()) m.sample(label("worker", std::to_string(w.id)), v);
    }
  };
  per_worker("marina_worker_live", "gauge", "1 when the worker is live, else 0.",
             [](const drivers::WorkerStatus& w) {
               return std::string(w.state == drivers::MemberState::kLive ? "1" : "0");
             });
  m.family("marina_worker_state", "gauge",
           "The worker's membership state: 1 for the state it is in, 0 for the others.");
  for (const auto& w : f.workers) {
    for (const auto state :
         {drivers::MemberState::kAbsent, drivers::MemberState::kLive, drivers::MemberState::kGone})
      m.sample(label("worker", std::to_string(w.id)) + ',' + label("state", to_string(state)),
               w.state == state ? "1" : "0");
  }
  per_worker("marina_worker_replies_total", "counter", "Replies of the worker aggregated.",
             [](const drivers::WorkerStatus& w) { return u64(w.answered); });
  per_worker("marina_worker_returns_total", "counter",
             "Times the worker came back after being gone.",
             [](const drivers::WorkerStatus& w) { return u64(w.returns); });
  per_worker("marina_worker_last_seen_age_seconds", "gauge",
             "Seconds since the worker's last message (absent: never heard from).",
             [&](const drivers::WorkerStatus& w) {
               const double age = last_seen_age(w, s);
               return age < 0 ? std::string() : prom_number(age);
             });
  per_worker("marina_worker_reply_latency_seconds", "gauge",
             "Broadcast to the worker's last aggregated reply, in seconds.",
             [](const drivers::WorkerStatus& w) {
               return w.last_latency_s < 0 ? std::string() : prom_number(w.last_latency_s);
             });
  m.family("marina_worker_info", "gauge",
           "The worker's machine architecture and, with CurveZMQ keys, the fingerprint of the key "
           "it joined with (value always 1).");
  for (const auto& w : f.workers) {
    if (w.state == drivers::MemberState::kAbsent && w.arch.empty()) continue;
    std::string labels = label("worker", std::to_string(w.id)) + ',' + label("arch", w.arch);
    if (!w.key_fingerprint.empty()) labels += ',' + label("key", w.key_fingerprint);
    m.sample(labels, "1");
  }
  return m.take();
}

std::string status_json(const Summary& s) {
  const methods::MethodConfig& c = config_of(s);
  std::string o = "{";
  field(o, "finished", finished(s) ? "true" : "false");
  text(o, "outcome", s.outcome);
  field(o, "time_s", json_number(elapsed(s)));
  field(o, "round", u64(s.status ? s.status->round : (s.last_row ? s.last_row->round : 0)));
  field(o, "rows", u64(s.rows));
  field(o, "events", u64(s.events));

  key(o, "config");
  o += '{';
  text(o, "method", methods::to_string(c.method));
  text(o, "compressor", c.compressor);
  field(o, "workers", u64(c.workers));
  field(o, "dim", u64(c.dim));
  field(o, "seed", u64(c.seed));
  field(o, "resolved", s.status && s.status->config.dim != 0 ? "true" : "false");
  field(o, "gamma", json_number(c.gamma));
  field(o, "p", json_number(c.p));
  field(o, "alpha", json_number(c.alpha));
  field(o, "batch", u64(c.batch));
  field(o, "online_batch", u64(c.online_batch));
  text(o, "batch_sampling", methods::to_string(c.batch_sampling));
  field(o, "clients", u64(c.clients));
  field(o, "rounds", u64(s.info.rounds));
  text(o, "listen", s.info.listen);
  text(o, "data", s.info.data);
  field(o, "round_timeout_ms", std::to_string(s.info.round_timeout_ms));
  field(o, "sync_timeout_ms", std::to_string(s.info.sync_timeout_ms));
  field(o, "miss_limit", u64(s.info.miss_limit));
  o += '}';

  key(o, "membership");
  o += '{';
  field(o, "live", s.status ? u64(s.status->live) : "null");
  field(o, "min_workers", s.status ? u64(s.status->min_workers) : "null");
  key(o, "workers");
  o += '[';
  if (s.status) {
    for (const auto& w : s.status->workers) {
      if (o.back() != '[') o += ',';
      o += '{';
      field(o, "id", u64(w.id));
      text(o, "state", to_string(w.state));
      text(o, "arch", w.arch);
      field(o, "replies", u64(w.answered));
      field(o, "returns", u64(w.returns));
      field(o, "last_seen_age_s", age_or_null(last_seen_age(w, s)));
      field(o, "latency_s", age_or_null(w.last_latency_s));
      text(o, "gone_reason", w.gone_reason);
      field(o, "key", w.key_fingerprint.empty() ? "null" : run::json_string(w.key_fingerprint));
      o += '}';
    }
  }
  o += "]}";

  key(o, "totals");
  o += '{';
  const run::LogRow r = s.last_row.value_or(run::LogRow{});
  field(o, "rounds", u64(r.round));
  field(o, "participants", s.last_row ? u64(r.participants) : "null");
  field(o, "full_sync_rounds", u64(s.full_sync_rounds));
  field(o, "bits_per_worker", json_number(r.bits_per_worker));
  field(o, "wire_bytes_up", u64(r.wire_bytes_up));
  field(o, "wire_bytes_down", u64(r.wire_bytes_down));
  field(o, "loss", optional_number(r.loss));
  field(o, "grad_norm_sq", optional_number(r.grad_norm_sq));
  field(o, "repairs", s.status ? u64(s.status->repairs) : "0");
  field(o, "resyncs", s.status ? u64(s.status->resyncs) : "0");
  field(o, "rejected", s.status ? u64(s.status->rejected) : "0");
  key(o, "events");
  o += '{';
  for (const auto& [kind, n] : s.event_counts) field(o, kind, u64(n));
  o += "}}}";
  return o;
}

std::string rows_json(std::span<const run::LogRow> rows) {
  std::string o = "[";
  o.reserve(rows.size() * 200 + 2);
  for (const auto& r : rows) {
    if (o.size() > 1) o += ',';
    o += '{';
    field(o, "round", u64(r.round));
    field(o, "loss", optional_number(r.loss));
    field(o, "grad_norm_sq", optional_number(r.grad_norm_sq));
    field(o, "full_sync", r.full_sync ? "1" : "0");
    field(o, "participants", u64(r.participants));
    field(o, "bits_per_worker", json_number(r.bits_per_worker));
    field(o, "wire_bytes_up", u64(r.wire_bytes_up));
    field(o, "wire_bytes_down", u64(r.wire_bytes_down));
    field(o, "oracle_calls", json_number(r.oracle_calls));
    field(o, "wall_s", json_number(r.wall_s));
    o += '}';
  }
  o += ']';
  return o;
}

std::string events_json(std::span<const run::Event> events) {
  std::string o = "[";
  for (const auto& e : events) {
    if (o.size() > 1) o += ',';
    o += run::to_json(e);
  }
  o += ']';
  return o;
}

}  // namespace marina::observe
