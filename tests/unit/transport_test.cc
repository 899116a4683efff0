// The ZeroMQ transport's waiting scheme: a link that waits for broadcasts on SUB alone must
// still get the direct messages the hub sends over the ROUTER (zmq_transport.h, "Waiting").
// And the watch on the connections, which is the kernel's (zmq_transport.h, "Liveness").

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "marina/transport/zmq_transport.h"

namespace {

using namespace marina;
using namespace std::chrono_literals;

transport::Bytes bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string text(const std::vector<uint8_t>& b) {
  return std::string(b.begin(), b.end());
}

// A hub and one link on loopback, past the slow-joiner stage: the hub knows the link's peer
// and the link has received a broadcast and is waiting on SUB alone.
struct Pair {
  transport::ZmqOptions options = [] {
    transport::ZmqOptions o;
    o.watch_direct = 20ms;
    return o;
  }();
  transport::ZmqHub hub{transport::Endpoint{"127.0.0.1", 0}, 1 << 16, options};
  transport::ZmqLink link{hub.endpoint(), "worker-0", 1 << 16, options};
  transport::Peer peer;
  std::vector<uint8_t> got;

  Pair() {
    transport::Incoming in;
    for (int i = 0; i < 200 && peer.empty(); ++i) {  // DEALER queues only once connected
      link.send(bytes_of("hello"));
      if (hub.receive(in, 50ms)) peer = in.from;
    }
    REQUIRE_FALSE(peer.empty());
    bool subscribed = false;
    for (int i = 0; i < 200 && !subscribed; ++i) {
      hub.publish(bytes_of("warm-up"));
      subscribed = link.receive(got, 50ms);
    }
    REQUIRE(subscribed);
    while (link.receive(got, 30ms)) {  // drain the warm-ups; the last wait times out
    }
    std::this_thread::sleep_for(60ms);  // past watch_direct: the next wait is on SUB alone
    hub.publish(bytes_of("broadcast"));
    REQUIRE(link.receive(got, 5000ms));
    REQUIRE(text(got) == "broadcast");
    std::this_thread::sleep_for(60ms);
  }
};

// The TCP connections of this process with `port` at the given end, as file descriptors.
enum class End { kRemote, kLocal };
std::vector<int> tcp_connections(End end, uint16_t port) {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (const dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    struct stat st {};
    if (e->d_name[0] == '.' || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_in peer{}, self{};
    socklen_t len = sizeof peer, self_len = sizeof self;
    // Connected sockets only: a listening one has no peer.
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0 ||
        peer.sin_family != AF_INET)
      continue;
    if (ntohs(end == End::kRemote ? peer.sin_port : self.sin_port) == port) fds.push_back(fd);
  }
  closedir(dir);
  return fds;
}

int int_option(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  REQUIRE(getsockopt(fd, level, name, &v, &len) == 0);
  return v;
}

}  // namespace

TEST_CASE("transport: a coordinator host that does not resolve is named before the link waits") {
  // libzmq retries such a connect quietly for ever; the worker prints this reason once.
  const auto why =
      transport::unreachable(transport::parse_endpoint("tcp://no-such-host.invalid:5555"));
  REQUIRE(why.has_value());
  CHECK(why->find("host 'no-such-host.invalid' of tcp://no-such-host.invalid:5555 does not "
                  "resolve") != std::string::npos);
  CHECK_FALSE(transport::unreachable(transport::parse_endpoint("tcp://127.0.0.1:5555")));
}

TEST_CASE("transport: a direct message reaches a link that waits for broadcasts only") {
  Pair p;
  REQUIRE(p.hub.send(p.peer, transport::Bytes(bytes_of("direct"))));
  transport::Incoming in;
  CHECK_FALSE(p.hub.receive(in, 0ms));  // the hub's next wait publishes the poke first
  // Without the poke this wait would sit on SUB until its timeout and return nothing.
  REQUIRE(p.link.receive(p.got, 5000ms));
  CHECK(text(p.got) == "direct");  // the poke itself is never handed out
  p.hub.publish(bytes_of("next"));
  REQUIRE(p.link.receive(p.got, 5000ms));
  CHECK(text(p.got) == "next");
}

TEST_CASE("transport: a broadcast right after a direct send does not hide the direct message") {
  Pair p;
  REQUIRE(p.hub.send(p.peer, transport::Bytes(bytes_of("repair"))));
  p.hub.publish(bytes_of("round"));  // pokes before the broadcast
  std::vector<std::string> seen;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(p.link.receive(p.got, 5000ms));
    seen.push_back(text(p.got));
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"repair", "round"});
}

TEST_CASE("transport: a direct message whose poke never came arrives after one timeout") {
  Pair p;
  // A send with no later publish or receive on the hub: the poke stays owed (as when PUB
  // drops it). The link's wait on SUB times out, and its next wait watches the DEALER too.
  REQUIRE(p.hub.send(p.peer, transport::Bytes(bytes_of("late"))));
  CHECK_FALSE(p.link.receive(p.got, 100ms));
  REQUIRE(p.link.receive(p.got, 5000ms));
  CHECK(text(p.got) == "late");
}

// A peer that vanishes without FIN or RST (its host or its Wi-Fi gone) must not leave the other
// side on dead connections: the kernel probes an idle one and gives up on unacknowledged data
// after the heartbeat timeout; the hub's sends then fail and the link's sockets reconnect. Both
// ends leave it to the kernel, which counts bytes and not messages (a message slower than the
// timeout keeps its connection while it moves: faults.py slow_link) and costs the I/O threads
// nothing per message. The hub's connections are the ones it accepted, with its ports local.
TEST_CASE(
    "transport: the kernel watches both ends of every connection with the heartbeat "
    "settings") {
  Pair p;
  const uint16_t port = p.hub.endpoint().port;
  for (const End end : {End::kRemote, End::kLocal}) {  // the link's, the hub's
    for (const int at : {port + 0, port + 1}) {        // SUB -> PUB, DEALER -> ROUTER
      CAPTURE(end == End::kRemote ? "link" : "hub");
      CAPTURE(at);
      const auto fds = tcp_connections(end, static_cast<uint16_t>(at));
      REQUIRE(fds.size() == 1);
      const int fd = fds.front();
      CHECK(int_option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
      CHECK(int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 1);  // heartbeat_interval: 1000 ms
      CHECK(int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 1);
      CHECK(int_option(fd, IPPROTO_TCP, TCP_KEEPCNT) == 3);  // heartbeat_timeout: 3000 ms
      CHECK(int_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 3000);
    }
  }
}

// The worker sends a reply again only when the first may have been lost (drivers/worker.cc):
// the link counts its lost connections, and a send without a connection says it was dropped.
TEST_CASE("transport: a link counts the connections it lost") {
  transport::ZmqOptions options;
  options.watch_direct = 20ms;
  auto hub =
      std::make_unique<transport::ZmqHub>(transport::Endpoint{"127.0.0.1", 0}, 1 << 16, options);
  transport::ZmqLink link{hub->endpoint(), "worker-0", 1 << 16, options};
  transport::Incoming in;
  bool heard = false;
  for (int i = 0; i < 200 && !heard; ++i) {  // the DEALER queues only once connected
    if (link.send(bytes_of("hello")))
      heard = hub->receive(in, 50ms);
    else
      std::this_thread::sleep_for(10ms);
  }
  REQUIRE(heard);
  CHECK(link.connection_losses() == 0);
  CHECK(link.send(bytes_of("queued")));
  hub.reset();  // the coordinator goes away: its connections close
  uint64_t losses = 0;
  for (int i = 0; i < 500 && losses == 0; ++i) {
    std::this_thread::sleep_for(10ms);
    losses = link.connection_losses();
  }
  CHECK(losses == 1);
  CHECK_FALSE(link.send(bytes_of("nobody")));  // no connection: dropped at once
  CHECK(link.connection_losses() == 1);
}
