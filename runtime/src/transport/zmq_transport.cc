#include "marina/transport/zmq_transport.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <tuple>

namespace marina::transport {

std::string Endpoint::pub() const {
  return "tcp://" + host + ":" + std::to_string(port);
}
std::string Endpoint::router() const {
  return "tcp://" + host + ":" + std::to_string(port + 1);
}
std::string Endpoint::str() const {
  return pub();
}

Endpoint parse_endpoint(const std::string& text) {
  const std::string prefix = "tcp://";
  const auto colon = text.rfind(':');
  if (text.rfind(prefix, 0) != 0 || colon == std::string::npos || colon < prefix.size())
    throw std::invalid_argument("endpoint '" + text + "': expected tcp://HOST:PORT");
  Endpoint ep;
  ep.host = text.substr(prefix.size(), colon - prefix.size());
  const std::string port = text.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ep.host.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65534)
    throw std::invalid_argument("endpoint '" + text + "': bad port (0..65534; PORT+1 is used too)");
  ep.port = static_cast<uint16_t>(value);
  return ep;
}

std::optional<std::string> unreachable(const Endpoint& ep) {
  addrinfo hints{};
  hints.ai_family = AF_INET;  // libzmq's TCP without ZMQ_IPV6
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(ep.host.c_str(), nullptr, &hints, &found);
  if (found != nullptr) freeaddrinfo(found);
  if (rc == 0) return std::nullopt;
  return "host '" + ep.host + "' of " + ep.str() + " does not resolve (" + gai_strerror(rc) + ")";
}

namespace {

// Both sides leave the watch on their connections to the kernel. A connection silent for
// heartbeat_interval is probed every heartbeat_interval (TCP keepalive); one whose probes or
// data go unacknowledged for heartbeat_timeout (TCP_USER_TIMEOUT) is closed: the hub's sends
// to that peer then fail and a link's sockets reconnect.
//
// The kernel counts bytes, not messages: a message that takes longer than heartbeat_timeout
// to cross a slow link keeps its connection as long as its bytes move. ZMTP heartbeats count
// whole messages (a PONG queues behind the message being sent, and the timeout is cancelled
// only by a decoded message), so they closed the connection under every such message and it
// never arrived (docs/PERFORMANCE.md, "Large messages on a slow link"). They also keep a timer
// armed in the I/O thread, which makes every one of its wake-ups read the clock and arm a
// kernel timer (docs/PERFORMANCE.md, "ZMTP heartbeats"). A process that hangs while its kernel
// still answers keeps its connections: the coordinator's --miss-limit and the worker's liveness
// timeout notice that one.
void set_keepalive(zmq::socket_t& s, const ZmqOptions& o) {
  const auto seconds = [](std::chrono::milliseconds t) {
    return static_cast<int>(std::max<std::chrono::milliseconds::rep>(1, (t.count() + 999) / 1000));
  };
  const int interval = seconds(o.heartbeat_interval);
  s.set(zmq::sockopt::tcp_keepalive, 1);
  s.set(zmq::sockopt::tcp_keepalive_idle, interval);
  s.set(zmq::sockopt::tcp_keepalive_intvl, interval);
  s.set(zmq::sockopt::tcp_keepalive_cnt, std::max(1, seconds(o.heartbeat_timeout) / interval));
  s.set(zmq::sockopt::tcp_maxrt, static_cast<int>(o.heartbeat_timeout.count()));
}

// A signal (SIGTERM to stop cleanly) interrupts a poll: that is "nothing yet", not an error.
int poll_items(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, n, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    throw;
  }
}

// ZMQ_RCVTIMEO for a blocking recv that waits at most `timeout`; set only when it changes
// (a round's waits mostly repeat the same value).
void set_receive_timeout(zmq::socket_t& s, int& current, std::chrono::milliseconds timeout) {
  const auto ms = std::clamp<std::chrono::milliseconds::rep>(timeout.count(), 0, INT32_MAX);
  if (current == static_cast<int>(ms)) return;
  s.set(zmq::sockopt::rcvtimeo, static_cast<int>(ms));
  current = static_cast<int>(ms);
}

// A blocking recv; nullopt on timeout or when a signal interrupts it (SIGTERM: stop cleanly).
std::optional<std::size_t> recv_blocking(zmq::socket_t& s, zmq::message_t& msg) {
  try {
    return s.recv(msg, zmq::recv_flags::none);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::nullopt;
    throw;
  }
}

// The hub's announcement of a direct message (see "Waiting" in zmq_transport.h).
bool is_poke(const zmq::message_t& msg) {
  return msg.size() == 0 && !msg.more();
}

// Drops the rest of a multi-frame message; none of ours has more than one frame.
void drain(zmq::socket_t& s, const zmq::message_t& first) {
  bool more = first.more();
  while (more) {
    zmq::message_t rest;
    (void)s.recv(rest, zmq::recv_flags::none);
    more = rest.more();
  }
}

}  // namespace

void ZmqHub::serve_zap(const CurveServer& curve) {
  // RFC 27 (ZAP): request = version, request id, domain, address, routing id, mechanism,
  // credentials...; reply = version, request id, status code, status text, user id, metadata.
  zmq::pollitem_t item{zap_->handle(), 0, ZMQ_POLLIN, 0};
  while (!zap_stop_.load()) {
    if (poll_items(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
    std::vector<zmq::message_t> frames;
    for (;;) {
      zmq::message_t part;
      if (!zap_->recv(part, zmq::recv_flags::dontwait)) break;
      const bool more = part.more();
      frames.push_back(std::move(part));
      if (!more) break;
    }
    if (frames.size() < 6) continue;  // not a ZAP request: nothing to answer
    const std::string mechanism = frames[5].to_string();
    std::optional<std::string> user;
    std::string key;
    if (mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == 32) {
      char z85[41];
      if (zmq_z85_encode(z85, static_cast<const uint8_t*>(frames[6].data()), 32) != nullptr) {
        key = z85;
        user = curve.admit(key);
      }
    }
    if (!user && curve.refused) curve.refused(key, frames[3].to_string());
    const std::string code = user ? "200" : "400";
    const std::string text = user ? "OK" : "key not allowed";
    zap_->send(zmq::buffer(std::string("1.0")), zmq::send_flags::sndmore);
    zap_->send(frames[1], zmq::send_flags::sndmore);
    zap_->send(zmq::buffer(code), zmq::send_flags::sndmore);
    zap_->send(zmq::buffer(text), zmq::send_flags::sndmore);
    zap_->send(zmq::buffer(user.value_or("")), zmq::send_flags::sndmore);
    zap_->send(zmq::message_t(), zmq::send_flags::none);
  }
}

ZmqHub::~ZmqHub() {
  zap_stop_.store(true);
  if (zap_thread_.joinable()) zap_thread_.join();
}

ZmqHub::ZmqHub(Endpoint listen, std::size_t max_message, ZmqOptions options)
    : pub_(ctx_, zmq::socket_type::pub), router_(ctx_, zmq::socket_type::router), ep_(listen) {
  set_keepalive(pub_, options);  // accepted connections inherit the options
  set_keepalive(router_, options);
  if (options.curve_server) {
    const CurveServer& curve = *options.curve_server;
    if (!curve.admit) throw std::invalid_argument("CurveZMQ server without an admission rule");
    zap_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::rep);
    zap_->set(zmq::sockopt::linger, 0);
    zap_->bind("inproc://zeromq.zap.01");
    for (zmq::socket_t* s : {&pub_, &router_}) {
      s->set(zmq::sockopt::curve_server, true);
      s->set(zmq::sockopt::curve_secretkey, curve.secret_key);
      s->set(zmq::sockopt::zap_domain, "marina");
    }
  }
  // A full subscriber queue drops messages silently; round messages are few and small, so a
  // deep queue plus round numbers (and repair over the ROUTER) handle it.
  pub_.set(zmq::sockopt::sndhwm, 10000);
  pub_.set(zmq::sockopt::linger, 200);
  router_.set(zmq::sockopt::linger, 200);
  router_.set(zmq::sockopt::router_mandatory, true);
  router_.set(zmq::sockopt::router_handover, true);
  router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_message));
  // A PUB socket receives only subscriptions (a few bytes) and, with CURVE, the handshake's
  // commands (a few hundred): nothing larger has a reason to arrive.
  pub_.set(zmq::sockopt::maxmsgsize, int64_t{4096});
  bind_both();
  // Only now, when nothing here can throw any more: a joinable thread must not be destroyed
  // by a failed constructor. Handshakes that arrive before it wait in the ZAP socket's queue.
  if (options.curve_server)
    zap_thread_ = std::thread([this, curve = *options.curve_server] { serve_zap(curve); });
}

void ZmqHub::bind_both() {
  if (ep_.port != 0) {
    // The address in the error: "Address already in use" alone does not say which of the two.
    for (auto [socket, address, what] :
         {std::tuple{&pub_, ep_.pub(), "the PUB, for broadcasts"},
          std::tuple{&router_, ep_.router(), "the ROUTER, for replies: port + 1"}}) {
      try {
        socket->bind(address);
      } catch (const zmq::error_t& e) {
        throw std::runtime_error("cannot listen on " + address + " (" + what + "): " + e.what());
      }
    }
    return;
  }
  std::random_device rd;
  for (int attempt = 0; attempt < 200; ++attempt) {
    ep_.port = static_cast<uint16_t>(20000 + rd() % 40000);
    try {
      pub_.bind(ep_.pub());
    } catch (const zmq::error_t&) {
      continue;
    }
    try {
      router_.bind(ep_.router());
      return;
    } catch (const zmq::error_t&) {
      pub_.unbind(ep_.pub());
    }
  }
  throw std::runtime_error("could not find two free adjacent ports on " + ep_.host);
}

void ZmqHub::poke_if_sent() {
  if (!sent_direct_) return;
  sent_direct_ = false;
  pub_.send(zmq::message_t(), zmq::send_flags::none);
}

void ZmqHub::publish(Bytes m) {
  // Before the broadcast: a worker woken by the broadcast alone would not look at its DEALER.
  poke_if_sent();
  pub_.send(zmq::buffer(m.data(), m.size()), zmq::send_flags::none);
}

bool ZmqHub::send(const Peer& to, Bytes m) {
  try {
    // Only EHOSTUNREACH (below) means the peer is gone. A full queue (EAGAIN) drops this
    // message, as delivery is never guaranteed, but must not count as a dead peer: the
    // coordinator would then hand the worker's id to whoever asks.
    if (!router_.send(zmq::buffer(to), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return true;
    (void)router_.send(zmq::buffer(m.data(), m.size()), zmq::send_flags::dontwait);
    sent_direct_ = true;
    return true;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;  // the peer is gone
    throw;
  }
}

// The clock is read only after a malformed message was skipped: the wait goes on until then
// plus what is left of `timeout`, so it may last up to twice `timeout`. A round's wait is one
// blocking recv (libzmq reads the clock for its timeout itself).
bool ZmqHub::receive(Incoming& in, std::chrono::milliseconds timeout) {
  poke_if_sent();
  std::optional<Clock::time_point> deadline;
  auto left = timeout;
  const auto skipped = [&] {
    const auto now = Clock::now();
    if (!deadline) deadline = now + timeout;
    left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now);
  };
  for (;;) {
    set_receive_timeout(router_, router_timeout_ms_, std::max(left, std::chrono::milliseconds(0)));
    zmq::message_t id, body;
    if (!recv_blocking(router_, id)) return false;
    // A well-formed message is exactly [routing id][body]; anything else is skipped whole.
    if (!id.more()) {
      skipped();
      continue;
    }
    (void)router_.recv(body, zmq::recv_flags::none);
    if (body.more()) {
      drain(router_, body);
      skipped();
      continue;
    }
    in.from.assign(static_cast<const char*>(id.data()), id.size());
    // Set by our ZAP handler at the handshake; absent without CURVE, and then not looked up
    // (the lookup is a sixth of the instructions of receiving a small reply).
    const char* user = zap_ ? zmq_msg_gets(body.handle(), "User-Id") : nullptr;
    if (user != nullptr)
      in.user = user;
    else
      in.user.clear();
    const auto* p = static_cast<const uint8_t*>(body.data());
    in.bytes.assign(p, p + body.size());
    return true;
  }
}

ZmqLink::ZmqLink(const Endpoint& coordinator, const std::string& identity, std::size_t max_message,
                 ZmqOptions options)
    : sub_(ctx_, zmq::socket_type::sub),
      dealer_(ctx_, zmq::socket_type::dealer),
      monitor_(ctx_, zmq::socket_type::pair),
      watch_direct_(options.watch_direct) {
  for (zmq::socket_t* s : {&sub_, &dealer_}) {
    set_keepalive(*s, options);
    if (options.curve_client) {
      s->set(zmq::sockopt::curve_serverkey, options.curve_client->server_key);
      s->set(zmq::sockopt::curve_publickey, options.curve_client->public_key);
      s->set(zmq::sockopt::curve_secretkey, options.curve_client->secret_key);
    }
    s->set(zmq::sockopt::reconnect_ivl, 100);
    s->set(zmq::sockopt::reconnect_ivl_max, 2000);
  }
  sub_.set(zmq::sockopt::subscribe, "");
  sub_.set(zmq::sockopt::rcvhwm, 10000);
  sub_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_message));
  sub_.set(zmq::sockopt::linger, 0);
  dealer_.set(zmq::sockopt::routing_id, identity);
  dealer_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_message));
  dealer_.set(zmq::sockopt::linger, 500);
  // Queue only to a completed connection: while the coordinator is down, joins and replies
  // are dropped rather than piled up and replayed to whoever listens next.
  dealer_.set(zmq::sockopt::immediate, true);
  // libzmq's monitor sends its events from the I/O thread with a blocking send: an unbounded
  // queue on our side (rcvhwm 0) keeps a full one from ever stopping that thread. Events are
  // read when connection_losses() is asked, which the worker does at least every second.
  const char* const monitor_at = "inproc://marina-link-dealer-monitor";
  if (zmq_socket_monitor(dealer_.handle(), monitor_at, ZMQ_EVENT_DISCONNECTED) != 0)
    throw zmq::error_t();
  monitor_.set(zmq::sockopt::rcvhwm, 0);
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(monitor_at);
  sub_.connect(coordinator.pub());
  dealer_.connect(coordinator.router());
  watch_both_until_ = Clock::now() + watch_direct_;
}

ZmqLink::~ZmqLink() {
  // The monitor stops before its reader closes: libzmq would block on an event for a reader
  // that is gone.
  (void)zmq_socket_monitor(dealer_.handle(), nullptr, 0);
}

bool ZmqLink::send(Bytes m) {
  // Without a connection (coordinator down) the DEALER would block: drop instead; the
  // protocol retries what matters (joins, replies on repair).
  return dealer_.send(zmq::buffer(m.data(), m.size()), zmq::send_flags::dontwait).has_value();
}

uint64_t ZmqLink::connection_losses() {
  // An event is two frames: [uint16 event, uint32 value] and the endpoint.
  for (;;) {
    zmq::message_t event;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return losses_;
    uint16_t id = 0;
    if (event.size() >= sizeof id) std::memcpy(&id, event.data(), sizeof id);
    if (id == ZMQ_EVENT_DISCONNECTED) ++losses_;
    drain(monitor_, event);
  }
}

bool ZmqLink::take(zmq::socket_t& from, zmq::message_t& msg, std::vector<uint8_t>& bytes) {
  if (msg.more()) {  // multi-frame messages are not ours: drop them whole
    drain(from, msg);
    return false;
  }
  const auto* p = static_cast<const uint8_t*>(msg.data());
  bytes.assign(p, p + msg.size());
  return true;
}

// Only while it watches both sockets does the link read the clock: a round's wait is then one
// blocking recv and nothing else (libzmq reads the clock for the recv's timeout itself).
bool ZmqLink::receive(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout) {
  if (watch_both_until_) {
    if (Clock::now() < *watch_both_until_) return receive_either(bytes, timeout);
    watch_both_until_.reset();
  }
  // Only broadcasts expected: one blocking recv, as cheap as waiting gets.
  set_receive_timeout(sub_, sub_timeout_ms_, timeout);
  zmq::message_t msg;
  if (!recv_blocking(sub_, msg)) {
    watch_both_until_ = Clock::now() + watch_direct_;  // a lost poke costs this one timeout
    return false;
  }
  if (is_poke(msg)) {
    // A direct message is on its way; the wait for it starts again, so a receive that meets a
    // poke may take up to twice `timeout`.
    watch_both_until_ = Clock::now() + watch_direct_;
    return receive_either(bytes, timeout);
  }
  return take(sub_, msg, bytes);
}

bool ZmqLink::receive_either(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    zmq::pollitem_t items[] = {{dealer_.handle(), 0, ZMQ_POLLIN, 0},
                               {sub_.handle(), 0, ZMQ_POLLIN, 0}};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (poll_items(items, 2, std::max(left, std::chrono::milliseconds(0))) == 0) {
      watch_both_until_ = Clock::now() + watch_direct_;
      return false;
    }
    // Direct messages first: a resync or repaired broadcast must not wait behind the queue.
    const bool direct = (items[0].revents & ZMQ_POLLIN) != 0;
    zmq::socket_t& from = direct ? dealer_ : sub_;
    zmq::message_t msg;
    if (!from.recv(msg, zmq::recv_flags::dontwait)) continue;
    if (direct) watch_both_until_ = Clock::now() + watch_direct_;
    if (!direct && is_poke(msg)) continue;  // keep watching
    if (take(from, msg, bytes)) return true;
    if (Clock::now() >= deadline) return false;
  }
}

}  // namespace marina::transport
