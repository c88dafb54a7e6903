// -----------------------------------------------------------------------------
// service_tree.h (internal)
// -----------------------------------------------------------------------------
//
// How services hold together as a tree, for the library's own files: include
// base_service.h or composite_service.h instead.
//
//   * `Lifeline`: a call into a service through its parent's tree enters the
//     service's lifeline; its destructor ends the lifeline first, waiting for
//     the calls in progress, so a parent never touches a destroyed child.
//   * `ChildHandle`: a child as its parent sees it (`ChildHandles()`), alive
//     or departed.
//   * `TreeMutex()`: serializes every change of any tree's shape.
//
// The `BaseService` members that shape the tree (`AddChild()`, `Path()`,
// snapshots of a tree, leaving it on destruction) are in service_tree.cc.
//
// Thread safety: all of it is thread-safe; `TreeMutex()` is taken before any
// service's own mutex.

#ifndef LIFECYCLE_SERVICE_TREE_H_
#define LIFECYCLE_SERVICE_TREE_H_

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lifecycle/base_service.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {
namespace base_service_internal {

// Guards calls into a service made through its parent's tree: `Enter()` fails
// once the service has begun to be destroyed, and `End()` (the first thing
// the destructor does) waits for the calls in progress to return.
struct Lifeline {
  absl::Mutex mu;
  bool alive ABSL_GUARDED_BY(mu) = true;
  int calls ABSL_GUARDED_BY(mu) = 0;

  bool Enter() {
    absl::MutexLock lock(&mu);
    if (!alive) return false;
    ++calls;
    return true;
  }
  void Exit() {
    absl::MutexLock lock(&mu);
    --calls;
  }
  void End() {
    absl::MutexLock lock(&mu);
    alive = false;
    mu.Await(absl::Condition(
        +[](int* calls) { return *calls == 0; }, &calls));
  }
};

// What the tree (a composite, through a child's handle) and the list of live
// services read and write of a service.
struct Access {
  static bool StopRequested(const BaseService& service) {
    absl::MutexLock lock(&service.mu_);
    return service.stop_requested_;
  }
  static ServiceSnapshot SnapshotAt(const BaseService& service,
                                    std::string path) {
    return service.SnapshotAt(std::move(path));
  }
  static absl::Status Restart(BaseService& service, const Context& ctx,
                              bool& refused) {
    return service.StartRun(ctx, /*refuse_if_stopped=*/true, &refused);
  }
  static void TakeEndedWorkers(BaseService& service,
                               base_service_internal::Workers& out) {
    service.TakeEndedWorkers(out);
  }
  // The process-wide list of live services (live_services.cc): a service
  // joins it in its constructor and leaves it first thing in its destructor.
  static void JoinLiveList(BaseService& service);
  static void LeaveLiveList(BaseService& service);
};

// Every structural change of any tree (AddChild, a service leaving), so that
// two concurrent AddChild() calls cannot build a cycle between them.
absl::Mutex& TreeMutex();

// Why `name` cannot name a service, or OK (base_service.h states the rules).
absl::Status ValidateName(absl::string_view name);

// Prints "lifecycle: FATAL: `message`" and aborts: the loud, named failure of
// the ...OrDie() calls and of stops that cannot finish.
[[noreturn]] void Die(const std::string& message);

// A child's name without a virtual call: a BaseService child may be in its
// destructor (its name, a BaseService member, is still there).
std::string_view NameOf(const Child& child);

// A parent's children by service and by name, for `BaseService::children_`.
struct ChildIndex {
  absl::flat_hash_map<const Service*, std::list<Child>::iterator> by_service;
  absl::flat_hash_set<std::string> names;
};

// Gives `s` the path `path`, and its descendants theirs below it.
void SetPaths(ServiceSnapshot& s, std::string path);

// Closes a service's change signal, if anyone asked for one (NextChange()).
inline void CloseIfWatched(const std::optional<Signal>& changed) {
  if (changed) changed->Close();
}

// A child as the parent's tree sees it: forwards while the child lives, then
// acts as a departed, stopped service.
class ChildHandle final : public Service {
 public:
  ChildHandle(Child child, const BaseService* parent)
      : child_(std::move(child)), name_(NameOf(child_)), parent_(parent) {}

  absl::Status Start(const Context& ctx) override {
    absl::Status status = Departed();
    Use([&](auto& service) { status = service.Start(ctx); });
    return status;
  }
  Signal Started() const override {
    Signal signal = Signal::Closed();
    Use([&](auto& service) { signal = service.Started(); });
    return signal;
  }
  void Stop() override {
    Use([](auto& service) { service.Stop(); });
  }
  absl::Status StopFor(absl::Duration timeout) override {
    absl::Status status;
    Use([&](auto& service) { status = service.StopFor(timeout); });
    return status;
  }
  Signal Stopped() const override {
    Signal signal = Signal::Closed();
    Use([&](auto& service) { signal = service.Stopped(); });
    return signal;
  }
  std::string_view Name() const override { return name_; }
  ServiceState State() const override {
    ServiceState state = ServiceState::kStopped;  // departed
    Use([&](auto& service) { state = service.State(); });
    return state;
  }
  std::string Path() const override {
    std::string path;
    if (child_.base == nullptr) {
      // It knows nothing of its parent (alive: only the parent uses handles).
      path =
          absl::StrCat(parent_->Path(), "/", strings_internal::AbslView(name_));
    } else if (!Use([&](auto& service) { path = service.Path(); })) {
      path = name_;  // departed
    }
    return path;
  }
  ServiceSnapshot Snapshot() const override {
    ServiceSnapshot snapshot;
    if (!Use([&](auto& service) { snapshot = service.Snapshot(); })) {
      snapshot.name = name_;
      snapshot.path = name_;
      snapshot.taken_at = absl::Now();
      snapshot.since = snapshot.taken_at;
      snapshot.status = Departed();
    }
    return snapshot;
  }

  // The child's snapshot as part of its parent's, whose path is
  // `parent_path`; false if the child has been destroyed.
  bool SnapshotIfAlive(ServiceSnapshot& out,
                       std::string_view parent_path) const {
    std::string path = absl::StrCat(strings_internal::AbslView(parent_path),
                                    "/", strings_internal::AbslView(name_));
    if (child_.base == nullptr) {
      out = child_.service->Snapshot();  // knows nothing of its parent
      SetPaths(out, path);
      return true;
    }
    if (!child_.lifeline->Enter()) return false;
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    out = Access::SnapshotAt(*child_.base, std::move(path));
    return true;
  }

  // Whether the child's last run was asked to stop (by `Stop()` or
  // `StopFor()`), or the child has been destroyed. A child that is not a
  // BaseService cannot tell: false.
  bool StopWasRequested() const {
    if (child_.base == nullptr) return false;
    if (!child_.lifeline->Enter()) return true;  // destroyed
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    return Access::StopRequested(*child_.base);
  }

  // A supervisor's restart: false (and nothing started) if the child was
  // stopped on purpose, or destroyed, since its run ended.
  bool Restart(const Context& ctx, absl::Status& status) {
    if (child_.base == nullptr) {
      status = child_.service->Start(ctx);
      return true;
    }
    if (!child_.lifeline->Enter()) return false;
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    bool refused = false;
    status = Access::Restart(*child_.base, ctx, refused);
    return !refused;
  }

  // Requests the child's stop; joins nothing.
  void RequestStop() override {
    Use([](auto& service) { service.RequestStop(); });
  }

  void TakeEndedWorkers(base_service_internal::Workers& out) {
    Use([&](auto& service) {
      if constexpr (std::is_same_v<std::decay_t<decltype(service)>,
                                   BaseService>) {
        Access::TakeEndedWorkers(service, out);
      }
    });
  }

  const Service* service() const { return child_.service; }
  int64_t restarts() const { return child_.restarts; }
  // The child's own supervision policy, if it was given one.
  const std::optional<Supervision>& supervision() const {
    return child_.supervision;
  }
  // A `BaseService` counts the restarts its parent makes; for any other
  // service, the parent counts them (`restarts()`).
  bool CountsItsRestarts() const { return child_.base != nullptr; }
  const std::vector<std::string>& depends_on() const {
    return child_.depends_on;  // filled by ChildHandles()
  }

 private:
  absl::Status Departed() const {
    return absl::FailedPreconditionError(
        absl::StrCat("child service '", name_, "' was destroyed"));
  }

  // Calls `f` with the child while it lives; returns whether it did. A
  // BaseService child is called as a BaseService (its methods are final, so
  // no virtual dispatch on an object that may be in destruction).
  template <typename F>
  bool Use(F&& f) const {
    if (child_.base == nullptr) {
      f(*child_.service);  // must outlive the parent (AddChild)
      return true;
    }
    if (!child_.lifeline->Enter()) return false;
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    f(*child_.base);
    return true;
  }

  const Child child_;
  const std::string name_;
  const BaseService* const parent_;
};

// How a composite asks a child (a handle) to stop: without joining its worker.
void RequestChildStop(Service& child);

}  // namespace base_service_internal
}  // namespace lifecycle

#endif  // LIFECYCLE_SERVICE_TREE_H_
