#include "examples/monitored_client.h"

#include <utility>

#include "absl/time/clock.h"

namespace examples {
namespace {
// How often every component of this design checks its stop flag.
constexpr absl::Duration kPoll = absl::Milliseconds(20);
}  // namespace

ComponentMonitor::StatusCallback ComponentMonitor::Register(
    const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    statuses_[name] = ComponentStatus::kInitializing;
  }
  return [this, name](ComponentStatus status) {
    absl::MutexLock lock(&mu_);
    statuses_[name] = status;
  };
}

bool ComponentMonitor::WaitAllHealthy(absl::Duration timeout) {
  auto all_healthy = [this] {
    mu_.AssertReaderHeld();
    for (const auto& [name, status] : statuses_) {
      if (status != ComponentStatus::kHealthy) return false;
    }
    return true;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&all_healthy), timeout);
}

std::map<std::string, ComponentStatus> ComponentMonitor::Statuses() {
  absl::MutexLock lock(&mu_);
  return statuses_;
}

MonitoredClient::MonitoredClient(const ClientConfig& config,
                                 ComponentMonitor& monitor)
    : config_(config) {
  auto add = [&](std::string name, auto body) {
    auto c = std::make_unique<Component>();
    c->report = monitor.Register(name);
    c->name = std::move(name);
    c->body = std::move(body);
    components_.push_back(std::move(c));
  };
  // Every component gets the callback and has to remember to call it. With
  // no signal to wait on, each polls its stop flag: its interval is a poll,
  // not the production one, or a stop would take an hour.
  auto periodic = [](Component* c, absl::Duration interval) {
    return [c, interval](const std::function<bool()>& stopping) {
      c->report(ComponentStatus::kHealthy);
      while (!stopping()) absl::SleepFor(interval);
      c->report(ComponentStatus::kStopped);
    };
  };
  add("notifier", nullptr);
  Component* notifier = components_.back().get();
  notifier->body = [this, notifier](const std::function<bool()>& stopping) {
    while (!stopping()) {
      lifecycle::Signal dropped;
      if (config_.database->Connect(&dropped).ok()) {
        notifier->report(ComponentStatus::kHealthy);
        while (!stopping() && !dropped.WaitFor(absl::Milliseconds(5))) {
        }
      } else {
        notifier->report(ComponentStatus::kUnhealthy);
        absl::SleepFor(kPoll);
      }
    }
    notifier->report(ComponentStatus::kStopped);
  };
  add("elector", nullptr);
  components_.back()->body = periodic(components_.back().get(), kPoll);
  for (const std::string& queue : config.queues) {
    add("producer/" + queue, nullptr);
    components_.back()->body = periodic(components_.back().get(), kPoll);
  }
  for (const char* name : {"maintenance/cleaner", "maintenance/rescuer"}) {
    add(name, nullptr);
    components_.back()->body = periodic(components_.back().get(), kPoll);
  }
}

MonitoredClient::~MonitoredClient() { Stop(); }

void MonitoredClient::Start() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  auto stopping = [this] {
    absl::MutexLock lock(&mu_);
    return stopping_;
  };
  for (auto& c : components_) {
    c->report(ComponentStatus::kInitializing);
    c->thread = std::thread(c->body, stopping);
  }
}

void MonitoredClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& c : components_) {
    if (c->thread.joinable()) c->thread.join();
  }
}

}  // namespace examples
