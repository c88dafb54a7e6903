#include "lifecycle/base_service.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/func_service.h"
#include "lifecycle/live_services.h"
#include "lifecycle/test_services.h"

namespace lifecycle {
namespace {

// Bounds every wait of the test: a hang, not a delay.
constexpr absl::Duration kWait = absl::Seconds(30);

using ::testing::HasSubstr;

using test_services::Parent;
using test_services::TestService;

TEST(BaseServiceTest, StartSignalsStartedAndRuns) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStarted);
  EXPECT_FALSE(service.Stopped().IsClosed());
  EXPECT_EQ(service.runs(), 1);
}

TEST(BaseServiceTest, StartedObtainedBeforeStartStillWorks) {
  TestService service;
  Signal started = service.Started();
  Signal stopped = service.Stopped();
  EXPECT_FALSE(started.IsClosed());
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(started.WaitFor(kWait));
  service.Stop();
  EXPECT_TRUE(stopped.IsClosed());
}

TEST(BaseServiceTest, StopReturnsOnlyOnceStopped) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  Signal stopped = service.Stopped();
  service.Stop();
  EXPECT_TRUE(stopped.IsClosed());
  EXPECT_TRUE(IsStopped(service.seen_cause()));
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(service.WorkerThreadId(), 0);
}

TEST(BaseServiceTest, StopWithoutStart) {
  TestService service;
  service.Stop();
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(service.runs(), 0);
}

TEST(BaseServiceTest, DoubleStop) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  service.Stop();
  service.Stop();
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
}

TEST(BaseServiceTest, ConcurrentStopsAllReturnAfterTheStop) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  std::vector<std::thread> stoppers;
  std::atomic<int> saw_stopped{0};
  for (int i = 0; i < 8; ++i) {
    stoppers.emplace_back([&] {
      service.Stop();
      if (service.Stopped().IsClosed() &&
          service.Snapshot().state == ServiceState::kStopped) {
        ++saw_stopped;
      }
    });
  }
  for (auto& t : stoppers) t.join();
  EXPECT_EQ(saw_stopped, 8);
}

TEST(BaseServiceTest, StartTwiceRunsOnce) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  service.Stop();
  EXPECT_EQ(service.runs(), 1);
  EXPECT_EQ(service.Snapshot().start_count, 1);
}

TEST(BaseServiceTest, StartErrorIsReturnedAndClosesSignals) {
  TestService service("db");
  service.SetStartError(absl::UnavailableError("no connection"));
  Signal started = service.Started();
  absl::Status status = service.Start(Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(),
              HasSubstr("service 'db' failed to start: no connection"));
  EXPECT_EQ(FailedServicePath(status), "db");
  EXPECT_TRUE(started.IsClosed());
  EXPECT_TRUE(service.Stopped().IsClosed());
  EXPECT_EQ(service.runs(), 0);
  ServiceSnapshot s = service.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status, status);
  EXPECT_EQ(s.failure_count, 1);
}

TEST(BaseServiceTest, RestartAfterStartError) {
  TestService service;
  service.SetStartError(absl::UnavailableError("not yet"));
  EXPECT_FALSE(service.Start(Context::Background()).ok());
  service.SetStartError(absl::OkStatus());
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  ServiceSnapshot s = service.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kStarted);
  EXPECT_TRUE(s.status.ok());
  EXPECT_EQ(s.start_count, 2);
  EXPECT_EQ(s.failure_count, 1);
}

TEST(BaseServiceTest, RestartAfterStop) {
  TestService service;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(service.Start(Context::Background()).ok());
    EXPECT_TRUE(service.Started().WaitFor(kWait));
    EXPECT_FALSE(service.Stopped().IsClosed());
    service.Stop();
  }
  EXPECT_EQ(service.runs(), 3);
}

TEST(BaseServiceTest, SignalsOfAnEndedRunStayClosedUntilNextStart) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  service.Stop();
  EXPECT_TRUE(service.Started().IsClosed());
  EXPECT_TRUE(service.Stopped().IsClosed());
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  EXPECT_FALSE(service.Stopped().IsClosed());
}

TEST(BaseServiceTest, RunErrorBeforeStartedClosesStartedAndFails) {
  TestService service("worker");
  service.FailRunsWith(absl::PermissionDeniedError("no access"));
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  ASSERT_TRUE(service.Stopped().WaitFor(kWait));
  ServiceSnapshot s = service.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.status.message(),
              HasSubstr("service 'worker' failed to start: no access"));
}

TEST(BaseServiceTest, StopBeforeStartedClosesStarted) {
  TestService service;
  service.NeverSignalStarted();
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  Signal started = service.Started();
  service.Stop();
  EXPECT_TRUE(started.IsClosed());
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
}

TEST(BaseServiceTest, ExceptionInRunBecomesFailure) {
  TestService service("thrower");
  service.ThrowInRun();
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Stopped().WaitFor(kWait));
  ServiceSnapshot s = service.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(s.status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(
      s.status.message(),
      HasSubstr("uncaught exception in service 'thrower': worker blew up"));
}

TEST(BaseServiceTest, ExceptionInStartBecomesStartError) {
  TestService service("thrower");
  service.ThrowInStart();
  absl::Status status = service.Start(Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("start blew up"));
  EXPECT_EQ(service.Snapshot().state, ServiceState::kFailed);
}

TEST(BaseServiceTest, CancelledParentContextStopsTheRunCleanly) {
  TestService service;
  CancellableContext parent;
  ASSERT_TRUE(service.Start(parent.context()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  parent.Cancel(absl::CancelledError("shutting down"));
  ASSERT_TRUE(service.Stopped().WaitFor(kWait));
  EXPECT_EQ(service.seen_cause(), absl::CancelledError("shutting down"));
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
}

TEST(BaseServiceTest, WorkerThreadIsNamedAfterTheService) {
  TestService service("a-very-long-service-name");
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  EXPECT_NE(service.WorkerThreadId(), 0);
  service.Stop();
  EXPECT_EQ(service.thread_name(), "a-very-long-ser");
}

TEST(BaseServiceTest, BadNamesFailEveryStart) {
  TestService empty("");
  EXPECT_EQ(empty.Start(Context::Background()).code(),
            absl::StatusCode::kInvalidArgument);
  TestService slash("a/b");
  absl::Status status = slash.Start(Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'a/b' contains '/'"));
  EXPECT_EQ(slash.runs(), 0);
}

TEST(BaseServiceTest, StopForReportsAWorkerThatIgnoresItsContext) {
  TestService service("stubborn");
  service.IgnoreStopUntilReleased();
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  absl::Status status = service.StopFor(absl::Milliseconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr("service 'stubborn' did not stop"));
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopping);
  service.Release();
  EXPECT_TRUE(service.StopFor(absl::InfiniteDuration()).ok());
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
}

TEST(BaseServiceTest, StopForWithoutTimeLeftRequestsTheStopAndChecksOnly) {
  TestService service("stubborn");
  service.IgnoreStopUntilReleased();
  EXPECT_TRUE(service.StopFor(-absl::Seconds(1)).ok());  // nothing runs
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  for (absl::Duration none : {absl::ZeroDuration(), -absl::Seconds(1)}) {
    absl::Status status = service.StopFor(none);
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_THAT(status.message(),
                HasSubstr("service 'stubborn' has not stopped yet"));
  }
  // The stop was requested: the run is stopping, not started.
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopping);
  service.Release();
  ASSERT_TRUE(service.Stopped().WaitFor(kWait));
  EXPECT_TRUE(service.StopFor(absl::ZeroDuration()).ok());
}

TEST(BaseServiceDeathTest, DestroyedWhileRunningFailsLoudly) {
  class Careless : public BaseService {
   public:
    Careless() : BaseService("careless") {}
    // No Stop() in the destructor: the mistake under test.
   private:
    absl::Status Run(const Context& ctx,
                     absl::FunctionRef<void()> started) override {
      started();
      ctx.Done().Wait();
      return absl::OkStatus();
    }
  };
  EXPECT_DEATH(
      {
        auto* service = new Careless();
        (void)service->Start(Context::Background());
        EXPECT_TRUE(service->Started().WaitFor(kWait));
        delete service;
      },
      "service 'careless' destroyed while running");
}

TEST(BaseServiceDeathTest, StopFromOwnWorkerFailsLoudly) {
  EXPECT_DEATH(
      {
        FuncService* self = nullptr;
        FuncService service("selfish",
                            [&](const Context&, absl::FunctionRef<void()>) {
                              self->Stop();
                              return absl::OkStatus();
                            });
        self = &service;
        (void)service.Start(Context::Background());
        EXPECT_TRUE(service.Stopped().WaitFor(kWait));
      },
      "Stop\\(\\) called from the worker thread of service 'selfish'");
}

TEST(BaseServiceTest, ReportErrorAndHealthyRoundTrip) {
  TestService service("notifier");
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  Signal change = service.NextChange();
  service.ReportError(absl::UnavailableError("connection reset"));
  EXPECT_TRUE(change.IsClosed());
  ServiceSnapshot s = service.Snapshot();
  EXPECT_TRUE(s.degraded);
  EXPECT_EQ(s.StateLabel(), "degraded");
  EXPECT_EQ(s.error_count, 1);
  EXPECT_EQ(s.last_error, absl::UnavailableError("connection reset"));
  EXPECT_NE(s.last_error_at, absl::InfinitePast());
  service.ReportError(absl::OkStatus());  // ignored
  EXPECT_EQ(service.Snapshot().error_count, 1);
  change = service.NextChange();
  service.ReportHealthy();
  EXPECT_TRUE(change.IsClosed());
  s = service.Snapshot();
  EXPECT_FALSE(s.degraded);
  EXPECT_EQ(s.StateLabel(), "started");
  EXPECT_EQ(s.error_count, 1);  // the history stays
}

// A service whose every step waits for the test: each transition happens only
// when the test lets it.
class Gated : public BaseService {
 public:
  Gated() : BaseService("gated") {}
  ~Gated() override {
    may_start.Close();
    may_stop.Close();
    StopForDestruction();
  }
  using BaseService::ReportError;
  using BaseService::ReportHealthy;
  using BaseService::SetDetail;
  // Set before each Start(): fresh gates for the run.
  Signal may_start, may_stop, fail_now;

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    EXPECT_TRUE(may_start.WaitFor(kWait));
    started();
    Signal waits[] = {ctx.Done(), fail_now};
    WaitAnyUntil(waits, absl::InfiniteFuture());
    if (fail_now.IsClosed()) return absl::InternalError("boom");
    EXPECT_TRUE(may_stop.WaitFor(kWait));  // a slow stop: kStopping is seen
    return absl::OkStatus();
  }
};

TEST(BaseServiceTest, NextChangeClosesOnEveryTransition) {
  Gated service;
  // Runs `step`, checking that the change signal taken before it was open and
  // closes with it, leaving the service in `then`.
  auto transition = [&](const char* what, auto step, ServiceState then) {
    SCOPED_TRACE(what);
    Signal change = service.NextChange();
    ASSERT_FALSE(change.IsClosed());
    step();
    ASSERT_TRUE(change.WaitFor(kWait));
    EXPECT_EQ(service.Snapshot().state, then);
  };
  auto start = [&] { ASSERT_TRUE(service.Start(Context::Background()).ok()); };
  transition("start", start, ServiceState::kStarting);
  transition(
      "started", [&] { service.may_start.Close(); }, ServiceState::kStarted);
  transition(
      "degraded", [&] { service.ReportError(absl::UnavailableError("x")); },
      ServiceState::kStarted);
  EXPECT_TRUE(service.Snapshot().degraded);
  transition(
      "healthy", [&] { service.ReportHealthy(); }, ServiceState::kStarted);
  EXPECT_FALSE(service.Snapshot().degraded);
  transition(
      "stopping",
      [&] { EXPECT_FALSE(service.StopFor(absl::ZeroDuration()).ok()); },
      ServiceState::kStopping);
  transition(
      "stopped", [&] { service.may_stop.Close(); }, ServiceState::kStopped);
  service.Stop();  // joins the ended worker

  service.may_start = Signal();
  service.may_stop = Signal();
  transition("start again", start, ServiceState::kStarting);
  transition(
      "started again", [&] { service.may_start.Close(); },
      ServiceState::kStarted);
  transition(
      "failed", [&] { service.fail_now.Close(); }, ServiceState::kFailed);
}

TEST(BaseServiceTest, WaitSnapshotUntilWakesOnAChange) {
  TestService service;
  auto degraded = [](const ServiceSnapshot& s) { return s.degraded; };
  // A past deadline only looks.
  EXPECT_FALSE(WaitSnapshotUntil(service, degraded, absl::InfinitePast()));
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  std::thread reporter(
      [&] { service.ReportError(absl::UnavailableError("flaky")); });
  EXPECT_TRUE(WaitSnapshotUntil(service, degraded, absl::Now() + kWait));
  reporter.join();
}

TEST(BaseServiceTest, DetailsKeepTheirPlaceAndAnEmptyValueRemovesOne) {
  Gated service;
  Signal changed = service.NextChange();
  service.SetDetail("pid", "12");
  EXPECT_TRUE(changed.IsClosed());
  service.SetDetail("log", "/x.log");
  service.SetDetail("pid", "13");
  using Details = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(service.Snapshot().details,
            (Details{{"pid", "13"}, {"log", "/x.log"}}));
  changed = service.NextChange();
  service.SetDetail("pid", "13");  // no change, no signal
  EXPECT_FALSE(changed.IsClosed());
  service.SetDetail("pid", "");
  EXPECT_TRUE(changed.IsClosed());
  EXPECT_EQ(service.Snapshot().details, (Details{{"log", "/x.log"}}));
}

TEST(BaseServiceTest, SnapshotRecordsStartupAndTimes) {
  TestService service;
  absl::Time before = absl::Now();
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  ServiceSnapshot s = service.Snapshot();
  EXPECT_GE(s.since, before);
  EXPECT_GE(s.taken_at, s.since);
  EXPECT_GT(s.startup_duration, absl::ZeroDuration());
  EXPECT_LE(s.startup_duration, s.taken_at - before);
}

TEST(BaseServiceTest, StressManyThreadsStartAndStop) {
  TestService service("stressed");
  std::vector<std::thread> threads;
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(service.Start(Context::Background()).ok());
        EXPECT_TRUE(service.Started().WaitFor(kWait));
        service.Stop();
      }
    });
  }
  for (auto& t : threads) t.join();
  service.Stop();
  ServiceSnapshot s = service.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kStopped);
  EXPECT_EQ(s.failure_count, 0);
  EXPECT_EQ(s.start_count, service.runs());
  EXPECT_GE(s.start_count, 1);
}

TEST(FuncServiceTest, RunsTheFunction) {
  std::atomic<int> calls{0};
  FuncService service(
      "func", [&](const Context& ctx, absl::FunctionRef<void()> started) {
        ++calls;
        started();
        ctx.Done().Wait();
        return absl::OkStatus();
      });
  EXPECT_EQ(service.Name(), "func");
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  service.Stop();
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  service.Stop();
  EXPECT_EQ(calls, 2);
}

// --- Issue 13: the reliability round -----------------------------------------

// Item 1: a Stopped() callback runs on the worker after the run; calling
// Start() or Stop() from it used to make the worker join itself.
TEST(BaseServiceTest, StoppedCallbackMayRestartTheService) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  Signal restarted;
  service.Stopped().OnClose([&] {
    EXPECT_TRUE(service.Start(Context::Background()).ok());
    restarted.Close();
  });
  std::thread stopper([&] { service.Stop(); });
  stopper.join();
  ASSERT_TRUE(restarted.WaitFor(kWait));
  ASSERT_TRUE(service.Started().WaitFor(kWait));  // the second run started
  EXPECT_EQ(service.runs(), 2);
  service.Stop();
}

TEST(BaseServiceTest, StoppedCallbackMayStopTheService) {
  TestService service;
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  Signal called;
  service.Stopped().OnClose([&] {
    service.Stop();  // the run has ended: returns at once
    called.Close();
  });
  service.Stop();
  ASSERT_TRUE(called.WaitFor(kWait));
  EXPECT_EQ(service.Snapshot().state, ServiceState::kStopped);
}

// Item 2: a second parent used to be accepted silently (a use-after-free
// later), and a cycle made Snapshot() recurse until the stack overflowed.
TEST(BaseServiceTest, AddChildRejectsASecondParent) {
  TestService child("child");
  Parent first("first"), second("second");
  ASSERT_TRUE(first.AddChild(child).ok());
  absl::Status status = second.AddChild(child);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("'child' already has a parent, 'first'"));
  EXPECT_EQ(child.Path(), "first/child");
}

TEST(BaseServiceTest, AddChildRejectsACycle) {
  Parent a("a"), b("b"), c("c");
  ASSERT_TRUE(a.AddChild(b).ok());
  ASSERT_TRUE(b.AddChild(c).ok());
  absl::Status status = c.AddChild(a);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("would make a cycle"));
  ServiceSnapshot tree = a.Snapshot();
  EXPECT_EQ(tree.Flatten().size(), 3u);
}

// Item 3: a child destroyed during its parent's run used to be stopped again
// (freed memory) by the parent's stop, and to appear in snapshots.
TEST(BaseServiceTest, DestroyedChildIsNeverTouchedAgain) {
  Parent parent("parent");
  auto child = std::make_unique<TestService>("child");
  TestService stays("stays");
  ASSERT_TRUE(parent.AddChild(*child).ok());
  ASSERT_TRUE(parent.AddChild(stays).ok());
  ASSERT_TRUE(parent.Start(Context::Background()).ok());
  ASSERT_TRUE(parent.Started().WaitFor(kWait));
  child.reset();  // stops itself and leaves the tree while the parent runs
  ServiceSnapshot snapshot = parent.Snapshot();
  ASSERT_EQ(snapshot.children.size(), 1u);
  EXPECT_EQ(snapshot.children[0].path, "parent/stays");
  parent.Stop();  // under ASan, touching the departed child would fail here
  EXPECT_EQ(stays.Snapshot().state, ServiceState::kStopped);
}

// Item 7: Stop() used to cancel the run's context with the service's mutex
// held, so a context callback asking for the path or a snapshot deadlocked.
TEST(BaseServiceDeathTest, ContextCallbackMayAskForPathAndSnapshot) {
  EXPECT_EXIT(
      {
        alarm(20);  // a deadlock ends the child with SIGALRM, not the suite
        Parent parent("parent");
        FuncService child("child", [&](const Context& ctx,
                                       absl::FunctionRef<void()> started) {
          ctx.Done().OnClose([&] {
            (void)child.Path();
            (void)parent.Snapshot();
          });
          started();
          ctx.Done().Wait();
          return absl::OkStatus();
        });
        if (!parent.AddChild(child).ok()) _exit(3);
        if (!parent.Start(Context::Background()).ok()) _exit(4);
        EXPECT_TRUE(parent.Started().WaitFor(kWait));
        parent.Stop();
        std::fprintf(stderr, "stopped cleanly\n");
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "stopped cleanly");
}

// Item 8: these stops used to wait for themselves silently.
TEST(BaseServiceDeathTest, StopFromOnStartFailsLoudly) {
  class StopsItself : public BaseService {
   public:
    StopsItself() : BaseService("impatient") {}
    ~StopsItself() override { Stop(); }

   private:
    absl::Status OnStart(const Context&) override {
      Stop();
      return absl::OkStatus();
    }
    absl::Status Run(const Context&, absl::FunctionRef<void()>) override {
      return absl::OkStatus();
    }
  };
  EXPECT_DEATH(
      {
        StopsItself service;
        (void)service.Start(Context::Background());
      },
      "Stop\\(\\) called from OnStart\\(\\) of service 'impatient' would wait "
      "for itself forever");
}

TEST(BaseServiceDeathTest, ChildStoppingItsCompositeParentFailsLoudly) {
  EXPECT_DEATH(
      {
        Parent parent("client");
        FuncService child(
            "notifier", [&](const Context&, absl::FunctionRef<void()> started) {
              started();
              parent.Stop();
              return absl::OkStatus();
            });
        (void)parent.AddChild(child);
        (void)parent.Start(Context::Background());
        EXPECT_TRUE(parent.Stopped().WaitFor(kWait));
      },
      "Stop\\(\\) of service 'client' called from the worker thread of service "
      "'client/notifier', which that stop waits for, would wait for itself");
}

// Item 9: a start refused for a bad name used to leave both signals open, so
// waiters hung instead of getting the error.
TEST(BaseServiceTest, BadNameStartClosesBothSignals) {
  TestService service("bad/name");
  Signal started = service.Started();
  Signal stopped = service.Stopped();
  absl::Status status = service.Start(Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(started.IsClosed());
  EXPECT_TRUE(stopped.IsClosed());
  std::vector<Service*> services = {&service};
  absl::Status waited =
      WaitAllStartedUntil(services, absl::Now() + absl::Seconds(30));
  EXPECT_EQ(waited.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(waited.message(), HasSubstr("contains '/'"));
}

// Item 11: ~FuncService used to wait forever for a worker that ignores its
// context; it now stops bounded and aborts naming the service.
TEST(BaseServiceDeathTest, FuncServiceDestroyedWithAHungWorkerAbortsNamingIt) {
  EXPECT_DEATH(
      {
        setenv("LIFECYCLE_DESTROY_TIMEOUT", "100ms", 1);
        Signal never;
        FuncService stuck(
            "stuck", [&](const Context&, absl::FunctionRef<void()> started) {
              started();
              never.Wait();  // ignores its context
              return absl::OkStatus();
            });
        (void)stuck.Start(Context::Background());
        EXPECT_TRUE(stuck.Started().WaitFor(kWait));
      },  // ~FuncService
      "service 'stuck' did not stop within 100ms(.|\n)*It is being destroyed");
}

// Item 14: a run's failure used to drop the error's payloads.
TEST(BaseServiceTest, RunFailureKeepsPayloads) {
  absl::Status error = absl::DataLossError("disk");
  error.SetPayload("example.com/detail", absl::Cord("sector 7"));
  FuncService failing("failing",
                      [&](const Context&, absl::FunctionRef<void()> started) {
                        started();
                        return error;
                      });
  ASSERT_TRUE(failing.Start(Context::Background()).ok());
  ASSERT_TRUE(failing.Stopped().WaitFor(kWait));
  absl::Status status = failing.Snapshot().status;
  EXPECT_THAT(status.message(),
              HasSubstr("service 'failing' failed while running: disk"));
  EXPECT_EQ(status.GetPayload("example.com/detail"), absl::Cord("sector 7"));
}

// Item 21: names with control characters split report lines.
TEST(BaseServiceTest, NamesWithControlCharactersAreRejected) {
  TestService service("two\nlines");
  absl::Status status = service.Start(Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("two\\nlines"));
  EXPECT_THAT(status.message(), HasSubstr("control character"));
  Parent parent("parent");
  EXPECT_EQ(parent.AddChild(service).code(),
            absl::StatusCode::kInvalidArgument);
}

// Item 21: the 15-byte thread name used to be cut inside a UTF-8 character.
TEST(BaseServiceTest, ThreadNameIsCutAtACharacterBoundary) {
  // 14 ASCII bytes, then a 2-byte character: 16 bytes, cut to 14, not 15.
  TestService service("abcdefghijklmn\xC3\xA9");
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  service.Stop();
  EXPECT_EQ(service.thread_name(), "abcdefghijklmn");
}

// --- every live service, for reports written while something hangs ----------

// The root named `name` among `live`'s, or null.
const ServiceSnapshot* RootNamed(const LiveServices& live,
                                 const std::string& name) {
  for (const ServiceSnapshot& root : live.roots) {
    if (root.name == name) return &root;
  }
  return nullptr;
}

TEST(SnapshotLiveServicesTest, ShowsEveryLiveServiceAsTrees) {
  TestService top("top");
  TestService child("child");
  TestService leaf("leaf");
  ASSERT_TRUE(top.AddChild(child).ok());
  ASSERT_TRUE(child.AddChild(leaf).ok());
  LiveServices live = SnapshotLiveServices();
  {
    TestService alone("alone");
    ASSERT_TRUE(alone.Start(Context::Background()).ok());
    ASSERT_TRUE(alone.Started().WaitFor(kWait));
    live = SnapshotLiveServices();
    alone.Stop();
  }
  EXPECT_TRUE(live.complete);
  EXPECT_THAT(live.unreadable, ::testing::IsEmpty());
  const ServiceSnapshot* tree = RootNamed(live, "top");
  ASSERT_NE(tree, nullptr);
  ASSERT_NE(tree->Find("top/child/leaf"), nullptr);
  EXPECT_EQ(RootNamed(live, "child"), nullptr) << "a child is not a root";
  const ServiceSnapshot* alone = RootNamed(live, "alone");
  ASSERT_NE(alone, nullptr);
  EXPECT_EQ(alone->state, ServiceState::kStarted);
  EXPECT_EQ(alone->threads.size(), 1u) << "its worker's thread id";

  EXPECT_EQ(RootNamed(SnapshotLiveServices(), "alone"), nullptr)
      << "a destroyed service left the list";
}

TEST(SnapshotLiveServicesTest, AServiceWhoseMutexIsHeldIsNamedNotWaitedFor) {
  TestService top("top");
  TestService child("child");
  TestService leaf("leaf");
  ASSERT_TRUE(top.AddChild(child).ok());
  ASSERT_TRUE(child.AddChild(leaf).ok());
  base_service_internal::ScopedServiceLockForTesting hung(child);
  LiveServices live = SnapshotLiveServices(absl::Milliseconds(10));
  EXPECT_THAT(live.unreadable, ::testing::ElementsAre("child"));
  ASSERT_NE(RootNamed(live, "top"), nullptr);
  EXPECT_TRUE(RootNamed(live, "top")->children.empty());
  EXPECT_NE(RootNamed(live, "leaf"), nullptr) << "its child is shown as a root";
}

}  // namespace
}  // namespace lifecycle
