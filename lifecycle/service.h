// -----------------------------------------------------------------------------
// service.h
// -----------------------------------------------------------------------------
//
// `Service` is the start/stop contract every service in this library keeps
// (River's `startstop.Service`), and the functions that act on groups of
// services: `StartAll`, `StopAllParallel`, `WaitAllStarted`.
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
//   * `Stopped()` closes when the service has fully stopped. It can be obtained
//     before or during a run. Before the first start it belongs to the first
//     run: a `Stop()` without a start leaves it open.
//   * A stop cancels the context handed to the service with `StoppedError()`,
//     which `IsStopped()` tells from other cancellations.
//   * A service can start again after it stopped or failed to start. After a
//     run has ended, `Started()` and `Stopped()` return that run's (closed)
//     signals until the next `Start()`, so late waiters never hang.
//   * `Name()` is non-empty and has no '/'; `Snapshot()` reports the service's
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
// Thread safety: implementations of `Service` must be thread-safe; the group
// functions are thread-safe as long as the services are.

#ifndef LIFECYCLE_SERVICE_H_
#define LIFECYCLE_SERVICE_H_

#include <optional>
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
  virtual Signal Stopped() const = 0;
  virtual std::string_view Name() const = 0;
  virtual ServiceSnapshot Snapshot() const = 0;
};

// Starts `services` in order with `ctx`. On the first error, stops the services
// already started (in parallel) and returns that error, annotated with the path
// of the service that failed (see `FailedServicePath`); a service that cannot
// get a thread fails with `ResourceExhaustedError`, like any other error. An
// empty list is OK. A null entry or one service listed twice is an
// `InvalidArgumentError` and nothing is started.
absl::Status StartAll(absl::Span<Service* const> services, const Context& ctx);

// Stops every service at once and returns when all have stopped. Null entries
// are skipped. Uses at most `kMaxStopThreads` helper threads however many
// services there are; with more services than that, a helper that finishes one
// stop takes the next. When no thread can be created (the process is out of
// threads), the calling thread stops them all itself: never an exception.
inline constexpr int kMaxStopThreads = 16;
void StopAllParallel(absl::Span<Service* const> services);

// Waits until every service's started signal is closed. Returns OK if all are
// started. If some failed to start instead (their started signal closed
// because their run ended), returns the error of the one that failed, or, when
// several did, a `FailedPreconditionError` naming them all.
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

// The path of the innermost service that failed, if `status` came from a start.
std::optional<std::string> FailedServicePath(const absl::Status& status);

// Takes a snapshot of each service, in order.
std::vector<ServiceSnapshot> SnapshotAll(absl::Span<Service* const> services);

}  // namespace lifecycle

#endif  // LIFECYCLE_SERVICE_H_
