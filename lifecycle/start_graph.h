// -----------------------------------------------------------------------------
// start_graph.h
// -----------------------------------------------------------------------------
//
// Start-up as a graph: services that start only once the services they depend
// on have signalled started, and stop before them — the scheduler behind
// `CompositeService::AddDependency()` (composite_service.h), for plain lists
// of services too. Services whose dependencies have started start together,
// with no helper thread whatever the size of the graph; how long each start
// took, and the chain that made the whole start-up as long as it was, are
// startup_report.h's.
//
// Thread safety: the functions are thread-safe as long as the services are
// (service.h).

#ifndef LIFECYCLE_START_GRAPH_H_
#define LIFECYCLE_START_GRAPH_H_

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "lifecycle/context.h"
#include "lifecycle/service.h"

namespace lifecycle {

// Start-up as a graph. A `Dependency` says that `dependent` starts only once
// `dependency` has signalled started, and stops before it:
//
//   lifecycle::Dependency deps[] = {{&producer, &elector}};
//   absl::Status s = lifecycle::StartInDependencyOrder(
//       {&notifier, &elector, &producer}, deps, ctx);
//   // notifier and elector started at once; producer once elector started
//
// The bad graphs are `InvalidArgumentError`s, and nothing is started: a null
// service, one listed twice, a dependency on a service not in the list ("the
// dependency of 'producer' on 'db': 'db' is not among the services"), a
// dependency given twice, or a cycle ("a cycle of dependencies: a -> b -> a;
// each starts after the next").
struct Dependency {
  Service* dependent = nullptr;
  Service* dependency = nullptr;
};

// Checks `dependencies` among `services` (the errors above); OK if none.
absl::Status CheckDependencies(absl::Span<Service* const> services,
                               absl::Span<const Dependency> dependencies);

// Starts every service of `services` once its dependencies have signalled
// started, and returns once all have started. Services whose dependencies
// have started start together, in list order, at once: no helper thread
// whatever the size of the graph (`Start()` returns once the worker runs; its
// synchronous `OnStart()` runs on this thread). Without dependencies this is
// `StartAll()` followed by waiting for every started signal.
//
// On the first failure — a `Start()` error, a run that fails or ends before
// signalling started — the services that depend on the failed one (directly
// or not) are never started; every started service is stopped, dependents
// first; and the failed service's error is returned, annotated with its path
// (`FailedServicePath()`), followed by "; not started, as they depend on it:
// PATH, ...". If `ctx` is cancelled first, everything started is stopped and
// `ctx.Cause()` returned.
absl::Status StartInDependencyOrder(absl::Span<Service* const> services,
                                    absl::Span<const Dependency> dependencies,
                                    const Context& ctx);

// Stops `services` dependents first: a service's stop is requested once every
// service that depends on it has stopped; independent services stop in
// parallel, with no helper thread. Returns once all have stopped. The
// dependencies must pass `CheckDependencies()` (they are ignored otherwise,
// and every stop is requested at once, as `StopAllParallel()` does).
void StopInReverseDependencyOrder(absl::Span<Service* const> services,
                                  absl::Span<const Dependency> dependencies);

namespace service_internal {
// For `CompositeService`: `StartInDependencyOrder()` that starts every service
// with `start_ctx` but gives up when `watch` is cancelled, and
// `StopInReverseDependencyOrder()`. With a `request_stop` they request each
// stop with it and wait for the stopped signals only, leaving the ended
// workers for the caller to join (a child's `Stopped()` callback may be
// waiting for the composite's own stop); without, they are the public ones.
using RequestStopFunction = void (*)(Service& service);
absl::Status StartInDependencyOrder(absl::Span<Service* const> services,
                                    absl::Span<const Dependency> dependencies,
                                    const Context& start_ctx,
                                    const Context& watch,
                                    RequestStopFunction request_stop);
void StopInReverseDependencyOrder(absl::Span<Service* const> services,
                                  absl::Span<const Dependency> dependencies,
                                  RequestStopFunction request_stop);
}  // namespace service_internal

}  // namespace lifecycle

#endif  // LIFECYCLE_START_GRAPH_H_
