#include "marina/transport/inproc_transport.h"

#include <atomic>
#include <string>

namespace marina::transport {

void InProcNetwork::Queue::push(Incoming item) {
  {
    std::lock_guard lock(mu);
    items.push_back(std::move(item));
  }
  cv.notify_one();
}

bool InProcNetwork::Queue::pop(Incoming& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, timeout, [&] { return !items.empty(); })) return false;
  out.from = std::move(items.front().from);
  out.user = std::move(items.front().user);
  out.bytes.swap(items.front().bytes);
  items.pop_front();
  return true;
}

class InProcNetwork::HubImpl : public Hub {
 public:
  explicit HubImpl(InProcNetwork& net) : net_(net) {}
  void publish(Bytes m) override {
    for (uint32_t w = 0; w < net_.to_worker_.size(); ++w) {
      if (net_.cut_[w].load() || (net_.drop_ && net_.drop_(m, w))) continue;
      net_.to_worker_[w]->push(Incoming{"", "", {m.begin(), m.end()}});
    }
  }
  bool send(const Peer& to, Bytes m) override {
    const auto w = std::stoul(to);
    if (w >= net_.to_worker_.size() || net_.cut_[w].load()) return false;
    net_.to_worker_[w]->push(Incoming{"", "", {m.begin(), m.end()}});
    return true;
  }
  bool receive(Incoming& in, std::chrono::milliseconds timeout) override {
    return net_.to_hub_.pop(in, timeout);
  }

 private:
  InProcNetwork& net_;
};

class InProcNetwork::LinkImpl : public Link {
 public:
  LinkImpl(InProcNetwork& net, uint32_t w) : net_(net), peer_(std::to_string(w)), w_(w) {}
  // A message lost on the way (a cut link, the test's filter) is what a lost connection does
  // to the messages queued on it.
  bool send(Bytes m) override {
    if (net_.cut_[w_].load() || (net_.drop_up_ && net_.drop_up_(m, w_))) {
      ++losses_;
      return true;
    }
    std::string user;
    {
      std::lock_guard lock(net_.users_mu_);
      user = net_.users_[w_];
    }
    net_.to_hub_.push(Incoming{peer_, std::move(user), {m.begin(), m.end()}});
    return true;
  }
  bool receive(std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout) override {
    if (!net_.to_worker_[w_]->pop(scratch_, timeout)) return false;
    bytes.swap(scratch_.bytes);
    return true;
  }
  uint64_t connection_losses() override { return losses_.load(); }

 private:
  InProcNetwork& net_;
  Peer peer_;
  uint32_t w_;
  Incoming scratch_;
  std::atomic<uint64_t> losses_{0};  // a test may send from another thread
};

InProcNetwork::InProcNetwork(uint32_t workers)
    : hub_(std::make_unique<HubImpl>(*this)),
      cut_(std::make_unique<std::atomic<bool>[]>(workers)),
      users_(workers) {
  for (uint32_t w = 0; w < workers; ++w) {
    to_worker_.push_back(std::make_unique<Queue>());
    links_.push_back(std::make_unique<LinkImpl>(*this, w));
  }
}

InProcNetwork::~InProcNetwork() = default;

Hub& InProcNetwork::hub() {
  return *hub_;
}
Link& InProcNetwork::link(uint32_t worker) {
  return *links_.at(worker);
}
void InProcNetwork::set_user(uint32_t worker, std::string user) {
  std::lock_guard lock(users_mu_);
  users_.at(worker) = std::move(user);
}

void InProcNetwork::sever(uint32_t worker, bool cut) {
  cut_[worker].store(cut);
}

void InProcNetwork::set_publish_filter(std::function<bool(Bytes, uint32_t)> drop) {
  drop_ = std::move(drop);
}

void InProcNetwork::set_send_filter(std::function<bool(Bytes, uint32_t)> drop) {
  drop_up_ = std::move(drop);
}

}  // namespace marina::transport
