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
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lifecycle/context.h"
#include "lifecycle/health.h"
#include "lifecycle/live_services.h"
#include "lifecycle/service.h"
#include "lifecycle/signal.h"
#include "lifecycle/supervision.h"

namespace lifecycle {

class BaseService;

namespace base_service_internal {
struct Lifeline;
struct Access;
struct DependencyGraph;
struct History;
struct ChildIndex;
// Ended worker threads to join: most often one.
using Workers = absl::InlinedVector<std::thread, 1>;
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
  // Cancels the run's context and returns; joins no thread.
  void RequestStop() final;
  Signal Stopped() const final;
  std::string_view Name() const final { return name_; }
  ServiceSnapshot Snapshot() const final;
  // The state `Snapshot()` would show, without the snapshot.
  ServiceState State() const final;

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

  // Sets what the service says of itself in its snapshot's `details`
  // (health.h): `key` keeps its place once set; an empty `value` removes it.
  // Any thread may call it, also while no run is in progress.
  void SetDetail(std::string_view key, std::string value);

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
  void TakeEndedWorkers(base_service_internal::Workers& out)
      ABSL_LOCKS_EXCLUDED(mu_, join_mu_);
  // Requests a stop; returns the signal to wait for (closed if nothing runs).
  // `will_wait`: the caller waits for it, so a stop that would wait for the
  // calling thread itself aborts (see "Stops that would wait for themselves").
  Signal BeginStop(bool will_wait) ABSL_LOCKS_EXCLUDED(mu_);
  // Aborts if a stop of this service from the calling thread would wait for
  // the calling thread itself.
  void DieIfStopWouldWaitForItself() const;
  BaseService* Parent() const ABSL_LOCKS_EXCLUDED(mu_);
  // Path() for a caller that holds the tree mutex (service_tree.cc).
  std::string PathLocked() const;
  // For the destructor: the parent forgets this service, the children their
  // parent (service_tree.cc).
  void LeaveTree() ABSL_LOCKS_EXCLUDED(mu_);
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
  // Set by CompositeService: a stop of this service waits for its children.
  bool stops_children_ = false;
  ServiceState state_ ABSL_GUARDED_BY(mu_) = ServiceState::kStopped;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // a run is in progress
  // A stop was requested for the current (or last) run.
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool signals_used_ ABSL_GUARDED_BY(mu_) = false;  // by a run
  bool degraded_ ABSL_GUARDED_BY(mu_) = false;
  // Whether the last start-up that was not a restart (start_began_) has
  // completed, and whether the current run is a restart by the parent.
  bool startup_completed_ ABSL_GUARDED_BY(mu_) = false;
  bool run_is_restart_ ABSL_GUARDED_BY(mu_) = false;
  // Shared so that a stop can cancel it outside `mu_`.
  std::shared_ptr<CancellableContext> run_context_ ABSL_GUARDED_BY(mu_);
  // Now in the time of the current (or last) run's context: virtual time for
  // a service started under it (clock.h).
  absl::Time NowLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Each made when first asked for or by the first start: a signal is a heap
  // allocation, and an idle service needs none.
  mutable Signal started_ ABSL_GUARDED_BY(mu_) = signal_internal::Unmade();
  mutable Signal stopped_ ABSL_GUARDED_BY(mu_) = signal_internal::Unmade();
  // Made on the first NextChange() after each change: most services are
  // never watched.
  mutable Signal change_ ABSL_GUARDED_BY(mu_) = signal_internal::Unmade();

  absl::Time since_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  int64_t start_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Errors, failures, unasked ends, restarts and details: made by the first
  // of them (HistoryLocked()), so that a service none of this happened to
  // carries none of it (docs/PERFORMANCE.md, "Footprint").
  std::unique_ptr<base_service_internal::History> history_ ABSL_GUARDED_BY(mu_);
  base_service_internal::History& HistoryLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The last start-up that was not a restart by the parent (see
  // ServiceSnapshot::start_began), and how long it took.
  absl::Time start_began_ ABSL_GUARDED_BY(mu_);
  absl::Duration startup_duration_ ABSL_GUARDED_BY(mu_);

  BaseService* parent_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<base_service_internal::Lifeline> parent_lifeline_
      ABSL_GUARDED_BY(mu_);
  // The children in the order they were added, and an index of them by
  // service and by name (made by the first): adding or removing a child costs
  // the same among 10 or 10,000 siblings.
  std::list<base_service_internal::Child> children_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<base_service_internal::ChildIndex> child_index_
      ABSL_GUARDED_BY(mu_);
  // The dependencies among the children (CompositeService::AddDependency),
  // made by the first one.
  std::unique_ptr<base_service_internal::DependencyGraph> dependencies_
      ABSL_GUARDED_BY(mu_);

  // This service's links in the process-wide list of live services (guarded
  // by that list's mutex, live_services.cc).
  BaseService* live_prev_ = nullptr;
  BaseService* live_next_ = nullptr;
};

// How long `StopForDestruction()` waits: `LIFECYCLE_DESTROY_TIMEOUT` (an
// `absl::ParseDuration` string such as "10s") when set and valid, else 30s.
absl::Duration DestructionStopTimeout();

// Waits until `done(service.Snapshot())` holds, looking again at each change
// of `service` (`NextChange()`), never polling; false if it still does not
// hold at `deadline`. For waits on a state no signal stands for: "restarted
// once and started again", "degraded". In a test, the wait of testing/wait.h,
// `WaitSnapshotOrTimeout(service, matcher)`, takes any `Service` and reports
// what it saw.
bool WaitSnapshotUntil(const BaseService& service,
                       absl::FunctionRef<bool(const ServiceSnapshot&)> done,
                       absl::Time deadline);

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

}  // namespace lifecycle

// Until the release after 0.3.0, this header also declares what it used to:
// `FuncService` and `CompositeService` have headers of their own now; include
// those (CHANGELOG.md, "Deprecated").
#include "lifecycle/composite_service.h"  // IWYU pragma: export
#include "lifecycle/func_service.h"       // IWYU pragma: export

#endif  // LIFECYCLE_BASE_SERVICE_H_
