#include "lifecycle/testing/leftover_threads.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;

TEST(LeftoverThreadsTest, ListsThisThread) {
  EXPECT_FALSE(LiveThreads().empty());
}

TEST(LeftoverThreadsTest, NamesAThreadLeftRunning) {
  LeftoverThreadCheck check;
  lifecycle::Signal release;
  lifecycle::Signal named;
  std::thread straggler([&] {
    pthread_setname_np(pthread_self(), "straggler");
    named.Close();
    release.Wait();
  });
  ASSERT_TRUE(WaitOrTimeout(named));
  ::testing::AssertionResult result = check.NoNewThreads(absl::ZeroDuration());
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(),
              HasSubstr("1 thread(s) left running: 'straggler'"));
  release.Close();
  straggler.join();
  EXPECT_TRUE(check.NoNewThreads());
}

TEST(LeftoverThreadsTest, AStoppedServiceLeavesNoThread) {
  LeftoverThreadCheck check;
  FakeService fake("tidy");
  ASSERT_TRUE(fake.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(fake.Started()));
  ::testing::AssertionResult running = check.NoNewThreads(absl::ZeroDuration());
  EXPECT_THAT(running.message(), HasSubstr("'tidy'"));
  fake.Stop();
  EXPECT_TRUE(check.NoNewThreads());
}

TEST(LeftoverThreadListenerTest, FailsTheTestThatLeftAThread) {
  // Drives the listener by hand around a "test" that leaves a thread, as gtest
  // would around each test of a binary where it is registered.
  LeftoverThreadListener listener;
  const ::testing::TestInfo& info =
      *::testing::UnitTest::GetInstance()->current_test_info();
  listener.OnTestStart(info);
  lifecycle::Signal named, release;
  std::thread straggler([&] {
    pthread_setname_np(pthread_self(), "left-behind");
    named.Close();
    release.Wait();
  });
  ASSERT_TRUE(WaitOrTimeout(named));
  EXPECT_NONFATAL_FAILURE(
      listener.OnTestEnd(info),
      "leftover threads after LeftoverThreadListenerTest."
      "FailsTheTestThatLeftAThread: 1 thread(s) left running: 'left-behind'");
  release.Close();
  straggler.join();
  listener.OnTestStart(info);
  listener.OnTestEnd(info);  // nothing left: no failure
}

// A child that sleeps until killed, for the process checks.
pid_t ForkSleeper() {
  pid_t pid = fork();
  if (pid == 0) {
    while (true) pause();
  }
  return pid;
}

TEST(LeftoverProcessesTest, NamesAChildLeftRunningAndForgetsItOnceReaped) {
  LeftoverProcessCheck check;
  pid_t child = ForkSleeper();
  ASSERT_GT(child, 0);
  ::testing::AssertionResult left = check.NoNewProcesses(absl::ZeroDuration());
  EXPECT_FALSE(left);
  EXPECT_THAT(left.message(), HasSubstr(absl::StrCat(
                                  "1 child process(es) left: ", child, " '")));
  EXPECT_THAT(ChildProcesses(), Contains(Key(child)));
  kill(child, SIGKILL);
  // Killed but not reaped: a zombie is still left over, and says so.
  EXPECT_THAT(check.NoNewProcesses(absl::Milliseconds(100)).message(),
              HasSubstr("(zombie)"));
  int status;
  waitpid(child, &status, 0);
  EXPECT_TRUE(check.NoNewProcesses());
}

TEST(LeftoverProcessListenerTest, FailsTheTestThatLeftAChild) {
  LeftoverProcessListener listener;
  const ::testing::TestInfo& info =
      *::testing::UnitTest::GetInstance()->current_test_info();
  listener.OnTestStart(info);
  pid_t child = ForkSleeper();
  ASSERT_GT(child, 0);
  EXPECT_NONFATAL_FAILURE(
      listener.OnTestEnd(info),
      "leftover child processes after LeftoverProcessListenerTest."
      "FailsTheTestThatLeftAChild: 1 child process(es) left: ");
  kill(child, SIGKILL);
  int status;
  waitpid(child, &status, 0);
  listener.OnTestStart(info);
  listener.OnTestEnd(info);  // nothing left: no failure
}

// Issue 13, item 17: threads used to be exempted by name, so a service named
// like the library's timer thread was never reported.
TEST(LeftoverThreadsTest, AThreadNamedLikeTheLibrarysIsStillReported) {
  LeftoverThreadCheck check;
  lifecycle::Signal release;
  lifecycle::Signal named;
  std::thread impostor([&] {
    pthread_setname_np(pthread_self(), "lifecycle-timer");
    named.Close();
    release.Wait();
  });
  ASSERT_TRUE(WaitOrTimeout(named));
  ::testing::AssertionResult result = check.NoNewThreads(absl::ZeroDuration());
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(), HasSubstr("'lifecycle-timer'"));
  release.Close();
  impostor.join();
}
}  // namespace
}  // namespace lifecycle_testing
