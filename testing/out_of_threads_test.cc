// Issue 13, item 4: what the library does when the process cannot create a
// thread. This binary replaces pthread_create with one that fails with EAGAIN
// while `fail_thread_creation` is set (and otherwise calls the next
// definition: libc's, or a sanitizer's interceptor), so every path that makes
// a thread can be made to meet that failure deterministically.
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/service.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/harness.h"

namespace {
std::atomic<bool> fail_thread_creation{false};
}  // namespace

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                              void* (*start)(void*), void* arg) {
  using Real =
      int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pthread_create"));
  if (fail_thread_creation.load()) return EAGAIN;
  return real(thread, attr, start, arg);
}

namespace lifecycle_testing {
namespace {

using lifecycle::Context;
using lifecycle::Service;
using lifecycle::ServiceState;
using ::testing::HasSubstr;

// Fails every thread creation while it lives.
class NoThreads {
 public:
  NoThreads() { fail_thread_creation = true; }
  ~NoThreads() { fail_thread_creation = false; }
};

// Runs first (gtest keeps definition order): the deadline timer thread has
// not been started in this process yet.
TEST(OutOfThreadsTest, DeadlineTimerThatCannotStartCancelsAtOnceThenRecovers) {
  {
    NoThreads no_threads;
    lifecycle::CancellableContext scope(Context::Background(),
                                        absl::Now() + absl::Hours(1));
    // Never a deadline that silently does not fire: cancelled now, saying why.
    EXPECT_TRUE(scope.context().IsCancelled());
    EXPECT_EQ(scope.context().Cause().code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(scope.context().Cause().message(),
                HasSubstr("deadline timer thread"));
  }
  // Threads are back: the next deadline starts the timer and fires.
  lifecycle::CancellableContext scope(Context::Background(),
                                      absl::Now() + absl::Milliseconds(10));
  EXPECT_TRUE(scope.context().Done().WaitFor(absl::Seconds(30)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(scope.context().Cause()));
}

// Turns thread creation off when its OnStart() runs: the services before it
// got their workers, it does not.
class TurnsThreadsOff : public lifecycle::BaseService {
 public:
  TurnsThreadsOff() : BaseService("second") {}
  ~TurnsThreadsOff() override { StopForDestruction(); }

 private:
  absl::Status OnStart(const Context&) override {
    fail_thread_creation = true;
    return absl::OkStatus();
  }
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  }
};

TEST(OutOfThreadsTest, StartAllNamesTheServiceAndStopsTheOthers) {
  FakeService first("first");
  TurnsThreadsOff second;
  FakeService third("third");
  std::vector<Service*> services = {&first, &second, &third};
  absl::Status status = lifecycle::StartAll(services, Context::Background());
  fail_thread_creation = false;
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("service 'second' failed to start"));
  EXPECT_THAT(status.message(), HasSubstr("cannot create the worker thread"));
  // The rollback could not make helper threads: it stopped them itself.
  EXPECT_EQ(first.Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(third.start_calls(), 0);
}

TEST(OutOfThreadsTest, StopAllParallelFallsBackToTheCallingThread) {
  std::vector<std::unique_ptr<FakeService>> fakes;
  std::vector<Service*> services;
  for (int i = 0; i < 5; ++i) {
    fakes.push_back(std::make_unique<FakeService>(absl::StrCat("fake", i)));
    ASSERT_TRUE(fakes.back()->Start(Context::Background()).ok());
    services.push_back(fakes.back().get());
  }
  {
    NoThreads no_threads;
    lifecycle::StopAllParallel(services);  // used to throw std::system_error
  }
  for (const auto& fake : fakes) {
    EXPECT_EQ(fake->Snapshot().state, ServiceState::kStopped);
  }
}

TEST(OutOfThreadsTest, HarnessStopsOnTheCallingThread) {
  FakeService fake("fake");
  {
    StartStopHarness harness({&fake});
    ASSERT_TRUE(harness.StartAll());
    fail_thread_creation = true;
  }  // ~StartStopHarness used to std::terminate here
  fail_thread_creation = false;
  EXPECT_EQ(fake.Snapshot().state, ServiceState::kStopped);
}

TEST(OutOfThreadsTest, HarnessStartReportsTheFailureByName) {
  FakeService fake("fake");
  StartStopHarness harness({&fake});
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  {
    NoThreads no_threads;
    result = harness.StartAll();  // starts on this thread instead
  }
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(), HasSubstr("service 'fake' failed to start"));
}

}  // namespace
}  // namespace lifecycle_testing
