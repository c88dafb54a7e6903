// -----------------------------------------------------------------------------
// service.h
// -----------------------------------------------------------------------------
//
// `Service` is the start/stop contract every service in this library keeps
// (River's `startstop.Service`), and the functions that act on groups of
// services: `StartAll`, `StopAllParallel`, `WaitAllStarted`, the bounded
// stop's report (`NotStoppedError`, `NotStoppedServices`) and the annotated
// errors that name the service that failed.
//
// The contract:
//   * `Start(ctx)` is called synchronously; the service backgrounds itself and
//     returns. It may return an error: the service is then not running, its
//     `Started()` and `Stopped()` signals are closed, and it can be started
//     again later. Calling `Start()` on a running service does nothing and
//     returns OK.
//   * `Started()` closes when the service has finished starting, or when it
//     failed to start and stopped instead, so a waiter never hangs on a dead
//     service. It can be obtained before `Start()` is called and still works.
//   * `Stop()` returns only once the service is fully stopped. It may be called
//     without a prior start, twice, and from several threads at once.
//   * `StopFor(timeout)` is the bounded stop: it requests the stop like
//     `Stop()` but waits at most `timeout`, and otherwise returns a
//     `DeadlineExceededError` naming by path the services of its tree that
//     have not stopped, with their threads' stacks (`NotStoppedError`). A
//     `timeout` of zero or less only requests the stop and checks: it never
//     waits, and its error is cheap ("service 'x' has not stopped yet"), so a
//     group stop can request every stop before it waits for any.
//   * `RequestStop()` only asks: it returns at once, makes no status, and may
//     be called from anywhere, the service's own threads included.
//   * A run can end without a `Stop()`: an error, or a return nobody asked
//     for. The service then reports it like a stop (`Stopped()` closes; the
//     snapshot says kFailed with the error, or kStopped).
//   * `Stopped()` closes when the service has fully stopped. It can be obtained
//     before or during a run. Before the first start it belongs to the first
//     run: a `Stop()` without a start leaves it open.
//   * A stop cancels the context handed to the service with `StoppedError()`,
//     which `IsStopped()` tells from other cancellations.
//   * A service can start again after it stopped or failed to start. After a
//     run has ended, `Started()` and `Stopped()` return that run's (closed)
//     signals until the next `Start()`, so late waiters never hang.
//   * `Name()` is non-empty and has no '/'; `Path()` is the names from the
//     root of its tree, joined by '/'; `Snapshot()` reports the service's
//     state and health and those of its children (see health.h).
//
// Most services derive from `BaseService` (base_service.h), which keeps the
// contract for them.
//
// Example:
//
//   std::vector<lifecycle::Service*> services = {&notifier, &producer};
//   if (absl::Status s = lifecycle::StartAll(services, ctx); !s.ok()) {
//     return s;  // "service 'producer' failed to start: UNAVAILABLE: ..."
//   }
//   lifecycle::StopAllParallel(services);
//
// Start-up as a graph (services that start once others have started, and stop
// before them) is start_graph.h's.
//
// Thread safety: implementations of `Service` must be thread-safe; the group
// functions are thread-safe as long as the services are.

#ifndef LIFECYCLE_SERVICE_H_
#define LIFECYCLE_SERVICE_H_

#include <sys/types.h>

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lifecycle/context.h"
#include "lifecycle/health.h"
#include "lifecycle/signal.h"

namespace lifecycle {

class Service {
 public:
  virtual ~Service() = default;

  virtual absl::Status Start(const Context& ctx) = 0;
  virtual Signal Started() const = 0;
  virtual void Stop() = 0;
  virtual absl::Status StopFor(absl::Duration timeout) = 0;
  // Requests the stop and returns at once: never waits, never fails, makes
  // no status. `Stopped()` closes once the service has stopped. May be called
  // from anywhere, the service's own threads included. The default is
  // `StopFor(ZeroDuration())` with its answer ignored; `BaseService` does
  // less. The group stops request every stop with it before they wait.
  virtual void RequestStop() { StopFor(absl::ZeroDuration()).IgnoreError(); }
  virtual Signal Stopped() const = 0;
  virtual std::string_view Name() const = 0;
  // Where the service sits in its tree: "client/producer/default". A service
  // that is not part of a tree (the default) is its name.
  virtual std::string Path() const { return std::string(Name()); }
  virtual ServiceSnapshot Snapshot() const = 0;
  // The service's state now: `Snapshot().state` unless the service has a
  // cheaper way (`BaseService` reads one field under its lock). The group
  // functions use it on their success paths.
  virtual ServiceState State() const { return Snapshot().state; }
};

// Starts `services` in order with `ctx`. On the first error, stops the services
// already started (in parallel) and returns that error, annotated with the path
// of the service that failed (see `FailedServicePath`); a service that cannot
// get a thread fails with `ResourceExhaustedError`, like any other error. An
// empty list is OK. A null entry or one service listed twice is an
// `InvalidArgumentError` and nothing is started.
absl::Status StartAll(absl::Span<Service* const> services, const Context& ctx);

// Stops every service at once and returns when all have stopped: requests
// every stop first (`RequestStop()`), then waits for each, so the stops run
// in parallel without a thread of their own. Null entries are skipped.
void StopAllParallel(absl::Span<Service* const> services);

// The bounded form: as `StopAllParallel`, but waits at most `timeout` in all.
// Returns OK once every service has stopped, or a `DeadlineExceededError`
// with one `NotStoppedError` message per service that has not, for example
//   "1 of 2 services did not stop within 50ms:
//    service 'client' did not stop within 50ms; still stopping:
//    client/notifier (stopping for 50ms)
//    Stack of client/notifier (stopping), thread 4242 'notifier': ..."
// The stops that did not finish go on. A `timeout` of zero or less checks
// only. Uses no helper thread.
absl::Status StopAllParallelFor(absl::Span<Service* const> services,
                                absl::Duration timeout);

// The error of a bounded stop of `service` that did not finish within
// `timeout`: names the service and the services of its tree that hold the
// stop up (stopping services none of whose children is stopping), each with
// its threads' stacks once `EnableThreadStacksInReports()` (thread_stack.h, a
// target of its own) was called. For implementations of `StopFor()`.
absl::Status NotStoppedError(const Service& service, absl::Duration timeout);

// One service that held a bounded stop up, as data.
struct NotStopped {
  std::string path;
  std::string state;  // "stopping for 50ms"
  // Its threads' stacks, each "thread TID 'NAME':\n  #0 ...", once
  // `EnableThreadStacksInReports()` was called; empty otherwise.
  std::vector<std::string> stacks;
};

// The services that held up the stop a status reports — from `StopFor()`,
// `StopAllParallelFor()` or `NotStoppedError()` — in the order the message
// names them (a service whose children were all stopped, or that has none, is
// one of them); empty for any other status. For callers that act on the list
// rather than read the message.
std::vector<NotStopped> NotStoppedServices(const absl::Status& status);

namespace service_internal {
// `StartAll()`'s check of a list: no null entry, no service twice.
absl::Status CheckList(absl::Span<Service* const> services);
// `status` with `suffix` added to its message, its payloads (the failed
// service's path) kept.
absl::Status WithSuffix(const absl::Status& status, std::string_view suffix);
// How NotStoppedError() shows a thread: set by thread_stack.cc.
using ThreadDescriber = std::string (*)(pid_t tid);
void SetThreadDescriber(ThreadDescriber describe);
}  // namespace service_internal

// Waits until every service's started signal is closed. Returns OK if all are
// started. If some failed to start instead (their started signal closed
// because their run ended), returns the error of the one that failed, or, when
// several did, a `FailedPreconditionError` naming them all. A null entry is an
// `InvalidArgumentError`; a service listed twice is waited on twice. When
// every service has started, it builds no name, snapshot or message: it
// looks at each service's started signal and `State()`, nothing more.
absl::Status WaitAllStarted(absl::Span<Service* const> services);

// As `WaitAllStarted`, but gives up at `deadline` with a
// `DeadlineExceededError` that names every service still pending and, inside
// a pending composite, the descendants that hold it up, for example
//   "2 of 3 services not started after 1.5s: client (starting for 1.5s)
//    waiting on client/notifier (starting for 1.5s), elector (stopped)".
absl::Status WaitAllStartedUntil(absl::Span<Service* const> services,
                                 absl::Time deadline);

// The paths of the services whose started signal is still open.
std::vector<std::string> PendingServices(absl::Span<Service* const> services);

// Adds the failing service's `path` to a start error: the message gets the
// prefix "service 'PATH' failed to start: " and the path is kept in a payload.
// A status that already carries a path (from a deeper service) is returned
// unchanged, so the innermost failing service is the one named.
absl::Status AnnotateStartError(absl::Status status, std::string_view path);

// Adds the path of a service whose run failed after it had started: the prefix
// "service 'PATH' failed while running: " and the path payload, unless the
// status already carries a path.
absl::Status AnnotateRunError(absl::Status status, std::string_view path);

// The path of the innermost service that failed, if `status` came from a start
// or from a run (the two functions above).
std::optional<std::string> FailedServicePath(const absl::Status& status);

// Takes a snapshot of each service, in order.
std::vector<ServiceSnapshot> SnapshotAll(absl::Span<Service* const> services);

// Prints a service as its path, state and error, from a snapshot taken now:
//   service 'client/notifier' (failed: UNAVAILABLE: service 'client/notifier'
//   failed while running: connection reset)
//   service 'client' (degraded: INTERNAL: ...), service 'db' (started)
// GoogleTest prints any `Service` (any class derived from it) with it, so a
// failed `EXPECT_THAT(service, ...)` shows this rather than the object's bytes.
std::ostream& operator<<(std::ostream& os, const Service& service);

}  // namespace lifecycle

// Until the release after 0.3.0, this header also declares the start-up
// graph's functions, which have a header of their own now (CHANGELOG.md,
// "Deprecated").
#include "lifecycle/start_graph.h"  // IWYU pragma: export

#endif  // LIFECYCLE_SERVICE_H_
