// The ZeroMQ transport's waiting scheme: a link that waits for broadcasts on SUB alone must
// still get the direct messages the hub sends over the ROUTER (zmq_transport.h, "Waiting").

#include <algorithm>
#include <chrono>
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

}  // namespace

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
