// -----------------------------------------------------------------------------
// virtual_time.h
// -----------------------------------------------------------------------------
//
// `VirtualTime` runs services on a clock the test moves, so an hour of their
// periodic work is tested in milliseconds, the same way every run (the idea of
// Go's `testing/synctest`, for services that run on their own threads).
//
// A test makes a `VirtualTime` and starts its services with its `context()`
// (or a context made from it, such as a `StartStopHarness` given it in its
// options). From then on the worker threads of those services, and of every
// service they start through this library, live in virtual time:
//
//   * `lifecycle::Now()` (clock.h) reads virtual time, which begins at
//     `VirtualTime::kStart` and moves only when the test advances it;
//   * a library wait with a timeout or deadline (`Signal::WaitFor`,
//     `WaitUntil`, `WaitAnyUntil`, `ctx.Done().WaitFor(...)`), a context
//     deadline and a supervisor's restart backoff end when virtual time
//     reaches them;
//   * a thread is *blocked* while it waits in one of those waits (or in a
//     plain `Signal::Wait()`, `Stop()`...), and *busy* otherwise — running,
//     or blocked on something this library cannot see (a `std::mutex`, I/O,
//     `absl::SleepFor`).
//
// The test moves time: `AdvanceBy(d)` / `AdvanceTo(t)` fire every wait and
// deadline due on the way one at a time, in deadline order (ties in the order
// of the waiting threads' service paths), and before each step and after the
// last wait until every thread is blocked again (`WaitUntilIdle()`). Only the
// thread a step woke (and what it wakes) runs between two steps, so a test
// sees the same interleaving every run. `AdvanceToNextDeadline()` jumps to the
// next pending deadline; `AdvanceUntil(signal, limit)` advances until a signal
// closes.
//
// Failures say why, instead of hanging:
//
//   * a deadlock: every thread is blocked, no deadline is pending, and the
//     test waits for progress (`AdvanceToNextDeadline`, `AdvanceUntil`):
//
//       VirtualTime: deadlock: every thread in virtual time is blocked with
//       no deadline pending, so nothing can happen (virtual time +1h) while
//       advancing until a signal closes
//       1 thread in virtual time (now +1h):
//         stuck (thread 4242): blocked, no deadline
//       thread 4242 'stuck':
//         #0 ...
//
//   * a busy thread: a thread that stays busy for `WaitUntilIdle()`'s timeout
//     (`WaitTimeout()`), named with its stack ("busy (running, or blocked
//     outside this library's waits)").
//
// Example:
//
//   lifecycle_testing::VirtualTime time;
//   Cleaner cleaner;  // clock.h's example: cleans every hour
//   ASSERT_TRUE(cleaner.Start(time.context()).ok());
//   ASSERT_TRUE(time.AdvanceBy(absl::Hours(3)));
//   EXPECT_EQ(cleaner.runs(), 3);
//   cleaner.Stop();
//
// Or let the test body itself live in virtual time, and time move on its own
// whenever every thread is blocked: `Run(body)`, with the harness's context
// `time.context()`:
//
//   ASSERT_TRUE(time.Run([&] {
//     ASSERT_TRUE(harness.StartAll());
//     lifecycle::SleepFor(absl::Hours(3));  // three cleanings
//     EXPECT_EQ(cleaner.runs(), 3);
//   }));
//
// In the body, every wait of this library and of testing/ (`WaitOrTimeout`,
// `TestSignal` waits, the harness's `StartAll()` and `StopAll()`,
// `lifecycle::SleepFor()`) simply works, its timeout counted in virtual time.
// Outside `Run()`, a start that itself takes virtual time needs the test to
// move time: `Start()` it, then `AdvanceUntil(service.Started(), limit)`; the
// harness waits in real time there.
//
// The rule for services: read time with `lifecycle::Now()` and wait with this
// library's waits. Code that reads `absl::Now()` or sleeps directly runs on
// the system clock even here (docs/VIRTUAL_TIME.md). `OnStart()` runs on the
// caller's thread, which lives in the caller's time.
//
// Destroying a `VirtualTime` ends its time: it cancels its context (so its
// services' runs are asked to end), and from then on every deadline in it has
// passed, so no wait with a deadline blocks any more. It then waits, at most
// the idle timeout, for its threads to end; a thread still in it after that
// (one that waits on a signal nobody closes) fails the test, named with its
// stack, rather than hang it. So either order of declaration is safe: a
// `VirtualTime` declared before the harness (or the services) outlives them,
// and they are stopped first — the harness stops them in their time, moving
// it as `Run()` does, so a stop that drains for a virtual minute takes no
// real minute, also when the body returned early (a failed `ASSERT`) without
// `StopAll()`; declared after, it goes first, and their runs end on their
// cancelled context.
//
// Thread safety: the members are thread-safe, but advancing is meant for one
// thread (the test's), which must not itself live in virtual time.

#ifndef LIFECYCLE_TESTING_VIRTUAL_TIME_H_
#define LIFECYCLE_TESTING_VIRTUAL_TIME_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/context.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {

namespace virtual_time_internal {
class Clock;
class CpuPin;
}  // namespace virtual_time_internal

class VirtualTime {
 public:
  // Where virtual time begins: 2030-01-01 00:00:00 UTC, every run.
  static constexpr absl::Time kStart = absl::FromUnixSeconds(1893456000);

  // `idle_timeout` bounds each wait for the threads to become idle (real
  // time; zero or negative: a check that does not wait).
  explicit VirtualTime(absl::Duration idle_timeout = WaitTimeout());
  VirtualTime(const VirtualTime&) = delete;
  VirtualTime& operator=(const VirtualTime&) = delete;
  // Ends virtual time (see above); fails the test if a thread stays in it.
  ~VirtualTime();

  // Start services with this context, or one made from it: their threads live
  // in this virtual time.
  const lifecycle::Context& context() const;

  // Virtual now, and how far it is from `kStart`.
  absl::Time Now() const;
  absl::Duration Elapsed() const { return Now() - kStart; }

  // Waits (in real time, at most the idle timeout) until every thread in this
  // time is blocked in a library wait; the failure names the busy threads with
  // their stacks. Called from a thread that lives in this time (the body of
  // `Run()`), it waits until every *other* thread is blocked — Go's
  // `synctest.Wait()`: the services have done all they can until time moves.
  [[nodiscard]] ::testing::AssertionResult WaitUntilIdle();

  // Moves virtual time forward by `duration` (negative: not at all), or to
  // `deadline` (in the past: not at all), firing every wait and deadline due on
  // the way in deadline order, idle between steps. Fails as `WaitUntilIdle()`.
  // The infinite future cannot be reached: `AdvanceBy(InfiniteDuration())`,
  // a duration that overflows, and `AdvanceTo(InfiniteFuture())` fail at once
  // and move nothing. Waits without a deadline never end by time.
  [[nodiscard]] ::testing::AssertionResult AdvanceBy(absl::Duration duration);
  [[nodiscard]] ::testing::AssertionResult AdvanceTo(absl::Time deadline);

  // Moves to the earliest pending deadline and fires everything due then.
  // With none pending (every thread blocked for good) that is a deadlock: it
  // fails with each thread's service path and stack.
  [[nodiscard]] ::testing::AssertionResult AdvanceToNextDeadline();

  // Advances one deadline at a time until `signal` is closed, by at most
  // `limit` of virtual time. Fails on a deadlock, on a busy thread, or when
  // `limit` has passed with the signal still open.
  //
  // Every advance fires at most `max_deadlines_per_advance()` deadlines (a
  // million unless set) and then fails, saying so: a periodic service over a
  // long advance (a 1ms tick for a year) fails in seconds instead of running
  // for hours.
  [[nodiscard]] ::testing::AssertionResult AdvanceUntil(
      const lifecycle::Signal& signal, absl::Duration limit);

  // Runs `body` on a thread that lives in this time, labelled "test body",
  // and moves time itself: whenever every thread in this time is blocked in a
  // library wait, to the next deadline. In `body`, a blocking wait simply
  // works, with its timeout in virtual time: `WaitOrTimeout`, the harness's
  // `StartAll()` and `StopAll()`, `lifecycle::SleepFor()`, a supervisor's
  // backoff. Returns once `body` has returned (example above).
  //
  // Fails on a deadlock (every thread blocked, no deadline pending: the report
  // names each thread, "test body" among them, with its stack), on a thread
  // busy for the idle timeout, or after `max_deadlines_per_advance()`
  // deadlines. It then ends this time as its destruction does (the services
  // started with its context are asked to stop, and the body's waits with a
  // deadline return at once, so it can finish); a body still blocked after the
  // idle timeout (in a wait without a deadline) cannot be ended, and the
  // process aborts with the report rather than hang. Assertions in `body`
  // report as usual; a fatal one returns from `body` only. An exception that
  // leaves `body` is thrown again by `Run()`, on the calling thread, once the
  // body's thread has ended: GoogleTest reports it as it reports one from a
  // plain test body. Called from a thread in this time, it fails at once.
  [[nodiscard]] ::testing::AssertionResult Run(
      absl::AnyInvocable<void() &&> body);

  // Every thread in this time, one per line: its service path, thread id and
  // whether it is blocked (until when) or busy.
  std::string DescribeThreads() const;

  // Threads in virtual time take turns: at most one runs between two
  // advances, as a rule. So they all run on one CPU, the one the `VirtualTime`
  // was made on, and so does the thread that made it, until it is destroyed:
  // a hand-over between threads on one CPU costs a few microseconds, between
  // CPUs (on a virtual machine) tens of them, and a simulated hour of 1 s ticks
  // takes 17 ms instead of 108 (docs/PERFORMANCE.md). Threads the test thread
  // creates meanwhile inherit that CPU. For a test whose threads do real work
  // in parallel, `UseAllCpus()` (best called first) stops pinning: the test
  // thread gets its CPUs back, and threads that enter this time from then on
  // keep theirs.
  void UseAllCpus();

  int64_t max_deadlines_per_advance() const;
  void set_max_deadlines_per_advance(int64_t max);

 private:
  std::shared_ptr<virtual_time_internal::Clock> clock_;
  // The test thread on the clock's CPU, until destruction or UseAllCpus().
  std::unique_ptr<virtual_time_internal::CpuPin> test_thread_pin_;
  std::unique_ptr<lifecycle::CancellableContext> scope_;
};

namespace virtual_time_internal {

// Runs `body` where its waits can end. When `ctx` lives in a `VirtualTime`
// that has not ended, and the calling thread does not live in it: on a thread
// in that time, labelled `label`, moving the time as `VirtualTime::Run()`
// does (`doing` says what for in its failures). Otherwise on the calling
// thread, as is. The harness stops its services through it, so that a stop
// outside `Run()` — its destructor after a failed `ASSERT` — takes the
// virtual time it needs instead of waiting in real time for time that never
// moves.
::testing::AssertionResult RunInTimeOf(const lifecycle::Context& ctx,
                                       const char* label, const char* doing,
                                       absl::AnyInvocable<void() &&> body);

}  // namespace virtual_time_internal

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_VIRTUAL_TIME_H_
