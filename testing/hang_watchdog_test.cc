#include "lifecycle/testing/hang_watchdog.h"

#include <pthread.h>
#include <signal.h>

#include <mutex>
#include <string>
#include <thread>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {
namespace {

using hang_watchdog_internal::Deadline;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::ExitedWithCode;
using ::testing::HasSubstr;
using ::testing::Not;

// --- the budget ---------------------------------------------------------------

const char* NoVariables(const char*) { return nullptr; }

TEST(TestBudgetTest, AMinuteByDefaultTwoUnderASanitizer) {
  EXPECT_EQ(ComputeTestBudget(&NoVariables, 1), absl::Seconds(60));
  EXPECT_EQ(ComputeTestBudget(&NoVariables, 2), absl::Seconds(120));
}

TEST(TestBudgetTest, TheVariableReplacesItAndZeroTurnsItOff) {
  EXPECT_EQ(ComputeTestBudget(
                [](const char* name) -> const char* {
                  return std::string(name) == kTestBudgetVariable ? "90s"
                                                                  : nullptr;
                },
                2),
            absl::Seconds(90));
  EXPECT_EQ(ComputeTestBudget(
                [](const char* name) -> const char* {
                  return std::string(name) == kTestBudgetVariable ? "0"
                                                                  : nullptr;
                },
                1),
            absl::ZeroDuration());
}

TEST(TestBudgetTest, AValueThatIsNoDurationIsIgnoredWithAWarning) {
  ::testing::internal::CaptureStderr();
  absl::Duration budget = ComputeTestBudget(
      [](const char* name) -> const char* {
        return std::string(name) == kTestBudgetVariable ? "soon" : nullptr;
      },
      1);
  std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(budget, absl::Seconds(60));
  EXPECT_THAT(warning, HasSubstr("ignoring LIFECYCLE_TEST_BUDGET=\"soon\""));
}

TEST(TestBudgetTest, NeverMoreThanThreeQuartersOfBazelsTimeout) {
  EXPECT_EQ(ComputeTestBudget(
                [](const char* name) -> const char* {
                  return std::string(name) == "TEST_TIMEOUT" ? "60" : nullptr;
                },
                2),
            absl::Seconds(45));
}

// --- who acts at the expiry: the test's end or the watchdog -------------------

TEST(DeadlineTest, ClaimedOnceAndOnlyWhenDue) {
  const absl::Time t = absl::FromUnixSeconds(1000);
  Deadline deadline;
  EXPECT_FALSE(deadline.Claim(t)) << "nothing armed";
  ASSERT_TRUE(deadline.Arm(t));
  EXPECT_EQ(deadline.Get(), t);
  EXPECT_FALSE(deadline.Claim(t - absl::Nanoseconds(1)));
  EXPECT_TRUE(deadline.Claim(t));
  EXPECT_FALSE(deadline.Claim(t + absl::Seconds(1))) << "reported twice";
  EXPECT_EQ(deadline.Get(), absl::InfiniteFuture());
  EXPECT_FALSE(deadline.Disarm()) << "the test would pass as it is reported";
  EXPECT_FALSE(deadline.Arm(t + absl::Seconds(5))) << "a next test armed";
}

TEST(DeadlineTest, ATestThatEndedFirstIsNotReported) {
  const absl::Time t = absl::FromUnixSeconds(1000);
  Deadline deadline;
  ASSERT_TRUE(deadline.Arm(t));
  ASSERT_TRUE(deadline.Disarm());
  EXPECT_FALSE(deadline.Claim(t + absl::Hours(1)));
  EXPECT_EQ(deadline.Get(), absl::InfiniteFuture());
  ASSERT_TRUE(deadline.Arm(t + absl::Seconds(1))) << "the next test";
  EXPECT_FALSE(deadline.Claim(t));
  EXPECT_TRUE(deadline.Claim(t + absl::Seconds(1)));
}

// --- the installed watchdog (this binary's main installs it) ------------------

TEST(HangWatchdogTest, EveryTestIsWatched) {
  absl::Time deadline = TestDeadline();
  EXPECT_GT(deadline, absl::Now());
  EXPECT_LE(deadline, absl::Now() + TestBudget());
}

TEST(HangWatchdogTest, SetTestBudgetCountsFromTheCall) {
  absl::Time before = absl::Now();
  SetTestBudget(absl::Hours(1));
  absl::Time deadline = TestDeadline();
  absl::Time after = absl::Now();
  if (std::getenv("TEST_TIMEOUT") == nullptr) {
    EXPECT_GE(deadline, before + absl::Hours(1));
    EXPECT_LE(deadline, after + absl::Hours(1));
  } else {
    // Cut to end before Bazel's timeout.
    EXPECT_LT(deadline, before + absl::Hours(1));
  }
}

TEST(HangWatchdogTest, ABudgetOfZeroOrLessUnwatchesTheTestWithOneWarning) {
  ::testing::internal::CaptureStderr();
  SetTestBudget(absl::ZeroDuration());
  EXPECT_EQ(TestDeadline(), absl::InfiniteFuture());
  SetTestBudget(absl::Seconds(-1));
  std::string warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(TestDeadline(), absl::InfiniteFuture());
  EXPECT_THAT(warnings, HasSubstr("leaves the test unwatched"));
  EXPECT_EQ(warnings.find("unwatched"), warnings.rfind("unwatched"))
      << warnings;
}

TEST(HangWatchdogTest, ANewBudgetWatchesTheTestAgain) {
  SetTestBudget(absl::ZeroDuration());
  ASSERT_EQ(TestDeadline(), absl::InfiniteFuture());
  SetTestBudget(absl::Minutes(10));
  EXPECT_LT(TestDeadline(), absl::InfiniteFuture());
}

// --- hung tests, each in a child process (a death test) -----------------------

// A tree whose leaf holds `mutex` while it runs:
//   fixture            a composite
//   fixture/holder     locks `mutex`, signals started, runs until stopped
//   fixture/stuck      ignores its stop unless `release` is notified
class Fixture : public lifecycle::CompositeService {
 public:
  Fixture(std::mutex& mutex, absl::Notification& release)
      : CompositeService("fixture"),
        holder_("holder",
                [&mutex](const lifecycle::Context& ctx,
                         absl::FunctionRef<void()> started) {
                  std::lock_guard<std::mutex> lock(mutex);
                  started();
                  ctx.Done().Wait();
                  return absl::OkStatus();
                }),
        stuck_("stuck", [&release](const lifecycle::Context&,
                                   absl::FunctionRef<void()> started) {
          started();
          release.WaitForNotification();  // deaf to its context
          return absl::OkStatus();
        }) {
    AddChildOrDie(holder_);
    AddChildOrDie(stuck_);
  }
  ~Fixture() override { StopForDestruction(); }

 private:
  lifecycle::FuncService holder_;
  lifecycle::FuncService stuck_;
};

// A frame the reports must show (not inlined, so that it is a frame).
ABSL_ATTRIBUTE_NOINLINE void BlockOnTheHoldersMutex(std::mutex& mutex) {
  mutex.lock();
  mutex.unlock();
}

// Starts `fixture` and waits (bounded) for it to have started.
void Start(Fixture& fixture) {
  if (!fixture.Start(lifecycle::Context::Background()).ok() ||
      !fixture.Started().WaitFor(WaitTimeout())) {
    std::_Exit(3);  // distinct from the watchdog's status
  }
}

// A stack line (under ThreadSanitizer, the note that there are none).
std::string StackShows(const std::string& frame) {
  return lifecycle::kThreadSanitizer ? "not captured in ThreadSanitizer builds"
                                     : frame;
}

// Starts a fixture, gives the test 300ms, and blocks on the mutex its holder
// holds: the hang the reports below are about.
void HangOnTheHoldersMutex() {
  std::mutex mutex;
  absl::Notification release;
  Fixture fixture(mutex, release);
  Start(fixture);
  SetTestBudget(absl::Milliseconds(300));
  BlockOnTheHoldersMutex(mutex);
}

class HangWatchdogDeathTest : public ::testing::Test {
 protected:
  // The child runs this binary again, with its main and so its watchdog.
  HangWatchdogDeathTest() { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(HangWatchdogDeathTest, ReportsATestBlockedInAMutex) {
  EXPECT_EXIT(
      { HangOnTheHoldersMutex(); }, ExitedWithCode(kHangExitCode),
      AllOf(ContainsRegex("HANGING.*HangWatchdogDeathTest\\."
                          "ReportsATestBlockedInAMutex \\(in a death test's "
                          "child process\\) has run for [0-9.]+m?s; its "
                          "budget is 300ms from SetTestBudget\\(\\)"),
            ContainsRegex("fixture/holder +started"),
            ContainsRegex("fixture/stuck +started"),
            HasSubstr("(the test's thread):"),
            HasSubstr(StackShows("BlockOnTheHoldersMutex")),
            ContainsRegex("thread [0-9]+ 'holder' \\(worker of "
                          "fixture/holder\\):"),
            HasSubstr("[ HANGING  ] Report: ")));
}

TEST_F(HangWatchdogDeathTest, ReportsATestBlockedInAServicesStop) {
  EXPECT_EXIT(
      {
        std::mutex mutex;
        absl::Notification release;
        Fixture fixture(mutex, release);
        Start(fixture);
        SetTestBudget(absl::Milliseconds(300));
        fixture.Stop();
      },
      ExitedWithCode(kHangExitCode),
      AllOf(HasSubstr("ReportsATestBlockedInAServicesStop (in a death test's "
                      "child process) has run for"),
            ContainsRegex("fixture/stuck +stopping"),
            ContainsRegex(StackShows("BaseService::Stop\\(\\)\n.*"
                                     "ReportsATestBlockedInAServicesStop")),
            ContainsRegex("thread [0-9]+ 'stuck' \\(worker of "
                          "fixture/stuck\\):")));
}

// Starts a thread that blocks every signal, the stack capture's included,
// and never returns; returns once it has blocked them.
void StartAThreadThatCannotBeCaptured() {
  auto* blocked = new absl::Notification();  // the thread outlives the call
  std::thread([blocked] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    blocked->Notify();
    absl::Notification never;
    never.WaitForNotification();
  }).detach();
  if (!blocked->WaitForNotificationWithTimeout(WaitTimeout())) std::_Exit(4);
}

TEST_F(HangWatchdogDeathTest, AThreadThatCannotBeCapturedIsSaidAndSkipped) {
  if (lifecycle::kThreadSanitizer) GTEST_SKIP() << "no stacks under TSan";
  EXPECT_EXIT(
      {
        StartAThreadThatCannotBeCaptured();
        HangOnTheHoldersMutex();
      },
      ExitedWithCode(kHangExitCode),
      AllOf(HasSubstr("stack unavailable: the thread did not answer"),
            HasSubstr("BlockOnTheHoldersMutex"),
            HasSubstr("[ HANGING  ] Report: ")));
}

TEST_F(HangWatchdogDeathTest, AReportThatHangsEndsTheProcessAnyway) {
  if (lifecycle::kThreadSanitizer) GTEST_SKIP() << "no stacks under TSan";
  EXPECT_EXIT(
      {
        HangWatchdogOptions options;
        options.report_limit = absl::Milliseconds(50);
        InstallHangWatchdog(options);
        // Its capture waits 200ms for an answer that never comes: longer
        // than the report may take.
        StartAThreadThatCannotBeCaptured();
        SetTestBudget(absl::Milliseconds(100));
        absl::Notification never;
        never.WaitForNotification();
      },
      ExitedWithCode(kHangExitCode),
      AllOf(HasSubstr("AReportThatHangsEndsTheProcessAnyway (in a death test's "
                      "child process) has run for"),
            HasSubstr("the hang report did not finish within 50ms"),
            Not(HasSubstr("[ HANGING  ] Report: "))));
}

TEST_F(HangWatchdogDeathTest, ABudgetOfZeroInTheEnvironmentTurnsItOff) {
  // The child inherits the variable; its main installs the watchdog with it.
  setenv(kTestBudgetVariable, "0", 1);
  EXPECT_EXIT(
      {
        std::fflush(stderr);
        std::_Exit(TestDeadline() == absl::InfiniteFuture() ? 0 : 1);
      },
      ExitedWithCode(0),
      AllOf(HasSubstr("[ WARNING  ] hang watchdog: off"),
            Not(ContainsRegex("watchdog: off(.|\n)*watchdog: off"))));
  unsetenv(kTestBudgetVariable);
}

}  // namespace
}  // namespace lifecycle_testing
