#include "examples/client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"

namespace examples {

using lifecycle::Context;
using lifecycle::Signal;

void SimulatedDatabase::SetAvailable(bool available) {
  absl::MutexLock lock(&mu_);
  available_ = available;
}

void SimulatedDatabase::DropConnections() {
  Signal drop;
  {
    absl::MutexLock lock(&mu_);
    drop = drop_;
    drop_ = Signal();
  }
  drop.Close();
}

absl::Status SimulatedDatabase::Connect(Signal* dropped) {
  absl::MutexLock lock(&mu_);
  if (!available_) return absl::UnavailableError("database refused connection");
  *dropped = drop_;
  return absl::OkStatus();
}

bool Crashes::Crash(const std::string& path) {
  Signal crash;
  {
    absl::MutexLock lock(&mu_);
    auto it = armed_.find(path);
    if (it == armed_.end()) return false;
    crash = it->second;
    armed_.erase(it);  // the next run gets a fresh one
  }
  crash.Close();
  return true;
}

Signal Crashes::SignalFor(const std::string& path) {
  absl::MutexLock lock(&mu_);
  return armed_[path];
}

namespace {

absl::Status InjectedStartFault(const ClientConfig& config,
                                const std::string& path) {
  if (config.faults.fail.count(path) > 0) {
    return absl::UnavailableError(absl::StrCat("injected failure at ", path));
  }
  return absl::OkStatus();
}

// Waits the simulated start time, or until stopped if a hang is injected.
bool SimulateStartOf(const ClientConfig& config, const std::string& path,
                     const Context& ctx) {
  if (config.faults.hang.count(path) > 0) {
    ctx.Done().Wait();
    return false;
  }
  return !ctx.Done().WaitFor(config.simulated_start_time);
}

}  // namespace

Component::Component(std::string name, const ClientConfig& config)
    : BaseService(std::move(name)), config_(config) {}

absl::Status Component::OnStart(const Context&) {
  return InjectedStartFault(config_, Path());
}

bool Component::SimulateStart(const Context& ctx) {
  crash_ = config_.crashes != nullptr ? config_.crashes->SignalFor(Path())
                                      : Signal();
  return SimulateStartOf(config_, Path(), ctx);
}

bool Component::Idle(const Context& ctx, absl::Duration d) {
  Signal waits[] = {ctx.Done(), crash_};
  lifecycle::WaitAnyUntil(waits, lifecycle::Now() + d);
  return !ctx.IsCancelled() && !crash_.IsClosed();
}

absl::Status Component::EndOfRun(const Context& ctx) const {
  if (!ctx.IsCancelled() && crash_.IsClosed()) {
    return absl::InternalError("crashed (injected)");
  }
  return ctx.Cause();
}

ComponentGroup::ComponentGroup(std::string name, const ClientConfig& config)
    : CompositeService(std::move(name)), config_(config) {}

absl::Status ComponentGroup::OnStart(const Context&) {
  return InjectedStartFault(config_, Path());
}

absl::Status ComponentGroup::Run(const Context& ctx,
                                 absl::FunctionRef<void()> started) {
  if (!SimulateStartOf(config_, Path(), ctx)) return ctx.Cause();
  return CompositeService::Run(ctx, started);
}

Notifier::Notifier(const ClientConfig& config)
    : Component("notifier", config) {}

absl::Status Notifier::Run(const Context& ctx,
                           absl::FunctionRef<void()> started) {
  if (!SimulateStart(ctx)) return ctx.Cause();
  absl::Duration backoff = config_.reconnect_backoff;
  int attempt = 0;
  while (!ctx.IsCancelled() && !crash_.IsClosed()) {
    Signal dropped;
    absl::Status connected = config_.database->Connect(&dropped);
    if (connected.ok()) {
      attempt = 0;
      backoff = config_.reconnect_backoff;
      ReportHealthy();
      test_signals_.connected.Signal(true);
      started();
      Signal waits[] = {dropped, ctx.Done(), crash_};
      lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
      if (ctx.IsCancelled() || crash_.IsClosed()) break;
      connected = absl::UnavailableError("connection dropped");
    }
    // Degraded until the next successful connect.
    ReportError(connected);
    test_signals_.reconnect_scheduled.Signal(++attempt);
    if (!Idle(ctx, backoff)) break;
    backoff = std::min(backoff * 2, config_.max_reconnect_backoff);
  }
  return EndOfRun(ctx);
}

Elector::Elector(const ClientConfig& config) : Component("elector", config) {}

absl::Status Elector::Run(const Context& ctx,
                          absl::FunctionRef<void()> started) {
  if (!SimulateStart(ctx)) return ctx.Cause();
  started();
  do {
    // A single client always wins the election in this simulation.
    if (!leader_.exchange(true)) test_signals_.elected.Signal(true);
  } while (Idle(ctx, config_.elect_interval));
  leader_ = false;
  return EndOfRun(ctx);
}

PeriodicWorker::PeriodicWorker(std::string name, const ClientConfig& config,
                               absl::Duration interval)
    : Component(std::move(name), config), interval_(interval) {}

absl::Status PeriodicWorker::Run(const Context& ctx,
                                 absl::FunctionRef<void()> started) {
  if (!SimulateStart(ctx)) return ctx.Cause();
  started();
  while (Idle(ctx, interval_)) ++ticks_;
  return EndOfRun(ctx);
}

ProducerGroup::ProducerGroup(const ClientConfig& config)
    : ComponentGroup("producer", config) {
  for (const std::string& queue : config.queues) {
    producers_.push_back(
        std::make_unique<PeriodicWorker>(queue, config, config.fetch_interval));
    AddChildOrDie(*producers_.back());
  }
}

Maintenance::Maintenance(const ClientConfig& config)
    : ComponentGroup("maintenance", config),
      cleaner_("cleaner", config, config.maintenance_interval),
      rescuer_("rescuer", config, config.maintenance_interval) {
  AddChildOrDie(cleaner_);
  AddChildOrDie(rescuer_);
}

Client::Client(const ClientConfig& config)
    : ComponentGroup("client", config),
      notifier_(config),
      elector_(config),
      producer_(config),
      maintenance_(config) {
  AddChildOrDie(notifier_, config.restart_policy);
  AddChildOrDie(elector_, config.restart_policy);
  AddChildOrDie(producer_);  // fail fast, the default
  AddChildOrDie(maintenance_, lifecycle::Supervision::Degrade());
  // The producers start once the elector has (only a leader produces), and
  // maintenance once the notifier has (it needs the notifier's database).
  AddDependencyOrDie(producer_, elector_);
  AddDependencyOrDie(maintenance_, notifier_);
}

lifecycle::BaseService* Client::Find(std::string_view path) {
  std::vector<lifecycle::BaseService*> all = {this,
                                              &notifier_,
                                              &elector_,
                                              &producer_,
                                              &maintenance_,
                                              &maintenance_.cleaner(),
                                              &maintenance_.rescuer()};
  for (const auto& producer : producer_.producers()) {
    all.push_back(producer.get());
  }
  for (lifecycle::BaseService* service : all) {
    if (service->Path() == path) return service;
  }
  return nullptr;
}

}  // namespace examples
