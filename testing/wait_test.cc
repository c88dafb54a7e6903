#include "lifecycle/testing/wait.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>

#include "absl/base/attributes.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/test_signal.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/mock_service.h"

namespace lifecycle_testing {
namespace {

using lifecycle::ServiceSnapshot;
using lifecycle::ServiceState;
using lifecycle::TestSignal;

using ::testing::AllOf;
using ::testing::HasSubstr;

// The environment each timeout-rule test sees, instead of the machine's.
std::map<std::string, std::string>* fake_env;
const char* FakeGetenv(const char* name) {
  auto it = fake_env->find(name);
  return it == fake_env->end() ? nullptr : it->second.c_str();
}

absl::Duration TimeoutWith(std::map<std::string, std::string> env,
                           int sanitizer_factor = 1) {
  fake_env = &env;
  absl::Duration timeout = ComputeWaitTimeout(&FakeGetenv, sanitizer_factor);
  fake_env = nullptr;
  return timeout;
}

TEST(WaitTimeoutTest, ThreeSecondsLocally) {
  EXPECT_EQ(TimeoutWith({}), absl::Seconds(3));
  EXPECT_EQ(TimeoutWith({{"CI", "false"}}), absl::Seconds(3));
}

TEST(WaitTimeoutTest, TenSecondsOnCi) {
  EXPECT_EQ(TimeoutWith({{"CI", "true"}}), absl::Seconds(10));
  EXPECT_EQ(TimeoutWith({{"GITHUB_ACTIONS", "true"}}), absl::Seconds(10));
  EXPECT_EQ(TimeoutWith({{"CI", "1"}}), absl::Seconds(10));
}

TEST(WaitTimeoutTest, SanitizersMultiply) {
  EXPECT_EQ(TimeoutWith({}, 2), absl::Seconds(6));
  EXPECT_EQ(TimeoutWith({{"CI", "true"}}, 2), absl::Seconds(20));
}

TEST(WaitTimeoutTest, OverrideReplacesEverything) {
  EXPECT_EQ(
      TimeoutWith({{"LIFECYCLE_WAIT_TIMEOUT", "500ms"}, {"CI", "true"}}, 2),
      absl::Milliseconds(500));
}

TEST(WaitTimeoutTest, BadOverrideIsIgnored) {
  EXPECT_EQ(TimeoutWith({{"LIFECYCLE_WAIT_TIMEOUT", "soon"}}),
            absl::Seconds(3));
  EXPECT_EQ(TimeoutWith({{"LIFECYCLE_WAIT_TIMEOUT", "-1s"}}), absl::Seconds(3));
  EXPECT_EQ(TimeoutWith({{"LIFECYCLE_WAIT_TIMEOUT", "0"}}), absl::Seconds(3));
}

TEST(WaitTimeoutTest, CappedBelowBazelTestTimeout) {
  EXPECT_EQ(TimeoutWith({{"CI", "true"}, {"TEST_TIMEOUT", "8"}}),
            absl::Seconds(6));
  EXPECT_EQ(
      TimeoutWith({{"LIFECYCLE_WAIT_TIMEOUT", "1h"}, {"TEST_TIMEOUT", "60"}}),
      absl::Seconds(45));
  EXPECT_EQ(TimeoutWith({{"TEST_TIMEOUT", "300"}}), absl::Seconds(3));
  EXPECT_EQ(TimeoutWith({{"TEST_TIMEOUT", "junk"}}), absl::Seconds(3));
}

TEST(WaitTimeoutTest, ReadsTheRealEnvironment) {
  const char* saved = std::getenv(kWaitTimeoutVariable);
  std::string saved_value = saved ? saved : "";
  setenv(kWaitTimeoutVariable, "1234ms", 1);
  EXPECT_EQ(WaitTimeout(), absl::Milliseconds(1234));
  if (saved) {
    setenv(kWaitTimeoutVariable, saved_value.c_str(), 1);
  } else {
    unsetenv(kWaitTimeoutVariable);
  }
}

TEST(WaitTimeoutTest, SanitizerFactorMatchesTheBuild) {
  EXPECT_EQ(SanitizerTimeoutFactor(), lifecycle::kAnySanitizer ? 2 : 1);
}

TEST(WaitOrTimeoutTest, ReturnsTrueWhenClosed) {
  lifecycle::Signal signal;
  std::thread closer([&] { signal.Close(); });
  EXPECT_TRUE(WaitOrTimeout(signal));
  closer.join();
}

TEST(WaitOrTimeoutTest, FailsAtTheCallersLineWithTheTimeWaited) {
  lifecycle::Signal never;
  ::testing::TestPartResultArray results;
  int line;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &results);
    line = __LINE__ + 1;
    EXPECT_FALSE(WaitOrTimeout(never, {}, absl::Milliseconds(20)));
  }
  ASSERT_EQ(results.size(), 1);
  const ::testing::TestPartResult& failure = results.GetTestPartResult(0);
  EXPECT_TRUE(failure.nonfatally_failed());
  EXPECT_THAT(failure.file_name(), HasSubstr("wait_test.cc"));
  EXPECT_EQ(failure.line_number(), line);
  EXPECT_THAT(failure.message(),
              HasSubstr("WaitOrTimeout: signal not closed after "));
  EXPECT_THAT(failure.message(), HasSubstr("(timeout 20ms)"));
}

TEST(WaitOrTimeoutTest, FailureNamesPendingServicesAndPrintsTheTable) {
  FakeService db("db");
  db.NeverSignalStarted();
  ASSERT_TRUE(db.Start(lifecycle::Context::Background()).ok());
  std::vector<lifecycle::Service*> services = {&db};
  EXPECT_NONFATAL_FAILURE(
      WaitOrTimeout(db.Started(), services, absl::Milliseconds(10)),
      "Pending: db (starting for ");
  EXPECT_NONFATAL_FAILURE(
      WaitOrTimeout(db.Started(), services, absl::Milliseconds(10)),
      "PATH  STATE     SINCE");
}

// The function the report's stack must show.
ABSL_ATTRIBUTE_NOINLINE absl::Status StuckInAFunctionWithAName(
    const lifecycle::Context& ctx, lifecycle::Signal inside) {
  inside.Close();  // from here on, a captured stack has this function
  ctx.Done().Wait();
  return ctx.Cause();
}

TEST(WaitOrTimeoutTest, FailureShowsThePendingWorkersStack) {
  lifecycle::Signal inside;
  lifecycle::FuncService stuck(
      "stuck", [&](const lifecycle::Context& ctx, absl::FunctionRef<void()>) {
        return StuckInAFunctionWithAName(ctx, inside);  // never started
      });
  ASSERT_TRUE(stuck.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(inside));
  std::vector<lifecycle::Service*> services = {&stuck};
  const char* expected = lifecycle::kThreadSanitizer
                             ? "not captured in ThreadSanitizer builds"
                             : "StuckInAFunctionWithAName";
  EXPECT_NONFATAL_FAILURE(
      WaitOrTimeout(stuck.Started(), services, absl::Milliseconds(20)),
      expected);
  EXPECT_NONFATAL_FAILURE(
      WaitOrTimeout(stuck.Started(), services, absl::Milliseconds(20)),
      "Stack of stuck (starting), thread ");
  stuck.Stop();
}

TEST(WaitOrTimeoutTest, AssertionResultVariantTakesAMessage) {
  lifecycle::Signal never;
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(SignalClosesWithin(never, {}, absl::Milliseconds(1)))
          << "waiting for the color to turn red",
      "waiting for the color to turn red");
  EXPECT_TRUE(SignalClosesWithin(lifecycle::Signal::Closed()));
}

TEST(WaitOrTimeoutTest, TakesTestSignalValues) {
  TestSignal<int> signal;
  signal.Init();
  std::thread producer([&] {
    signal.Signal(1);
    signal.Signal(2);
    signal.Signal(3);
  });
  EXPECT_EQ(WaitOrTimeout(signal), 1);
  EXPECT_EQ(WaitOrTimeoutN(signal, 2), (std::vector<int>{2, 3}));
  producer.join();
  RequireEmpty(signal);
}

TEST(WaitOrTimeoutTest, TestSignalFailuresAreReported) {
  TestSignal<int> uninitialized;
  EXPECT_NONFATAL_FAILURE(WaitOrTimeout(uninitialized),
                          "test signal is not initialized");
  TestSignal<int> two;
  two.Init();
  two.Signal(1);
  two.Signal(2);
  EXPECT_NONFATAL_FAILURE(WaitOrTimeoutN(two, 3, absl::Milliseconds(5)),
                          "received 2 value(s), wanted 3");
  EXPECT_NONFATAL_FAILURE(RequireEmpty(two), "2 unexpected value(s)");
  TestSignal<int> empty;
  empty.Init();
  EXPECT_NONFATAL_FAILURE(WaitOrTimeout(empty, absl::Milliseconds(5)),
                          "no value received within 5ms");
}

TEST(WaitSnapshotOrTimeoutTest, WakesOnTheChangeAMatcherWaitsFor) {
  FakeService db("db");
  ASSERT_TRUE(db.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(db.Started()));
  std::thread killer([&] { db.FailNow(absl::UnavailableError("disk gone")); });
  EXPECT_TRUE(
      WaitSnapshotOrTimeout(db, HasFailed(absl::StatusCode::kUnavailable)));
  killer.join();
  EXPECT_TRUE(SnapshotMatchesWithin(db, HasState(ServiceState::kFailed)));
}

TEST(WaitSnapshotOrTimeoutTest, TakesAPredicate) {
  FakeService db("db");
  ASSERT_TRUE(db.Start(lifecycle::Context::Background()).ok());
  EXPECT_TRUE(WaitSnapshotOrTimeout(db, [](const ServiceSnapshot& s) {
    return s.state == ServiceState::kStarted && s.start_count == 1;
  }));
  db.Stop();
}

TEST(WaitSnapshotOrTimeoutTest, FailsAtTheCallersLineWithWhatItWantedAndSaw) {
  FakeService db("db");
  ::testing::TestPartResultArray results;
  int line;
  bool ok;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &results);
    line = __LINE__ + 1;
    ok = WaitSnapshotOrTimeout(db, IsStarted(), absl::Milliseconds(20));
  }
  EXPECT_FALSE(ok);
  ASSERT_EQ(results.size(), 1);
  const ::testing::TestPartResult& failure = results.GetTestPartResult(0);
  EXPECT_EQ(failure.line_number(), line);
  EXPECT_THAT(
      failure.message(),
      AllOf(HasSubstr("WaitSnapshotOrTimeout: the snapshot of 'db' "
                      "still does not match after "),
            HasSubstr("(timeout 20ms)"), HasSubstr("Expected: is started"),
            HasSubstr("Actual: whose state is stopped"),
            HasSubstr("PATH  STATE")));
}

TEST(WaitSnapshotOrTimeoutTest, APredicatesFailureShowsTheLastSnapshot) {
  FakeService db("db");
  EXPECT_NONFATAL_FAILURE(
      WaitSnapshotOrTimeout(
          db, [](const ServiceSnapshot& s) { return s.degraded; },
          absl::Milliseconds(5)),
      "PATH  STATE");
}

TEST(WaitSnapshotOrTimeoutTest, ANegativeTimeoutLooksOnce) {
  FakeService db("db");
  EXPECT_TRUE(SnapshotMatchesWithin(db, HasState(ServiceState::kStopped),
                                    absl::Seconds(-1)));
  EXPECT_FALSE(
      SnapshotMatchesWithin(db, IsStarted(), -absl::InfiniteDuration()));
}

// A `Service` that is not a `BaseService` has no change signal: the wait
// looks again at a backoff until the snapshot matches.
TEST(WaitSnapshotOrTimeoutTest, AServiceWithoutChangeSignalIsExaminedAgain) {
  ::testing::NiceMock<MockService> service;
  std::atomic<int> looks{0};
  ON_CALL(service, Name).WillByDefault(::testing::Return("mock"));
  ON_CALL(service, Snapshot).WillByDefault([&] {
    ServiceSnapshot s;
    s.name = "mock";
    s.path = "mock";
    s.state = ++looks >= 4 ? ServiceState::kStarted : ServiceState::kStarting;
    return s;
  });
  EXPECT_TRUE(WaitSnapshotOrTimeout(service, IsStarted()));
  EXPECT_GE(looks.load(), 4);
  EXPECT_NONFATAL_FAILURE(
      WaitSnapshotOrTimeout(service, HasState(ServiceState::kFailed),
                            absl::Milliseconds(5)),
      "the snapshot of 'mock' still does not match");
}

// Issue 13, item 21: a bad LIFECYCLE_WAIT_TIMEOUT used to warn on every wait.
TEST(WaitTimeoutTest, BadOverrideWarnsOnce) {
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    TimeoutWith({{"LIFECYCLE_WAIT_TIMEOUT", "once-only-bad-value"}});
  }
  std::string err = ::testing::internal::GetCapturedStderr();
  size_t first = err.find("once-only-bad-value");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(err.find("once-only-bad-value", first + 1), std::string::npos);
}
}  // namespace
}  // namespace lifecycle_testing
