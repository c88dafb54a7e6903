#include "lifecycle/testing/hang_watchdog.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/context.h"
#include "lifecycle/func_service.h"
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

TEST_F(HangWatchdogDeathTest, ABudgetChangedAsItExpiresIsReportedAsItWas) {
  // Each call re-arms 1ms ahead once the last budget has run out: one of them
  // comes just after the watchdog claimed the expiry.
  EXPECT_EXIT(
      {
        while (true) {
          SetTestBudget(absl::Milliseconds(1));
          const absl::Time expired = TestDeadline() + absl::Microseconds(100);
          while (absl::Now() < expired) {
          }
        }
      },
      ExitedWithCode(kHangExitCode),
      AllOf(HasSubstr("has run for"),
            ContainsRegex("its budget is 1ms from SetTestBudget\\(\\), "
                          "called at [0-9.]+m?s "),  // with a unit, also 0
            Not(HasSubstr("budget is -"))));
}

TEST_F(HangWatchdogDeathTest, AWorkerWhoseServiceIsLockedStillHasItsLabel) {
  EXPECT_EXIT(
      {
        absl::Notification release;
        lifecycle::FuncService holder("holder",
                                      [](const lifecycle::Context& ctx,
                                         absl::FunctionRef<void()> started) {
                                        started();
                                        ctx.Done().Wait();
                                        return absl::OkStatus();
                                      });
        if (!holder.Start(lifecycle::Context::Background()).ok() ||
            !holder.Started().WaitFor(WaitTimeout())) {
          std::_Exit(3);
        }
        lifecycle::base_service_internal::ScopedServiceLockForTesting lock(
            holder);
        SetTestBudget(absl::Milliseconds(300));
        release.WaitForNotification();
      },
      ExitedWithCode(kHangExitCode),
      AllOf(HasSubstr("Not readable (their mutex stayed held): holder"),
            ContainsRegex("thread [0-9]+ 'holder' \\(worker of holder, "
                          "whose mutex is held\\):")));
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

// --- hangs outside test bodies and in death tests, in a process of their own --
//
// This binary run again with LIFECYCLE_HANG_IN naming where to hang; the
// environment, the suite and the death tests below do nothing without it.

constexpr char kHangIn[] = "LIFECYCLE_HANG_IN";
constexpr char kPidFile[] = "LIFECYCLE_HANG_PID_FILE";

bool HangIn(std::string_view where) {
  const char* value = std::getenv(kHangIn);
  return value != nullptr && where == value;
}

[[noreturn]] void Hang() {
  absl::Notification never;
  never.WaitForNotification();
  std::abort();  // not reached
}

class HangingEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (HangIn("environment_set_up")) Hang();
  }
  void TearDown() override {
    if (HangIn("environment_tear_down")) Hang();
  }
};
::testing::Environment* const kHangingEnvironment =
    ::testing::AddGlobalTestEnvironment(new HangingEnvironment);

class HangingPhasesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (HangIn("suite_set_up")) Hang();
  }
  static void TearDownTestSuite() {
    if (HangIn("suite_tear_down")) Hang();
  }
  void SetUp() override {
    if (std::getenv(kHangIn) == nullptr) {
      GTEST_SKIP() << "run again by HangOutsideTestBodiesTest";
    }
  }
  void TearDown() override {
    if (HangIn("tear_down")) Hang();
  }
};

TEST_F(HangingPhasesTest, Body) {}

// Busy until the very moment its budget ends: the watchdog and the test's end
// race.
TEST_F(HangingPhasesTest, EndsAtItsBudget) {
  if (!HangIn("at_the_budget")) GTEST_SKIP() << "run again only";
  SetTestBudget(absl::Milliseconds(300));
  const absl::Time end = TestDeadline();
  while (absl::Now() < end) {
  }
}

// A death test whose child hangs, having written its pid where the runner
// reads it.
void HangInADeathTest(const char* style) {
  GTEST_FLAG_SET(death_test_style, style);
  EXPECT_DEATH(
      {
        std::FILE* f = std::fopen(std::getenv(kPidFile), "w");
        if (f != nullptr) {
          std::fprintf(f, "%d\n", static_cast<int>(getpid()));
          std::fclose(f);
        }
        Hang();
      },
      "");
}

TEST_F(HangingPhasesTest, FastDeathTest) {
  if (!HangIn("fast_death_test")) GTEST_SKIP() << "run again only";
  HangInADeathTest("fast");
}

TEST_F(HangingPhasesTest, ThreadsafeDeathTest) {
  if (!HangIn("threadsafe_death_test")) GTEST_SKIP() << "run again only";
  HangInADeathTest("threadsafe");
}

struct Finished {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs this binary again, hanging in `where`, with a budget of 2s. The budget
// holds for every phase of the child, not only the one that hangs: on a loaded
// machine the child's start-up alone once took longer than 300ms and was
// reported as the hang "before the first test".
// The child is not sharded unless `shards` says so ("GTEST_TOTAL_SHARDS=4
// ..."): a sharded parent's variables would filter its one test away.
Finished RunHangingIn(const std::string& where, const std::string& filter,
                      const std::string& pid_file = "",
                      const std::string& shards = "") {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return {};
  self[n] = '\0';
  std::string command = absl::StrCat(
      "env -u GTEST_TOTAL_SHARDS -u GTEST_SHARD_INDEX -u TEST_TOTAL_SHARDS "
      "-u TEST_SHARD_INDEX ",
      shards, " ", kHangIn, "=", where, " ", kTestBudgetVariable, "=2s ",
      kPidFile, "='", pid_file, "' '", self, "' --gtest_filter='", filter,
      "' 2>&1");
  Finished run;
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    run.output.append(buffer, got);
  }
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// A test that ends right at its budget either passed (exit 0, no report) or
// is reported once (exit 124 with the report): never a silent exit 124.
TEST(HangOutsideTestBodiesTest, ATestEndingAtItsBudgetPassesOrIsReported) {
  for (int round = 0; round < 10; ++round) {
    Finished run =
        RunHangingIn("at_the_budget", "HangingPhasesTest.EndsAtItsBudget");
    const std::string report =
        "[ HANGING  ] HangingPhasesTest.EndsAtItsBudget has run for ";
    int reports = 0;
    for (size_t at = run.output.find(report); at != std::string::npos;
         at = run.output.find(report, at + 1)) {
      ++reports;
    }
    if (run.exit_code == 0) {
      EXPECT_EQ(reports, 0) << "round " << round << ":\n" << run.output;
    } else {
      EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
      EXPECT_EQ(reports, 1) << "round " << round << ": exit " << run.exit_code
                            << " with " << reports << " report(s):\n"
                            << run.output;
    }
    if (HasFailure()) break;
  }
}

TEST(HangOutsideTestBodiesTest, InTheGlobalEnvironmentsSetUp) {
  Finished run = RunHangingIn("environment_set_up", "HangingPhasesTest.Body");
  EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
  EXPECT_THAT(run.output,
              AllOf(HasSubstr("[ HANGING  ] (the global test environments' "
                              "SetUp()) has run for "),
                    HasSubstr(StackShows("HangingEnvironment::SetUp")),
                    HasSubstr("hang_report_environments_SetUp.txt")));
}

// Bazel's shard_count runs a suite as N processes; the report says which one
// hung (the one filtered test is the first shard's).
TEST(HangOutsideTestBodiesTest, AReportNamesItsShard) {
  for (const char* shards :
       {"TEST_TOTAL_SHARDS=4 TEST_SHARD_INDEX=0 GTEST_TOTAL_SHARDS=4 "
        "GTEST_SHARD_INDEX=0",
        "GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=0"}) {
    Finished run =
        RunHangingIn("tear_down", "HangingPhasesTest.Body", "", shards);
    EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
    EXPECT_THAT(run.output, HasSubstr("(shard 1 of 4) has run for ")) << shards;
  }
}

TEST(HangOutsideTestBodiesTest, InASuitesSetUp) {
  Finished run = RunHangingIn("suite_set_up", "HangingPhasesTest.Body");
  EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
  EXPECT_THAT(run.output,
              HasSubstr("[ HANGING  ] SetUpTestSuite() of HangingPhasesTest "
                        "has run for "));
}

TEST(HangOutsideTestBodiesTest, InAFixturesTearDown) {
  Finished run = RunHangingIn("tear_down", "HangingPhasesTest.Body");
  EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
  EXPECT_THAT(run.output,
              HasSubstr("[ HANGING  ] HangingPhasesTest.Body has run for "));
}

TEST(HangOutsideTestBodiesTest, InASuitesTearDown) {
  Finished run = RunHangingIn("suite_tear_down", "HangingPhasesTest.Body");
  EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
  EXPECT_THAT(run.output,
              HasSubstr("[ HANGING  ] (after HangingPhasesTest.Body: "
                        "TearDownTestSuite() of HangingPhasesTest, or between "
                        "tests) has run for "));
}

TEST(HangOutsideTestBodiesTest, InTheGlobalEnvironmentsTearDown) {
  Finished run =
      RunHangingIn("environment_tear_down", "HangingPhasesTest.Body");
  EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
  EXPECT_THAT(run.output, HasSubstr("[ HANGING  ] (the global test "
                                    "environments' TearDown()) has run for "));
}

// Whether the process `pid` has ended (or ends within the wait timeout):
// waited for on a pidfd, which becomes readable when it exits.
bool ProcessEnds(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;  // gone already
  pollfd p{fd, POLLIN, 0};
  int ready =
      poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(WaitTimeout())));
  close(fd);
  return ready == 1;
}

void ExpectTheDeathTestReportedAndItsChildGone(const std::string& style) {
  std::string pid_file =
      absl::StrCat(::testing::TempDir(), "/hang_child_", style, "_", getpid());
  std::remove(pid_file.c_str());
  std::string test = style == "fast" ? "FastDeathTest" : "ThreadsafeDeathTest";
  Finished run =
      RunHangingIn(absl::StrCat(style, "_death_test"),
                   absl::StrCat("HangingPhasesTest.", test), pid_file);
  EXPECT_EQ(run.exit_code, kHangExitCode) << run.output;
  // On the log itself, not in GoogleTest's capture of the child's stderr.
  EXPECT_THAT(run.output,
              AllOf(HasSubstr(absl::StrCat("[ HANGING  ] HangingPhasesTest.",
                                           test, " has run for ")),
                    ContainsRegex("killed [0-9]+ child process\\(es\\), so "
                                  "that none outlives the test: [0-9]+ ")));
  std::FILE* f = std::fopen(pid_file.c_str(), "r");
  ASSERT_NE(f, nullptr) << "the death test's child never ran\n" << run.output;
  int pid = 0;
  ASSERT_EQ(std::fscanf(f, "%d", &pid), 1);
  std::fclose(f);
  std::remove(pid_file.c_str());
  EXPECT_TRUE(ProcessEnds(pid))
      << "the death test's child " << pid << " outlived its test";
}

TEST(HangInDeathTestTest, FastStyle) {
  ExpectTheDeathTestReportedAndItsChildGone("fast");
}

TEST(HangInDeathTestTest, ThreadsafeStyle) {
  ExpectTheDeathTestReportedAndItsChildGone("threadsafe");
}

}  // namespace
}  // namespace lifecycle_testing
