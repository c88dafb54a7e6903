#include "lifecycle/testing/fake_service.h"

#include <memory>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/testing/conformance.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/mock_service.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {
namespace {

using lifecycle::Context;
using lifecycle::ServiceState;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Return;

TEST(FakeServiceTest, StartsAndStopsByDefault) {
  FakeService fake("fake");
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(fake.Started()));
  EXPECT_THAT(fake, IsStarted());
  fake.Stop();
  EXPECT_THAT(fake, HasState(ServiceState::kStopped));
  EXPECT_EQ(fake.start_calls(), 1);
  EXPECT_EQ(fake.runs(), 1);
}

TEST(FakeServiceTest, FailStartWith) {
  FakeService fake("db");
  fake.FailStartWith(absl::UnavailableError("no route"));
  absl::Status status = fake.Start(Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(fake, FailedToStart(absl::StatusCode::kUnavailable));
  EXPECT_EQ(fake.runs(), 0);
  fake.FailStartWith(absl::OkStatus());
  EXPECT_TRUE(fake.Start(Context::Background()).ok());
}

TEST(FakeServiceTest, NeverSignalStartedStillStops) {
  FakeService fake("stuck");
  fake.NeverSignalStarted();
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  EXPECT_FALSE(fake.Started().WaitFor(absl::Milliseconds(5)));
  EXPECT_THAT(fake, HasState(ServiceState::kStarting));
  fake.Stop();
  EXPECT_TRUE(fake.Started().IsClosed());
}

TEST(FakeServiceTest, StartWhenReleased) {
  FakeService fake("gated");
  fake.StartWhenReleased();
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  EXPECT_FALSE(fake.Started().IsClosed());
  fake.ReleaseStart();
  EXPECT_TRUE(WaitOrTimeout(fake.Started()));
}

TEST(FakeServiceTest, FailNowAfterStarting) {
  FakeService fake("worker");
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(fake.Started()));
  fake.FailNow(absl::DataLossError("disk"));
  ASSERT_TRUE(WaitOrTimeout(fake.Stopped()));
  lifecycle::ServiceSnapshot s = fake.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_THAT(s.status.message(),
              HasSubstr("service 'worker' failed while running: disk"));
  // Restartable, and the old failure does not leak into the new run.
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(fake.Started()));
  EXPECT_THAT(fake, IsStarted());
}

TEST(FakeServiceTest, BlockStopUntilReleased) {
  FakeService fake("slow");
  fake.BlockStopUntilReleased();
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(fake.Started()));
  EXPECT_EQ(fake.StopFor(absl::Milliseconds(5)).code(),
            absl::StatusCode::kDeadlineExceeded);
  fake.ReleaseStop();
  fake.Stop();
  EXPECT_THAT(fake, HasState(ServiceState::kStopped));
}

TEST(FakeServiceTest, DegradedRoundTrip) {
  FakeService fake("notifier");
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(fake.Started()));
  fake.ReportError(absl::UnavailableError("reset"));
  EXPECT_THAT(fake, IsDegraded());
  fake.ReportHealthy();
  EXPECT_THAT(fake, Not(IsDegraded()));
}

TEST(MatchersTest, MismatchPrintsTheSnapshot) {
  FakeService fake("idle");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(fake, IsStarted()),
                          "whose state is stopped");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(fake, FailedToStart(absl::StatusCode::kInternal)),
      "a service that failed to start, whose failure ");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(&fake, IsStarted()), "PATH  STATE");
}

TEST(MatchersTest, AFailedExpectationPrintsTheServiceNotItsBytes) {
  FakeService db("db");
  ASSERT_TRUE(db.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(db.Started().WaitFor(WaitTimeout()));
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &results);
    EXPECT_THAT(db, HasFailed());
  }
  ASSERT_EQ(results.size(), 1);
  std::string message = results.GetTestPartResult(0).message();
  EXPECT_THAT(message, HasSubstr("Actual: service 'db' (started)"));
  EXPECT_THAT(message, Not(HasSubstr("-byte object")));
  db.Stop();
  std::ostringstream failed;
  db.FailStartWith(absl::UnavailableError("no route"));
  ASSERT_FALSE(db.Start(lifecycle::Context::Background()).ok());
  failed << db;
  EXPECT_EQ(failed.str(),
            "service 'db' (failed: UNAVAILABLE: service 'db' failed to start: "
            "no route)");
}

TEST(MatchersTest, HasFailedCoversStartFailuresAndDeaths) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));
  EXPECT_FALSE(db.Start(lifecycle::Context::Background()).ok());
  EXPECT_THAT(db, HasFailed());
  EXPECT_THAT(db, HasFailed(absl::StatusCode::kUnavailable));
  EXPECT_THAT(db, HasFailed(::testing::Property(
                      &absl::Status::message,
                      ::testing::HasSubstr("'db' failed to start"))));

  EXPECT_THAT(db, FailedToStart(::testing::Property(
                      &absl::Status::message, ::testing::HasSubstr("route"))));

  FakeService worker("worker");
  ASSERT_TRUE(worker.Start(lifecycle::Context::Background()).ok());
  EXPECT_THAT(worker, Not(HasFailed()));
  worker.FailNow(absl::DataLossError("disk"));
  ASSERT_TRUE(worker.Stopped().WaitFor(WaitTimeout()));
  EXPECT_THAT(
      worker.Snapshot(),
      HasFailed(::testing::AllOf(
          ::testing::Property(&absl::Status::code, absl::StatusCode::kDataLoss),
          ::testing::Property(
              &absl::Status::message,
              ::testing::HasSubstr("failed while running: disk")))));
}

TEST(MatchersTest, MatchersComposeAndExplainTheirMismatch) {
  FakeService fake("idle");
  EXPECT_THAT(fake, HasState(::testing::AnyOf(ServiceState::kStopped,
                                              ServiceState::kFailed)));
  EXPECT_THAT(fake, HasRestarted(0));
  EXPECT_THAT(fake, HasRestarted(::testing::Lt(1)));
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(fake, HasFailed(absl::StatusCode::kInternal)),
      "whose state is stopped");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(fake, HasState(::testing::AnyOf(ServiceState::kStarted,
                                                  ServiceState::kStarting))),
      "a service whose state (is equal to started) or (is equal to "
      "starting)");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(fake, HasRestarted(::testing::Ge(2))),
                          "which was restarted 0 times");
  fake.FailStartWith(absl::UnavailableError("down"));
  EXPECT_FALSE(fake.Start(lifecycle::Context::Background()).ok());
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(fake, HasFailed(absl::StatusCode::kInternal)),
      "whose failure is UNAVAILABLE: service 'idle' failed to start: down");
}

TEST(MockServiceTest, DrivesCodeUnderTest) {
  MockService db;
  ON_CALL(db, Name()).WillByDefault(Return("db"));
  lifecycle::ServiceSnapshot snapshot;
  snapshot.name = snapshot.path = "db";
  ON_CALL(db, Snapshot()).WillByDefault(Return(snapshot));
  EXPECT_CALL(db, Start).WillOnce(Return(absl::UnavailableError("down")));
  EXPECT_CALL(db, Stop).Times(0);  // StartAll stops only what it started
  lifecycle::Service* services[] = {&db};
  absl::Status status = lifecycle::StartAll(services, Context::Background());
  EXPECT_EQ(lifecycle::FailedServicePath(status), "db");
}

INSTANTIATE_TEST_SUITE_P(
    Library, ServiceConformanceTest,
    ::testing::Values(
        ServiceFactory{"FakeService",
                       [] { return std::make_unique<FakeService>("fake"); },
                       [](lifecycle::Service& fake) {
                         static_cast<FakeService&>(fake).FailNow(
                             absl::DataLossError("disk"));
                       }},
        ServiceFactory{"FuncService",
                       [] {
                         return std::make_unique<lifecycle::FuncService>(
                             "func", [](const Context& ctx,
                                        absl::FunctionRef<void()> started) {
                               started();
                               ctx.Done().Wait();
                               return ctx.Cause();
                             });
                       }}),
    ServiceFactoryName);

// --- Issue 13, item 16: injected failures are never lost --------------------

TEST(FakeServiceTest, FailNowRightAfterStartIsNotLost) {
  for (int i = 0; i < 20; ++i) {
    FakeService fake("fake");
    ASSERT_TRUE(fake.Start(Context::Background()).ok());
    fake.FailNow(absl::DataLossError("disk"));  // the worker may not run yet
    ASSERT_TRUE(WaitOrTimeout(fake.Stopped()));
    EXPECT_THAT(fake.Snapshot().status.message(), HasSubstr("disk"));
  }
}

TEST(FakeServiceTest, FailNowWhileWaitingForReleaseFailsTheRun) {
  FakeService fake("fake");
  fake.StartWhenReleased();
  ASSERT_TRUE(fake.Start(Context::Background()).ok());
  fake.FailNow(absl::UnavailableError("gone before it started"));
  ASSERT_TRUE(WaitOrTimeout(fake.Stopped()));
  EXPECT_EQ(fake.Snapshot().state, lifecycle::ServiceState::kFailed);
  EXPECT_THAT(fake.Snapshot().status.message(),
              HasSubstr("gone before it started"));
}

TEST(FakeServiceTest, StartWhenReleasedHoldsEveryRun) {
  FakeService fake("fake");
  fake.StartWhenReleased();
  for (int run = 0; run < 3; ++run) {
    ASSERT_TRUE(fake.Start(Context::Background()).ok());
    EXPECT_FALSE(fake.Started().WaitFor(absl::Milliseconds(20)))
        << "run " << run << " started without a release";
    fake.ReleaseStart();
    ASSERT_TRUE(WaitOrTimeout(fake.Started()));
    fake.Stop();
  }
}
}  // namespace
}  // namespace lifecycle_testing
