#pragma once
// The events of a run, one JSON object a line (--events FILE.jsonl): joins, leaves, deadline
// misses, workers gone and returned, resyncs, repairs, checkpoints, rejected messages. The
// coordinator emits each fact once; the events file, the final summary and the terminal are
// views of that one stream.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace marina::run {

struct Event {
  uint64_t round = 0;    // the round open (or next to open) when it happened
  double time_s = 0.0;   // seconds since the run started
  std::optional<uint32_t> worker;
  std::string kind;      // e.g. "join", "gone", "returned", "resync", "checkpoint"
  std::string detail;    // free text for people; may be empty

  bool operator==(const Event&) const = default;
};

// {"round":12,"time_s":0.25,"worker":3,"event":"gone","detail":"..."}; "worker" is omitted
// when absent. Strings are escaped as JSON requires (quotes, backslash, control characters
// as \u00XX); invalid UTF-8 bytes are replaced by U+FFFD so every line is valid JSON.
[[nodiscard]] std::string to_json(const Event& e);

// `s` as a JSON string literal, quotes included, escaped and made valid UTF-8 as to_json does.
[[nodiscard]] std::string json_string(std::string_view s);

// Appends events to a file, one line each, flushed per line (a crash loses at most the line
// being written). `truncate_to`: when set, the file is first cut to that many bytes (a resumed
// run drops the events after its checkpoint); otherwise an existing file is replaced.
class EventLog {
 public:
  explicit EventLog(const std::filesystem::path& file,
                    std::optional<uint64_t> truncate_to = std::nullopt);
  void write(const Event& e);
  [[nodiscard]] uint64_t bytes() const { return bytes_; }  // the file's size so far

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  uint64_t bytes_ = 0;
};

// Counts per kind, for the final summary: "gone 2, join 8, resync 3" (kinds sorted).
class EventCounts {
 public:
  void add(const std::string& kind) { ++counts_[kind]; }
  [[nodiscard]] uint64_t count(const std::string& kind) const;
  [[nodiscard]] std::string summary() const;

 private:
  std::map<std::string, uint64_t> counts_;
};

}  // namespace marina::run
