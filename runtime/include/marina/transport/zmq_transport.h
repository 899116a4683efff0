#pragma once
// ZeroMQ transport (cppzmq). The coordinator binds two sockets on one host:
//   PUB    on tcp://HOST:PORT      round broadcasts (and start-up probes, bye)
//   ROUTER on tcp://HOST:PORT+1    joins, replies, resync requests in; welcome, resync,
//                                  repaired broadcasts out (addressed by routing id)
// A worker connects SUB to PORT and DEALER to PORT+1.
//
// Waiting. A worker spends most of its life waiting for the next broadcast, and a round on a
// LAN is ~100 µs, so how it waits shows in every round: zmq_poll over SUB and DEALER costs
// about five more system calls per wake-up than one blocking recv on SUB (it checks each
// socket's command mailbox before and after the poll). So the link blocks on SUB alone while
// only broadcasts come, and the hub announces direct messages on PUB: after any direct send it
// publishes one empty frame (a "poke") before its next publish or receive. A poke, a direct
// message or a timeout makes the link watch both sockets for a while (ZmqOptions::watch_direct); a
// poke that PUB dropped costs one timeout's delay, never a message. The hub waits in a blocking
// recv on its ROUTER for the same reason.

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "marina/transport/transport.h"

namespace marina::transport {

struct Endpoint {
  std::string host;   // e.g. 127.0.0.1, or * to listen on every interface
  uint16_t port = 0;  // PUB port; the ROUTER listens on port + 1
  [[nodiscard]] std::string pub() const;
  [[nodiscard]] std::string router() const;
  [[nodiscard]] std::string str() const;  // tcp://host:port
};

// Liveness of the connections themselves, set on every socket before it binds or connects: a
// peer that stops answering for `heartbeat_timeout` — a killed process, a pulled cable, Wi-Fi
// gone without FIN or RST — has its connection closed, so the ROUTER's sends to it fail and the
// worker's sockets reconnect. Both sides leave this to the kernel (TCP keepalive and
// TCP_USER_TIMEOUT), which counts bytes rather than messages: a message slower to cross than
// `heartbeat_timeout` keeps its connection while its bytes move, and the I/O threads pay
// nothing per message (zmq_transport.cc).
// CurveZMQ, coordinator side: both sockets encrypt, and a ZAP handler (inproc, in the hub's
// own context) decides every client key at the handshake. Without a ZAP handler libzmq's CURVE
// would accept any client key, so the handler is always installed with it.
struct CurveServer {
  std::string secret_key;  // Z85
  // The identity a client key is admitted under (it becomes the messages' User-Id), or nullopt
  // to refuse the handshake. Called on the hub's ZAP thread: must be thread-safe.
  std::function<std::optional<std::string>(const std::string& public_key)> admit;
  // A refused key and the peer's address, also called on the ZAP thread.
  std::function<void(const std::string& public_key, const std::string& address)> refused;
};

// CurveZMQ, worker side.
struct CurveClient {
  std::string public_key, secret_key;  // this worker's, Z85
  std::string server_key;              // the coordinator's public key, Z85
};

struct ZmqOptions {
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{3000};
  // Link: how long it watches both sockets after a poke, a direct message or a timeout. Long
  // enough for a direct message to follow its poke on a LAN (they leave the hub together), and
  // short: every poke goes to every worker (each join's welcome sends one), and a second of
  // watching after the last join cost the first 2 000-5 000 rounds of a run at n = 8-32 about
  // 4 % of their latency (docs/PERFORMANCE.md, round latency). A direct message later than
  // this waits for the receive's timeout (at most 200 ms in the worker), as after a lost poke.
  std::chrono::milliseconds watch_direct{50};
  std::optional<CurveServer> curve_server;  // hub only
  std::optional<CurveClient> curve_client;  // link only
};

// Parses "tcp://HOST:PORT"; throws std::invalid_argument naming the text otherwise.
// PORT 0 (listen only) asks for a free pair of ports.
[[nodiscard]] Endpoint parse_endpoint(const std::string& text);

// Why a link to `ep` cannot connect as things stand (its host does not resolve to an IPv4
// address, as libzmq's TCP needs), or nullopt. libzmq itself retries such a connect quietly for
// ever; a worker says so once, and keeps trying (DNS may come up after the device boots).
[[nodiscard]] std::optional<std::string> unreachable(const Endpoint& ep);

class ZmqHub : public Hub {
 public:
  // Binds both sockets; with port 0 tries random free pairs. `max_message` bounds what a
  // peer may send (ZMQ_MAXMSGSIZE: a peer sending more is disconnected).
  ZmqHub(Endpoint listen, std::size_t max_message, ZmqOptions options = {});
  ~ZmqHub() override;
  [[nodiscard]] const Endpoint& endpoint() const { return ep_; }
  void publish(Bytes message) override;
  bool send(const Peer& to, Bytes message) override;
  bool receive(Incoming& in, std::chrono::milliseconds timeout) override;

 private:
  void serve_zap(const CurveServer& curve);
  void bind_both();  // PUB on the port, ROUTER on port + 1 (a free pair when the port is 0)
  void poke_if_sent();

  zmq::context_t ctx_;
  // The ZAP handler must be bound before any CURVE handshake; it stops with the hub.
  std::unique_ptr<zmq::socket_t> zap_;
  std::atomic<bool> zap_stop_{false};
  std::thread zap_thread_;
  zmq::socket_t pub_;
  zmq::socket_t router_;
  Endpoint ep_;
  bool sent_direct_ = false;    // a poke is owed to the workers
  int router_timeout_ms_ = -2;  // ZMQ_RCVTIMEO last set on the ROUTER
};

class ZmqLink : public Link {
 public:
  // `identity` becomes the DEALER routing id: unique per process (a restarted worker is a new
  // peer; its worker id, not this, is its identity in the run).
  ZmqLink(const Endpoint& coordinator, const std::string& identity, std::size_t max_message,
          ZmqOptions options = {});
  ~ZmqLink() override;
  bool send(Bytes message) override;
  bool receive(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout) override;
  // Counts the DEALER's disconnections, read from libzmq's socket monitor when asked (no cost
  // per message).
  uint64_t connection_losses() override;

 private:
  bool receive_either(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout);
  static bool take(zmq::socket_t& from, zmq::message_t& msg, std::vector<uint8_t>& bytes);

  zmq::context_t ctx_;
  zmq::socket_t sub_;
  zmq::socket_t dealer_;
  zmq::socket_t monitor_;  // PAIR: the DEALER's disconnection events
  uint64_t losses_ = 0;
  std::chrono::milliseconds watch_direct_;
  // While set, both sockets are watched until then; set in the constructor (joining needs the
  // DEALER).
  std::optional<Clock::time_point> watch_both_until_;
  int sub_timeout_ms_ = -2;  // ZMQ_RCVTIMEO last set on the SUB
};

}  // namespace marina::transport
