#pragma once
// In-process transport: mutex-protected queues between one Hub and n Links, for marina-sim
// and the tests. Thread-safe, so the coordinator and worker drivers can run on their own
// threads exactly as they do over ZeroMQ. A test can make publish() drop messages.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "marina/transport/transport.h"

namespace marina::transport {

class InProcNetwork {
 public:
  explicit InProcNetwork(uint32_t workers);
  ~InProcNetwork();
  InProcNetwork(const InProcNetwork&) = delete;
  InProcNetwork& operator=(const InProcNetwork&) = delete;
  [[nodiscard]] Hub& hub();
  [[nodiscard]] Link& link(uint32_t worker);
  // Called for each (message, receiving worker) of publish(); true drops that copy, as a
  // PUB socket may.
  void set_publish_filter(std::function<bool(Bytes, uint32_t)> drop);
  // Called for each (message, sending worker) of Link::send; true loses it on the way up.
  // Set before the links are used (it is read by their threads without a lock).
  void set_send_filter(std::function<bool(Bytes, uint32_t)> drop);
  // Cuts (or restores) a worker's connection, as a dead link would: while cut, nothing it
  // sends arrives, nothing reaches it, and Hub::send to it fails.
  void sever(uint32_t worker, bool cut);
  // What the hub sees as the authenticated identity of a link's messages (Incoming::user), as
  // CurveZMQ's User-Id would be: lets tests exercise identity binding without keys.
  void set_user(uint32_t worker, std::string user);

 private:
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Incoming> items;
    void push(Incoming item);
    bool pop(Incoming& out, std::chrono::milliseconds timeout);
  };
  class HubImpl;
  class LinkImpl;
  friend class HubImpl;
  friend class LinkImpl;

  Queue to_hub_;
  std::vector<std::unique_ptr<Queue>> to_worker_;
  std::unique_ptr<HubImpl> hub_;
  std::vector<std::unique_ptr<LinkImpl>> links_;
  std::function<bool(Bytes, uint32_t)> drop_;
  std::function<bool(Bytes, uint32_t)> drop_up_;
  std::unique_ptr<std::atomic<bool>[]> cut_;
  std::mutex users_mu_;
  std::vector<std::string> users_;
};

}  // namespace marina::transport
