#include "marina/observe/http_server.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <thread>

#include <httplib.h>

#include "marina/observe/render.h"

namespace marina::observe {
namespace {

// Connections served at once. A browser keeps a few keep-alive connections open and a scraper
// one more; the rest queue. Each thread mostly sleeps in poll().
constexpr std::size_t kThreads = 6;
// Rows or events in one /api/log or /api/events answer unless ?limit= asks for fewer: bounds
// the memory of one answer; a client asks again from where the answer ended.
constexpr std::size_t kMaxItems = 100000;
// With a charset, httplib does not compress JSON: a browser asks for Brotli, which Debian's
// httplib runs at its slowest quality (seconds for 10^4 rows, on the cores the round loop needs).
constexpr char kJson[] = "application/json; charset=utf-8";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string with_port(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ':' + std::to_string(port);
}

// The host part of a Host header: "127.0.0.1:9464" → 127.0.0.1, "[::1]:9464" → ::1.
std::string host_of_header(const std::string& h) {
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    return close == std::string::npos ? h : h.substr(1, close - 1);
  }
  return h.substr(0, h.find(':'));
}

// A non-negative integer query parameter; `fallback` when it is absent.
std::optional<uint64_t> number_param(const httplib::Request& req, const char* name,
                                     uint64_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  uint64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return out;
}

void no_store(httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
}

}  // namespace

HttpAddress parse_http_address(const std::string& text) {
  const std::string flag = "--http '" + text + "': ";
  if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0)
    throw std::invalid_argument(flag + "expected HOST:PORT without a scheme, e.g. 127.0.0.1:9464");
  HttpAddress a;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw std::invalid_argument(flag + "expected [IPv6]:PORT, e.g. [::1]:9464");
    a.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
      throw std::invalid_argument(flag + "expected HOST:PORT, e.g. 127.0.0.1:9464");
    a.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (a.host.find(':') != std::string::npos)
      throw std::invalid_argument(flag + "write an IPv6 address in brackets, e.g. [::1]:9464");
  }
  if (a.host.empty())
    throw std::invalid_argument(flag + "no host; e.g. 127.0.0.1:9464 (this machine only)");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    throw std::invalid_argument(flag + "the port must be a number from 0 to 65535 (0: any free)");
  a.port = static_cast<uint16_t>(value);
  return a;
}

bool is_loopback(const std::string& host) {
  if (lower(host) == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

struct HttpServer::Impl {
  const Store& store;
  std::string host;
  uint16_t port = 0;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> ended{false};

  Impl(const Store& s, std::string h) : store(s), host(std::move(h)) {}

  void routes(bool allow_remote) {
    server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
    server.set_tcp_nodelay(true);  // small answers: no 40 ms Nagle and delayed-ACK stall
    server.set_keep_alive_max_count(20);
    server.set_keep_alive_timeout(2);
    server.set_read_timeout(5);
    server.set_write_timeout(5);
    if (!allow_remote) {
      server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!req.has_header("Host") || is_loopback(host_of_header(req.get_header_value("Host"))))
          return httplib::Server::HandlerResponse::Unhandled;
        res.status = 403;
        res.set_content("this view answers only requests addressed to a loopback host\n",
                        "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      });
    }
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          res.status = 500;
          res.set_content("internal error: " + what + "\n", "text/plain; charset=utf-8");
        });

    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      no_store(res);
      const std::string_view page = dashboard_page();
      res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      no_store(res);
      res.set_content(metrics_text(store.summary()), "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/api/status", [this](const httplib::Request&, httplib::Response& res) {
      no_store(res);
      res.set_content(status_json(store.summary()), kJson);
    });
    server.Get("/api/log", [this](const httplib::Request& req, httplib::Response& res) {
      no_store(res);
      const auto since = number_param(req, "since", 0);
      const auto limit = number_param(req, "limit", kMaxItems);
      if (!since || !limit) return bad_request(res, "since and limit must be whole numbers");
      const auto rows = store.rows_since(*since, std::min<uint64_t>(*limit, kMaxItems));
      res.set_content(rows_json(rows), kJson);
    });
    server.Get("/api/events", [this](const httplib::Request& req, httplib::Response& res) {
      no_store(res);
      const auto since = number_param(req, "since", 0);
      const auto limit = number_param(req, "limit", kMaxItems);
      if (!since || !limit) return bad_request(res, "since and limit must be whole numbers");
      const auto events = store.events_since(*since, std::min<uint64_t>(*limit, kMaxItems));
      res.set_content(events_json(events), kJson);
    });
  }

  static void bad_request(httplib::Response& res, const std::string& why) {
    res.status = 400;
    res.set_content(why + "\n", "text/plain; charset=utf-8");
  }
};

void require_allowed(const HttpAddress& address, bool allow_remote) {
  if (!allow_remote && !is_loopback(address.host)) {
    throw std::invalid_argument(
        "--http " + with_port(address.host, address.port) +
        ": not a loopback address. The view has no authentication, so it listens on 127.0.0.1, "
        "::1 or localhost unless --http-allow-remote is given");
  }
}

HttpServer::HttpServer(const Store& store, const HttpAddress& address, bool allow_remote) {
  require_allowed(address, allow_remote);
  impl_ = std::make_unique<Impl>(store, address.host);
  impl_->routes(allow_remote);
  if (address.port == 0) {
    const int p = impl_->server.bind_to_any_port(address.host);
    if (p <= 0)
      throw std::runtime_error("--http " + with_port(address.host, 0) +
                               ": cannot listen (not an address of this machine?)");
    impl_->port = static_cast<uint16_t>(p);
  } else {
    if (!impl_->server.bind_to_port(address.host, address.port))
      throw std::runtime_error("--http " + with_port(address.host, address.port) +
                               ": cannot listen (port in use, or not an address of this machine)");
    impl_->port = address.port;
  }
  Impl* impl = impl_.get();
  impl_->thread = std::thread([impl] {
    impl->server.listen_after_bind();
    impl->ended.store(true);
  });
  // httplib's stop() only acts on a server that is already listening: wait for that, so a stop
  // that follows at once cannot leave the thread serving forever.
  while (!impl_->server.is_running() && !impl_->ended.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::stop() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string HttpServer::url() const {
  return "http://" + with_port(impl_->host, impl_->port) + "/";
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

}  // namespace marina::observe
