// -----------------------------------------------------------------------------
// context.h
// -----------------------------------------------------------------------------
//
// A `Context` carries cancellation to a service and everything it starts, like
// Go's `context.Context`: it is cancelled once, with a cause (an
// `absl::Status`), and its `Done()` signal closes then. Contexts form a tree:
// cancelling a parent cancels every child with the parent's cause; cancelling a
// child leaves the parent alone.
//
//   * `Context::Background()`  the root: never cancelled.
//   * `CancellableContext`     owns a child context and the right to cancel it,
//                              optionally with a deadline.
//   * `StoppedError()` / `IsStopped(status)`  the cause a service's context is
//     cancelled with when the service is stopped (River's `ErrStop`), so that a
//     worker can tell "I was stopped" from "my caller gave up".
//
// Example:
//
//   absl::Time deadline = lifecycle::Now() + absl::Seconds(5);
//   lifecycle::CancellableContext scope(parent, deadline);
//   std::thread worker([ctx = scope.context()] {
//     while (!ctx.Done().WaitFor(absl::Milliseconds(100))) { /* tick */ }
//     if (lifecycle::IsStopped(ctx.Cause())) { /* orderly stop */ }
//   });
//   scope.Cancel(lifecycle::StoppedError());
//   worker.join();
//
// Deadlines are enforced by one process-wide timer thread, named
// "lifecycle-timer", started the first time a context gets a deadline. A
// context cancelled or destroyed before its deadline leaves the timer at once.
// If that thread cannot be started (the process is out of threads), the
// context that asked for it is cancelled at once with a
// `ResourceExhaustedError` saying so, never left with a deadline that does
// not fire; the next deadline tries again. A context made from one that lives
// in virtual time (clock.h, testing/virtual_time.h) lives in it too: its
// deadline is in virtual time and fires when the test advances past it.
//
// Cancellation propagates iteratively: a chain of any depth is cancelled
// without recursion, each context's `Done()` callbacks running as it is
// cancelled, parents before children.
//
// Thread safety: `Context` and `CancellableContext` are thread-safe; copies of
// a `Context` share one state. A child created from a parent keeps only a weak
// link upward; a parent forgets a child that goes away in O(1), so tearing
// down many siblings is linear.

#ifndef LIFECYCLE_CONTEXT_H_
#define LIFECYCLE_CONTEXT_H_

#include <sys/types.h>

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lifecycle/clock.h"
#include "lifecycle/signal.h"

namespace lifecycle {

class CancellableContext;
class Context;

namespace context_internal {
struct State;
// For testing/virtual_time.h: a new context whose services, and every context
// made from it, live in `time` (clock.h).
std::unique_ptr<CancellableContext> NewContextInTime(
    std::shared_ptr<clock_internal::TimeSource> time);
// The time `ctx`'s services live in; null for the system clock.
clock_internal::TimeSource* TimeSourceOf(const Context& ctx);
// A new context that lives in `ctx`'s time but is not its child: cancelled
// only by its owner. A composite starts its children in one, so that its own
// cancellation does not reach them all at once and it can stop them in order.
std::unique_ptr<CancellableContext> NewContextInTimeOf(const Context& ctx);
}  // namespace context_internal

class Context {
 public:
  // The background context: never cancelled, no deadline.
  static Context Background();

  // A signal that closes when the context is cancelled (or its deadline
  // passes).
  Signal Done() const;

  // Whether the context is cancelled. Never blocks.
  bool IsCancelled() const;

  // Why the context was cancelled: OK while it is not; the first cause given to
  // `Cancel()` otherwise; `DeadlineExceededError` when its deadline passed;
  // a parent's cause when the parent was cancelled.
  absl::Status Cause() const;

  // The earliest deadline of this context and its ancestors, or
  // `absl::InfiniteFuture()`.
  absl::Time Deadline() const;

 private:
  friend class CancellableContext;
  friend clock_internal::TimeSource* context_internal::TimeSourceOf(
      const Context& ctx);
  friend std::unique_ptr<CancellableContext> context_internal::NewContextInTime(
      std::shared_ptr<clock_internal::TimeSource> time);
  friend std::unique_ptr<CancellableContext>
  context_internal::NewContextInTimeOf(const Context& ctx);
  explicit Context(std::shared_ptr<context_internal::State> state)
      : state_(std::move(state)) {}
  std::shared_ptr<context_internal::State> state_;
};

// Owns a child context and cancels it. Destroying a `CancellableContext`
// cancels its context (with `CancelledError("context scope ended")`), as
// leaving a Go function that deferred `cancel()` would.
class CancellableContext {
 public:
  explicit CancellableContext(const Context& parent = Context::Background(),
                              absl::Time deadline = absl::InfiniteFuture());
  CancellableContext(const CancellableContext&) = delete;
  CancellableContext& operator=(const CancellableContext&) = delete;
  ~CancellableContext();

  // The context this object cancels. Copies of it stay valid after this object
  // is gone (they are then cancelled).
  const Context& context() const { return context_; }

  // Cancels the context and all its descendants with `cause`. Only the first
  // cancellation counts. An OK `cause` is replaced by `CancelledError()`, since
  // a cancelled context must report a non-OK cause.
  void Cancel(absl::Status cause);

 private:
  friend std::unique_ptr<CancellableContext> context_internal::NewContextInTime(
      std::shared_ptr<clock_internal::TimeSource> time);
  Context context_;
};

// The OS thread id of the deadline timer thread, or 0 before it has started:
// the one thread the library keeps for the whole process (leftover-thread
// checks exempt it by this identity, not by its name).
pid_t DeadlineTimerThreadId();

// How many contexts' deadlines the timer is watching now: a context leaves
// when its deadline fires or it is cancelled or destroyed. For leak checks.
size_t PendingDeadlines();

// The cause a service's context is cancelled with when `Stop()` is called.
absl::Status StoppedError();

// Whether `status` is (or was made from) `StoppedError()`.
bool IsStopped(const absl::Status& status);

}  // namespace lifecycle

#endif  // LIFECYCLE_CONTEXT_H_
