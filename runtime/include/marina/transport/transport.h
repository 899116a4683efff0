#pragma once
// The transport moves opaque byte strings between one coordinator and its workers. It knows
// nothing of rounds or methods: the drivers (run/coordinator.h, run/worker.h) encode and
// decode with the wire codec and feed the method halves.
//
//   Hub   (coordinator side): publish to all workers (may be lost: PUB drops silently),
//                             send to one worker, receive from any worker.
//   Link  (worker side):      send to the coordinator, receive from either channel.
//
// Implementations: ZeroMQ (zmq_transport.h: PUB + ROUTER / SUB + DEALER) and in-process
// queues (inproc_transport.h), which marina-sim and the tests use.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace marina::transport {

using Bytes = std::span<const uint8_t>;
using Clock = std::chrono::steady_clock;

// An opaque peer address, bound to a worker id by the coordinator when the worker joins.
using Peer = std::string;

struct Incoming {
  Peer from;
  // Who the transport authenticated the sender as (CurveZMQ: the identity its key was admitted
  // under at the handshake); empty without authentication.
  std::string user;
  std::vector<uint8_t> bytes;  // reused across receives
};

class Hub {
 public:
  virtual ~Hub() = default;
  // To every connected worker. Delivery is not guaranteed (slow joiners, full queues).
  virtual void publish(Bytes message) = 0;
  // To one worker; returns false when the peer is unknown or gone (its connection closed).
  // Delivery is not guaranteed either way (a full queue drops the message).
  virtual bool send(const Peer& to, Bytes message) = 0;
  // The next message from any worker, waiting at most `timeout` (or up to twice that when it
  // skips malformed traffic on the way); false on timeout.
  virtual bool receive(Incoming& in, std::chrono::milliseconds timeout) = 0;
};

class Link {
 public:
  virtual ~Link() = default;
  // Queues `message` for the coordinator; false when it was dropped at once (no connection, a
  // full queue). Queued is not yet delivered: see connection_losses().
  virtual bool send(Bytes message) = 0;
  // How many times the connection to the coordinator has been lost so far. A message queued
  // while the count stays the same has arrived or is still on its way; one queued before a
  // loss may have gone with it. (The worker sends a reply again only then: on a slow link the
  // coordinator's repair of a round may cross a reply that is still on its way, and a second
  // copy would double what the link has to carry.)
  [[nodiscard]] virtual uint64_t connection_losses() = 0;
  // The next message from the coordinator (published or direct); false on timeout.
  virtual bool receive(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout) = 0;
};

}  // namespace marina::transport
