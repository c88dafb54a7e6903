// -----------------------------------------------------------------------------
// client.h
// -----------------------------------------------------------------------------
//
// A job-queue client in the shape of River's, built from lifecycle services:
//
//   client                      CompositeService: started once all below are
//   client/notifier             holds a (simulated) database connection; on a
//                               drop it reports itself degraded, reconnects
//                               with exponential backoff, reports healthy
//   client/elector              tries to become leader at an interval
//   client/producer             one child per configured queue:
//   client/producer/default       fetches and "works" jobs from its queue
//   client/maintenance          supervisor of the maintainers:
//   client/maintenance/cleaner    deletes finished jobs periodically
//   client/maintenance/rescuer    rescues stuck jobs periodically
//
// How the client supervises its parts once started (composite_service.h):
//
//   client/notifier     restart: a listener that loses its connection for
//   client/elector      good is restarted, within limits (`restart_policy`)
//   client/producer     fail fast: without producers the client is useless,
//                       so a dead producer fails the whole client
//   client/maintenance  degrade: maintenance can wait; the client runs on,
//                       degraded, if it dies (a dead cleaner or rescuer
//                       fails its group, which fails fast inside)
//
// The order it starts its parts in (dependencies, composite_service.h):
//
//   client/producer     after client/elector: only a leader produces
//   client/maintenance  after client/notifier: it works on the database the
//                       notifier is connected to
//
// Everything else starts at once; the client stops them in reverse.
//
// Every wait is a library wait and every "now" is `lifecycle::Now()`, so the
// client runs in virtual time under test (client_test.cc: an hour of it in
// milliseconds).
//
// Nothing here knows about tests beyond the `TestSignal` hooks, which do
// nothing until a test initialises them. Faults for demos and tests are
// injected by path through `Faults` (at start) and `Crashes` (once running).

#ifndef EXAMPLES_CLIENT_H_
#define EXAMPLES_CLIENT_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/signal.h"
#include "lifecycle/test_signal.h"

namespace examples {

// Paths whose start fails ("--fail") or never signals started ("--hang").
struct Faults {
  std::set<std::string> fail;
  std::set<std::string> hang;
};

// A stand-in for a database: connections can be refused or dropped.
class SimulatedDatabase {
 public:
  // Whether new connections succeed.
  void SetAvailable(bool available);
  // Breaks every open connection: their `Dropped()` signals close.
  void DropConnections();

  // Connects, or fails with UNAVAILABLE while the database is unavailable.
  // On success, `dropped` is the signal that closes when the connection drops.
  absl::Status Connect(lifecycle::Signal* dropped);

 private:
  absl::Mutex mu_;
  bool available_ ABSL_GUARDED_BY(mu_) = true;
  lifecycle::Signal drop_ ABSL_GUARDED_BY(mu_);
};

// Kills running leaf components by path, as a bug in them would: the
// component's current run ends with an INTERNAL error.
class Crashes {
 public:
  // Crashes the current run of the component at `path`. Returns false if no
  // run of it is waiting to be crashed (it is not running, or not a leaf).
  bool Crash(const std::string& path);
  // For a component's run: the signal that closes when it is to crash.
  lifecycle::Signal SignalFor(const std::string& path);

 private:
  absl::Mutex mu_;
  std::map<std::string, lifecycle::Signal> armed_ ABSL_GUARDED_BY(mu_);
};

struct ClientConfig {
  std::vector<std::string> queues = {"default"};
  SimulatedDatabase* database = nullptr;  // required
  Faults faults;
  Crashes* crashes = nullptr;  // optional
  // How the notifier and the elector are restarted when they die.
  lifecycle::Supervision restart_policy =
      lifecycle::Supervision::Restart(3, absl::Minutes(1))
          .WithBackoff(absl::Milliseconds(100), absl::Seconds(30));
  // Production intervals: tests keep them and run in virtual time
  // (testing/virtual_time.h) instead of shortening them.
  absl::Duration reconnect_backoff = absl::Seconds(1);  // doubles per attempt
  absl::Duration max_reconnect_backoff = absl::Seconds(30);
  absl::Duration elect_interval = absl::Seconds(5);
  absl::Duration fetch_interval = absl::Seconds(1);  // each producer's poll
  absl::Duration maintenance_interval = absl::Hours(1);
  // How long each component takes to start: a delay the demo is about.
  absl::Duration simulated_start_time = absl::ZeroDuration();
};

// A leaf component: applies the injected faults for its path.
class Component : public lifecycle::BaseService {
 protected:
  Component(std::string name, const ClientConfig& config);
  absl::Status OnStart(const lifecycle::Context& ctx) override;
  // Call at the top of Run(): waits the simulated start time, or forever if a
  // hang is injected (until stopped). Returns false if the run must end.
  bool SimulateStart(const lifecycle::Context& ctx);
  // Waits up to `d`; false if the run must end (stopped, or crashed).
  bool Idle(const lifecycle::Context& ctx, absl::Duration d);
  // What the run returns once it must end: the crash, or the context's cause.
  absl::Status EndOfRun(const lifecycle::Context& ctx) const;
  // Closes when this run is to crash (`Crashes`); set by SimulateStart().
  lifecycle::Signal crash_;
  const ClientConfig& config_;
};

// A composite component: the same faults, for groups.
class ComponentGroup : public lifecycle::CompositeService {
 protected:
  ComponentGroup(std::string name, const ClientConfig& config);
  absl::Status OnStart(const lifecycle::Context& ctx) override;
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override;
  const ClientConfig& config_;
};

class Notifier : public Component {
 public:
  explicit Notifier(const ClientConfig& config);
  ~Notifier() override { StopForDestruction(); }

  struct TestSignals {
    lifecycle::TestSignal<int> reconnect_scheduled;  // attempt number
    lifecycle::TestSignal<bool> connected;           // always true
  };
  TestSignals& test_signals() { return test_signals_; }

 private:
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override;
  TestSignals test_signals_;
};

class Elector : public Component {
 public:
  explicit Elector(const ClientConfig& config);
  ~Elector() override { StopForDestruction(); }
  bool IsLeader() const { return leader_; }

  struct TestSignals {
    lifecycle::TestSignal<bool> elected;
  };
  TestSignals& test_signals() { return test_signals_; }

 private:
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override;
  std::atomic<bool> leader_{false};
  TestSignals test_signals_;
};

// A simple periodic worker: producers and maintainers.
class PeriodicWorker : public Component {
 public:
  PeriodicWorker(std::string name, const ClientConfig& config,
                 absl::Duration interval);
  ~PeriodicWorker() override { StopForDestruction(); }
  int64_t ticks() const { return ticks_; }

 private:
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override;
  absl::Duration interval_;
  std::atomic<int64_t> ticks_{0};
};

class ProducerGroup : public ComponentGroup {
 public:
  explicit ProducerGroup(const ClientConfig& config);
  ~ProducerGroup() override { StopForDestruction(); }
  const std::vector<std::unique_ptr<PeriodicWorker>>& producers() const {
    return producers_;
  }

 private:
  std::vector<std::unique_ptr<PeriodicWorker>> producers_;
};

class Maintenance : public ComponentGroup {
 public:
  explicit Maintenance(const ClientConfig& config);
  ~Maintenance() override { StopForDestruction(); }
  PeriodicWorker& cleaner() { return cleaner_; }
  PeriodicWorker& rescuer() { return rescuer_; }

 private:
  PeriodicWorker cleaner_;
  PeriodicWorker rescuer_;
};

class Client : public ComponentGroup {
 public:
  // `config` must outlive the client.
  explicit Client(const ClientConfig& config);
  ~Client() override { StopForDestruction(); }

  Notifier& notifier() { return notifier_; }
  Elector& elector() { return elector_; }
  ProducerGroup& producer() { return producer_; }
  Maintenance& maintenance() { return maintenance_; }
  // The component at `path` ("client/notifier"), or null.
  lifecycle::BaseService* Find(std::string_view path);

 private:
  Notifier notifier_;
  Elector elector_;
  ProducerGroup producer_;
  Maintenance maintenance_;
};

}  // namespace examples

#endif  // EXAMPLES_CLIENT_H_
