// -----------------------------------------------------------------------------
// monitored_client.h: the "before" of MIGRATION.md
// -----------------------------------------------------------------------------
//
// The pattern River removed, kept here to compare against: a central
// `ComponentMonitor` to which every component reports its status through
// callbacks handed to it at construction. A test waits until the monitor says
// every component is healthy.
//
// Compare with client.h, where components report nothing: the client's
// started signal closes when all of them have started, and their health is
// pulled from the services when someone asks.

#ifndef EXAMPLES_MONITORED_CLIENT_H_
#define EXAMPLES_MONITORED_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "examples/client.h"

namespace examples {

enum class ComponentStatus { kInitializing, kHealthy, kUnhealthy, kStopped };

class ComponentMonitor {
 public:
  // What each component is handed: it must call it on every change.
  using StatusCallback = std::function<void(ComponentStatus)>;
  StatusCallback Register(const std::string& name);

  // Waits until every registered component reported healthy.
  bool WaitAllHealthy(absl::Duration timeout);
  std::map<std::string, ComponentStatus> Statuses();

 private:
  absl::Mutex mu_;
  std::map<std::string, ComponentStatus> statuses_ ABSL_GUARDED_BY(mu_);
};

// The client's shape (notifier, elector, one producer per queue, two
// maintainers), each component a thread that reports through its callback.
class MonitoredClient {
 public:
  MonitoredClient(const ClientConfig& config, ComponentMonitor& monitor);
  ~MonitoredClient();  // stops the components
  void Start();
  void Stop();

 private:
  struct Component {
    std::string name;
    ComponentMonitor::StatusCallback report;
    std::function<void(const std::function<bool()>& stopping)> body;
    std::thread thread;
  };
  const ClientConfig& config_;
  std::vector<std::unique_ptr<Component>> components_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace examples

#endif  // EXAMPLES_MONITORED_CLIENT_H_
