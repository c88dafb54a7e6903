// Start-up as a graph: StartInDependencyOrder, StopInReverseDependencyOrder
// (start_graph.h) and CompositeService::AddDependency (composite_service.h).
// Every ordering is observed through signals and states, never through timing.
#include "lifecycle/start_graph.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
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

// A service that is always started and stopped, with nothing behind it: for
// graphs too large for a thread per service.
class Inert : public Service {
 public:
  explicit Inert(std::string name) : name_(std::move(name)) {}
  absl::Status Start(const Context&) override { return absl::OkStatus(); }
  Signal Started() const override { return Signal::Closed(); }
  void Stop() override {}
  absl::Status StopFor(absl::Duration) override { return absl::OkStatus(); }
  Signal Stopped() const override { return Signal::Closed(); }
  std::string_view Name() const override { return name_; }
  ServiceSnapshot Snapshot() const override {
    ServiceSnapshot s;
    s.name = s.path = name_;
    s.state = ServiceState::kStarted;
    return s;
  }

 private:
  std::string name_;
};

// Appends "stop:NAME" to a shared log when its context is cancelled and
// "end:NAME" when its run returns; `Hold()` keeps a run from returning until
// `Release()`.
class Logged : public BaseService {
 public:
  Logged(std::string name, absl::Mutex* mu, std::vector<std::string>* log)
      : BaseService(std::move(name)), mu_(mu), log_(log) {}
  ~Logged() override {
    Release();
    StopForDestruction();
  }
  void Hold() { hold_ = true; }
  void Release() { release_.Close(); }
  // Closes once this run's stop was asked for.
  const Signal& asked() const { return asked_; }
  // The current run's context's done signal (once running).
  Signal done() const {
    absl::MutexLock lock(mu_);
    return done_;
  }

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    {
      absl::MutexLock lock(mu_);
      done_ = ctx.Done();
    }
    started();
    ctx.Done().Wait();
    Append("stop:");
    asked_.Close();
    if (hold_) release_.Wait();
    Append("end:");
    return ctx.Cause();
  }
  void Append(const char* what) {
    absl::MutexLock lock(mu_);
    log_->push_back(what + std::string(Name()));
  }
  absl::Mutex* mu_;
  std::vector<std::string>* log_;
  std::atomic<bool> hold_{false};
  Signal release_;
  Signal asked_;
  Signal done_;
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

TEST(CheckDependenciesTest, AChainOfAHundredThousandLinksNeedsNoDeepStack) {
  // The cycle search once recursed per link and overflowed the stack here.
  constexpr int kLinks = 100000;
  std::vector<std::unique_ptr<Inert>> owned;
  std::vector<Service*> services;
  std::vector<Dependency> chain;
  for (int i = 0; i <= kLinks; ++i) {
    owned.push_back(std::make_unique<Inert>(absl::StrCat("s", i)));
    services.push_back(owned.back().get());
    if (i > 0) chain.push_back({services[i], services[i - 1]});
  }
  EXPECT_TRUE(CheckDependencies(services, chain).ok());
  EXPECT_TRUE(
      StartInDependencyOrder(services, chain, Context::Background()).ok());
  StopInReverseDependencyOrder(services, chain);

  // Closed into a ring, the whole ring is named.
  chain.push_back({services[0], services[kLinks]});
  absl::Status s = CheckDependencies(services, chain);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              ::testing::StartsWith("a cycle of dependencies: s0 -> s100000 -> "
                                    "s99999 -> "));
  EXPECT_THAT(std::string(s.message()),
              ::testing::EndsWith("s1 -> s0; each starts after the next"));
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

TEST(CompositeDependencyTest, StopsDependentsFirstEachOnceItsDependentsEnded) {
  // b depends on a, c on b; c holds its stop up until released.
  absl::Mutex mu;
  std::vector<std::string> log;
  Logged a("a", &mu, &log), b("b", &mu, &log), c("c", &mu, &log);
  c.Hold();
  Parent top("top", {&a, &b, &c});
  ASSERT_TRUE(top.AddDependency(b, a).ok());
  ASSERT_TRUE(top.AddDependency(c, b).ok());
  ASSERT_TRUE(top.Start(Context::Background()).ok());
  ASSERT_TRUE(top.Started().WaitFor(kWait));
  {
    absl::MutexLock lock(&mu);
    log.clear();
  }
  std::thread stopper([&] { top.Stop(); });
  ASSERT_TRUE(c.asked().WaitFor(kWait));
  // While c is still stopping, nothing has reached b's or a's context: the
  // composite's own cancellation is not handed to its children all at once.
  // (Before, both were cancelled with top's context; 50ms is ample for that to
  // show, and no time is long enough for it to happen now.)
  EXPECT_FALSE(b.done().WaitFor(absl::Milliseconds(50)));
  EXPECT_FALSE(a.done().IsClosed());
  c.Release();
  stopper.join();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(log, ElementsAre("stop:c", "end:c", "stop:b", "end:b", "stop:a",
                               "end:a"));
}

TEST(CompositeDependencyTest, ALongCycleIsNamedLinkByLink) {
  std::vector<std::unique_ptr<TestService>> owned;
  std::vector<test_services::ChildSpec> specs;
  for (int i = 0; i < 5; ++i) {
    owned.push_back(std::make_unique<TestService>(absl::StrCat("s", i)));
    specs.push_back(owned.back().get());
  }
  Parent top("top", specs);
  for (int i = 1; i < 5; ++i) {
    ASSERT_TRUE(top.AddDependency(*owned[i], *owned[i - 1]).ok());
  }
  EXPECT_EQ(top.AddDependency(*owned[0], *owned[4]).message(),
            "a cycle of dependencies: top/s4 -> top/s3 -> top/s2 -> top/s1 -> "
            "top/s0 -> top/s4; each starts after the next");
  // A sibling's dependency is no cycle.
  EXPECT_TRUE(top.AddDependency(*owned[4], *owned[0]).ok());
}

TEST(CompositeDependencyTest, OppositeDependenciesAddedAtOnceNeverBothSucceed) {
  // The cycle check and the insertion are one step: of two calls racing to
  // add a -> b and b -> a, exactly one succeeds.
  for (int round = 0; round < 200; ++round) {
    TestService a("a"), b("b");
    Parent top("top", {&a, &b});
    Signal go;
    absl::Status ab, ba;
    std::thread t1([&] {
      go.Wait();
      ab = top.AddDependency(a, b);
    });
    std::thread t2([&] {
      go.Wait();
      ba = top.AddDependency(b, a);
    });
    go.Close();
    t1.join();
    t2.join();
    ASSERT_NE(ab.ok(), ba.ok())
        << "round " << round << ": " << ab << " / " << ba;
  }
}

TEST(CompositeDependencyTest, ADestroyedChildLeavesTheGraph) {
  TestService a("a");
  auto b = std::make_unique<TestService>("b");
  Parent top("top", {&a, b.get()});
  ASSERT_TRUE(top.AddDependency(a, *b).ok());
  b.reset();
  ServiceSnapshot snapshot = top.Snapshot();
  EXPECT_THAT(snapshot.Find("top/a")->depends_on, ::testing::IsEmpty());
  // A new child at the same name (and maybe the same address) starts free.
  TestService b2("b");
  ASSERT_TRUE(top.AddChild(b2).ok());
  ASSERT_TRUE(top.AddDependency(b2, a).ok());
  ASSERT_TRUE(top.Start(Context::Background()).ok());
  ASSERT_TRUE(top.Started().WaitFor(kWait));
  top.Stop();
}

TEST(CompositeBuildingBlockTest, ATreeWithDependenciesAndPoliciesNeedsNoClass) {
  Gated db("db");
  Gated api("api", &db);
  TestService worker("worker");
  CompositeService app("app");  // declared after its children: goes first
  app.SetSupervision(Supervision::Degrade());
  app.AddOrDie(db);
  app.AddOrDie(api, After(db), Supervision::Restart());
  app.AddOrDie(worker, After(db, api));
  ASSERT_TRUE(app.Start(Context::Background()).ok());
  ASSERT_TRUE(BecomesStarting(db));
  EXPECT_EQ(api.Snapshot().start_count, 0) << "started before db";
  db.Release();
  ASSERT_TRUE(BecomesStarting(api));
  api.Release();
  ASSERT_TRUE(app.Started().WaitFor(kWait));
  EXPECT_TRUE(api.SawWatchedStarted());
  ServiceSnapshot s = app.Snapshot();
  EXPECT_THAT(s.Find("app/api")->depends_on, ElementsAre("db"));
  EXPECT_THAT(s.Find("app/worker")->depends_on, ElementsAre("db", "api"));
  // The child's own policy: restarted. The composite's: degraded.
  worker.Kill(absl::InternalError("crash"));
  ASSERT_TRUE(WaitSnapshotUntil(
      app, [](const ServiceSnapshot& s) { return s.degraded; },
      absl::Now() + kWait));
  EXPECT_EQ(app.Snapshot().state, ServiceState::kStarted);
}  // app stops itself first: no StopForDestruction() of the test's

TEST(CompositeBuildingBlockTest, BadOptionsChangeNothing) {
  TestService a("a"), b("b"), stranger("stranger");
  CompositeService group("group");
  group.AddOrDie(a);
  EXPECT_EQ(group.Add(b, After(stranger)).message(),
            "adding 'b' to 'group': it is to start after 'stranger', which is "
            "not a child of 'group' (add it first)");
  EXPECT_EQ(group.Add(b, After(a, a)).message(),
            "adding 'b' to 'group': 'a' is in its After() twice");
  ServiceSnapshot s = group.Snapshot();
  EXPECT_EQ(s.children.size(), 1u) << "b was added anyway";
  EXPECT_TRUE(group.Add(b, After(a)).ok());
  EXPECT_EQ(group.Add(b).code(),
            absl::StatusCode::kInvalidArgument);  // has a parent
}

}  // namespace
}  // namespace lifecycle
