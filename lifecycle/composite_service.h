// -----------------------------------------------------------------------------
// composite_service.h
// -----------------------------------------------------------------------------
//
// `CompositeService`: a service made of child services — started in
// dependency order, supervised while it runs (supervision.h), stopped
// dependents first — built as it is or subclassed. The details are at the
// class below.
//
// Thread safety: as `BaseService`, all public members are thread-safe.

#ifndef LIFECYCLE_COMPOSITE_SERVICE_H_
#define LIFECYCLE_COMPOSITE_SERVICE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/service.h"
#include "lifecycle/supervision.h"

namespace lifecycle {

// The siblings a child of a `CompositeService` starts after:
// `app.AddOrDie(api, lifecycle::After(db, cache))` reads as it works.
class After {
 public:
  template <typename... Services>
  explicit After(Services&... services) : services_{&services...} {}
  const std::vector<Service*>& services() const { return services_; }

 private:
  std::vector<Service*> services_;
};

// A service made of child services: its run starts the children in order
// (`StartAll`), signals started once every child has started, then watches
// them, and when stopped stops them all in parallel (those still alive: a
// destroyed child has left). If a child fails to start, the composite fails
// with that child's error, which names the child's full path, e.g.
// "service 'client/producer/default' failed to start: UNAVAILABLE: ...".
//
// A composite is built as it is, with no class of one's own — children with
// their supervision and what they start after, then `Start()` — and stops
// itself on destruction (declare it after its children, so it goes first):
//
//   lifecycle::CompositeService app("app");
//   app.AddOrDie(db);
//   app.AddOrDie(api, lifecycle::After(db), lifecycle::Supervision::Restart());
//   absl::Status s = app.Start(ctx);
//
// or subclassed, for a composite with members and code of its own:
//
//   class Client : public lifecycle::CompositeService {
//    public:
//     Client() : CompositeService("client") {
//       AddChildOrDie(notifier_, lifecycle::Supervision::Restart());
//       AddChildOrDie(producer_);  // the composite's policy: fail fast
//     }
//     ~Client() override { StopForDestruction(); }
//    private:
//     Notifier notifier_;
//     Producer producer_;
//   };
//
// A subclass still stops itself in its own destructor when it overrides
// `OnStart()` or `Run()` (they may use its members, which are gone by the time
// `~CompositeService` stops it); one that only adds children may rely on
// `~CompositeService`, but its member children are destroyed first, each
// leaving the tree as it goes.
//
// Supervision. Once started, the composite watches its children's `Stopped()`
// signals on its own worker (no thread per child). When a child's run ends on
// its own — an error, an exception, or a return nobody asked for — the
// child's policy (`AddChildOrDie(child, policy)`), else the composite's
// (`SetSupervision()`, fail fast by default) decides:
//
//   fail fast  kStarted -> kStopping (stops the other children) -> kFailed,
//              with the child's error: "service 'client/notifier' failed
//              while running: UNAVAILABLE: ..." (`FailedServicePath()` gives
//              the child's path).
//   degrade    stays kStarted, reported degraded with the child's error
//              (`IsDegraded()`); the other children run on; the dead child
//              stays failed (or stopped) in the table.
//   restart    stays kStarted; after the backoff the child is started again
//              (kFailed -> kStarting -> kStarted; its snapshot counts the
//              restart). One restart too many within the period, or a policy
//              that allows none, fails the composite as fail fast does, the
//              error ending "(restarted N times within PERIOD; the limit is
//              M)". A restart whose `Start()` fails counts as another death.
//
// A child stopped by a `Stop()` call, or destroyed, is not a death: it was
// asked for, and the composite leaves it alone. (A child that is not a
// `BaseService` cannot tell a requested stop from its own: its clean end
// counts as a death.) A child that dies before all children have started
// fails the start instead.
//
// Start-up as a graph. Without dependencies, the children are started in
// order, at once (each `Start()` returns once its worker runs), and the
// composite has started when all have. `AddDependency(b, a)` makes `b` start
// only once `a` has signalled started; children whose dependencies have
// started start together, with no helper thread
// (`StartInDependencyOrder()`, service.h). If a child fails to start, the
// children that depend on it are never started and the error says so:
// "service 'client/elector' failed to start: ...; not started, as they depend
// on it: client/producer". A composite stops its children dependents first
// (`StopInReverseDependencyOrder()`). How long each start took, and the chain
// that made the whole start-up as long as it was: startup_report.h.
class CompositeService : public BaseService {
 public:
  explicit CompositeService(std::string name);
  // Stops it (`StopForDestruction()`); a subclass that overrides `Run()` or
  // `OnStart()` must stop it in its own destructor first (see above).
  ~CompositeService() override;

  // Adds `child`, to start only once the siblings of `after` have signalled
  // started (and to stop before them), with its own supervision policy if
  // given (else the composite's). The errors of `AddChild()` (a bad name, a
  // child with a parent already, a duplicate name, a cycle of the tree), and
  // an `InvalidArgumentError` for one of `after` that is not a child yet or
  // is listed twice; on an error nothing changes. Takes effect at the next
  // start.
  absl::Status Add(Service& child, const After& after = After(),
                   std::optional<Supervision> supervision = std::nullopt);
  absl::Status Add(Service& child, Supervision supervision) {
    return Add(child, After(), supervision);
  }
  // The same, aborting with the error, naming both services.
  void AddOrDie(Service& child, const After& after = After(),
                std::optional<Supervision> supervision = std::nullopt);
  void AddOrDie(Service& child, Supervision supervision) {
    AddOrDie(child, After(), supervision);
  }

  // `AddChild()` that aborts, naming both services, on an error: for
  // constructors, where a duplicate name is a programming error.
  void AddChildOrDie(Service& child);
  // The same with the child's own supervision policy.
  void AddChildOrDie(Service& child, Supervision supervision);

  // The policy for children added without one (fail fast if never set). Takes
  // effect at the next death.
  void SetSupervision(Supervision supervision);

  // `dependent` starts only once `dependency` has signalled started, and
  // stops before it (see "Start-up as a graph" above). Both must be children
  // of this composite. An `InvalidArgumentError`, and nothing changes, if one
  // is not a child, the dependency was given already, or it would close a
  // cycle ("a cycle of dependencies: client/a -> client/b -> client/a; each
  // starts after the next"). Takes effect at the next start.
  absl::Status AddDependency(Service& dependent, Service& dependency);
  // The same, aborting with the error: for constructors.
  void AddDependencyOrDie(Service& dependent, Service& dependency);

 protected:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;

 private:
  // Watches the started children until `ctx` is cancelled (OK) or a death
  // fails this composite (that error).
  // Restarts are started with `children_ctx`.
  absl::Status Supervise(const Context& ctx, const Context& children_ctx,
                         std::vector<std::unique_ptr<Service>>& children);
  // The composite's own policy (`SetSupervision()`), for children without one.
  Supervision DefaultSupervision() const;
  // Counts a restart of `child`, a child that is not a `BaseService` (one
  // that is counts its own).
  void CountRestartOf(const Service* child);
  // Gives the child `child` its own policy.
  void SetSupervisionOf(const Service& child, Supervision supervision);

  Supervision supervision_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lifecycle

#endif  // LIFECYCLE_COMPOSITE_SERVICE_H_
