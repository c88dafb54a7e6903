// -----------------------------------------------------------------------------
// clock.h
// -----------------------------------------------------------------------------
//
// The one clock this library reads. Every "now" inside it (health timestamps,
// start-up durations, restart backoffs) and every timed wait (a `Signal` wait
// with a duration or a deadline, a context's deadline) asks the clock of the
// thread it runs on:
//
//   * on an ordinary thread, the system clock: `lifecycle::Now()` is
//     `absl::Now()`, and a wait sleeps in the kernel as it always did;
//   * on the worker thread of a service started with a context that lives in
//     virtual time (`lifecycle_testing::VirtualTime`, testing/virtual_time.h),
//     that virtual time: `Now()` reads it, and a wait ends when the test
//     advances it far enough.
//
// A service is virtualised when it reads time only through `lifecycle::Now()`
// and waits only through this library (`Signal` and `Context::Done()` waits,
// `WaitAnyUntil`, `WaitAllUntil`, `Stop()`). Code that calls `absl::Now()`,
// `std::chrono::steady_clock::now()` or `absl::SleepFor()` directly runs on
// the system clock even under virtual time.
//
// Example:
//
//   absl::Status Run(const lifecycle::Context& ctx,
//                    absl::FunctionRef<void()> started) override {
//     started();
//     absl::Time next = lifecycle::Now() + absl::Hours(1);
//     while (!ctx.Done().WaitUntil(next)) {
//       Clean();
//       next += absl::Hours(1);
//     }
//     return absl::OkStatus();
//   }
//
// Cost on the system clock: one thread-local load per `Now()` and per wait.
//
// Threads of your own join a context's time as `lifecycle::Thread`s
// (thread.h).
//
// Thread safety: `Now()` and `SleepFor()` are thread-safe. The internal interface below is for
// testing/virtual_time.h.

#ifndef LIFECYCLE_CLOCK_H_
#define LIFECYCLE_CLOCK_H_

#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace lifecycle {

class Signal;

// The calling thread's time: virtual time on a thread that lives in it, the
// system clock (`absl::Now()`) everywhere else.
absl::Time Now();

// Sleeps for `duration` of the calling thread's time: virtual time on a
// thread that lives in it (the sleep ends when the test moves time past it),
// `absl::SleepFor()` everywhere else. Zero or negative: returns at once.
// Infinite: never returns (in virtual time, a thread blocked for good, which
// a deadlock report names).
void SleepFor(absl::Duration duration);

namespace clock_internal {

// A time other than the system clock, which threads can live in. Implemented
// by `lifecycle_testing::VirtualTime`; a context carries it to the worker
// threads of the services started with it (context.h).
class TimeSource {
 public:
  virtual absl::Time Now() = 0;

  // Blocks the calling thread, which lives in this time, until `signal` closes
  // or this time reaches `deadline` (`absl::InfiniteFuture()`: no deadline).
  // Returns whether `signal` is closed.
  virtual bool Wait(const Signal& signal, absl::Time deadline) = 0;

  // Runs `fire` once this time reaches `at`, on the thread that advances it.
  // Returns an id for `CancelTimer()`, which forgets a timer not yet fired.
  virtual uint64_t AddTimer(absl::Time at, absl::AnyInvocable<void() &&> fire,
                            std::string label) = 0;
  virtual void CancelTimer(uint64_t id) = 0;

  // A thread that will live in this time is being created: called by its
  // creator first (so this time never sees every thread blocked while the new
  // one is on its way), then `ThreadNotCreated()` if creating it failed.
  virtual void ThreadCreating() = 0;
  virtual void ThreadNotCreated() = 0;
  // Called by that thread as it begins, with what it works for (a service's
  // path), and as it ends.
  virtual void ThreadBegins(std::string label) = 0;
  virtual void ThreadEnds() = 0;

  // Waits outside this time (`OutsideWait` below), for the thread `thread`
  // (its kernel thread id), which lives in this time.
  virtual void EnterOutsideWait(int64_t thread) = 0;
  virtual void LeaveOutsideWait(int64_t thread) = 0;
  virtual void WakeOutsideWait(int64_t thread) = 0;

 protected:
  ~TimeSource() = default;
};

// The calling thread's time source, or null on the system clock.
TimeSource* CurrentTimeSource();

// Makes the calling thread live in `source` (if not null) for the scope:
// `ThreadBegins(label)` now, `ThreadEnds()` on destruction. Only for a thread's
// outermost scope (a service's worker), after `source->ThreadCreating()`.
class ScopedThreadTime {
 public:
  ScopedThreadTime(TimeSource* source, std::string label);
  ScopedThreadTime(const ScopedThreadTime&) = delete;
  ScopedThreadTime& operator=(const ScopedThreadTime&) = delete;
  ~ScopedThreadTime();

 private:
  TimeSource* source_;
};

// `source->Now()`, or the system clock's for null.
absl::Time NowIn(TimeSource* source);

// A thread of a time that waits on something outside it — a program that
// runs in real time (process_service.cc) — without holding that time still.
// Between `Enter()` and `Leave()` the time counts the thread blocked, with no
// deadline, so virtual time moves meanwhile. Whoever makes the thread return
// for a reason of the time's (a stop) calls `Wake()` first, from its own
// thread: the waiting thread counts as busy again at once, so the time cannot
// move between that wake and the thread running. A `Wake()` that comes before
// `Enter()` makes that `Enter()` count nothing. On the system clock all three
// do nothing.
class OutsideWait {
 public:
  OutsideWait();  // for the calling thread
  OutsideWait(const OutsideWait&) = delete;
  OutsideWait& operator=(const OutsideWait&) = delete;
  ~OutsideWait();  // leaves, if entered

  void Enter();
  void Leave();
  void Wake();  // thread-safe

 private:
  TimeSource* const source_;
  const int64_t thread_;
};

// Puts the calling thread back on the CPUs the process could use when it
// began (before a `VirtualTime` pinned a thread to one CPU): for threads and
// programs that must not inherit such a pin. Async-signal-safe: a child may
// call it between fork and exec.
void UseProcessCpus();

}  // namespace clock_internal
}  // namespace lifecycle

#endif  // LIFECYCLE_CLOCK_H_
