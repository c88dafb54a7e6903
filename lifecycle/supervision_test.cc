// Composites that watch their children after start (composite_service.h,
// "Supervision"), and the bounded stop of the Service contract (service.h).

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/service.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/startup_report.h"
#include "lifecycle/test_services.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(30);

using test_services::ChildSpec;
using test_services::Parent;
using Mortal = test_services::TestService;

// Waits until `service`'s snapshot satisfies `done`; false after kWait.
bool AwaitSnapshot(const BaseService& service,
                   absl::FunctionRef<bool(const ServiceSnapshot&)> done) {
  return WaitSnapshotUntil(service, done, absl::Now() + kWait);
}

Supervision FastRestart(int max_restarts) {
  return Supervision::Restart(max_restarts, absl::Minutes(1))
      .WithBackoff(absl::ZeroDuration());
}

TEST(SupervisionTest, APolicyIsOneExpression) {
  Supervision s = Supervision::Restart(5, absl::Minutes(2))
                      .WithBackoff(absl::Seconds(1), absl::Seconds(20));
  EXPECT_EQ(s.policy, Supervision::Policy::kRestart);
  EXPECT_EQ(s.max_restarts, 5);
  EXPECT_EQ(s.period, absl::Minutes(2));
  EXPECT_EQ(s.backoff, absl::Seconds(1));
  EXPECT_EQ(s.max_backoff, absl::Seconds(20));
  EXPECT_EQ(Supervision::Restart().WithBackoff(absl::Seconds(2)).max_backoff,
            absl::Seconds(30));
}

TEST(SupervisionTest, FailFastFailsTheParentNamingTheChildsPath) {
  Mortal notifier("notifier"), producer("producer");
  Parent client("client", {ChildSpec(&notifier), ChildSpec(&producer)});
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Started().WaitFor(kWait));

  notifier.Kill(absl::UnavailableError("connection reset"));
  ASSERT_TRUE(client.Stopped().WaitFor(kWait));
  ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.status.message(),
            "service 'client/notifier' failed while running: connection reset");
  EXPECT_EQ(FailedServicePath(s.status), "client/notifier");
  // The other children were stopped with it, cleanly.
  EXPECT_EQ(s.Find("client/producer")->state, ServiceState::kStopped);
  EXPECT_EQ(s.Find("client/notifier")->state, ServiceState::kFailed);
  EXPECT_EQ(s.last_failure, s.status);
}

TEST(SupervisionTest, AChildThatReturnsUnaskedIsADeathToo) {
  Mortal worker("worker");
  Parent parent("parent", {ChildSpec(&worker)});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  worker.Kill(absl::OkStatus());  // returns OK while nobody asked it to stop
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  ServiceSnapshot s = parent.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status.message(),
              HasSubstr("service 'parent/worker' failed while running: its run "
                        "returned while nobody had asked it to stop"));
}

TEST(SupervisionTest, FailFastReachesTheRootThroughNestedComposites) {
  Mortal leaf("cleaner");
  Parent maintenance("maintenance", {ChildSpec(&leaf)});
  Parent client("client", {ChildSpec(&maintenance)});
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Started().WaitFor(kWait));
  leaf.Kill(absl::DataLossError("disk"));
  ASSERT_TRUE(client.Stopped().WaitFor(kWait));
  ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status.message(),
            "service 'client/maintenance/cleaner' failed while running: disk");
  EXPECT_EQ(s.Find("client/maintenance")->status, s.status);
}

TEST(SupervisionTest, DegradeKeepsTheSiblingsRunningAndShowsTheError) {
  Mortal cleaner("cleaner"), rescuer("rescuer");
  Parent maintenance("maintenance", {ChildSpec(&cleaner), ChildSpec(&rescuer)},
                     Supervision::Degrade());
  ASSERT_TRUE(maintenance.Start(Context::Background()).ok());
  ASSERT_TRUE(maintenance.Started().WaitFor(kWait));

  cleaner.Kill(absl::InternalError("crashed"));
  ASSERT_TRUE(AwaitSnapshot(
      maintenance, [](const ServiceSnapshot& s) { return s.degraded; }));
  ServiceSnapshot s = maintenance.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kStarted);
  EXPECT_EQ(s.last_error.message(),
            "service 'maintenance/cleaner' failed while running: crashed");
  EXPECT_EQ(s.Find("maintenance/cleaner")->state, ServiceState::kFailed);
  EXPECT_EQ(s.Find("maintenance/rescuer")->state, ServiceState::kStarted);
  EXPECT_THAT(ToTable(s), HasSubstr("degraded"));
  EXPECT_THAT(ToTable(s), HasSubstr("INTERNAL: service 'maintenance/cleaner' "
                                    "failed while running: crashed"));
  maintenance.Stop();
  EXPECT_EQ(maintenance.Snapshot().state, ServiceState::kStopped);
}

TEST(SupervisionTest, RestartBringsTheChildBackAndCountsIt) {
  Mortal listener("listener"), producer("producer");
  Parent client("client",
                {ChildSpec(&listener, FastRestart(3)), ChildSpec(&producer)});
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Started().WaitFor(kWait));

  listener.Kill(absl::UnavailableError("flaky"));
  ASSERT_TRUE(AwaitSnapshot(listener, [](const ServiceSnapshot& s) {
    return s.restart_count == 1 && s.state == ServiceState::kStarted;
  }));
  EXPECT_EQ(listener.runs(), 2);
  ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kStarted);
  EXPECT_FALSE(s.degraded);
  const ServiceSnapshot* l = s.Find("client/listener");
  EXPECT_EQ(l->restart_count, 1);
  EXPECT_EQ(l->failure_count, 1);
  EXPECT_EQ(l->last_failure.message(),
            "service 'client/listener' failed while running: flaky");
  EXPECT_NE(l->last_failure_at, absl::InfinitePast());
  EXPECT_EQ(s.Find("client/producer")->restart_count, 0);
  client.Stop();
  EXPECT_EQ(client.Snapshot().state, ServiceState::kStopped)
      << client.Snapshot();
}

TEST(SupervisionTest, ARestartLeavesTheStartUpReportAlone) {
  Mortal listener("listener"), producer("producer");
  Parent client("client",
                {ChildSpec(&listener, FastRestart(3)), ChildSpec(&producer)});
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Started().WaitFor(kWait));
  const ServiceSnapshot before = client.Snapshot();
  listener.Kill(absl::UnavailableError("flaky"));
  ASSERT_TRUE(AwaitSnapshot(listener, [](const ServiceSnapshot& s) {
    return s.restart_count == 1 && s.state == ServiceState::kStarted;
  }));
  const ServiceSnapshot after = client.Snapshot();
  const ServiceSnapshot* l = after.Find("client/listener");
  // The span is still the start that client's start-up waited for ...
  EXPECT_EQ(l->start_began, before.Find("client/listener")->start_began);
  EXPECT_EQ(l->startup_duration,
            before.Find("client/listener")->startup_duration);
  EXPECT_TRUE(l->startup_completed);
  // ... so the critical path is as it was, not a hop to the restart.
  EXPECT_EQ(CriticalPathText(after), CriticalPathText(before));
  client.Stop();
}

TEST(SupervisionTest, RestartLimitNamesTheChildAndTheCount) {
  Mortal listener("listener");
  Parent client("client", {ChildSpec(&listener)}, FastRestart(2));
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Started().WaitFor(kWait));
  // From now on every run dies right after it started.
  listener.DieAfterStarting(absl::UnavailableError("always down"));
  listener.Kill(absl::UnavailableError("always down"));
  ASSERT_TRUE(client.Stopped().WaitFor(kWait));
  ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status.message(),
            "service 'client/listener' failed while running: always down "
            "(restarted 2 times within 1m; the limit is 2)");
  EXPECT_EQ(FailedServicePath(s.status), "client/listener");
  EXPECT_EQ(s.Find("client/listener")->restart_count, 2);
  EXPECT_EQ(listener.runs(), 3);
}

TEST(SupervisionTest, APolicyThatAllowsNoRestartFailsAtTheFirstDeath) {
  for (Supervision policy : {Supervision::Restart(0), Supervision::Restart(-1),
                             Supervision::Restart(3, absl::ZeroDuration()),
                             Supervision::Restart(3, -absl::Seconds(1))}) {
    Mortal child("child");
    Parent parent("parent", {ChildSpec(&child)}, policy);
    ASSERT_TRUE(parent.Start(Context::Background()).ok());
    ASSERT_TRUE(parent.Started().WaitFor(kWait));
    child.Kill(absl::InternalError("boom"));
    ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
    ServiceSnapshot s = parent.Snapshot();
    EXPECT_EQ(s.state, ServiceState::kFailed);
    // Prefixed once, and the child's path kept: the error names the child.
    EXPECT_EQ(s.status.message(),
              absl::StrCat("service 'parent/child' failed while running: boom "
                           "(not restarted: the restart policy allows none, "
                           "max_restarts ",
                           policy.max_restarts, " within ",
                           absl::FormatDuration(policy.period), ")"));
    EXPECT_EQ(FailedServicePath(s.status), "parent/child");
    EXPECT_EQ(child.runs(), 1);
  }
}

TEST(SupervisionTest, AChildStoppedWhileItAwaitsItsRestartStaysStopped) {
  Supervision policy =
      Supervision::Restart(3).WithBackoff(absl::Milliseconds(20));
  Mortal target("target"), witness("witness");
  Parent parent("parent",
                {ChildSpec(&target, policy), ChildSpec(&witness, policy)});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));

  target.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(target.Stopped().WaitFor(kWait));
  target.Stop();  // during its backoff (or, on a slow machine, just after)
  const int64_t starts = target.Snapshot().start_count;
  // The witness dies later with the same backoff: once it is back, the
  // target's restart time has come and gone too.
  witness.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(AwaitSnapshot(witness, [](const ServiceSnapshot& s) {
    return s.restart_count == 1 && s.state == ServiceState::kStarted;
  }));
  ServiceSnapshot t = target.Snapshot();
  EXPECT_EQ(t.start_count, starts) << "restarted after Stop() returned";
  EXPECT_NE(t.state, ServiceState::kStarted);
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStarted);
  parent.Stop();
}

TEST(SupervisionTest, AnInfiniteBackoffMeansTheRestartNeverComes) {
  Supervision never = Supervision::Restart(3).WithBackoff(
      absl::InfiniteDuration(), absl::InfiniteDuration());
  Mortal child("child"), witness("witness");
  Parent parent("parent", {ChildSpec(&child, never),
                           ChildSpec(&witness, FastRestart(3))});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  child.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(child.Stopped().WaitFor(kWait));
  // Once the witness has died and come back, the supervisor has looked at
  // the child's death more than once.
  witness.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(AwaitSnapshot(witness, [](const ServiceSnapshot& s) {
    return s.restart_count == 1 && s.state == ServiceState::kStarted;
  }));
  ServiceSnapshot s = parent.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kStarted) << s.status;
  EXPECT_EQ(s.Find("parent/child")->state, ServiceState::kFailed);
  EXPECT_EQ(s.Find("parent/child")->restart_count, 0);
  EXPECT_EQ(child.runs(), 1);
  parent.Stop();  // with the restart still pending, forever
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStopped);
}

TEST(SupervisionTest, AChildsStoppedCallbackMayStopItsParent) {
  // "When a worker dies, take the app down", written as a callback: it runs
  // on the child's ended worker, which the parent's stop must not join.
  for (Supervision policy : {Supervision::FailFast(), Supervision::Degrade()}) {
    Mortal worker("worker"), other("other");
    Parent app("app", {ChildSpec(&worker, policy), ChildSpec(&other)});
    ASSERT_TRUE(app.Start(Context::Background()).ok());
    ASSERT_TRUE(app.Started().WaitFor(kWait));
    Signal app_stopped;
    worker.Stopped().OnClose([&] {
      app.Stop();
      app_stopped.Close();
    });
    worker.Kill(absl::InternalError("died"));
    ASSERT_TRUE(app_stopped.WaitFor(kWait)) << "the callback's Stop() hangs";
    EXPECT_NE(app.Snapshot().state, ServiceState::kStarted);
    EXPECT_EQ(other.Snapshot().state, ServiceState::kStopped);
  }
}

TEST(SupervisionTest, ARestartWhoseStartFailsCountsAsAnotherDeath) {
  Mortal child("child");
  Parent parent("parent", {ChildSpec(&child)}, FastRestart(3));
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  child.SetStartError(absl::UnavailableError("no route"));
  child.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  ServiceSnapshot s = parent.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_THAT(s.status.message(),
              HasSubstr("service 'parent/child' failed to start: no route "
                        "(restarted 3 times within 1m; the limit is 3)"));
  EXPECT_EQ(child.runs(), 1);  // the restarts never got to run
}

TEST(SupervisionTest, ANegativeBackoffCountsAsZero) {
  Mortal child("child");
  Supervision policy = Supervision::Restart(3, absl::Minutes(1));
  policy.backoff = -absl::Hours(1);
  policy.max_backoff = -absl::Hours(1);
  Parent parent("parent", {ChildSpec(&child)}, policy);
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  child.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(AwaitSnapshot(child, [](const ServiceSnapshot& s) {
    return s.restart_count == 1 && s.state == ServiceState::kStarted;
  }));
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStarted);
}

TEST(SupervisionTest, BackoffDelaysTheRestart) {
  Mortal child("child");
  Supervision slow = Supervision::Restart(3, absl::Minutes(1));
  slow.backoff = absl::Hours(1);
  Parent parent("parent", {ChildSpec(&child)}, slow);
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  child.Kill(absl::InternalError("boom"));
  ASSERT_TRUE(AwaitSnapshot(child, [](const ServiceSnapshot& s) {
    return s.state == ServiceState::kFailed;
  }));
  // Waiting out the backoff; a stop does not wait for it.
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStarted);
  EXPECT_EQ(child.Snapshot().restart_count, 0);
  parent.Stop();
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(child.runs(), 1);
}

TEST(SupervisionTest, AChildPolicyOverridesTheParents) {
  Mortal tolerated("tolerated"), vital("vital");
  Parent parent("parent", {ChildSpec(&tolerated, Supervision::Degrade()),
                           ChildSpec(&vital)});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  tolerated.Kill(absl::InternalError("meh"));
  ASSERT_TRUE(AwaitSnapshot(
      parent, [](const ServiceSnapshot& s) { return s.degraded; }));
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStarted);
  vital.Kill(absl::InternalError("fatal"));
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  EXPECT_THAT(parent.Snapshot().status.message(),
              HasSubstr("service 'parent/vital' failed while running: fatal"));
}

TEST(SupervisionTest, AChildStoppedOnPurposeIsNotADeath) {
  Mortal a("a"), b("b");
  Parent parent("parent", {ChildSpec(&a), ChildSpec(&b)});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  a.Stop();
  // Then a real death of the other child: the parent must name b, not a.
  b.Kill(absl::InternalError("b died"));
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  EXPECT_THAT(parent.Snapshot().status.message(),
              HasSubstr("service 'parent/b' failed while running"));
  EXPECT_EQ(a.Snapshot().state, ServiceState::kStopped);
}

TEST(SupervisionTest, AChildDestroyedWhileItsParentRunsIsNotADeath) {
  auto a = std::make_unique<Mortal>("a");
  Mortal b("b");
  Parent parent("parent", {ChildSpec(a.get()), ChildSpec(&b)});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  a.reset();
  b.Kill(absl::InternalError("b died"));
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  EXPECT_THAT(parent.Snapshot().status.message(),
              HasSubstr("service 'parent/b' failed while running"));
}

TEST(SupervisionTest, StoppingTheParentIsNotADeath) {
  Mortal a("a");
  Parent parent("parent", {ChildSpec(&a)}, FastRestart(3));
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(parent.Start(Context::Background()).ok());
    ASSERT_TRUE(parent.Started().WaitFor(kWait));
    parent.Stop();
    ServiceSnapshot s = parent.Snapshot();
    ASSERT_EQ(s.state, ServiceState::kStopped) << s;
    ASSERT_EQ(s.Find("parent/a")->restart_count, 0);
  }
}

// A child that is not a BaseService: a plain Service forwarding to a Mortal.
class Plain : public Service {
 public:
  explicit Plain(std::string name) : inner_(std::move(name)) {}
  absl::Status Start(const Context& ctx) override {
    if (!start_error.ok()) return start_error;
    return inner_.Start(ctx);
  }
  Signal Started() const override { return inner_.Started(); }
  void Stop() override { inner_.Stop(); }
  absl::Status StopFor(absl::Duration timeout) override {
    return inner_.StopFor(timeout);
  }
  Signal Stopped() const override { return inner_.Stopped(); }
  std::string_view Name() const override { return inner_.Name(); }
  ServiceSnapshot Snapshot() const override { return inner_.Snapshot(); }
  void Kill(absl::Status error) { inner_.Kill(std::move(error)); }
  absl::Status start_error;

 private:
  Mortal inner_;
};

TEST(SupervisionTest, APlainServiceChildIsNamedByItsPathToo) {
  Plain plain("plain");
  Parent parent("parent", {ChildSpec(&plain)});
  ServiceSnapshot before = parent.Snapshot();
  ASSERT_NE(before.Find("parent/plain"), nullptr);
  plain.start_error = absl::UnavailableError("no");
  EXPECT_EQ(parent.Start(Context::Background()).ok(), true);
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  EXPECT_EQ(parent.Snapshot().status.message(),
            "service 'parent/plain' failed to start: no");
  plain.start_error = absl::OkStatus();
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  plain.Kill(absl::InternalError("plain died"));
  ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
  // (Its error was annotated by the BaseService inside it, as 'plain'.)
  EXPECT_THAT(parent.Snapshot().status.message(),
              HasSubstr("failed while running: plain died"));
}

TEST(SupervisionTest, APlainServiceChildsRestartsAreCountedByItsParent) {
  Plain plain("plain");
  Parent parent("parent", {ChildSpec(&plain, FastRestart(3))});
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  for (int restarts = 1; restarts <= 2; ++restarts) {
    plain.Kill(absl::InternalError("plain died"));
    // The parent counts the restart (its snapshot changes), and the child
    // starts again.
    ASSERT_TRUE(AwaitSnapshot(parent, [&](const ServiceSnapshot& s) {
      const ServiceSnapshot* p = s.Find("parent/plain");
      return p != nullptr && p->restart_count == restarts;
    })) << parent.Snapshot();
    ASSERT_TRUE(plain.Started().WaitFor(kWait));
  }
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStarted);
  parent.Stop();
}

TEST(SupervisionTest, AStormOfDeathsRestartsEachChildOnce) {
  constexpr int kChildren = 100;
  std::vector<std::unique_ptr<Mortal>> mortals;
  std::vector<ChildSpec> specs;
  for (int i = 0; i < kChildren; ++i) {
    mortals.push_back(std::make_unique<Mortal>(absl::StrCat("m", i)));
    specs.push_back(ChildSpec(mortals.back().get(), FastRestart(3)));
  }
  Parent parent("parent", specs);
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  for (auto& m : mortals) m->Kill(absl::UnavailableError("storm"));
  for (auto& m : mortals) {
    ASSERT_TRUE(AwaitSnapshot(*m, [&](const ServiceSnapshot& s) {
      return s.restart_count == 1 && s.state == ServiceState::kStarted;
    })) << m->Snapshot();
  }
  EXPECT_EQ(parent.Snapshot().state, ServiceState::kStarted);
  for (auto& m : mortals) {
    EXPECT_EQ(m->runs(), 2) << m->Name();
    // The supervisor watches each run through one callback on its stopped
    // signal: none piled up from the first run. (Zero for a moment: the child
    // may be up before the supervisor registers its watch of the new run.)
    EXPECT_LE(signal_internal::PendingCallbacks(m->Stopped()), 1u) << m->Name();
  }
  parent.Stop();
}

// --- The bounded stop ------------------------------------------------------

// A child whose run ignores its context until released.
class Stubborn : public test_services::TestService {
 public:
  explicit Stubborn(std::string name) : TestService(std::move(name)) {
    IgnoreStopUntilReleased();
  }
};

TEST(BoundedStopTest, NamesTheDescendantThatHoldsTheStopUpWithItsStack) {
  EnableThreadStacksInReports();
  Stubborn stuck("stuck");
  Mortal fine("fine");
  Parent inner("inner", {ChildSpec(&stuck), ChildSpec(&fine)});
  Parent root("root", {ChildSpec(&inner)});
  ASSERT_TRUE(root.Start(Context::Background()).ok());
  ASSERT_TRUE(root.Started().WaitFor(kWait));

  absl::Status status = root.StopFor(absl::Milliseconds(20));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(),
              HasSubstr("service 'root' did not stop within 20ms; still "
                        "stopping: root/inner/stuck (stopping for "));
  EXPECT_THAT(status.message(), Not(HasSubstr("root/inner/fine (stopping")));
  EXPECT_THAT(status.message(),
              HasSubstr("Stack of root/inner/stuck (stopping), thread "));
  // The same as data.
  std::vector<NotStopped> held = NotStoppedServices(status);
  ASSERT_EQ(held.size(), 1u) << status;
  EXPECT_EQ(held[0].path, "root/inner/stuck");
  EXPECT_THAT(held[0].state, ::testing::StartsWith("stopping for "));
  ASSERT_EQ(held[0].stacks.size(), 1u);
  EXPECT_THAT(held[0].stacks[0], ::testing::StartsWith("thread "));
  EXPECT_THAT(held[0].stacks[0], HasSubstr("'stuck'"));
  EXPECT_TRUE(NotStoppedServices(absl::DeadlineExceededError("x")).empty());
  stuck.Release();
  EXPECT_TRUE(root.StopFor(kWait).ok());
  EXPECT_EQ(root.Snapshot().state, ServiceState::kStopped);
}

TEST(BoundedStopTest, StopAllParallelForReportsOnlyTheStuck) {
  Stubborn stuck("stuck");
  Mortal fine("fine");
  std::vector<Service*> services = {&fine, nullptr, &stuck};
  ASSERT_TRUE(fine.Start(Context::Background()).ok());
  ASSERT_TRUE(stuck.Start(Context::Background()).ok());
  ASSERT_TRUE(stuck.Started().WaitFor(kWait));

  absl::Status status = StopAllParallelFor(services, absl::Milliseconds(20));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(),
              HasSubstr("1 of 2 services did not stop within 20ms:\nservice "
                        "'stuck' did not stop within"));
  EXPECT_THAT(status.message(), Not(HasSubstr("'fine'")));
  std::vector<NotStopped> held = NotStoppedServices(status);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].path, "stuck");
  EXPECT_EQ(fine.Snapshot().state, ServiceState::kStopped);
  // Zero or less checks only.
  EXPECT_EQ(StopAllParallelFor(services, -absl::Seconds(1)).code(),
            absl::StatusCode::kDeadlineExceeded);
  stuck.Release();
  EXPECT_TRUE(StopAllParallelFor(services, kWait).ok());
  EXPECT_TRUE(StopAllParallelFor({}, absl::ZeroDuration()).ok());
}

}  // namespace
}  // namespace lifecycle
