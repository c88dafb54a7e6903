// Start-up as a graph: StartInDependencyOrder, StopInReverseDependencyOrder
// (service.h) and CompositeService::AddDependency (base_service.h). Every
// ordering is observed through signals and states, never through timing.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/service.h"
#include "lifecycle/signal.h"
#include "lifecycle/test_services.h"

namespace lifecycle {
namespace {

using test_services::Parent;
using test_services::TestService;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

// Signals started only once released; notes what it saw of `watched` when
// its run began and when its stop came.
class Gated : public BaseService {
 public:
  explicit Gated(std::string name, const Service* watched = nullptr)
      : BaseService(std::move(name)), watched_(watched) {}
  ~Gated() override {
    Release();
    StopForDestruction();
  }
  void Release() { gate_.Close(); }
  // Whether `watched` had signalled started when this run began.
  bool SawWatchedStarted() const { return saw_started_; }
  // Whether `watched` had stopped when this run was asked to stop.
  bool SawWatchedStopped() const { return saw_stopped_; }

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    if (watched_ != nullptr) saw_started_ = watched_->Started().IsClosed();
    Signal waits[] = {gate_, ctx.Done()};
    WaitAnyUntil(waits, absl::InfiniteFuture());
    if (ctx.IsCancelled()) return ctx.Cause();
    started();
    ctx.Done().Wait();
    if (watched_ != nullptr) saw_stopped_ = watched_->Stopped().IsClosed();
    return ctx.Cause();
  }
  const Service* watched_;
  Signal gate_;
  std::atomic<bool> saw_started_{false};
  std::atomic<bool> saw_stopped_{false};
};

bool BecomesStarting(const BaseService& service) {
  return WaitSnapshotUntil(
      service,
      [](const ServiceSnapshot& s) {
        return s.state == ServiceState::kStarting;
      },
      absl::Now() + kWait);
}

// Runs StartInDependencyOrder() on a thread of its own.
class Starter {
 public:
  Starter(std::vector<Service*> services, std::vector<Dependency> deps)
      : thread_([this, services, deps] {
          status_ =
              StartInDependencyOrder(services, deps, Context::Background());
        }) {}
  absl::Status Join() {
    thread_.join();
    return status_;
  }

 private:
  absl::Status status_;
  std::thread thread_;
};

TEST(StartInDependencyOrderTest, IndependentServicesStartTogether) {
  Gated a("a");
  Gated b("b");
  Starter starter({&a, &b}, {});
  // Both are starting at once: neither waited for the other to signal.
  ASSERT_TRUE(BecomesStarting(a));
  ASSERT_TRUE(BecomesStarting(b));
  b.Release();
  a.Release();
  EXPECT_TRUE(starter.Join().ok());
  StopAllParallel({&a, &b});
}

TEST(StartInDependencyOrderTest, ADependentStartsOnlyOnceItsDependencyStarted) {
  Gated a("a");
  Gated b("b", &a);
  Starter starter({&b, &a}, {{&b, &a}});
  ASSERT_TRUE(BecomesStarting(a));
  EXPECT_EQ(b.Snapshot().start_count, 0) << "started before its dependency";
  a.Release();
  ASSERT_TRUE(BecomesStarting(b));
  b.Release();
  EXPECT_TRUE(starter.Join().ok());
  EXPECT_TRUE(b.SawWatchedStarted());  // read once b has signalled started
  StopInReverseDependencyOrder({&a, &b}, {{&b, &a}});
}

TEST(StopInReverseDependencyOrderTest, StopsDependentsFirst) {
  // c depends on b, b on a; each watches its dependent.
  Gated c("c");
  Gated b("b", &c);
  Gated a("a", &b);
  for (Gated* g : {&a, &b, &c}) g->Release();
  std::vector<Dependency> deps = {{&b, &a}, {&c, &b}};
  ASSERT_TRUE(
      StartInDependencyOrder({&a, &b, &c}, deps, Context::Background()).ok());
  StopInReverseDependencyOrder({&a, &b, &c}, deps);
  EXPECT_TRUE(b.SawWatchedStopped()) << "b was asked to stop before c stopped";
  EXPECT_TRUE(a.SawWatchedStopped()) << "a was asked to stop before b stopped";
}

TEST(StopInReverseDependencyOrderTest, IndependentServicesStopInParallel) {
  TestService slow("slow"), quick("quick");
  slow.IgnoreStopUntilReleased();
  ASSERT_TRUE(
      StartInDependencyOrder({&slow, &quick}, {}, Context::Background()).ok());
  std::thread stopper([&] {
    StopInReverseDependencyOrder({&slow, &quick}, {});
  });
  // The quick one stops while the slow one still holds its stop up.
  EXPECT_TRUE(quick.Stopped().WaitFor(kWait));
  EXPECT_EQ(slow.Snapshot().state, ServiceState::kStopping);
  slow.Release();
  stopper.join();
}

TEST(StartInDependencyOrderTest, ACycleIsNamedAndNothingStarts) {
  TestService a("a"), b("b"), c("c");
  absl::Status s = StartInDependencyOrder(
      {&a, &b, &c}, {{&a, &b}, {&b, &c}, {&c, &a}}, Context::Background());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "a cycle of dependencies: a -> b -> c -> a; each starts after the "
            "next");
  for (const TestService* t : {&a, &b, &c}) {
    EXPECT_EQ(t->Snapshot().start_count, 0) << t->Name();
  }
}

TEST(StartInDependencyOrderTest, BadEdgesAreRejectedBeforeAnythingStarts) {
  TestService a("a"), b("b"), outsider("outsider");
  auto check = [&](std::vector<Dependency> deps, const std::string& message) {
    absl::Status s =
        StartInDependencyOrder({&a, &b}, deps, Context::Background());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(s.message()), message);
  };
  check({{&a, &outsider}},
        "the dependency of 'a' on 'outsider': 'outsider' is not among the "
        "services");
  check({{&a, &b}, {&a, &b}}, "the dependency of 'a' on 'b' is given twice");
  check({{&a, nullptr}}, "dependency #0 has a null service");
  check({{&a, &a}},
        "a cycle of dependencies: a -> a; each starts after the "
        "next");
  EXPECT_EQ(a.Snapshot().start_count, 0);
  EXPECT_EQ(b.Snapshot().start_count, 0);
  EXPECT_TRUE(CheckDependencies({&a, &b}, {{&b, &a}}).ok());
}

TEST(StartInDependencyOrderTest,
     AFailedDependencyMeansItsDependentsNeverStart) {
  TestService db("db"), cache("cache"), api("api"), metrics("metrics");
  db.FailRunsWith(absl::UnavailableError("no disk"));
  absl::Status s = StartInDependencyOrder({&db, &cache, &api, &metrics},
                                          {{&cache, &db}, {&api, &cache}},
                                          Context::Background());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("service 'db' failed to start: no disk; not started, "
                        "as they depend on it: cache, api"));
  EXPECT_EQ(FailedServicePath(s), "db");
  EXPECT_EQ(cache.Snapshot().start_count, 0);
  EXPECT_EQ(api.Snapshot().start_count, 0);
  // What had started is stopped again.
  EXPECT_EQ(metrics.Snapshot().state, ServiceState::kStopped);
}

TEST(StartInDependencyOrderTest, AStartErrorIsNamedToo) {
  TestService db("db"), api("api");
  db.SetStartError(absl::PermissionDeniedError("no key"));
  absl::Status s =
      StartInDependencyOrder({&api, &db}, {{&api, &db}}, Context::Background());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("not started, as they depend on it: api"));
}

TEST(StartInDependencyOrderTest, ACancelledContextStopsWhatStarted) {
  Gated a("a");
  TestService b("b");
  CancellableContext ctx;
  std::thread starter([&] {
    EXPECT_EQ(StartInDependencyOrder({&a, &b}, {}, ctx.context()).code(),
              absl::StatusCode::kCancelled);
  });
  ASSERT_TRUE(BecomesStarting(a));
  ctx.Cancel(absl::CancelledError("the test stops it"));
  starter.join();
  EXPECT_EQ(b.Snapshot().state, ServiceState::kStopped);
}

// --- composites ----------------------------------------------------------------

TEST(CompositeDependencyTest, ChildrenStartAfterTheirDependencies) {
  Gated elector("elector");
  Gated producer("producer", &elector);
  Parent client("client", {&producer, &elector});
  ASSERT_TRUE(client.AddDependency(producer, elector).ok());
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(BecomesStarting(elector));
  EXPECT_EQ(producer.Snapshot().start_count, 0);
  elector.Release();
  ASSERT_TRUE(BecomesStarting(producer));
  producer.Release();
  ASSERT_TRUE(client.Started().WaitFor(kWait));
  EXPECT_TRUE(producer.SawWatchedStarted());
  ServiceSnapshot s = client.Snapshot();
  EXPECT_THAT(s.Find("client/producer")->depends_on, ElementsAre("elector"));
  EXPECT_GE(s.Find("client/producer")->start_began,
            s.Find("client/elector")->start_began);
  client.Stop();
}

TEST(CompositeDependencyTest, BadDependenciesAreRefusedWhenAdded) {
  TestService a("a"), b("b"), stranger("stranger");
  Parent top("top", {&a, &b});
  absl::Status s = top.AddDependency(a, stranger);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "the dependency of 'a' on 'stranger': 'stranger' is not a child of "
            "'top'");
  ASSERT_TRUE(top.AddDependency(a, b).ok());
  EXPECT_EQ(top.AddDependency(a, b).message(),
            "the dependency of 'top/a' on 'top/b' is given twice");
  EXPECT_EQ(top.AddDependency(b, a).message(),
            "a cycle of dependencies: top/a -> top/b -> top/a; each starts "
            "after the next");
  ServiceSnapshot snapshot = top.Snapshot();
  EXPECT_THAT(snapshot.Find("top/b")->depends_on, ::testing::IsEmpty());
}

TEST(CompositeDependencyTest, AFailedChildsDependentsAreNamed) {
  TestService db("db"), api("api");
  db.FailRunsWith(absl::UnavailableError("no disk"));
  Parent top("top", {&api, &db});
  ASSERT_TRUE(top.AddDependency(api, db).ok());
  ASSERT_TRUE(top.Start(Context::Background()).ok());
  ASSERT_TRUE(top.Stopped().WaitFor(kWait));
  ServiceSnapshot s = top.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_THAT(std::string(s.status.message()),
              HasSubstr("service 'top/db' failed to start: no disk; not "
                        "started, as they depend on it: top/api"));
  EXPECT_EQ(FailedServicePath(s.status), "top/db");
  EXPECT_EQ(s.Find("top/api")->start_count, 0);
}

}  // namespace
}  // namespace lifecycle
