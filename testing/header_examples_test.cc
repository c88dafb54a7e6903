// The code examples of the headers and the README, compiled (and run where
// they can be): tools/check_examples.py checks that every line of each example
// is here, so an example cannot drift from code that builds.
//
// clang-format off: the examples' lines must stay as the headers show them.
// clang-format off

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"      // production
#include "lifecycle/testing/harness.h"   // tests (the folder is testing/)
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/context.h"
#include "lifecycle/func_service.h"
#include "lifecycle/service.h"
#include "lifecycle/signal.h"
#include "lifecycle/start_graph.h"
#include "lifecycle/test_services.h"
#include "lifecycle/test_signal.h"
#include "lifecycle/thread.h"
#include "lifecycle/thread_stack.h"
#include "lifecycle/testing/conformance.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/leftover_threads.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/mock_service.h"
#include "lifecycle/testing/stress.h"
#include "lifecycle/testing/virtual_time.h"
#include "lifecycle/testing/wait.h"

namespace header_examples {
namespace {

using ::testing::_;
using ::testing::AnyOf;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Property;
using ::testing::Return;
using lifecycle::ServiceState;
using lifecycle_testing::FailedToStart;
using lifecycle_testing::FakeService;
using lifecycle_testing::HasFailed;
using lifecycle_testing::HasRestarted;
using lifecycle_testing::HasState;
using lifecycle_testing::IsDegraded;
using lifecycle_testing::IsStarted;

// --- lifecycle/base_service.h ------------------------------------------------

  class Ticker : public lifecycle::BaseService {
   public:
    Ticker() : BaseService("ticker") {}
    ~Ticker() override { StopForDestruction(); }  // see "Destruction"

   private:
    absl::Status Run(const lifecycle::Context& ctx,
                     absl::FunctionRef<void()> started) override {
      started();
      while (!ctx.Done().WaitFor(absl::Seconds(1))) ++ticks_;
      return absl::OkStatus();
    }
    std::atomic<int> ticks_{0};
  };

TEST(BaseServiceExample, Ticker) {
  Ticker ticker;
  ASSERT_TRUE(ticker.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(lifecycle_testing::WaitOrTimeout(ticker.Started()));
  ticker.Stop();
}

// --- lifecycle/func_service.h ------------------------------------------------

std::atomic<int> heartbeats{0};
void SendHeartbeat() { ++heartbeats; }

TEST(BaseServiceExample, FuncService) {
  lifecycle::FuncService heartbeat("heartbeat",
      [&](const lifecycle::Context& ctx, absl::FunctionRef<void()> started) {
        started();
        while (!ctx.Done().WaitFor(absl::Seconds(1))) SendHeartbeat();
        return absl::OkStatus();
      });
  ASSERT_TRUE(heartbeat.Start(lifecycle::Context::Background()).ok());
  heartbeat.Stop();
}

// --- lifecycle/composite_service.h -------------------------------------------

class Notifier : public FakeService {
 public:
  Notifier() : FakeService("notifier") {}
};
class Producer : public FakeService {
 public:
  Producer() : FakeService("producer") {}
};

  class Client : public lifecycle::CompositeService {
   public:
    Client() : CompositeService("client") {
      AddChildOrDie(notifier_, lifecycle::Supervision::Restart());
      AddChildOrDie(producer_);  // the composite's policy: fail fast
    }
    ~Client() override { StopForDestruction(); }
   private:
    Notifier notifier_;
    Producer producer_;
  };

TEST(BaseServiceExample, CompositeWithoutAClass) {
  FakeService db("db"), api("api");
  lifecycle::Context ctx = lifecycle::Context::Background();
  lifecycle::CompositeService app("app");
  app.AddOrDie(db);
  app.AddOrDie(api, lifecycle::After(db), lifecycle::Supervision::Restart());
  absl::Status s = app.Start(ctx);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(lifecycle_testing::WaitOrTimeout(app.Started()));
}

// --- lifecycle/context.h -----------------------------------------------------

TEST(ContextExample, Worker) {
  lifecycle::Context parent = lifecycle::Context::Background();
  absl::Time deadline = lifecycle::Now() + absl::Seconds(5);
  lifecycle::CancellableContext scope(parent, deadline);
  std::thread worker([ctx = scope.context()] {
    while (!ctx.Done().WaitFor(absl::Milliseconds(100))) { /* tick */ }
    if (lifecycle::IsStopped(ctx.Cause())) { /* orderly stop */ }
  });
  scope.Cancel(lifecycle::StoppedError());
  worker.join();
}

// --- lifecycle/service.h -----------------------------------------------------

absl::Status StartBoth(FakeService& notifier, FakeService& producer,
                       const lifecycle::Context& ctx) {
  std::vector<lifecycle::Service*> services = {&notifier, &producer};
  if (absl::Status s = lifecycle::StartAll(services, ctx); !s.ok()) {
    return s;  // "service 'producer' failed to start: UNAVAILABLE: ..."
  }
  lifecycle::StopAllParallel(services);
  return absl::OkStatus();
}

TEST(ServiceExample, StartAll) {
  FakeService notifier("notifier"), producer("producer");
  EXPECT_TRUE(StartBoth(notifier, producer, lifecycle::Context::Background()).ok());
  producer.FailStartWith(absl::UnavailableError("down"));
  EXPECT_THAT(StartBoth(notifier, producer, lifecycle::Context::Background()).message(),
              HasSubstr("service 'producer' failed to start"));
}

// --- lifecycle/start_graph.h -------------------------------------------------

TEST(StartGraphExample, StartInDependencyOrder) {
  FakeService notifier("notifier"), elector("elector"), producer("producer");
  lifecycle::Context ctx = lifecycle::Context::Background();
  lifecycle::Dependency deps[] = {{&producer, &elector}};
  absl::Status s = lifecycle::StartInDependencyOrder(
      {&notifier, &elector, &producer}, deps, ctx);
  // notifier and elector started at once; producer once elector started
  EXPECT_TRUE(s.ok());
  lifecycle::StopInReverseDependencyOrder({&notifier, &elector, &producer}, deps);
}

// --- lifecycle/signal.h ------------------------------------------------------

TEST(SignalExample, Ready) {
  lifecycle::Signal ready;
  std::thread worker([ready] { /* ...set up... */ ready.Close(); });
  if (!ready.WaitFor(absl::Seconds(1))) { /* report: never got ready */ }
  worker.join();
}

// --- lifecycle/test_signal.h -------------------------------------------------

  // production code
  struct NotifierTestSignals {
    lifecycle::TestSignal<int> reconnect_scheduled;  // attempt #
  };
struct ExampleNotifier {
  NotifierTestSignals& test_signals() { return test_signals_; }
  NotifierTestSignals test_signals_;
};

TEST(TestSignalExample, Reconnect) {
  ExampleNotifier notifier;
  // test
  notifier.test_signals().reconnect_scheduled.Init();
  notifier.test_signals_.reconnect_scheduled.Signal(1);  // production code
  EXPECT_EQ(lifecycle_testing::WaitOrTimeout(
                notifier.test_signals().reconnect_scheduled), 1);
}

// --- lifecycle/thread_stack.h ------------------------------------------------

TEST(ThreadStackExample, Worker) {
  Ticker service;
  ASSERT_TRUE(service.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(lifecycle_testing::WaitOrTimeout(service.Started()));
  std::string stack = lifecycle::ThreadStack(service.WorkerThreadId());
  //   thread 4242 'notifier':
  //     #0 examples::Notifier::Run(...)
  //     #1 lifecycle::BaseService::WorkerMain(...)
  //     ...
  EXPECT_THAT(stack, HasSubstr("'ticker'"));
}

// --- lifecycle/test_services.h -----------------------------------------------

TEST(TestServicesExample, Tree) {
  using lifecycle::Supervision;
  using lifecycle::test_services::Parent;
  using lifecycle::test_services::TestService;
  TestService db("db");
  db.SetStartError(absl::UnavailableError("down"));  // OnStart() fails
  TestService worker("worker");
  Parent client("client", {&db, {&worker, Supervision::Restart()}});
  EXPECT_TRUE(client.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(lifecycle_testing::WaitOrTimeout(client.Stopped()));
  worker.Kill(absl::InternalError("bug"));  // the running worker dies
}

// --- testing/conformance.h ---------------------------------------------------

  using lifecycle_testing::ServiceConformanceTest;  // the macro wants a
                                                    // plain name
  INSTANTIATE_TEST_SUITE_P(
      Client, ServiceConformanceTest,
      ::testing::Values(lifecycle_testing::ServiceFactory{
          "Client", [] { return std::make_unique<Client>(); }}),
      lifecycle_testing::ServiceFactoryName);

// --- testing/fake_service.h --------------------------------------------------

TEST(FakeServiceExample, Behaviours) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));  // Start() fails
  db.NeverSignalStarted();         // runs, but its started signal stays open
  db.StartWhenReleased();          // starts on the test's ReleaseStart()
  EXPECT_FALSE(db.Start(lifecycle::Context::Background()).ok());
  db.FailStartWith(absl::OkStatus());
  ASSERT_TRUE(db.Start(lifecycle::Context::Background()).ok());
  db.FailNow(absl::DataLossError("disk"));  // a running fake fails now
  ASSERT_TRUE(lifecycle_testing::WaitOrTimeout(db.Stopped()));
  db.BlockStopUntilReleased();     // Stop() hangs until ReleaseStop()
  db.ReleaseStop();
}

// --- testing/harness.h -------------------------------------------------------

  TEST(ClientTest, Serves) {
    Client client;
    lifecycle_testing::StartStopHarness harness({&client});
    ASSERT_TRUE(harness.StartAll());
  }    // the harness stops everything, bounded by WaitTimeout()

// --- testing/leftover_threads.h ----------------------------------------------

  TEST(ClientTest, StopsEverything) {
    lifecycle_testing::LeftoverThreadCheck check;
    {
      Client client;
      ASSERT_TRUE(client.Start(lifecycle::Context::Background()).ok());
    }
    EXPECT_TRUE(check.NoNewThreads());
    // Failure: "1 thread(s) left running: 'notifier' (tid 4242)"
  }

[[maybe_unused]] void RegisterTheListener() {  // for a main() of one's own
  ::testing::UnitTest::GetInstance()->listeners().Append(
      new lifecycle_testing::LeftoverThreadListener());
}

// --- testing/matchers.h ------------------------------------------------------

[[maybe_unused]] void MatcherExamples(Client& client, FakeService& notifier,
                                      FakeService& db, FakeService& listener) {
  EXPECT_THAT(client, IsStarted());
  EXPECT_THAT(client, HasState(AnyOf(ServiceState::kStopped,
                                     ServiceState::kFailed)));
  EXPECT_THAT(notifier, IsDegraded());
  EXPECT_THAT(db, FailedToStart(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client, HasFailed(absl::StatusCode::kDataLoss));
  EXPECT_THAT(client, HasFailed(Property(&absl::Status::message,
                                         HasSubstr("client/notifier"))));
  EXPECT_THAT(listener, HasRestarted(Ge(2)));
}

// --- testing/mock_service.h --------------------------------------------------

TEST(MockServiceExample, StartFails) {
  lifecycle_testing::MockService db;
  ON_CALL(db, Name()).WillByDefault(Return("db"));
  EXPECT_CALL(db, Start(_)).WillOnce(Return(absl::UnavailableError("down")));
  EXPECT_CALL(db, Stop()).Times(0);
  EXPECT_FALSE(db.Start(lifecycle::Context::Background()).ok());
}

// --- testing/stress.h --------------------------------------------------------

TEST(StressExample, Client) {
  Client client;
  EXPECT_TRUE(lifecycle_testing::StressStartStop(client));
  // Failure: "stress (seed 1234567, 10 threads x 50 cycles): thread 3
}

// --- README.md: "When a part dies after it started" ------------------------

class ReadmeClient : public lifecycle::CompositeService {
 public:
  ReadmeClient() : CompositeService("client") {
  AddChildOrDie(notifier_, lifecycle::Supervision::Restart());  // 3 within 1m
  AddChildOrDie(producer_);  // fail fast: the client fails, naming the path
  AddChildOrDie(maintenance_, lifecycle::Supervision::Degrade());
}
  ~ReadmeClient() override { StopForDestruction(); }

 private:
  Notifier notifier_;
  Producer producer_;
  FakeService maintenance_{"maintenance"};
};

TEST(ReadmeExample, Policies) {
  ReadmeClient client;
  lifecycle_testing::StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
}

// clock.h and virtual_time.h: an hourly job, and three hours of it.
class Cleaner : public lifecycle::BaseService {
 public:
  Cleaner() : BaseService("cleaner") {}
  ~Cleaner() override { StopForDestruction(); }
  int runs() const { return runs_; }

 private:
  void Clean() { ++runs_; }
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override {
    started();
    absl::Time next = lifecycle::Now() + absl::Hours(1);
    while (!ctx.Done().WaitUntil(next)) {
      Clean();
      next += absl::Hours(1);
    }
    return absl::OkStatus();
  }
  std::atomic<int> runs_{0};
};

TEST(VirtualTimeExample, Cleaner) {
  lifecycle_testing::VirtualTime time;
  Cleaner cleaner;  // clock.h's example: cleans every hour
  ASSERT_TRUE(cleaner.Start(time.context()).ok());
  ASSERT_TRUE(time.AdvanceBy(absl::Hours(3)));
  EXPECT_EQ(cleaner.runs(), 3);
  cleaner.Stop();
}

TEST(VirtualTimeExample, Run) {
  lifecycle_testing::VirtualTime time;
  Cleaner cleaner;
  lifecycle_testing::StartStopHarness::Options options;
  options.context = time.context();
  lifecycle_testing::StartStopHarness harness({&cleaner}, options);
  ASSERT_TRUE(time.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    lifecycle::SleepFor(absl::Hours(3));  // three cleanings
    EXPECT_EQ(cleaner.runs(), 3);
  }));
}

// The README's inline calls (tools/check_examples.py finds each here).
TEST(ReadmeInline, RestartWaitAndVirtualMinute) {
  using lifecycle::Supervision;
  using ::testing::AllOf;
  FakeService service("service");
  lifecycle::CompositeService app("app");
  app.AddOrDie(service, Supervision::Restart(3, absl::Minutes(1)).WithBackoff(absl::Seconds(1),
  absl::Seconds(30)));
  lifecycle_testing::VirtualTime time;
  lifecycle::Signal signal;
  ASSERT_TRUE(time.Run([&] {
    ASSERT_TRUE(app.Start(time.context()).ok());
    ASSERT_TRUE(lifecycle_testing::WaitOrTimeout(app.Started()));
    service.FailNow(absl::UnavailableError("crash"));
    EXPECT_TRUE(lifecycle_testing::WaitSnapshotOrTimeout(service,
    AllOf(HasRestarted(1), IsStarted())));
    EXPECT_NONFATAL_FAILURE(
        {
          using lifecycle_testing::WaitOrTimeout;
          WaitOrTimeout(signal, absl::Minutes(1));
        },
        "signal not closed after 1m");
    app.Stop();
  }));
  EXPECT_EQ(time.Elapsed(), absl::Seconds(61));  // the backoff, then the wait
}

TEST(ThreadExample, Poller) {
  lifecycle_testing::VirtualTime time;
  lifecycle::Thread poller(time.context(), "poller", [] {
    lifecycle::SleepFor(absl::Hours(1));  // an hour of virtual time
  });
  ASSERT_TRUE(time.AdvanceBy(absl::Hours(1)));
  poller.Join();
}

}  // namespace
}  // namespace header_examples
