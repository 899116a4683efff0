#pragma once
// The coordinator's HTTP view (--http HOST:PORT, docs/OBSERVE.md): /metrics for Prometheus,
// /api/status, /api/log and /api/events as JSON, and a dashboard page at /. It serves from its
// own threads and only reads the Store; the round loop never waits for it.

#include <cstdint>
#include <memory>
#include <string>

#include "marina/observe/store.h"

namespace marina::observe {

struct HttpAddress {
  std::string host;   // as given, without the brackets of an IPv6 literal
  uint16_t port = 0;  // 0: any free port
};

// Parses "HOST:PORT" ("127.0.0.1:9464", "localhost:0", "[::1]:9464"); throws
// std::invalid_argument naming the --http flag and what is wrong.
[[nodiscard]] HttpAddress parse_http_address(const std::string& text);

// 127.0.0.0/8, ::1 and "localhost": only this machine can connect.
[[nodiscard]] bool is_loopback(const std::string& host);

// Throws std::invalid_argument naming --http and --http-allow-remote when `address` is not a
// loopback address and remote access was not allowed.
void require_allowed(const HttpAddress& address, bool allow_remote);

class HttpServer {
 public:
  // Binds at once and starts serving. Refuses (std::invalid_argument) a non-loopback address
  // unless `allow_remote`; throws std::runtime_error naming the address when it cannot bind.
  // Without `allow_remote`, requests whose Host header is not a loopback name are refused too,
  // so a web page the user visits cannot read the view through DNS rebinding.
  HttpServer(const Store& store, const HttpAddress& address, bool allow_remote);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // "http://HOST:PORT/" with the port actually bound.
  [[nodiscard]] std::string url() const;
  [[nodiscard]] uint16_t port() const;
  // Stops accepting, finishes the requests in flight and joins the threads (idempotent).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace marina::observe
