#include "lifecycle/thread_stack.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "absl/base/attributes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/sanitizers.h"

namespace lifecycle {
namespace {

// Bounds every wait of the test: a hang, not a delay.
constexpr absl::Duration kWait = absl::Seconds(30);

using ::testing::HasSubstr;

constexpr bool kTsan = kThreadSanitizer;

pid_t CurrentTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The function the stack must show. `inside` closes once the thread is in it
// (a capture from then on has this function on the stack).
ABSL_ATTRIBUTE_NOINLINE absl::Status WaitInAFunctionWithAName(
    const Context& ctx, Signal inside = Signal()) {
  inside.Close();
  ctx.Done().Wait();
  return ctx.Cause();
}

TEST(ThreadStackTest, ShowsWhereAServiceWorkerIsBlocked) {
  FuncService service(
      "blocked", [](const Context& ctx, absl::FunctionRef<void()> started) {
        started();
        return WaitInAFunctionWithAName(ctx);
      });
  ASSERT_TRUE(service.Start(Context::Background()).ok());
  ASSERT_TRUE(service.Started().WaitFor(kWait));
  pid_t tid = service.WorkerThreadId();
  ASSERT_NE(tid, 0);
  // Right after `inside` closes, the worker may still be on its way out of
  // the wake-up it just made: capture again (bounded) until it has settled.
  std::string stack;
  for (int attempt = 0; attempt < 100; ++attempt) {
    stack = ThreadStack(tid);
    if (stack.find("WaitInAFunctionWithAName") != std::string::npos) break;
  }
  EXPECT_THAT(stack, HasSubstr(absl::StrCat("thread ", tid, " 'blocked':\n")));
  if (kTsan) {
    EXPECT_THAT(stack, HasSubstr("not captured in ThreadSanitizer builds"));
  } else {
    EXPECT_THAT(stack, HasSubstr("WaitInAFunctionWithAName")) << stack;
    // It starts where the thread was interrupted: none of the capture's own
    // frames (the handler, the unwinder) are shown.
    EXPECT_THAT(stack, HasSubstr("\n  #0 ")) << stack;
    EXPECT_THAT(stack, ::testing::Not(HasSubstr("CaptureHandler"))) << stack;
    EXPECT_THAT(stack, ::testing::Not(HasSubstr("Unwind"))) << stack;
  }
  // The snapshot carries the worker's id while it runs.
  EXPECT_THAT(service.Snapshot().threads, ::testing::ElementsAre(tid));
  service.Stop();
  EXPECT_TRUE(service.Snapshot().threads.empty());
}

TEST(ThreadStackTest, AThreadThatBlocksTheSignalDoesNotHangTheCaller) {
  std::atomic<pid_t> tid{0};
  Signal ready, release;
  std::thread blocker([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    tid = CurrentTid();
    ready.Close();
    release.Wait();
  });
  ASSERT_TRUE(ready.WaitFor(kWait));
  std::string stack = ThreadStack(tid, absl::Milliseconds(50));
  EXPECT_THAT(stack, HasSubstr("stack unavailable: "));
  if (!kTsan) {
    EXPECT_THAT(stack, HasSubstr("did not answer within 50ms"));
  }
  release.Close();
  blocker.join();
  // The signal still pending in that thread died with it; a new capture
  // works.
  if (!kTsan) {
    std::atomic<pid_t> other{0};
    Signal other_ready, done;
    std::thread waiter([&] {
      other = CurrentTid();
      other_ready.Close();
      EXPECT_TRUE(done.WaitFor(kWait));
    });
    EXPECT_TRUE(other_ready.WaitFor(kWait));
    EXPECT_THAT(ThreadStack(other), ::testing::Not(HasSubstr("unavailable")));
    done.Close();
    waiter.join();
  }
}

TEST(ThreadStackTest, AnExitedThreadSaysSo) {
  pid_t tid = 0;
  std::thread([&] { tid = CurrentTid(); }).join();
  std::string stack = ThreadStack(tid);
  EXPECT_THAT(stack, HasSubstr("stack unavailable: "));
  if (!kTsan) {
    EXPECT_THAT(stack, HasSubstr("the thread has exited"));
  }
}

TEST(ThreadStackTest, TheCallingThreadIsNotCaptured) {
  EXPECT_THAT(ThreadStack(CurrentTid()), HasSubstr("stack unavailable: "));
}

TEST(ThreadStackTest, OffSwitch) {
  setenv("LIFECYCLE_STACKS", "0", 1);
  Signal ready, release;
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = CurrentTid();
    ready.Close();
    release.Wait();
  });
  ASSERT_TRUE(ready.WaitFor(kWait));
  std::string stack = ThreadStack(tid);
  unsetenv("LIFECYCLE_STACKS");
  if (!kTsan) {
    EXPECT_THAT(stack, HasSubstr("stack unavailable: LIFECYCLE_STACKS=0"));
  }
  release.Close();
  waiter.join();
}

TEST(ThreadStackTest, StopForReportsTheStuckWorkersStack) {
  EnableThreadStacksInReports();
  Signal release;
  FuncService stuck(
      "stuck", [&](const Context&, absl::FunctionRef<void()> started) {
        started();
        release.Wait();  // ignores its context: the bug under test
        return absl::OkStatus();
      });
  ASSERT_TRUE(stuck.Start(Context::Background()).ok());
  ASSERT_TRUE(stuck.Started().WaitFor(kWait));
  absl::Status status = stuck.StopFor(absl::Milliseconds(20));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr("'stuck':\n"));
  if (!kTsan) {
    EXPECT_THAT(status.message(), HasSubstr("lifecycle::Signal::Wait"));
  }
  release.Close();
  stuck.Stop();
}

TEST(ThreadStackTest, PendingThreadStacksCoversStartingServices) {
  Signal running;
  FuncService starting(
      "starting", [&](const Context& ctx, absl::FunctionRef<void()>) {
        running.Close();  // the worker's id is recorded before Run()
        return WaitInAFunctionWithAName(ctx);  // never signals started
      });
  ASSERT_TRUE(starting.Start(Context::Background()).ok());
  ASSERT_TRUE(running.WaitFor(kWait));
  std::string stacks = PendingThreadStacks(starting.Snapshot());
  EXPECT_THAT(stacks, HasSubstr("Stack of starting (starting), thread "));
  starting.Stop();
  EXPECT_EQ(PendingThreadStacks(starting.Snapshot()), "");
}

}  // namespace
}  // namespace lifecycle
