// The coordinator's HTTP view: the snapshot store, the Prometheus and JSON documents rendered
// from a synthetic store, the --http address rules, one real server on loopback, and the worker
// progress callback that feeds systemd's watchdog.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "marina/drivers/coordinator.h"
#include "marina/drivers/worker.h"
#include "marina/observe/http_server.h"
#include "marina/observe/render.h"
#include "marina/observe/store.h"
#include "marina/transport/inproc_transport.h"
#include "test_support.h"

using namespace marina;

namespace {

run::LogRow row(uint64_t round, std::optional<double> grad, bool full_sync, uint32_t participants,
                double bits, uint64_t up, uint64_t down) {
  run::LogRow r;
  r.round = round;
  r.grad_norm_sq = grad;
  if (grad) r.loss = 0.5 + *grad;
  r.full_sync = full_sync;
  r.participants = participants;
  r.bits_per_worker = bits;
  r.wire_bytes_up = up;
  r.wire_bytes_down = down;
  r.oracle_calls = static_cast<double>(round) * 1.5;
  r.wall_s = 0.001 * static_cast<double>(round);
  return r;
}

run::Event event(uint64_t round, std::optional<uint32_t> worker, std::string kind,
                 std::string detail = "") {
  run::Event e;
  e.round = round;
  e.time_s = 0.25 * static_cast<double>(round);
  e.worker = worker;
  e.kind = std::move(kind);
  e.detail = std::move(detail);
  return e;
}

// Fingerprints of the CurveZMQ keys the live and the gone worker joined with (keyed runs).
constexpr const char* kKey0 = "3fa09c1e5b7d";
constexpr const char* kKey1 = "c0ffee012345";

drivers::FleetStatus fleet(bool keyed = false) {
  drivers::FleetStatus f;
  f.time_s = 2.5;
  f.round = 3;
  f.live = 1;
  f.min_workers = 1;
  f.repairs = 4;
  f.resyncs = 2;
  f.rejected = 7;
  f.config.method = methods::Method::kMarina;
  f.config.compressor = "randk:1";
  f.config.workers = 3;
  f.config.dim = 13;
  f.config.gamma = 0.125;
  f.config.p = 0.1;
  drivers::WorkerStatus live;
  live.id = 0;
  live.state = drivers::MemberState::kLive;
  live.arch = "x86_64";
  live.answered = 3;
  live.last_seen_age_s = 0.5;
  live.last_latency_s = 0.002;
  drivers::WorkerStatus gone;
  gone.id = 1;
  gone.state = drivers::MemberState::kGone;
  gone.arch = "aarch\"64";  // a quote, to see it escaped
  gone.answered = 2;
  gone.returns = 1;
  gone.last_seen_age_s = 1.0;
  gone.gone_reason = "missed 3 deadlines";
  if (keyed) {
    live.key_fingerprint = kKey0;
    gone.key_fingerprint = kKey1;
  }
  drivers::WorkerStatus absent;
  absent.id = 2;
  f.workers = {live, gone, absent};
  return f;
}

// Three rows (the last without a loss, as a coordinator without --data logs them), four events
// and a status with a live, a gone and a never-seen worker (`keyed`: the first two joined with
// CurveZMQ keys).
observe::Store& synthetic_store(observe::Store& s, bool last_row_known = true, bool keyed = false) {
  s.add_row(row(0, 4.0, false, 0, 0.0, 0, 100));
  s.add_row(row(1, 2.0, true, 3, 416.0, 800, 500));
  s.add_row(row(2, last_row_known ? std::optional<double>(0.1) : std::nullopt, false, 2, 480.5, 900,
                600));
  s.add_event(event(0, 0, "join"));
  s.add_event(event(1, 1, "gone", "missed 3 deadlines"));
  s.add_event(event(2, 1, "returned"));
  s.add_event(event(2, std::nullopt, "custom_kind", "tab\there"));
  s.set_status(fleet(keyed));
  return s;
}

observe::RunInfo info() {
  observe::RunInfo i;
  i.config.workers = 3;
  i.config.compressor = "randk:1";
  i.rounds = 100;
  i.listen = "tcp://127.0.0.1:5555";
  i.data = "data/heart_scale";
  i.round_timeout_ms = 300;
  i.sync_timeout_ms = 900;
  i.miss_limit = 3;
  return i;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The samples of an exposition, "name{labels}" → value; checks the format's structure on the
// way: every family has one HELP and one TYPE before its samples, and samples belong to it.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::set<std::string> families;
  std::string family, type;
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  for (const auto& l : lines_of(text)) {
    REQUIRE(!l.empty());
    if (l.rfind("# HELP ", 0) == 0) {
      family = l.substr(7, l.find(' ', 7) - 7);
      CHECK_MESSAGE(families.insert(family).second, "family twice: " << family);
      type.clear();
      continue;
    }
    if (l.rfind("# TYPE ", 0) == 0) {
      CHECK(l.substr(7, family.size()) == family);
      type = l.substr(8 + family.size());
      CHECK((type == "counter" || type == "gauge"));
      if (type == "counter") CHECK(family.size() > 6);
      if (type == "counter") CHECK(family.substr(family.size() - 6) == "_total");
      continue;
    }
    REQUIRE_MESSAGE(!type.empty(), "sample before its TYPE: " << l);
    const auto space = l.rfind(' ');
    const std::string key = l.substr(0, space);
    CHECK_MESSAGE(key.substr(0, key.find('{')) == family, l);
    out[key] = l.substr(space + 1);
  }
  return out;
}

// One HTTP/1.1 request to 127.0.0.1:port; returns the whole response (status line, headers,
// body). Plain sockets: the test needs no HTTP client library.
std::string http_get(uint16_t port, const std::string& target, const std::string& host,
                     const std::string& extra_headers = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra_headers +
                          "Connection: close\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, buf + n);
  ::close(fd);
  return out;
}

}  // namespace

TEST_CASE("observe: metrics text from a synthetic store") {
  observe::Store store(info());
  synthetic_store(store);
  auto s = store.summary();
  s.status_age_s = 0.25;  // fixed, so the ages below are exact
  const auto m = samples(observe::metrics_text(s));
  CHECK(m.at("marina_rounds_total") == "2");
  CHECK(m.at("marina_participants") == "2");
  CHECK(m.at("marina_full_sync_rounds_total") == "1");
  CHECK(m.at("marina_uplink_bits_per_worker_total") == "480.5");
  CHECK(m.at("marina_wire_bytes_up_total") == "900");
  CHECK(m.at("marina_wire_bytes_down_total") == "600");
  CHECK(m.at("marina_grad_norm_sq") == "0.1");
  CHECK(m.at("marina_loss") == "0.6");
  CHECK(m.at("marina_repairs_total") == "4");
  CHECK(m.at("marina_resyncs_total") == "2");
  CHECK(m.at("marina_rejected_messages_total") == "7");
  CHECK(m.at("marina_workers_live") == "1");
  CHECK(m.at("marina_workers_min") == "1");
  CHECK(m.at("marina_workers") == "3");
  CHECK(m.at("marina_run_finished") == "0");
  CHECK(m.at("marina_run_seconds") == "2.75");
  CHECK(m.at("marina_events_total{event=\"gone\"}") == "1");
  CHECK(m.at("marina_events_total{event=\"returned\"}") == "1");
  CHECK(m.at("marina_events_total{event=\"join\"}") == "1");
  CHECK(m.at("marina_events_total{event=\"diverged\"}") == "0");  // known kinds start at 0
  CHECK(m.at("marina_events_total{event=\"custom_kind\"}") == "1");
  CHECK(m.at("marina_worker_live{worker=\"0\"}") == "1");
  CHECK(m.at("marina_worker_live{worker=\"1\"}") == "0");
  CHECK(m.at("marina_worker_state{worker=\"1\",state=\"gone\"}") == "1");
  CHECK(m.at("marina_worker_state{worker=\"1\",state=\"live\"}") == "0");
  CHECK(m.at("marina_worker_state{worker=\"2\",state=\"absent\"}") == "1");
  CHECK(m.at("marina_worker_replies_total{worker=\"0\"}") == "3");
  CHECK(m.at("marina_worker_returns_total{worker=\"1\"}") == "1");
  CHECK(m.at("marina_worker_last_seen_age_seconds{worker=\"0\"}") == "0.75");
  CHECK(m.at("marina_worker_last_seen_age_seconds{worker=\"1\"}") == "1.25");
  CHECK(m.count("marina_worker_last_seen_age_seconds{worker=\"2\"}") == 0);  // never heard from
  CHECK(m.at("marina_worker_reply_latency_seconds{worker=\"0\"}") == "0.002");
  CHECK(m.count("marina_worker_reply_latency_seconds{worker=\"1\"}") == 0);
  CHECK(m.at("marina_worker_info{worker=\"0\",arch=\"x86_64\"}") == "1");
  CHECK(m.at("marina_worker_info{worker=\"1\",arch=\"aarch\\\"64\"}") == "1");
  CHECK(m.count("marina_worker_info{worker=\"2\",arch=\"\"}") == 0);
  for (const auto& [sample, value] : m)  // plaintext: no key label anywhere
    CHECK_MESSAGE(sample.find("key=") == std::string::npos, sample);

  SUBCASE("with CurveZMQ keys, marina_worker_info carries each worker's key fingerprint") {
    observe::Store keyed(info());
    synthetic_store(keyed, true, true);
    const auto k = samples(observe::metrics_text(keyed.summary()));
    CHECK(k.at("marina_worker_info{worker=\"0\",arch=\"x86_64\",key=\"" + std::string(kKey0) +
               "\"}") == "1");
    CHECK(k.at("marina_worker_info{worker=\"1\",arch=\"aarch\\\"64\",key=\"" + std::string(kKey1) +
               "\"}") == "1");
    CHECK(k.count("marina_worker_info{worker=\"0\",arch=\"x86_64\"}") == 0);
    CHECK(k.at("marina_worker_live{worker=\"0\"}") == "1");  // the other series keep `worker`
  }
}

TEST_CASE("observe: unknown values are omitted from the metrics, not reported as zero") {
  SUBCASE("before the first row and the first status") {
    observe::Store store(info());
    const auto m = samples(observe::metrics_text(store.summary()));
    CHECK(m.count("marina_rounds_total") == 0);
    CHECK(m.count("marina_workers_live") == 0);
    CHECK(m.at("marina_workers") == "3");
    CHECK(m.at("marina_events_total{event=\"gone\"}") == "0");
  }
  SUBCASE("no loss or gradient norm in the last row (a coordinator without --data)") {
    observe::Store store(info());
    synthetic_store(store, false);
    const auto m = samples(observe::metrics_text(store.summary()));
    CHECK(m.count("marina_loss") == 0);
    CHECK(m.count("marina_grad_norm_sq") == 0);
    CHECK(m.at("marina_rounds_total") == "2");
  }
  SUBCASE("a finished run freezes its elapsed time") {
    observe::Store store(info());
    synthetic_store(store);
    store.finish("run complete");
    auto s = store.summary();
    s.status_age_s = 10.0;
    const auto m = samples(observe::metrics_text(s));
    CHECK(m.at("marina_run_finished") == "1");
    CHECK(m.at("marina_run_seconds") == "2.5");
  }
}

TEST_CASE("observe: status JSON") {
  observe::Store store(info());
  synthetic_store(store);
  store.finish("run complete");
  auto s = store.summary();
  s.status_age_s = 0.25;
  const std::string j = observe::status_json(s);
  CHECK(j.front() == '{');
  CHECK(j.back() == '}');
  CHECK(j.find("\"finished\":true,\"outcome\":\"run complete\",\"time_s\":2.5,\"round\":3,"
               "\"rows\":3,\"events\":4,") != std::string::npos);
  CHECK(j.find("\"config\":{\"method\":\"marina\",\"compressor\":\"randk:1\",\"workers\":3,"
               "\"dim\":13,") != std::string::npos);
  CHECK(j.find("\"resolved\":true,\"gamma\":0.125,\"p\":0.1,") != std::string::npos);
  CHECK(j.find("\"rounds\":100,\"listen\":\"tcp://127.0.0.1:5555\",\"data\":\"data/heart_scale\","
               "\"round_timeout_ms\":300,\"sync_timeout_ms\":900,\"miss_limit\":3}") !=
        std::string::npos);
  CHECK(j.find("\"membership\":{\"live\":1,\"min_workers\":1,\"workers\":[{\"id\":0,\"state\":"
               "\"live\",\"arch\":\"x86_64\",\"replies\":3,\"returns\":0,\"last_seen_age_s\":0.75,"
               "\"latency_s\":0.002,\"gone_reason\":\"\",\"key\":null},") != std::string::npos);
  CHECK(j.find("{\"id\":1,\"state\":\"gone\",\"arch\":\"aarch\\\"64\",\"replies\":2,\"returns\":1,"
               "\"last_seen_age_s\":1.25,\"latency_s\":null,\"gone_reason\":\"missed 3 "
               "deadlines\",\"key\":null}") != std::string::npos);
  CHECK(j.find("{\"id\":2,\"state\":\"absent\",\"arch\":\"\",\"replies\":0,\"returns\":0,"
               "\"last_seen_age_s\":null,\"latency_s\":null,\"gone_reason\":\"\",\"key\":null}") !=
        std::string::npos);
  CHECK(j.find("\"key\":\"") == std::string::npos);  // plaintext: no fingerprint
  CHECK(j.find("\"totals\":{\"rounds\":2,\"participants\":2,\"full_sync_rounds\":1,"
               "\"bits_per_worker\":480.5,\"wire_bytes_up\":900,\"wire_bytes_down\":600,"
               "\"loss\":0.6,\"grad_norm_sq\":0.1,\"repairs\":4,\"resyncs\":2,\"rejected\":7,"
               "\"events\":{\"custom_kind\":1,\"gone\":1,\"join\":1,\"returned\":1}}}") !=
        std::string::npos);

  SUBCASE("with CurveZMQ keys: each worker's key fingerprint, null for one never seen") {
    observe::Store keyed(info());
    synthetic_store(keyed, true, true);
    auto ks = keyed.summary();
    ks.status_age_s = 0.25;
    const std::string k = observe::status_json(ks);
    CHECK(k.find("{\"id\":0,\"state\":\"live\",\"arch\":\"x86_64\",\"replies\":3,\"returns\":0,"
                 "\"last_seen_age_s\":0.75,\"latency_s\":0.002,\"gone_reason\":\"\",\"key\":\"" +
                 std::string(kKey0) + "\"}") != std::string::npos);
    CHECK(k.find("\"gone_reason\":\"missed 3 deadlines\",\"key\":\"" + std::string(kKey1) +
                 "\"}") != std::string::npos);
    CHECK(
        k.find("{\"id\":2,\"state\":\"absent\",\"arch\":\"\",\"replies\":0,\"returns\":0,"
               "\"last_seen_age_s\":null,\"latency_s\":null,\"gone_reason\":\"\",\"key\":null}") !=
        std::string::npos);
  }

  SUBCASE("before the workers joined: the configuration as asked, no membership yet") {
    observe::Store empty(info());
    const std::string e = observe::status_json(empty.summary());
    CHECK(e.find("\"finished\":false") != std::string::npos);
    CHECK(e.find("\"resolved\":false") != std::string::npos);
    CHECK(e.find("\"membership\":{\"live\":null,\"min_workers\":null,\"workers\":[]}") !=
          std::string::npos);
    CHECK(e.find("\"participants\":null") != std::string::npos);
    CHECK(e.find("\"loss\":null,\"grad_norm_sq\":null") != std::string::npos);
  }
}

TEST_CASE("observe: log rows and events as JSON") {
  std::vector<run::LogRow> rows = {row(7, 0.1, true, 4, 1.0 / 3.0, 10, 20),
                                   row(8, std::nullopt, false, 3, 1e-300, 11, 22)};
  rows[1].loss.reset();
  CHECK(observe::rows_json(rows) ==
        "[{\"round\":7,\"loss\":0.6,\"grad_norm_sq\":0.1,\"full_sync\":1,\"participants\":4,"
        "\"bits_per_worker\":0.3333333333333333,\"wire_bytes_up\":10,\"wire_bytes_down\":20,"
        "\"oracle_calls\":10.5,\"wall_s\":0.007},"
        "{\"round\":8,\"loss\":null,\"grad_norm_sq\":null,\"full_sync\":0,\"participants\":3,"
        "\"bits_per_worker\":1e-300,\"wire_bytes_up\":11,\"wire_bytes_down\":22,"
        "\"oracle_calls\":12,\"wall_s\":0.008}]");
  CHECK(observe::rows_json({}) == "[]");
  const std::vector<run::Event> ev = {event(1, 2, "gone", "a \"quoted\" reason"),
                                      event(2, std::nullopt, "quorum_back")};
  CHECK(observe::events_json(ev) == "[" + run::to_json(ev[0]) + "," + run::to_json(ev[1]) + "]");
  CHECK(observe::json_number(0.1) == "0.1");
  CHECK(observe::json_number(1.0 / 0.0) == "null");
}

TEST_CASE("observe: the store hands out rows by round and events by index, in chunks") {
  observe::Store store(info());
  for (uint64_t k = 5; k < 2005; ++k) store.add_row(row(k, 1.0, k % 10 == 0, 4, 1.0, k, k));
  for (uint64_t i = 0; i < 1200; ++i) store.add_event(event(i, 0, i % 2 ? "gone" : "returned"));
  CHECK(store.rows_since(0, 10).front().round == 5);
  const auto tail = store.rows_since(1000, 5000);  // more than one chunk
  REQUIRE(tail.size() == 1005);
  for (std::size_t i = 0; i < tail.size(); ++i) CHECK(tail[i].round == 1000 + i);
  CHECK(store.rows_since(2004, 10).size() == 1);
  CHECK(store.rows_since(2005, 10).empty());
  CHECK(store.rows_since(100, 700).size() == 700);
  const auto ev = store.events_since(100, 100000);
  REQUIRE(ev.size() == 1100);
  CHECK(ev.front().round == 100);
  CHECK(store.events_since(1200, 10).empty());
  const auto s = store.summary();
  CHECK(s.rows == 2000);
  CHECK(s.full_sync_rounds == 200);
  CHECK(s.event_counts.at("gone") == 600);
  CHECK(s.last_row->round == 2004);
  CHECK(!s.status);
}

TEST_CASE("observe: --http addresses") {
  const auto a = observe::parse_http_address("127.0.0.1:9464");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 9464);
  CHECK(observe::parse_http_address("[::1]:0").host == "::1");
  CHECK(observe::parse_http_address("localhost:80").port == 80);
  for (const char* bad : {"", "9464", ":9464", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:65536",
                          "::1:9464", "[::1]9464", "http://127.0.0.1:9464"}) {
    CAPTURE(bad);
    try {
      (void)observe::parse_http_address(bad);
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).rfind("--http '", 0) == 0);
    }
  }
  CHECK(observe::is_loopback("127.0.0.1"));
  CHECK(observe::is_loopback("127.3.2.1"));
  CHECK(observe::is_loopback("::1"));
  CHECK(observe::is_loopback("LocalHost"));
  CHECK(observe::is_loopback("::ffff:127.0.0.1"));
  CHECK(!observe::is_loopback("0.0.0.0"));
  CHECK(!observe::is_loopback("::"));
  CHECK(!observe::is_loopback("192.168.1.10"));
  CHECK(!observe::is_loopback("example.org"));
}

TEST_CASE("observe: the server answers on loopback and refuses what it must") {
  observe::Store store(info());
  synthetic_store(store);
  const observe::HttpAddress any{"0.0.0.0", 0};
  CHECK_THROWS_WITH_AS(observe::HttpServer(store, any, false),
                       doctest::Contains("--http-allow-remote"), std::invalid_argument);
  observe::HttpServer server(store, {"127.0.0.1", 0}, false);
  REQUIRE(server.port() != 0);
  CHECK(server.url() == "http://127.0.0.1:" + std::to_string(server.port()) + "/");
  const std::string host = "127.0.0.1:" + std::to_string(server.port());

  const auto metrics = http_get(server.port(), "/metrics", host);
  CHECK(metrics.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(metrics.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(metrics.find("\r\n\r\n# HELP marina_rounds_total") != std::string::npos);
  const auto log = http_get(server.port(), "/api/log?since=2", host);
  CHECK(log.find("Content-Type: application/json; charset=utf-8") != std::string::npos);
  CHECK(log.substr(log.find("\r\n\r\n") + 4).rfind("[{\"round\":2,", 0) == 0);
  // What browsers send: JSON must still come uncompressed (httplib's Brotli is far too slow).
  const auto browser = http_get(server.port(), "/api/log", host, "Accept-Encoding: gzip, br\r\n");
  CHECK(browser.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(browser.find("Content-Encoding") == std::string::npos);
  const auto events = http_get(server.port(), "/api/events?since=3", host);
  CHECK(events.find("\"event\":\"custom_kind\"") != std::string::npos);
  CHECK(events.find("\"event\":\"gone\"") == std::string::npos);
  const auto page = http_get(server.port(), "/", "localhost");
  CHECK(page.find("text/html") != std::string::npos);
  CHECK(page.find("</html>") != std::string::npos);
  CHECK(page.find("http://") == page.find("http://www.w3.org/2000/svg"));  // nothing external
  // The worker table's key column: hidden until a worker has a key fingerprint (w.key).
  CHECK(page.find("<th id=\"key-column\" hidden>key</th>") != std::string::npos);
  CHECK(page.find("m.workers.some(w => w.key)") != std::string::npos);
  CHECK(http_get(server.port(), "/api/log?since=x", host).rfind("HTTP/1.1 400", 0) == 0);
  CHECK(http_get(server.port(), "/nothing", host).rfind("HTTP/1.1 404", 0) == 0);
  // A page elsewhere that rebinds its own name to 127.0.0.1 still sends its own Host.
  CHECK(http_get(server.port(), "/api/status", "attacker.example:80").rfind("HTTP/1.1 403", 0) ==
        0);
  server.stop();
  server.stop();
}

TEST_CASE("worker driver: progress is reported when welcomed and while serving") {
  const auto all = test::synthetic(60, 6, 0.5, 5);
  auto shards = test::shards_of(all, 2);
  drivers::CoordinatorSettings s;
  s.base.method = methods::Method::kMarina;
  s.base.compressor = "randk:1";
  s.base.workers = 2;
  s.rounds = 30;
  s.round_timeout = std::chrono::milliseconds(20000);
  s.join_timeout = std::chrono::milliseconds(20000);
  transport::InProcNetwork net(2);
  std::vector<drivers::WorkerProgress> seen;
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      drivers::WorkerSettings w;
      w.id = i;
      problem::Objective f = shards[i];  // each worker its own model
      w.model = &f;
      if (i == 0) w.on_progress = [&](const drivers::WorkerProgress& p) { seen.push_back(p); };
      (void)drivers::run_worker(net.link(i), std::move(w));
    });
  }
  (void)drivers::run_coordinator(net.hub(), s);
  for (auto& t : threads) t.join();
  REQUIRE(!seen.empty());
  std::size_t welcomed = 0;
  while (welcomed < seen.size() && !seen[welcomed].joined) ++welcomed;
  REQUIRE(welcomed < seen.size());  // the call made when the Welcome arrived
  CHECK(seen[welcomed].round == 0);
  for (std::size_t i = welcomed + 1; i < seen.size(); ++i) {
    CHECK(seen[i].joined);
    CHECK(seen[i].round >= seen[i - 1].round);
    CHECK(seen[i].replies >= seen[i - 1].replies);
  }
}
