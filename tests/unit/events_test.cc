// Tests of the run's output files: the events JSON lines and the CSV log, including resuming
// both at a checkpoint's byte counts.

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "marina/run/events.h"
#include "marina/run/log.h"
#include "test_support.h"

namespace fs = std::filesystem;
using marina::run::CsvLog;
using marina::run::Event;
using marina::run::EventCounts;
using marina::run::EventLog;
using marina::run::LogRow;
using marina::run::to_json;

namespace {

using marina::test::TempDir;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Event is an aggregate; designated initializers would have to name every member (-Wextra).
Event ev(uint64_t round, double time_s, std::optional<uint32_t> worker, std::string kind,
         std::string detail = "") {
  Event e;
  e.round = round;
  e.time_s = time_s;
  e.worker = worker;
  e.kind = std::move(kind);
  e.detail = std::move(detail);
  return e;
}

// The JSON string that to_json() writes for `detail`.
std::string detail_json(const std::string& detail) {
  const std::string json = to_json(ev(0, 0.0, std::nullopt, "k", detail));
  const std::string before = "{\"round\":0,\"time_s\":0,\"event\":\"k\",\"detail\":";
  REQUIRE(json.substr(0, before.size()) == before);
  REQUIRE(json.back() == '}');
  return json.substr(before.size(), json.size() - before.size() - 1);
}

// The exception message of `f`, or "" when it does not throw std::runtime_error.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

LogRow row(uint64_t k) {
  LogRow r;
  r.round = k;
  if (k % 2 == 0) r.loss = 1.0 / static_cast<double>(k + 1);
  r.grad_norm_sq = 0.1 * static_cast<double>(k);
  r.full_sync = k == 0;
  r.participants = 4;
  r.bits_per_worker = 32.0 * static_cast<double>(k);
  r.wire_bytes_up = 100 * k;
  r.wire_bytes_down = 50 * k;
  r.oracle_calls = 2.5 * static_cast<double>(k);
  r.wall_s = 0.001 * static_cast<double>(k);
  return r;
}

}  // namespace

TEST_CASE("events: to_json fields, numbers and the optional worker") {
  CHECK(to_json(ev(12, 0.25, 3, "gone", "late")) ==
        R"({"round":12,"time_s":0.25,"worker":3,"event":"gone","detail":"late"})");
  CHECK(to_json(ev(0, 0.1, std::nullopt, "checkpoint")) ==
        R"({"round":0,"time_s":0.1,"event":"checkpoint","detail":""})");
  CHECK(to_json(ev(18446744073709551615ULL, 1e-7, 0, "x")) ==
        R"({"round":18446744073709551615,"time_s":1e-07,"worker":0,"event":"x","detail":""})");
  CHECK(to_json(ev(1, 1234.5678901234567, std::nullopt, "x")) ==
        R"({"round":1,"time_s":1234.5678901234567,"event":"x","detail":""})");
  CHECK(to_json(ev(1, std::numeric_limits<double>::quiet_NaN(), std::nullopt, "x")) ==
        R"({"round":1,"time_s":null,"event":"x","detail":""})");
  CHECK(to_json(ev(1, 0, std::nullopt, "a\"b")) ==
        R"({"round":1,"time_s":0,"event":"a\"b","detail":""})");
}

TEST_CASE("events: strings are escaped and made valid UTF-8") {
  CHECK(detail_json("plain text") == R"("plain text")");
  CHECK(detail_json("say \"hi\"") == R"("say \"hi\"")");
  CHECK(detail_json("C:\\dir\\") == R"("C:\\dir\\")");
  CHECK(detail_json("a\nb\rc\td") == R"("a\nb\rc\td")");
  CHECK(detail_json(std::string("\x01\x1f\x7f/\b\f", 6)) ==
        "\"\\u0001\\u001f\x7f/\\u0008\\u000c\"");
  CHECK(detail_json(std::string("nul\0here", 8)) == R"("nul\u0000here")");
  // Valid multi-byte sequences pass unchanged: é, €, 😀.
  CHECK(detail_json("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80") ==
        "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"");
  // Each maximal invalid subsequence becomes one U+FFFD (as Python's errors="replace").
  const std::string r = "\xEF\xBF\xBD";
  CHECK(detail_json("ok\xFF!") == "\"ok" + r + "!\"");
  CHECK(detail_json("\xE2\x82") == "\"" + r + "\"");              // truncated at the end
  CHECK(detail_json("\xE2\x82x") == "\"" + r + "x\"");            // truncated before ASCII
  CHECK(detail_json("\xF0\x9F\x98") == "\"" + r + "\"");          // truncated 4-byte sequence
  CHECK(detail_json("\xED\xA0\x80") == "\"" + r + r + r + "\"");  // surrogate
  CHECK(detail_json("\xC0\xAF") == "\"" + r + r + "\"");          // overlong '/'
  CHECK(detail_json("\xF4\x90\x80\x80") == "\"" + r + r + r + r + "\"");  // above U+10FFFF
  CHECK(detail_json("\x80\xBF") == "\"" + r + r + "\"");                  // lone continuations
  CHECK(detail_json("\xE2\x82\"") == "\"" + r + "\\\"\"");  // the quote is still escaped
}

TEST_CASE("events: EventLog writes flushed lines, truncates on resume, refuses a short file") {
  TempDir tmp("eventlog");
  const fs::path file = tmp.path() / "events.jsonl";
  const Event a = ev(1, 0.5, 2, "join");
  const Event b = ev(3, 1.5, std::nullopt, "checkpoint", "round 3");
  const Event c = ev(4, 2.0, 1, "gone", "no reply");
  const std::string la = to_json(a) + "\n", lb = to_json(b) + "\n", lc = to_json(c) + "\n";

  {
    std::ofstream(file) << "old contents\n";
    EventLog log(file);
    CHECK(log.bytes() == 0);
    log.write(a);
    CHECK(slurp(file) == la);  // flushed without closing
    log.write(b);
    log.write(c);
    CHECK(log.bytes() == la.size() + lb.size() + lc.size());
    CHECK(slurp(file) == la + lb + lc);
  }
  {
    EventLog log(file, la.size() + lb.size());
    CHECK(log.bytes() == la.size() + lb.size());
    CHECK(slurp(file) == la + lb);
    log.write(c);
    CHECK(log.bytes() == la.size() + lb.size() + lc.size());
    CHECK(slurp(file) == la + lb + lc);
  }
  const std::string why = error_of([&] { EventLog log(file, 10'000); });
  CHECK(why.find(file.string() + ": ") == 0);
  CHECK(why.find("10000") != std::string::npos);
  CHECK(slurp(file) == la + lb + lc);  // untouched

  CHECK(error_of([&] {
          EventLog log(tmp.path() / "missing.jsonl", 1);
        }).find((tmp.path() / "missing.jsonl").string()) == 0);
  // Resuming a run that had no events file starts one.
  {
    EventLog log(tmp.path() / "new.jsonl", 0);
    log.write(a);
  }
  CHECK(slurp(tmp.path() / "new.jsonl") == la);
}

TEST_CASE("events: EventCounts counts per kind and summarises sorted") {
  EventCounts counts;
  CHECK(counts.summary().empty());
  for (const char* kind : {"resync", "join", "gone", "join", "join", "resync"}) counts.add(kind);
  CHECK(counts.count("join") == 3);
  CHECK(counts.count("resync") == 2);
  CHECK(counts.count("gone") == 1);
  CHECK(counts.count("repair") == 0);
  CHECK(counts.summary() == "gone 1, join 3, resync 2");
}

TEST_CASE("log: CsvLog's rows reach the file at flush(), and by themselves within the interval") {
  TempDir tmp("csv");
  const fs::path file = tmp.path() / "log.csv";
  const std::string header = CsvLog::header() + "\n";
  CsvLog log(file);
  CHECK(slurp(file) == header);  // the header at once: a run that fails early leaves a log
  log.write(row(0));
  log.flush();
  CHECK(slurp(file) == header + CsvLog::format(row(0)) + "\n");
  log.write(row(1));  // may wait in the buffer
  std::this_thread::sleep_for(CsvLog::kFlushInterval + std::chrono::milliseconds(20));
  log.write(row(2));  // the interval has passed: out with everything
  CHECK(slurp(file) == header + CsvLog::format(row(0)) + "\n" + CsvLog::format(row(1)) + "\n" +
                           CsvLog::format(row(2)) + "\n");
  CHECK(log.bytes() == slurp(file).size());
}

TEST_CASE("log: a CsvLog whose disk fills up says so, naming the file") {
  TempDir tmp("csv");
  const fs::path file = tmp.path() / "log.csv";
  CsvLog log(file);
  // A file-size limit just past the header stands in for a full disk: writes beyond it fail
  // with EFBIG (SIGXFSZ ignored meanwhile, or it would end the process).
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  rlimit tight = old;
  tight.rlim_cur = log.bytes() + 10;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  REQUIRE(setrlimit(RLIMIT_FSIZE, &tight) == 0);
  const std::string why = error_of([&] {
    for (uint64_t k = 0; k < 3; ++k) log.write(row(k));
    log.flush();  // whichever of these writes to the file, it fails
  });
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK(why.find(file.string()) != std::string::npos);
  CHECK(why.find("write failed") != std::string::npos);
}

TEST_CASE("log: CsvLog counts rows and bytes and resumes at a byte count") {
  TempDir tmp("csv");
  const fs::path file = tmp.path() / "log.csv";
  uint64_t after_three = 0;
  {
    CsvLog log(file);
    CHECK(log.rows() == 0);
    CHECK(log.bytes() == CsvLog::header().size() + 1);
    for (uint64_t k = 0; k < 3; ++k) log.write(row(k));
    after_three = log.bytes();
    CHECK(log.rows() == 3);
    log.flush();
    CHECK(slurp(file).size() == after_three);
    log.write(row(3));
    log.write(row(4));
    CHECK(log.rows() == 5);
    log.flush();
    CHECK(log.bytes() == slurp(file).size());
  }
  {
    CsvLog log(file, after_three);
    CHECK(log.rows() == 3);
    CHECK(log.bytes() == after_three);
    log.write(row(7));
    CHECK(log.rows() == 4);
  }
  std::string expected = CsvLog::header() + "\n";
  for (uint64_t k : {0, 1, 2, 7}) expected += CsvLog::format(row(k)) + "\n";
  CHECK(slurp(file) == expected);

  const uint64_t size = expected.size();
  std::string why = error_of([&] { CsvLog log(file, size + 1); });
  CHECK(why.find(file.string() + ": ") == 0);
  CHECK(why.find(std::to_string(size) + " bytes") != std::string::npos);
  CHECK(why.find(std::to_string(size + 1)) != std::string::npos);
  why = error_of([&] { CsvLog log(file, size - 2); });  // inside the last row
  CHECK(why.find("not the end of a row") != std::string::npos);
  why = error_of([&] { CsvLog log(file, 5); });  // inside the header
  CHECK(why.find("header") != std::string::npos);
  CHECK(slurp(file) == expected);  // a refused resume changes nothing
  why = error_of([&] { CsvLog log(tmp.path() / "missing.csv", 0); });
  CHECK(why.find((tmp.path() / "missing.csv").string() + ": ") == 0);

  CsvLog header_only(file, CsvLog::header().size() + 1);
  CHECK(header_only.rows() == 0);
}

TEST_CASE(
    "log: the local_grad_norm_sq column is written when chosen, and a resume keeps the choice") {
  using marina::run::CsvColumns;
  TempDir tmp("csv_local");
  const fs::path file = tmp.path() / "log.csv";
  const CsvColumns with{.local_grad_norm_sq = true};
  CHECK(CsvLog::header(with) == CsvLog::header() + ",local_grad_norm_sq");
  LogRow r = row(2);
  r.local_grad_norm_sq = 0.1 + 0.2;
  // The standard columns are unchanged, and the chosen one comes last, exact.
  CHECK(CsvLog::format(r, with) == CsvLog::format(r) + ",0.30000000000000004");
  CHECK(CsvLog::format(r) == CsvLog::format(row(2)));
  LogRow unknown = row(3);  // a row without the evaluation (a coordinator without --data)
  CHECK(CsvLog::format(unknown, with) == CsvLog::format(unknown) + ",");

  uint64_t after_one = 0;
  {
    CsvLog log(file, std::nullopt, with);
    log.write(r);
    after_one = log.bytes();
    log.write(unknown);
  }
  CHECK(slurp(file) == CsvLog::header(with) + "\n" + CsvLog::format(r, with) + "\n" +
                           CsvLog::format(unknown, with) + "\n");
  const std::string before = slurp(file);
  std::string why = error_of([&] { CsvLog log(file, after_one); });
  CHECK(why.find(file.string() + ": cannot resume log: it has the local_grad_norm_sq column") == 0);
  CHECK(why.find("--log-local-norms") != std::string::npos);
  CHECK(slurp(file) == before);  // refused: nothing cut
  {
    CsvLog log(file, after_one, with);
    CHECK(log.rows() == 1);
    log.write(row(4));
  }
  CHECK(slurp(file) == CsvLog::header(with) + "\n" + CsvLog::format(r, with) + "\n" +
                           CsvLog::format(row(4), with) + "\n");

  const fs::path plain = tmp.path() / "plain.csv";
  {
    CsvLog log(plain);
    log.write(row(0));
  }
  why = error_of([&] { CsvLog log(plain, CsvLog::header().size() + 1, with); });
  CHECK(why.find("lacks the local_grad_norm_sq column") != std::string::npos);
  CHECK(why.find("without --log-local-norms") != std::string::npos);
}
