// -----------------------------------------------------------------------------
// signal.h
// -----------------------------------------------------------------------------
//
// A `Signal` is a one-shot event that any number of threads can wait on: the
// C++ counterpart of a Go `chan struct{}` that gets closed. It starts open, is
// closed once, and stays closed. Every service in this library reports
// "started" and "stopped" through signals, so waiting for a service is waiting
// for a signal.
//
// A `Signal` is a cheap handle to shared state: copies refer to the same event,
// so a signal can be handed out before the event happens and still works, and
// it stays valid for as long as any copy lives.
//
//   * `Close()`     closes the signal; later calls have no effect.
//   * `IsClosed()`  tells whether it is closed, without blocking.
//   * `Wait()`, `WaitFor(duration)`, `WaitUntil(deadline)`  block until it
//                   closes.
//   * `OnClose(fn)` runs `fn` once when it closes (at once if it already is).
//   * `WaitAllUntil()` / `WaitAnyUntil()`  wait on many signals with one
//                   deadline, without a thread per signal.
//
// Naming, for every wait in this library: `Wait...` alone blocks without a
// limit; `...For(duration)` waits at most a duration; `...Until(deadline)`
// until a point in time; `WaitAll...` / `WaitAny...` wait on a group
// (`WaitAllUntil`, `WaitAllStarted`, `WaitAllStartedUntil`); a wait on a
// service's state is `WaitSnapshotUntil` (base_service.h). Each returns
// whether what it waited for happened (or an `absl::Status` saying what did
// not). A signal wait given a past deadline or a non-positive duration checks
// without blocking.
//
// Example:
//
//   lifecycle::Signal ready;
//   std::thread worker([ready] { /* ...set up... */ ready.Close(); });
//   if (!ready.WaitFor(absl::Seconds(1))) { /* report: never got ready */ }
//   worker.join();
//
// Cost: a blocked waiter sleeps in the kernel (no polling, no CPU while
// waiting) and is woken by `Close()` with one futex wake, as
// `absl::Notification`.
//
// Thread safety: all members are thread-safe. Memory ordering: everything a
// thread did before `Close()` is visible to a thread that observed the signal
// closed (a `Wait*` that returned true, or `IsClosed()` returning true).

#ifndef LIFECYCLE_SIGNAL_H_
#define LIFECYCLE_SIGNAL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace lifecycle {

class Signal;

namespace signal_internal {
struct State;
size_t PendingCallbacks(const Signal& signal);
// For a holder that makes its signal only when it is first needed (a signal
// is a heap allocation): a handle that refers to no signal yet. It may only be
// assigned to and checked with `IsUnmade()`; it never leaves its holder.
Signal Unmade();
bool IsUnmade(const Signal& signal);
}  // namespace signal_internal

class Signal {
 public:
  // A new, open signal.
  Signal();

  // A signal that is already closed: for "nothing to wait for".
  static Signal Closed();

  // Closes the signal and wakes every waiter. May be called more than once and
  // from any thread; only the first call has an effect. Callbacks registered
  // with `OnClose()` run on the thread of the first call, before it returns.
  void Close() const;

  // Returns true once the signal is closed. Never blocks.
  bool IsClosed() const;

  // Blocks until the signal is closed. Returns at once if it already is.
  void Wait() const;

  // Blocks until the signal is closed or `timeout` has passed; returns whether
  // it is closed. A zero, negative or infinite timeout is allowed: zero and
  // negative only check, `absl::InfiniteDuration()` waits like `Wait()`.
  bool WaitFor(absl::Duration timeout) const;

  // Blocks until the signal is closed or `deadline` has passed; returns whether
  // it is closed. A deadline in the past only checks.
  bool WaitUntil(absl::Time deadline) const;

  // Runs `callback` once, when the signal closes; at once, on this thread, if
  // it is already closed. Callbacks run one after another, in registration
  // order, on the closing thread, outside any lock of the signal: a callback
  // may use the signal again (register, cancel, wait) but must not block for
  // long. A callback must not throw: if one does, the rest still run and then
  // the process aborts with the exception's message. Returns an id for
  // `CancelOnClose()`, or 0 if the callback already ran.
  uint64_t OnClose(absl::AnyInvocable<void() &&> callback) const;

  // Forgets a callback registered by `OnClose()`. Returns true if it was
  // removed before it ran: it never will. Returns false if it has already
  // run, or for id 0; if it is running on another thread at that moment,
  // `CancelOnClose()` first waits until it has returned (and been destroyed),
  // so after any return the caller may free what the callback captured. Do not
  // hold a lock the callback takes while calling it. Finding it is O(log n).
  bool CancelOnClose(uint64_t id) const;

  // Two handles are equal when they refer to the same event.
  friend bool operator==(const Signal& a, const Signal& b) {
    return a.state_ == b.state_;
  }
  friend bool operator!=(const Signal& a, const Signal& b) { return !(a == b); }

 private:
  friend size_t signal_internal::PendingCallbacks(const Signal& signal);
  friend Signal signal_internal::Unmade();
  friend bool signal_internal::IsUnmade(const Signal& signal);
  explicit Signal(std::nullptr_t) {}
  std::shared_ptr<signal_internal::State> state_;
};

// Blocks until every signal in `signals` is closed or `deadline` passes;
// returns whether all are closed. An empty span is trivially all closed.
bool WaitAllUntil(absl::Span<const Signal> signals, absl::Time deadline);

// Blocks until any signal in `signals` is closed or `deadline` passes; returns
// the index of a closed signal (the lowest closed one when several are), or
// `std::nullopt` on timeout. An empty span waits until the deadline and returns
// `std::nullopt`. Uses no extra threads: it registers one callback per signal
// and removes them before returning.
std::optional<size_t> WaitAnyUntil(absl::Span<const Signal> signals,
                                   absl::Time deadline);

namespace signal_internal {
// How many `OnClose()` callbacks `signal` holds, not yet run: for tests of
// code that must not leave callbacks behind.
size_t PendingCallbacks(const Signal& signal);
// For a holder that makes its signal only when it is first needed (a signal
// is a heap allocation): a handle that refers to no signal yet. It may only be
// assigned to and checked with `IsUnmade()`; it never leaves its holder.
Signal Unmade();
bool IsUnmade(const Signal& signal);
}  // namespace signal_internal

}  // namespace lifecycle

#endif  // LIFECYCLE_SIGNAL_H_
