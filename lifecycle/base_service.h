// -----------------------------------------------------------------------------
// base_service.h
// -----------------------------------------------------------------------------
//
// `BaseService` keeps the whole `Service` contract (service.h) so that a
// service only says what it does. A subclass implements `Run()`, which runs on
// a worker thread the base owns, calls `started()` once it is up, and returns
// when its context is cancelled:
//
//   class Ticker : public lifecycle::BaseService {
//    public:
//     Ticker() : BaseService("ticker") {}
//     ~Ticker() override { StopForDestruction(); }  // see "Destruction"
//
//    private:
//     absl::Status Run(const lifecycle::Context& ctx,
//                      absl::FunctionRef<void()> started) override {
//       started();
//       while (!ctx.Done().WaitFor(absl::Seconds(1))) ++ticks_;
//       return absl::OkStatus();
//     }
//     std::atomic<int> ticks_{0};
//   };
//
// What the base does:
//   * `Start()` runs the optional `OnStart()` on the caller's thread (its error
//     is returned, annotated with the service's path), then starts one worker
//     thread, named after the service (cut to Linux's 15 bytes at a
//     character boundary), for `Run()`.
//   * `Stop()` cancels the run's context with `StoppedError()`, waits until
//     the run has ended (`Stopped()` closed) and joins the worker (or leaves
//     that to a concurrent `Stop()` that got to it first). No thread is
//     detached, but for the one case under "Re-entry".
//   * A run ends when `Run()` returns. Returning OK, or the context's cause
//     after the context was cancelled, is a clean stop (kStopped); any other
//     error is a failure (kFailed, with the error). If `Run()` returns before
//     calling `started()`, the started signal closes anyway.
//   * An exception thrown by `OnStart()` or `Run()` becomes an
//     `InternalError` carrying its message: the service fails, the process
//     does not `std::terminate`.
//   * `ReportError()` / `ReportHealthy()` let a running service report degraded
//     health; `Snapshot()` shows it with counts and times (health.h).
//   * `AddChild()` makes another service part of this one's tree, so paths
//     read `parent/child` and snapshots include the child.
//
// Destruction: a run's worker uses the object, so the object must not die
// while it runs. The most derived class stops it in its destructor (its
// members are gone by the time ~BaseService runs), preferably with
// `StopForDestruction()`: a bounded stop that aborts with the service's path
// and its worker's stack when the worker will not return, rather than hang in
// a destructor forever. If a `BaseService` is destroyed while a run is in
// progress anyway, the process aborts with "service 'PATH' destroyed while
// running" instead of corrupting memory.
//
// Stops that would wait for themselves abort with a message naming the
// services instead of deadlocking: `Stop()` called from the service's own
// worker (inside `Run()`), from its own `OnStart()`, or — for a
// `CompositeService`, which waits for its children — from the worker or
// `OnStart()` of any of its descendants. To end a run from inside, return
// from `Run()`.
//
// Re-entry is allowed where nothing waits for itself: a `Stopped()` callback
// (which runs on the worker thread after the run has ended) may call
// `Start()` to restart the service, or `Stop()`. The ended worker is then
// joined later, by the next `Start()`, `Stop()` or the destructor on another
// thread; only a service destroyed from its own `Stopped()` callback detaches
// its ended worker, which no longer touches the object.
//
// A worker that ignores its context makes `Stop()` wait forever; `StopFor()` is
// the bounded stop that reports it instead.
//
// The tree: a service has at most one parent, and `AddChild()` rejects a
// service that already has one and any cycle. A child that is destroyed leaves
// the tree at once: its parent's snapshots and a composite's stop never touch
// it again (they wait for a call in progress on it to return first).
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_BASE_SERVICE_H_
#define LIFECYCLE_BASE_SERVICE_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lifecycle/context.h"
#include "lifecycle/health.h"
#include "lifecycle/service.h"
#include "lifecycle/signal.h"

namespace lifecycle {

class BaseService;
struct LiveServices;
LiveServices SnapshotLiveServices(absl::Duration patience);

// What a `CompositeService` does when a child's run ends on its own once the
// composite has started: the child failed (an error, an exception), or
// returned while nobody had asked it to stop. See `CompositeService`.
struct Supervision {
  enum class Policy {
    kFailFast,  // the composite fails with the child's error
    kDegrade,   // the composite stays up, degraded with the child's error
    kRestart,   // the child is started again, within limits
  };
  Policy policy = Policy::kFailFast;

  // For kRestart (OTP's restart intensity): more than `max_restarts` restarts
  // within `period` fail the composite as kFailFast would. Each restart waits
  // a backoff first: `backoff`, doubling with every restart still within the
  // period, at most `max_backoff`. `max_restarts` < 1 or a `period` that is
  // not positive allows no restart at all; a negative backoff counts as zero;
  // an infinite one means the restart never comes (the child stays down and
  // the composite stays started).
  int max_restarts = 3;
  absl::Duration period = absl::Minutes(1);
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);

  static Supervision FailFast() { return {}; }
  static Supervision Degrade() {
    Supervision s;
    s.policy = Policy::kDegrade;
    return s;
  }
  static Supervision Restart(int max_restarts = 3,
                             absl::Duration period = absl::Minutes(1)) {
    Supervision s;
    s.policy = Policy::kRestart;
    s.max_restarts = max_restarts;
    s.period = period;
    return s;
  }

  // The same policy with another backoff, so that a whole policy is one
  // expression:
  //   Supervision::Restart(5, absl::Minutes(1))
  //       .WithBackoff(absl::Seconds(1), absl::Seconds(30))
  Supervision WithBackoff(absl::Duration first,
                          absl::Duration most = absl::Seconds(30)) const {
    Supervision s = *this;
    s.backoff = first;
    s.max_backoff = most;
    return s;
  }
};

namespace base_service_internal {
struct Lifeline;
struct Access;
struct DependencyGraph;
class ScopedServiceLockForTesting;
struct Child {
  Service* service = nullptr;
  BaseService* base = nullptr;         // `service` as a BaseService, or null
  std::shared_ptr<Lifeline> lifeline;  // `base`'s lifeline, or null
  // Set by CompositeService: this child's own policy, and its restarts.
  std::optional<Supervision> supervision;
  int64_t restarts = 0;
  // The siblings it starts after, by name: filled in the copies
  // `ChildHandles()` makes, from the parent's `DependencyGraph`.
  std::vector<std::string> depends_on;
};
}  // namespace base_service_internal

class BaseService : public Service {
 public:
  BaseService(const BaseService&) = delete;
  BaseService& operator=(const BaseService&) = delete;

  absl::Status Start(const Context& ctx) final;
  Signal Started() const final;
  void Stop() final;
  // Stops like `Stop()` but waits at most `timeout` for the run to end.
  // Returns OK once stopped, or `NotStoppedError()` (service.h): the paths of
  // the services in this tree still stopping, with their workers' stacks. The
  // run then goes on, and a later `Stop()` or `StopFor()` waits for it again.
  // A `timeout` of zero or less requests the stop and checks only: a
  // `DeadlineExceededError` "service 'PATH' has not stopped yet", no stacks.
  absl::Status StopFor(absl::Duration timeout) final;
  Signal Stopped() const final;
  std::string_view Name() const final { return name_; }
  ServiceSnapshot Snapshot() const final;

  // This service's path: its parent's path, '/', its name; or its name alone.
  std::string Path() const final;

  // A signal that closes at this service's next change of state or health: a
  // push hook for tools. Take a new one after it closes.
  Signal NextChange() const;

  // The OS thread id of the current run's worker, or 0 when none runs.
  pid_t WorkerThreadId() const;

 protected:
  // `name` must be non-empty, free of '/' (it separates paths) and free of
  // control characters (bytes below 0x20, and 0x7f: they would break
  // reports); any other bytes are kept, and reports that need text replace
  // invalid UTF-8. A bad name does not crash: every `Start()` returns an
  // `InvalidArgumentError` saying what is wrong with it.
  explicit BaseService(std::string name);

  // Aborts with the service's path if a run is still in progress (see above).
  ~BaseService() override;

  // For the most derived class's destructor: stops like `StopFor()`, bounded
  // by `DestructionStopTimeout()`, and aborts the process with the service's
  // path and its worker's stack if the worker still runs then — a loud, named
  // failure instead of a destructor that hangs forever.
  void StopForDestruction();

  // Optional synchronous part of `Start()`, on the caller's thread, before the
  // worker exists. An error (or exception) fails the start: `Start()` returns
  // it and the service is left failed, with both signals closed.
  virtual absl::Status OnStart(const Context& ctx);

  // The service's work, on its worker thread. Call `started()` once the service
  // is up (more calls have no effect); return when `ctx` is cancelled.
  virtual absl::Status Run(const Context& ctx,
                           absl::FunctionRef<void()> started) = 0;

  // Self-reported health while running: `ReportError` marks the service
  // degraded with `error` (counted, with its time); `ReportHealthy` clears the
  // degraded mark. An OK `error` is ignored.
  void ReportError(absl::Status error);
  void ReportHealthy();

  // Makes `child` part of this service's tree (paths and snapshots). Returns
  // `InvalidArgumentError` for an invalid name, this service itself, a
  // `BaseService` that already has a parent, or a child that is an ancestor of
  // this service (a cycle); `AlreadyExistsError` if a child with the same name
  // is already there. A child that is a `BaseService` leaves the tree when it
  // is destroyed; any other `Service` must outlive this one. Starting and
  // stopping children is the subclass's job (see `CompositeService`).
  absl::Status AddChild(Service& child);

  // The children added so far, in order. The pointers are only valid while
  // the children live; `ChildHandles()` is safe against a child's destruction.
  std::vector<Service*> Children() const;

  // One `Service` per child, in order, that forwards to the child while it
  // lives and acts as a stopped, departed service once it is destroyed
  // (`Start()` fails, the signals are closed, `Stop()` does nothing).
  std::vector<std::unique_ptr<Service>> ChildHandles() const;

 private:
  // Both return the change signal to close once `mu_` is released, if anyone
  // asked for one.
  std::optional<Signal> SetStateLocked(ServiceState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<Signal> TakeChangeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `Start()`; for a supervisor's restart (`refuse_if_stopped`), nothing is
  // started and `*refused` set if a stop was requested since the last run
  // ended: a child stopped while it awaited its restart stays stopped.
  absl::Status StartRun(const Context& ctx, bool refuse_if_stopped,
                        bool* refused);
  void WorkerMain(Context ctx, Signal started, Signal stopped);
  void MarkStarted(const Signal& started);
  void FinishRun(absl::Status status, const Context& ctx, const Signal& started,
                 const Signal& stopped);
  // Joins ended workers, except one that is the calling thread; for a
  // composite, its descendants' too (its run leaves them for this).
  void JoinFinishedWorker() ABSL_LOCKS_EXCLUDED(mu_, join_mu_);
  // Moves the ended workers of this service (and, for a composite, of its
  // descendants) but the calling thread into `out`, to be joined outside
  // every lock and lifeline.
  void TakeEndedWorkers(std::vector<std::thread>& out)
      ABSL_LOCKS_EXCLUDED(mu_, join_mu_);
  // Requests a stop; returns the signal to wait for (closed if nothing runs).
  // `will_wait`: the caller waits for it, so a stop that would wait for the
  // calling thread itself aborts (see "Stops that would wait for themselves").
  Signal RequestStop(bool will_wait) ABSL_LOCKS_EXCLUDED(mu_);
  // Aborts if a stop of this service from the calling thread would wait for
  // the calling thread itself.
  void DieIfStopWouldWaitForItself() const;
  BaseService* Parent() const ABSL_LOCKS_EXCLUDED(mu_);
  // Path() for a caller that holds the tree mutex (base_service.cc).
  std::string PathLocked() const;
  // The snapshot of this service's tree, this service being at `path`:
  // Snapshot() computes the root's path once, and each child's is its
  // parent's and its name.
  ServiceSnapshot SnapshotAt(std::string path) const;
  // This service's own fields (no children, no path) into `s`.
  void FillSnapshotLocked(ServiceSnapshot& s) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  friend LiveServices SnapshotLiveServices(absl::Duration patience);
  friend class base_service_internal::ScopedServiceLockForTesting;

  friend class CompositeService;
  friend struct base_service_internal::Access;

  const std::string name_;
  const absl::Status name_error_;
  // Calls into this service through its parent's tree hold the lifeline;
  // destruction ends it first (see "The tree").
  const std::shared_ptr<base_service_internal::Lifeline> lifeline_;
  // Set by CompositeService: a stop of this service waits for its children.
  bool stops_children_ = false;

  // Serializes handing the worker over for joining. Acquired before `mu_`.
  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::thread worker_ ABSL_GUARDED_BY(join_mu_);
  // Ended workers not joined yet because the thread that ended them was the
  // worker itself (a re-entrant Stopped() callback).
  std::vector<std::thread> ended_workers_ ABSL_GUARDED_BY(join_mu_);
  // The thread that ended the last run (and closes its signals).
  std::thread::id ending_thread_ ABSL_GUARDED_BY(mu_);
  // Written under `mu_`; atomic so that a report can read it while a hung
  // thread holds `mu_` (SnapshotLiveServices()).
  std::atomic<pid_t> worker_tid_{0};
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // a run is in progress
  // A stop was requested for the current (or last) run.
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Shared so that a stop can cancel it outside `mu_`.
  std::shared_ptr<CancellableContext> run_context_ ABSL_GUARDED_BY(mu_);
  // Now in the time of the current (or last) run's context: virtual time for
  // a service started under it (clock.h).
  absl::Time NowLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Signal started_ ABSL_GUARDED_BY(mu_);
  Signal stopped_ ABSL_GUARDED_BY(mu_);
  bool signals_used_ ABSL_GUARDED_BY(mu_) = false;  // by a run
  // Made on the first NextChange() after each change: most services are
  // never watched, and a signal is a heap allocation.
  mutable std::optional<Signal> change_ ABSL_GUARDED_BY(mu_);

  ServiceState state_ ABSL_GUARDED_BY(mu_) = ServiceState::kStopped;
  absl::Time since_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool degraded_ ABSL_GUARDED_BY(mu_) = false;
  int64_t error_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_error_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t start_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failure_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_failure_ ABSL_GUARDED_BY(mu_);
  absl::Time last_failure_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t unasked_end_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_unasked_end_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t restart_count_ ABSL_GUARDED_BY(mu_) = 0;  // by its parent
  // The last start-up that was not a restart by the parent (see
  // ServiceSnapshot::start_began), and whether the current run is one.
  absl::Time start_began_ ABSL_GUARDED_BY(mu_);
  bool startup_completed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration startup_duration_ ABSL_GUARDED_BY(mu_);
  bool run_is_restart_ ABSL_GUARDED_BY(mu_) = false;

  BaseService* parent_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<base_service_internal::Lifeline> parent_lifeline_
      ABSL_GUARDED_BY(mu_);
  std::vector<base_service_internal::Child> children_ ABSL_GUARDED_BY(mu_);
  // The dependencies among the children (CompositeService::AddDependency),
  // made by the first one.
  std::unique_ptr<base_service_internal::DependencyGraph> dependencies_
      ABSL_GUARDED_BY(mu_);

  // This service's links in the process-wide list of live services (guarded
  // by that list's mutex, base_service.cc).
  BaseService* live_prev_ = nullptr;
  BaseService* live_next_ = nullptr;
};

// How long `StopForDestruction()` waits: `LIFECYCLE_DESTROY_TIMEOUT` (an
// `absl::ParseDuration` string such as "10s") when set and valid, else 30s.
absl::Duration DestructionStopTimeout();

// Waits until `done(service.Snapshot())` holds, looking again at each change
// of `service` (`NextChange()`), never polling; false if it still does not
// hold at `deadline`. For waits on a state no signal stands for: "restarted
// once and started again", "degraded".
bool WaitSnapshotUntil(const BaseService& service,
                       absl::FunctionRef<bool(const ServiceSnapshot&)> done,
                       absl::Time deadline);

// Every live `BaseService` of the process as trees (a root is a service with
// no parent), for reports written while some thread may be hung: the hang
// watchdog's (testing/hang_watchdog.h), a debug endpoint's.
//
// It never waits for a lock a hung thread could hold. The process-wide list
// of live services and each service's own mutex are only *tried*
// (`TryLock()`), again and again for at most `patience` in all; a service
// whose mutex stays held is named in `unreadable` (its name is immutable, so
// it can be read without the lock) and its children become roots; if the
// list's own mutex stays held, `complete` is false and `roots` is empty. Children
// that are not `BaseService`s are not in the list and not shown. Every
// service is read under its own mutex, so each row is consistent, but the
// rows are taken one after another, not at one instant.
struct LiveServices {
  std::vector<ServiceSnapshot> roots;
  std::vector<std::string> unreadable;
  // The worker thread of each service of `unreadable` (0 when none runs), so
  // that a report can still say whose worker a thread is.
  std::vector<pid_t> unreadable_workers;
  bool complete = true;
};
LiveServices SnapshotLiveServices(
    absl::Duration patience = absl::Milliseconds(100));

namespace base_service_internal {
// Holds `service`'s mutex while it lives, as a hung thread inside the library
// would: for tests of the reports that must not wait for it.
class ScopedServiceLockForTesting {
 public:
  explicit ScopedServiceLockForTesting(const BaseService& service)
      ABSL_NO_THREAD_SAFETY_ANALYSIS : service_(service) {
    service_.mu_.Lock();
  }
  ~ScopedServiceLockForTesting() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    service_.mu_.Unlock();
  }

 private:
  const BaseService& service_;
};
}  // namespace base_service_internal

// A service made from a function (River's `StartStopFunc`): `run` is the body
// of `Run()`. Example:
//
//   lifecycle::FuncService heartbeat("heartbeat",
//       [&](const lifecycle::Context& ctx, absl::FunctionRef<void()> started) {
//         started();
//         while (!ctx.Done().WaitFor(absl::Seconds(1))) SendHeartbeat();
//         return absl::OkStatus();
//       });
class FuncService final : public BaseService {
 public:
  using RunFunction = absl::AnyInvocable<absl::Status(
      const Context& ctx, absl::FunctionRef<void()> started)>;

  FuncService(std::string name, RunFunction run);
  ~FuncService() override { StopForDestruction(); }

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;
  RunFunction run_;
};

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
  // The policy for `child`, and counting a restart of it (or taking one back).
  Supervision SupervisionOf(const Service* child) const;
  void CountRestart(const Service* child, int delta);

  Supervision supervision_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lifecycle

#endif  // LIFECYCLE_BASE_SERVICE_H_
