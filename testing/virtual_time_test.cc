#include "lifecycle/testing/virtual_time.h"

#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/context.h"
#include "lifecycle/signal.h"
#include "lifecycle/startup_report.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/wait.h"
#include "lifecycle/thread.h"

namespace lifecycle_testing {
namespace {

using ::lifecycle::Context;
using ::lifecycle::Signal;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using RunBody =
    std::function<absl::Status(const Context&, absl::FunctionRef<void()>)>;

// A service whose run a test writes in place.
class Scripted : public lifecycle::BaseService {
 public:
  Scripted(std::string name, RunBody body)
      : BaseService(std::move(name)), body_(std::move(body)) {}
  ~Scripted() override { StopForDestruction(); }

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    return body_(ctx, started);
  }
  RunBody body_;
};

// A composite whose children a test adds.
class Group : public lifecycle::CompositeService {
 public:
  explicit Group(std::string name) : CompositeService(std::move(name)) {}
  ~Group() override { StopForDestruction(); }
  using CompositeService::AddChildOrDie;
};

// Ticks every `interval`, counting.
RunBody Ticker(absl::Duration interval, std::atomic<int>* ticks) {
  return [=](const Context& ctx, absl::FunctionRef<void()> started) {
    started();
    while (!ctx.Done().WaitFor(interval)) ++*ticks;
    return absl::OkStatus();
  };
}

// Virtual instants, as offsets from kStart, of what happened, in order.
class Log {
 public:
  void Add(const std::string& what) {
    absl::MutexLock lock(&mu_);
    events_.push_back(absl::StrCat(
        what, "@",
        absl::FormatDuration(lifecycle::Now() - VirtualTime::kStart)));
  }
  std::vector<std::string> Events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> events_;
};

TEST(VirtualTimeTest, AnHourOfOneSecondTicksTakesNoRealHour) {
  VirtualTime time;
  std::atomic<int> ticks{0};
  Scripted ticker("ticker", Ticker(absl::Seconds(1), &ticks));
  ASSERT_TRUE(ticker.Start(time.context()).ok());
  ASSERT_TRUE(time.AdvanceBy(absl::Hours(1)));
  EXPECT_EQ(ticks, 3600);
  EXPECT_EQ(time.Now(), VirtualTime::kStart + absl::Hours(1));
  ticker.Stop();
}

// The CPUs the calling thread may run on.
int AllowedCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  return CPU_COUNT(&set);
}

// A service that records how many CPUs its worker may run on.
RunBody RecordCpus(std::atomic<int>* cpus) {
  return [=](const Context& ctx, absl::FunctionRef<void()> started) {
    *cpus = AllowedCpus();
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  };
}

TEST(VirtualTimeTest, ItsThreadsShareOneCpuUnlessToldOtherwise) {
  const int all = AllowedCpus();
  if (all < 2) GTEST_SKIP() << "one CPU: nothing to pin";
  {
    VirtualTime time;
    EXPECT_EQ(AllowedCpus(), 1) << "the test thread, while time lives";
    std::atomic<int> cpus{0};
    Scripted worker("worker", RecordCpus(&cpus));
    ASSERT_TRUE(worker.Start(time.context()).ok());
    ASSERT_TRUE(time.AdvanceUntil(worker.Started(), absl::Seconds(1)));
    EXPECT_EQ(cpus, 1);
    worker.Stop();

    time.UseAllCpus();
    EXPECT_EQ(AllowedCpus(), all);
    ASSERT_TRUE(worker.Start(time.context()).ok());
    ASSERT_TRUE(time.AdvanceUntil(worker.Started(), absl::Seconds(1)));
    EXPECT_EQ(cpus, all);
    worker.Stop();
  }
  {
    VirtualTime time;
    EXPECT_EQ(AllowedCpus(), 1);
  }
  EXPECT_EQ(AllowedCpus(), all) << "given back when the time is destroyed";
}

TEST(VirtualTimeTest, AnEnrolledThreadSleepsAnHourOfVirtualTime) {
  VirtualTime time;
  absl::Time woke = absl::InfinitePast();
  lifecycle::Thread sleeper(time.context(), "sleeper", [&] {
    lifecycle::SleepFor(absl::Hours(1));
    woke = lifecycle::Now();
  });
  ASSERT_TRUE(time.AdvanceBy(absl::Hours(1)));
  ASSERT_TRUE(WaitOrTimeout(sleeper.Done()));
  sleeper.Join();
  EXPECT_EQ(woke, VirtualTime::kStart + absl::Hours(1));
}

TEST(VirtualTimeTest, EnrolledThreadsWakeInDeadlineOrder) {
  VirtualTime time;
  Log log;
  std::vector<std::unique_ptr<lifecycle::Thread>> pool;
  for (int seconds : {3, 1, 2}) {
    std::string name = absl::StrCat("worker-", seconds);
    pool.push_back(std::make_unique<lifecycle::Thread>(
        time.context(), name, [&log, name, seconds] {
          lifecycle::SleepFor(absl::Seconds(seconds));
          log.Add(name);
        }));
  }
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(5)));
  for (auto& thread : pool) thread->Join();
  EXPECT_THAT(log.Events(),
              ElementsAre("worker-1@1s", "worker-2@2s", "worker-3@3s"));
}

TEST(VirtualTimeTest, ADeadlockNamesTheEnrolledThread) {
  VirtualTime time;
  Signal release;
  lifecycle::Thread stuck(time.context(), "stuck-poller",
                          [&] { release.Wait(); });
  ::testing::AssertionResult advanced = time.AdvanceToNextDeadline();
  EXPECT_FALSE(advanced);
  EXPECT_THAT(advanced.message(), HasSubstr("stuck-poller"));
  release.Close();
  stuck.Join();
}

TEST(VirtualTimeTest, AJoinInVirtualTimeIsALibraryWait) {
  VirtualTime time;
  absl::Time joined = absl::InfinitePast();
  lifecycle::Thread parent(time.context(), "parent", [&] {
    lifecycle::Thread child(time.context(), "child",
                            [] { lifecycle::SleepFor(absl::Minutes(1)); });
    child.Join();  // blocked, not busy: time can move
    joined = lifecycle::Now();
  });
  ASSERT_TRUE(time.AdvanceUntil(parent.Done(), absl::Minutes(2)));
  parent.Join();
  EXPECT_EQ(joined, VirtualTime::kStart + absl::Minutes(1));
}

TEST(SleepForTest, OutsideVirtualTimeItSleepsOnTheSystemClock) {
  absl::Time before = absl::Now();
  lifecycle::SleepFor(absl::Milliseconds(2));
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(2));
  lifecycle::SleepFor(absl::ZeroDuration());  // returns at once
  lifecycle::SleepFor(-absl::Seconds(1));
  bool ran = false;
  lifecycle::Thread plain(Context::Background(), "plain", [&] { ran = true; });
  plain.Join();
  plain.Join();  // twice: nothing
  EXPECT_TRUE(ran);
}

TEST(VirtualTimeTest, WorkerThreadsReadVirtualNowAndTheTestThreadDoesNot) {
  VirtualTime time;
  absl::Time seen = absl::InfinitePast();
  Scripted reader("reader", [&](const Context& ctx, auto started) {
    seen = lifecycle::Now();
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(reader.Start(time.context()).ok());
  ASSERT_TRUE(WaitOrTimeout(reader.Started()));
  EXPECT_EQ(seen, VirtualTime::kStart);
  EXPECT_GT(lifecycle::Now(), absl::FromUnixSeconds(1700000000));
  EXPECT_LT(lifecycle::Now(), VirtualTime::kStart);  // the system clock
  reader.Stop();
}

TEST(VirtualTimeTest, DeadlinesFireInOrderTiesByServicePath) {
  VirtualTime time;
  Log log;
  auto every = [&log](absl::Duration interval, std::string name) {
    return [&log, interval, name](const Context& ctx, auto started) {
      started();
      while (!ctx.Done().WaitFor(interval)) log.Add(name);
      return absl::OkStatus();
    };
  };
  // At 6s both are due: z's wait began at 3s, a's at 4s, yet a goes first.
  Scripted z("z", every(absl::Seconds(3), "z"));
  Scripted a("a", every(absl::Seconds(2), "a"));
  ASSERT_TRUE(z.Start(time.context()).ok());
  ASSERT_TRUE(a.Start(time.context()).ok());
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(6)));
  EXPECT_THAT(log.Events(),
              ElementsAre("a@2s", "z@3s", "a@4s", "a@6s", "z@6s"));
  a.Stop();
  z.Stop();
}

TEST(VirtualTimeTest, StartupDurationAndTimestampsAreVirtual) {
  VirtualTime time;
  Scripted slow("slow", [](const Context& ctx, auto started) {
    if (ctx.Done().WaitFor(absl::Seconds(5))) return ctx.Cause();
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(slow.Start(time.context()).ok());
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(4)));
  EXPECT_FALSE(slow.Started().IsClosed());
  ASSERT_TRUE(time.AdvanceUntil(slow.Started(), absl::Minutes(1)));
  EXPECT_EQ(time.Elapsed(), absl::Seconds(5));
  lifecycle::ServiceSnapshot s = slow.Snapshot();
  EXPECT_EQ(s.start_began, VirtualTime::kStart);
  EXPECT_EQ(s.startup_duration, absl::Seconds(5));
  EXPECT_EQ(s.since, VirtualTime::kStart + absl::Seconds(5));
  slow.Stop();
}

TEST(VirtualTimeTest, AStartThatTakesNoVirtualTimeHasItsTimeline) {
  VirtualTime time;
  Scripted quick("quick", [](const Context& ctx, auto started) {
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  Group group("group");
  group.AddChildOrDie(quick);
  StartStopHarness::Options options;
  options.context = time.context();
  StartStopHarness harness({&group}, options);
  ASSERT_TRUE(harness.StartAll());
  lifecycle::ServiceSnapshot s = group.Snapshot();
  EXPECT_TRUE(s.startup_completed);
  EXPECT_EQ(s.startup_duration, absl::ZeroDuration());
  EXPECT_EQ(lifecycle::CriticalPathText(s),
            "group 0: group @0 +0 → group/quick @0 +0");
  EXPECT_THAT(lifecycle::ToTraceEventJson({s}),
              HasSubstr("\"name\":\"group/quick\",\"cat\":\"start\""));
  EXPECT_TRUE(harness.StopAll());
}

TEST(VirtualTimeTest, ContextDeadlinesAreVirtual) {
  VirtualTime time;
  lifecycle::CancellableContext scope(time.context(),
                                      VirtualTime::kStart + absl::Seconds(10));
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(9)));
  EXPECT_FALSE(scope.context().IsCancelled());
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(1)));
  EXPECT_TRUE(scope.context().IsCancelled());
  EXPECT_TRUE(absl::IsDeadlineExceeded(scope.context().Cause()));

  // A deadline already past in virtual time is exceeded at once.
  lifecycle::CancellableContext past(time.context(), time.Now());
  EXPECT_TRUE(absl::IsDeadlineExceeded(past.context().Cause()));
  EXPECT_EQ(lifecycle::PendingDeadlines(), 0u);  // not the real timer's
}

TEST(VirtualTimeTest, AServiceWaitingOnADeadlineContextWakesWhenItFires) {
  VirtualTime time;
  Log log;
  Scripted waiter("waiter", [&](const Context& ctx, auto started) {
    started();
    lifecycle::CancellableContext call(ctx,
                                       lifecycle::Now() + absl::Minutes(1));
    call.context().Done().Wait();
    log.Add(absl::StatusCodeToString(call.context().Cause().code()));
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(waiter.Start(time.context()).ok());
  ASSERT_TRUE(time.AdvanceToNextDeadline());
  EXPECT_THAT(log.Events(), ElementsAre("DEADLINE_EXCEEDED@1m"));
  waiter.Stop();
}

TEST(VirtualTimeTest, ChildrenOfACompositeLiveInItsTime) {
  VirtualTime time;
  std::atomic<int> fast{0}, slow{0};
  Scripted f("fast", Ticker(absl::Minutes(1), &fast));
  Scripted s("slow", Ticker(absl::Minutes(10), &slow));
  Group group("group");
  group.AddChildOrDie(f);
  group.AddChildOrDie(s);
  StartStopHarness::Options options;
  options.context = time.context();
  StartStopHarness harness({&group}, options);
  ASSERT_TRUE(harness.StartAll());
  ASSERT_TRUE(time.AdvanceBy(absl::Hours(1)));
  EXPECT_EQ(fast, 60);
  EXPECT_EQ(slow, 6);
  EXPECT_TRUE(harness.StopAll());
}

TEST(VirtualTimeTest, ASignalFromTheTestWakesAThreadAndIdleWaitsForIt) {
  VirtualTime time;
  Signal go;
  std::atomic<int> after{0};
  Scripted waiter("waiter", [&](const Context& ctx, auto started) {
    started();
    go.Wait();
    // Busy for a while after waking: WaitUntilIdle() must wait for this.
    for (int i = 0; i < 1000; ++i) ++after;
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(waiter.Start(time.context()).ok());
  ASSERT_TRUE(time.WaitUntilIdle());
  EXPECT_EQ(after, 0);
  EXPECT_THAT(
      time.DescribeThreads(),
      ::testing::MatchesRegex("1 thread in virtual time \\(now \\+0s\\):\n"
                              "  waiter \\(thread [0-9]+\\): blocked, no "
                              "deadline\n"));
  go.Close();
  ASSERT_TRUE(time.WaitUntilIdle());
  EXPECT_EQ(after, 1000);
  waiter.Stop();
}

TEST(VirtualTimeTest, ADeadlockIsReportedWithEachThreadsPathAndStack) {
  VirtualTime time;
  Signal never;
  Scripted stuck("stuck", [&](const Context& ctx, auto started) {
    started();
    Signal waits[] = {never, ctx.Done()};
    lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
    return absl::OkStatus();
  });
  ASSERT_TRUE(stuck.Start(time.context()).ok());
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(time.AdvanceToNextDeadline()),
      "VirtualTime: deadlock: every thread in virtual time is blocked with no "
      "deadline pending, so nothing can happen (virtual time +0s) while "
      "advancing to the next deadline\n1 thread in virtual time (now +0s):\n"
      "  stuck (thread ");
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(time.AdvanceUntil(never, absl::Hours(1))),
                          "stuck (thread ");
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(time.AdvanceUntil(never, absl::Hours(1))),
                          "): blocked, no deadline\nthread ");
  stuck.Stop();
}

TEST(VirtualTimeTest, AThreadInAPlainMutexIsReportedBusyWithinTheTimeout) {
  VirtualTime time(absl::Milliseconds(300));
  std::mutex held;
  std::unique_lock<std::mutex> hold(held);
  Scripted locker("locker", [&](const Context& ctx, auto started) {
    started();
    { std::lock_guard<std::mutex> lock(held); }
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(locker.Start(time.context()).ok());
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(time.AdvanceBy(absl::Seconds(1))),
      "VirtualTime: threads still busy after 300ms of real time, so virtual "
      "time cannot move (virtual time +0s). A thread blocked outside this "
      "library's waits (a std::mutex, I/O, a sleep) counts as busy.\n1 thread "
      "in virtual time");
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(time.WaitUntilIdle()), "locker (thread ");
  EXPECT_EQ(time.Now(), VirtualTime::kStart);  // it did not move
  hold.unlock();
  ASSERT_TRUE(time.WaitUntilIdle());
  locker.Stop();
}

TEST(VirtualTimeTest, AdvanceUntilStopsAtItsLimit) {
  VirtualTime time;
  std::atomic<int> ticks{0};
  Scripted ticker("ticker", Ticker(absl::Minutes(1), &ticks));
  ASSERT_TRUE(ticker.Start(time.context()).ok());
  Signal never;
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(time.AdvanceUntil(never, absl::Minutes(90))),
      "VirtualTime: signal not closed after advancing 1h30m of virtual time "
      "(now +1h30m; next deadline +1h31m)\n1 thread in virtual time (now "
      "+1h30m):\n  ticker (thread ");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(time.AdvanceUntil(never, absl::ZeroDuration())),
      "): blocked until +1h31m\n");
  EXPECT_EQ(ticks, 90);

  Signal done;
  Scripted closer("closer", [&](const Context& ctx, auto started) {
    started();
    if (!ctx.Done().WaitFor(absl::Minutes(5))) done.Close();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(closer.Start(time.context()).ok());
  ASSERT_TRUE(time.AdvanceUntil(done, absl::Hours(1)));
  EXPECT_EQ(time.Elapsed(), absl::Minutes(95));
  closer.Stop();
  ticker.Stop();
}

TEST(VirtualTimeTest, AdvancingFromAThreadInVirtualTimeFailsClearly) {
  VirtualTime time;
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  Scripted advancer("advancer", [&](const Context& ctx, auto started) {
    result = time.AdvanceBy(absl::Seconds(1));
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(advancer.Start(time.context()).ok());
  ASSERT_TRUE(WaitOrTimeout(advancer.Started()));
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(),
              HasSubstr("VirtualTime: advanced from a thread that lives in "
                        "it (advancer): it would wait for itself"));
  advancer.Stop();
}

TEST(VirtualTimeTest, DestroyingItEndsTimeSoCancelledServicesEnd) {
  auto time = std::make_unique<VirtualTime>();
  std::atomic<int> ticks{0};
  Scripted ticker("ticker", Ticker(absl::Hours(1), &ticks));
  // Checks its context only between waits on a signal nobody closes: only
  // the end of time lets it see the cancellation.
  Scripted poller("poller", [](const Context& ctx, auto started) {
    started();
    while (!ctx.IsCancelled()) Signal().WaitFor(absl::Hours(1));
    return absl::OkStatus();
  });
  ASSERT_TRUE(ticker.Start(time->context()).ok());
  ASSERT_TRUE(poller.Start(time->context()).ok());
  time.reset();  // before the services: no failure, as both end
  EXPECT_TRUE(ticker.Stopped().IsClosed());
  EXPECT_TRUE(poller.Stopped().IsClosed());
  EXPECT_EQ(ticks, 0);
}

TEST(VirtualTimeTest, DestroyingItWithAThreadThatWillNotEndFails) {
  auto time = std::make_unique<VirtualTime>(absl::Milliseconds(200));
  Signal never;
  Scripted deaf("deaf", [&](const Context&, auto started) {
    started();
    never.Wait();  // ignores its context
    return absl::OkStatus();
  });
  ASSERT_TRUE(deaf.Start(time->context()).ok());
  ASSERT_TRUE(WaitOrTimeout(deaf.Started()));
  EXPECT_NONFATAL_FAILURE(
      time.reset(),
      "VirtualTime destroyed while threads still live in it, after cancelling "
      "its context and ending its time, and waiting 200ms for them: stop their "
      "services before it goes (they wait on something else than their "
      "context).\n1 thread in virtual time (now +0s):\n  deaf (thread ");
  never.Close();
  deaf.Stop();
}

TEST(VirtualTimeTest, ANonPositiveIdleTimeoutOnlyChecks) {
  VirtualTime time(-absl::Seconds(1));
  ASSERT_TRUE(time.WaitUntilIdle());  // nothing lives in it: idle
  std::mutex held;
  std::unique_lock<std::mutex> hold(held);
  Scripted locker("locker", [&](const Context& ctx, auto started) {
    started();
    { std::lock_guard<std::mutex> lock(held); }
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(locker.Start(time.context()).ok());
  ASSERT_TRUE(WaitOrTimeout(locker.Started()));  // it is in virtual time
  // Busy, and not waited for: the report comes without a wait.
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(time.WaitUntilIdle()), "locker (thread ");
  hold.unlock();
  locker.Stop();
}

TEST(VirtualTimeTest, TheInfiniteFutureIsRefusedAndWaitsWithoutDeadlineHold) {
  VirtualTime time;
  std::atomic<int> ticks{0};
  std::atomic<bool> ended_unasked{false};
  Scripted ticker("ticker", Ticker(absl::Seconds(1), &ticks));
  Scripted waiter("waiter", [&](const Context& ctx, auto started) {
    started();
    ctx.Done().Wait();  // no deadline: only a stop ends it
    ended_unasked = !ctx.IsCancelled();
    return ctx.Cause();
  });
  ASSERT_TRUE(ticker.Start(time.context()).ok());
  ASSERT_TRUE(waiter.Start(time.context()).ok());
  ASSERT_TRUE(time.WaitUntilIdle());
  const absl::Duration huge =
      absl::Seconds(std::numeric_limits<int64_t>::max());
  for (::testing::AssertionResult result :
       {time.AdvanceBy(absl::InfiniteDuration()), time.AdvanceBy(huge),
        time.AdvanceTo(absl::InfiniteFuture())}) {
    EXPECT_FALSE(result);
    EXPECT_THAT(result.message(),
                HasSubstr("cannot advance to the infinite future"));
  }
  EXPECT_EQ(time.Elapsed(), absl::ZeroDuration());
  EXPECT_EQ(ticks, 0);
  EXPECT_EQ(waiter.Snapshot().state, lifecycle::ServiceState::kStarted);
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(3)));
  EXPECT_EQ(ticks, 3);
  waiter.Stop();
  EXPECT_FALSE(ended_unasked);
  ticker.Stop();
}

TEST(VirtualTimeTest, AnAdvanceFiresAtMostItsLimitOfDeadlines) {
  VirtualTime time;
  EXPECT_EQ(time.max_deadlines_per_advance(), 1000000);
  time.set_max_deadlines_per_advance(100);
  std::atomic<int> ticks{0};
  Scripted ticker("ticker", Ticker(absl::Milliseconds(1), &ticks));
  ASSERT_TRUE(ticker.Start(time.context()).ok());
  ::testing::AssertionResult result = time.AdvanceBy(absl::Hours(24 * 365));
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(),
              HasSubstr("VirtualTime: fired 100 deadlines in one advance and "
                        "more are due (virtual time +100ms)"));
  EXPECT_EQ(ticks, 100);
  // The same bound holds for an advance until a signal.
  lifecycle::Signal never;
  result = time.AdvanceUntil(never, absl::InfiniteDuration());
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(), HasSubstr("fired 100 deadlines"));
  ticker.Stop();
}

TEST(VirtualTimeTest, NegativeOrPastAdvancesDoNothing) {
  VirtualTime time;
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(5)));
  ASSERT_TRUE(time.AdvanceBy(-absl::Seconds(3)));
  ASSERT_TRUE(time.AdvanceTo(VirtualTime::kStart));
  EXPECT_EQ(time.Elapsed(), absl::Seconds(5));
}

TEST(VirtualTimeTest, RestartBackoffIsVirtual) {
  VirtualTime time;
  std::atomic<int> runs{0};
  Scripted flaky("flaky", [&](const Context& ctx, auto started) {
    started();
    ++runs;
    // Dies a minute into each run.
    if (ctx.Done().WaitFor(absl::Minutes(1))) return absl::OkStatus();
    return absl::InternalError("died");
  });
  Group group("group");
  lifecycle::Supervision restart =
      lifecycle::Supervision::Restart(/*max_restarts=*/10,
                                      /*period=*/absl::Hours(1))
          .WithBackoff(absl::Seconds(1));
  group.AddChildOrDie(flaky, restart);
  ASSERT_TRUE(group.Start(time.context()).ok());
  ASSERT_TRUE(WaitOrTimeout(group.Started()));
  // Run 1 dies at 1m; restarted 1s later, it dies at 2m1s; after 2s more...
  ASSERT_TRUE(time.AdvanceBy(absl::Minutes(1)));
  EXPECT_EQ(runs, 1);
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(1)));
  EXPECT_EQ(runs, 2);
  ASSERT_TRUE(time.AdvanceTo(VirtualTime::kStart + absl::Minutes(2) +
                             absl::Seconds(2)));
  EXPECT_EQ(runs, 2);
  ASSERT_TRUE(time.AdvanceBy(absl::Seconds(1)));
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(group.Snapshot().children[0].restart_count, 2);
  group.Stop();
}

}  // namespace
}  // namespace lifecycle_testing

namespace lifecycle_testing {
namespace {

// --- VirtualTime::Run: the test body in virtual time -------------------------

TEST(VirtualTimeRunTest, RestartsWithBackoffAndADrainTakeNoAdvanceCall) {
  VirtualTime time;
  Group group("group");
  std::atomic<int> runs{0};
  // Crashes in each of its first 3 runs once the group is up; restarted
  // after 30 s each time.
  Scripted flaky("flaky",
                 [&](const Context& ctx, absl::FunctionRef<void()> started) {
                   started();
                   if (++runs <= 3) {
                     group.Started().Wait();
                     return absl::UnavailableError("crash");
                   }
                   ctx.Done().Wait();
                   return absl::OkStatus();
                 });
  // Its stop takes a 5 s drain.
  Scripted drainer("drainer",
                   [](const Context& ctx, absl::FunctionRef<void()> started) {
                     started();
                     ctx.Done().Wait();
                     lifecycle::SleepFor(absl::Seconds(5));
                     return absl::OkStatus();
                   });
  group.AddChildOrDie(flaky,
                      lifecycle::Supervision::Restart(5, absl::Minutes(10))
                          .WithBackoff(absl::Seconds(30), absl::Seconds(30)));
  StartStopHarness::Options options;
  options.context = time.context();
  options.start_timeout = absl::Minutes(1);  // of virtual time
  options.stop_timeout = absl::Minutes(1);
  StartStopHarness harness({&group, &drainer}, options);
  ASSERT_TRUE(time.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    EXPECT_TRUE(WaitSnapshotOrTimeout(flaky, HasRestarted(3), absl::Hours(1)));
    EXPECT_TRUE(harness.StopAll());
  }));
  EXPECT_EQ(runs, 4);
  // Three backoffs of 30 s, then the drain.
  EXPECT_EQ(time.Elapsed(), absl::Seconds(95));
}

TEST(VirtualTimeRunTest, AWaitInTheBodyTimesOutInVirtualTime) {
  VirtualTime time;
  Signal never;
  EXPECT_NONFATAL_FAILURE_ON_ALL_THREADS(
      {
        ASSERT_TRUE(
            time.Run([&] { WaitOrTimeout(never, {}, absl::Hours(1)); }));
      },
      "signal not closed after 1h");
  EXPECT_EQ(time.Elapsed(), absl::Hours(1));
}

TEST(VirtualTimeRunTest, APeriodicServiceCannotKeepItRunningForever) {
  VirtualTime time;
  time.set_max_deadlines_per_advance(100);
  std::atomic<int> ticks{0};
  Scripted ticker("ticker", Ticker(absl::Seconds(1), &ticks));
  ASSERT_TRUE(ticker.Start(time.context()).ok());
  Signal never;
  ::testing::AssertionResult ran = ::testing::AssertionSuccess();
  EXPECT_NONFATAL_FAILURE_ON_ALL_THREADS(
      ran = time.Run([&] { WaitOrTimeout(never, {}, absl::Hours(1)); }),
      "signal not closed");
  EXPECT_FALSE(ran);
  EXPECT_THAT(ran.message(), HasSubstr("fired 100 deadlines"));
  EXPECT_LT(ticks, 200);
  ticker.Stop();
}

TEST(VirtualTimeRunTest, RunFromAThreadInTheTimeFails) {
  VirtualTime time;
  ::testing::AssertionResult nested = ::testing::AssertionSuccess();
  ASSERT_TRUE(time.Run([&] { nested = time.Run([] {}); }));
  EXPECT_FALSE(nested);
  EXPECT_THAT(nested.message(), HasSubstr("test body"));
}

// --- Round 3: where virtual time meets the rest ----------------------------------

TEST(VirtualTimeRunTest, AnExceptionFromTheBodyIsThrownByRun) {
  VirtualTime time;
  EXPECT_THROW(
      {
        (void)time.Run([] {
          lifecycle::SleepFor(absl::Seconds(1));  // virtual: Elapsed() shows it
          throw std::runtime_error("boom");
        });
      },
      std::runtime_error);
  EXPECT_EQ(time.Elapsed(), absl::Seconds(1));
  // The time goes on working.
  ASSERT_TRUE(time.Run([] {
    lifecycle::SleepFor(absl::Seconds(1));  // virtual: the time still moves
  }));
  EXPECT_EQ(time.Elapsed(), absl::Seconds(2));
}

// A service whose stop drains for 5 s of virtual time.
RunBody Drainer() {
  return [](const Context& ctx, absl::FunctionRef<void()> started) {
    started();
    ctx.Done().Wait();
    lifecycle::SleepFor(absl::Seconds(5));  // the virtual drain under test
    return absl::OkStatus();
  };
}

TEST(VirtualTimeRunTest, AHarnessDestroyedAfterTheBodyStopsInVirtualTime) {
  VirtualTime time;  // declared first, as the README shows
  Scripted drainer("drainer", Drainer());
  {
    StartStopHarness::Options options;
    options.context = time.context();
    options.stop_timeout = absl::Minutes(1);  // of virtual time
    StartStopHarness harness({&drainer}, options);
    // The body returns without StopAll(), as a failed ASSERT makes it do.
    ASSERT_TRUE(time.Run([&] { ASSERT_TRUE(harness.StartAll()); }));
  }  // the harness stops the drainer here, outside Run()
  EXPECT_EQ(time.Elapsed(), absl::Seconds(5));
  EXPECT_TRUE(drainer.Stopped().IsClosed());
  EXPECT_TRUE(drainer.Snapshot().last_failure.ok());
}

TEST(VirtualTimeRunTest, StopAllOutsideRunMovesTheTimeItNeeds) {
  VirtualTime time;
  Scripted drainer("drainer", Drainer());
  StartStopHarness::Options options;
  options.context = time.context();
  options.stop_timeout = absl::Minutes(1);
  StartStopHarness harness({&drainer}, options);
  ASSERT_TRUE(time.Run([&] { ASSERT_TRUE(harness.StartAll()); }));
  EXPECT_TRUE(harness.StopAll());
  EXPECT_EQ(time.Elapsed(), absl::Seconds(5));
}

TEST(VirtualTimeRunTest, AStopOutsideRunThatCannotEndIsReportedInVirtualTime) {
  VirtualTime time;
  Signal never;
  // Its stop waits on a signal nobody closes: the harness's stop timeout
  // passes in virtual time, and the report names it.
  Scripted stuck("stuck", [&](const Context& ctx, auto started) {
    started();
    ctx.Done().Wait();
    never.Wait();
    return absl::OkStatus();
  });
  StartStopHarness::Options options;
  options.context = time.context();
  options.stop_timeout = absl::Minutes(1);
  StartStopHarness harness({&stuck}, options);
  ASSERT_TRUE(time.Run([&] { ASSERT_TRUE(harness.StartAll()); }));
  HarnessResult stopped = harness.StopAll();
  EXPECT_FALSE(stopped);
  EXPECT_THAT(stopped.message(), HasSubstr("stuck"));
  EXPECT_EQ(time.Elapsed(), absl::Minutes(1));
  never.Close();
  stuck.Stop();
}

TEST(VirtualTimeRunTest, WaitUntilIdleInTheBodyWaitsForEveryOtherThread) {
  VirtualTime time;
  std::atomic<int> work{0};
  Scripted worker("worker", [&](const Context& ctx, auto started) {
    started();
    for (int i = 0; i < 100000; ++i) work.fetch_add(1);
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  ASSERT_TRUE(time.Run([&] {
    ASSERT_TRUE(worker.Start(time.context()).ok());
    ASSERT_TRUE(time.WaitUntilIdle());  // Go's synctest.Wait()
    EXPECT_EQ(work.load(), 100000);
    EXPECT_THAT(time.DescribeThreads(), HasSubstr("worker (thread"));
    worker.Stop();
  }));
  EXPECT_EQ(time.Elapsed(), absl::ZeroDuration());
}

// The CPUs the calling thread may run on, as /proc shows them.
std::string CpusOfThisThread() {
  std::ifstream in("/proc/thread-self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "Cpus_allowed_list:")) return line;
  }
  return "";
}

// The library's deadline-timer thread lives as long as the process: made
// while a VirtualTime pins the thread that made it, it still takes the
// process's CPUs. Run in a fresh process (a death test's "threadsafe" child),
// where no timer thread exists yet.
TEST(VirtualTimeDeathTest, ATimerThreadMadeDuringATimeKeepsTheProcessCpus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const std::string before = CpusOfThisThread();
        VirtualTime time;
        // The first deadline in real time makes the timer thread, from this
        // pinned thread.
        lifecycle::CancellableContext deadline(lifecycle::Context::Background(),
                                               absl::Now() + absl::Hours(1));
        // Another thread's start: no signal says it, so a bounded look.
        for (int i = 0; i < 1000 && lifecycle::DeadlineTimerThreadId() == 0;
             ++i) {
          Signal().WaitFor(absl::Milliseconds(1));
        }
        std::ifstream in(absl::StrCat(
            "/proc/self/task/", lifecycle::DeadlineTimerThreadId(), "/status"));
        std::string line;
        std::string timer;
        while (std::getline(in, line)) {
          if (absl::StartsWith(line, "Cpus_allowed_list:")) timer = line;
        }
        std::fprintf(stderr, "timer: %s; process: %s\n", timer.c_str(),
                     before.c_str());
        std::_Exit(!timer.empty() && timer == before ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "timer: Cpus_allowed_list");
}

TEST(VirtualTimeTest, TwoTimesWhoseLivesOverlapLeaveTheTestThreadItsCpus) {
  const std::string before = CpusOfThisThread();
  auto first = std::make_unique<VirtualTime>();
  auto second = std::make_unique<VirtualTime>();
  first.reset();
  second.reset();
  EXPECT_EQ(CpusOfThisThread(), before);
}

TEST(VirtualTimeRunDeathTest, ABodyBlockedForGoodIsNamedAndStopsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        VirtualTime time(absl::Milliseconds(200));
        Signal never;
        (void)time.Run([&] { never.Wait(); });
      },
      "test body \\(thread [0-9]+\\): blocked, no deadline");
}

}  // namespace
}  // namespace lifecycle_testing
