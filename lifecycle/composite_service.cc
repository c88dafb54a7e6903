#include "lifecycle/composite_service.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lifecycle/clock.h"
#include "lifecycle/dependency_graph.h"
#include "lifecycle/service_tree.h"
#include "lifecycle/start_graph.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using base_service_internal::Child;
using base_service_internal::ChildHandle;
using base_service_internal::CloseIfWatched;
using base_service_internal::Die;
using base_service_internal::RequestChildStop;
using base_service_internal::TreeMutex;
using service_internal::WithSuffix;
using strings_internal::AbslView;

CompositeService::CompositeService(std::string name)
    : BaseService(std::move(name)) {
  stops_children_ = true;
}

CompositeService::~CompositeService() { StopForDestruction(); }

absl::Status CompositeService::Add(Service& child, const After& after,
                                   std::optional<Supervision> supervision) {
  const std::vector<Service*>& earlier = after.services();
  const std::vector<Service*> children = Children();
  for (size_t i = 0; i < earlier.size(); ++i) {
    if (std::find(earlier.begin(), earlier.begin() + i, earlier[i]) !=
        earlier.begin() + i) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adding '", AbslView(child.Name()), "' to '", Path(), "': '",
          AbslView(earlier[i]->Name()), "' is in its After() twice"));
    }
    if (std::find(children.begin(), children.end(), earlier[i]) ==
        children.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adding '", AbslView(child.Name()), "' to '", Path(),
          "': it is to start after '", AbslView(earlier[i]->Name()),
          "', which is not a child of '", Path(), "' (add it first)"));
    }
  }
  if (absl::Status s = AddChild(child); !s.ok()) return s;
  if (supervision) SetSupervisionOf(child, *supervision);
  // A new child has no dependents yet: these cannot close a cycle.
  for (Service* e : earlier) {
    if (absl::Status s = AddDependency(child, *e); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void CompositeService::AddOrDie(Service& child, const After& after,
                                std::optional<Supervision> supervision) {
  if (absl::Status s = Add(child, after, supervision); !s.ok()) {
    Die(absl::StrCat("adding child '", AbslView(child.Name()), "' to service '",
                     Path(), "': ", s.ToString()));
  }
}

void CompositeService::AddChildOrDie(Service& child) {
  if (absl::Status s = AddChild(child); !s.ok()) {
    Die(absl::StrCat("adding child '", AbslView(child.Name()), "' to service '",
                     AbslView(Name()), "': ", s.ToString()));
  }
}

void CompositeService::AddChildOrDie(Service& child, Supervision supervision) {
  AddChildOrDie(child);
  SetSupervisionOf(child, supervision);
}

void CompositeService::SetSupervisionOf(const Service& child,
                                        Supervision supervision) {
  absl::MutexLock lock(&mu_);
  // Most often the child just added: the last one.
  if (!children_.empty() && children_.back().service == &child) {
    children_.back().supervision = supervision;
    return;
  }
  for (Child& c : children_) {
    if (c.service == &child) c.supervision = supervision;
  }
}

absl::Status CompositeService::AddDependency(Service& dependent,
                                             Service& dependency) {
  // Checked and added in one step under the tree mutex and `mu_`: two
  // concurrent calls cannot close a cycle between them. This composite's path
  // is taken first (it locks the services on the way up).
  absl::MutexLock tree(&TreeMutex());
  const std::string path = PathLocked();
  absl::MutexLock lock(&mu_);
  if (dependencies_ == nullptr) {
    dependencies_ = std::make_unique<base_service_internal::DependencyGraph>();
    for (const Child& c : children_) dependencies_->children.insert(c.service);
  }
  for (auto [end, found] :
       {std::pair{&dependent, dependencies_->children.contains(&dependent)},
        {&dependency, dependencies_->children.contains(&dependency)}}) {
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the dependency of '", AbslView(dependent.Name()), "' on '",
          AbslView(dependency.Name()), "': '", AbslView(end->Name()),
          "' is not a child of '", path, "'"));
    }
  }
  auto child_path = [&](const Service* child) {
    return absl::StrCat(path, "/", AbslView(child->Name()));
  };
  if (dependencies_->Has(&dependent, &dependency)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the dependency of '", child_path(&dependent), "' on '",
                     child_path(&dependency), "' is given twice"));
  }
  // A cycle: `dependency` already depends on `dependent`, directly or not.
  if (auto chain = dependencies_->Chain(&dependency, &dependent)) {
    std::vector<std::string> names;
    for (const Service* s : *chain) names.push_back(child_path(s));
    names.push_back(child_path(&dependency));
    return absl::InvalidArgumentError(
        absl::StrCat("a cycle of dependencies: ", absl::StrJoin(names, " -> "),
                     "; each starts after the next"));
  }
  dependencies_->Add(&dependent, &dependency, std::string(dependency.Name()));
  return absl::OkStatus();
}

void CompositeService::AddDependencyOrDie(Service& dependent,
                                          Service& dependency) {
  if (absl::Status s = AddDependency(dependent, dependency); !s.ok()) {
    Die(absl::StrCat("adding a dependency to service '", Path(),
                     "': ", s.ToString()));
  }
}

void CompositeService::SetSupervision(Supervision supervision) {
  absl::MutexLock lock(&mu_);
  supervision_ = supervision;
}

Supervision CompositeService::DefaultSupervision() const {
  absl::MutexLock lock(&mu_);
  return supervision_;
}

void CompositeService::CountRestartOf(const Service* child) {
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    for (Child& c : children_) {
      if (c.service == child) ++c.restarts;
    }
    changed = TakeChangeLocked();  // this snapshot shows the count
  }
  CloseIfWatched(changed);
}

absl::Status CompositeService::Run(const Context& ctx,
                                   absl::FunctionRef<void()> started) {
  // Handles, not the children themselves: a child destroyed during the run
  // is never touched again.
  std::vector<std::unique_ptr<Service>> handles = ChildHandles();
  std::vector<Service*> children;
  std::vector<Dependency> dependencies;
  {
    // The graph's edges as edges between the handles.
    absl::flat_hash_map<const Service*, Service*> handle_of;
    for (const auto& handle : handles) {
      children.push_back(handle.get());
      handle_of[static_cast<const ChildHandle&>(*handle).service()] =
          handle.get();
    }
    absl::MutexLock lock(&mu_);
    if (dependencies_ != nullptr) {
      for (const Service* child : children) {
        const Service* service =
            static_cast<const ChildHandle*>(child)->service();
        auto node = dependencies_->nodes.find(service);
        if (node == dependencies_->nodes.end()) continue;
        for (const Service* on : node->second.on) {
          if (auto h = handle_of.find(on); h != handle_of.end()) {
            dependencies.push_back({const_cast<Service*>(child), h->second});
          }
        }
      }
    }
  }
  // The children live in a context of their own, not a child of `ctx`: when
  // this composite is stopped, they are stopped one by one, dependents first
  // and each only once its dependents have ended, instead of all being
  // cancelled at once with `ctx`.
  std::unique_ptr<CancellableContext> children_scope =
      context_internal::NewContextInTimeOf(ctx);
  const Context& children_ctx = children_scope->context();
  // Waits for every child's start, but gives up if this service is stopped
  // meanwhile: a child that never starts must not make Stop() hang. On any
  // error it has stopped what it started. No stop here joins a child's
  // worker: a child's Stopped() callback may be waiting for this very
  // composite's stop (JoinFinishedWorker() joins them afterwards).
  if (absl::Status s = service_internal::StartInDependencyOrder(
          children, dependencies, children_ctx, ctx, &RequestChildStop);
      !s.ok()) {
    return s;
  }
  started();
  absl::Status failure = Supervise(ctx, children_ctx, handles);
  if (!failure.ok()) {
    // Fail fast: stopping the other children is part of failing.
    std::optional<Signal> changed;
    {
      absl::MutexLock lock(&mu_);
      if (state_ == ServiceState::kStarted) {
        changed = SetStateLocked(ServiceState::kStopping);
      }
    }
    CloseIfWatched(changed);
  }
  service_internal::StopInReverseDependencyOrder(children, dependencies,
                                                 &RequestChildStop);
  return failure.ok() ? ctx.Cause() : failure;
}

namespace {

// A started child, as the supervision loop watches it.
struct Watch {
  ChildHandle* child = nullptr;
  Signal stopped = signal_internal::Unmade();  // of the run being watched
  uint64_t callback = 0;  // on `stopped`: reports its close to `Deaths`
  bool active = true;     // false once it left, was stopped, or degraded us
  // A restart is due then (`InfiniteFuture()` for an infinite backoff: it
  // never comes).
  std::optional<absl::Time> restart_at;
  std::deque<absl::Time> restarts;  // within the period
};

// The watched runs that ended, as their stopped signals' callbacks report
// them: the loop looks only at those, so a death costs the same among 10 or
// 10,000 children.
struct Deaths {
  absl::Mutex mu;
  std::vector<size_t> ended ABSL_GUARDED_BY(mu);  // indices into the watches
  Signal any ABSL_GUARDED_BY(mu);  // closed while `ended` is not empty
};

// Watches `w` (the `index`th) until its current run's stopped signal closes.
void WatchRun(Watch& w, size_t index, const std::shared_ptr<Deaths>& deaths) {
  w.callback = w.stopped.OnClose([deaths, index] {
    Signal wake = signal_internal::Unmade();
    {
      absl::MutexLock lock(&deaths->mu);
      deaths->ended.push_back(index);
      wake = deaths->any;
    }
    wake.Close();
  });
}

// Restarts due, soonest first.
using RestartQueue =
    std::priority_queue<std::pair<absl::Time, size_t>,
                        std::vector<std::pair<absl::Time, size_t>>,
                        std::greater<>>;

}  // namespace

absl::Status CompositeService::Supervise(
    const Context& ctx, const Context& children_ctx,
    std::vector<std::unique_ptr<Service>>& children) {
  auto deaths = std::make_shared<Deaths>();
  std::vector<Watch> watches(children.size());
  for (size_t i = 0; i < children.size(); ++i) {
    watches[i].child = static_cast<ChildHandle*>(children[i].get());
    watches[i].stopped = watches[i].child->Stopped();
    WatchRun(watches[i], i, deaths);
  }
  // No callback outlives the loop.
  absl::Cleanup forget = [&] {
    for (Watch& w : watches) {
      if (w.callback != 0) w.stopped.CancelOnClose(w.callback);
    }
  };
  RestartQueue due;
  // What a death means for this composite: OK to go on, or its failure.
  auto on_death = [&](Watch& w, size_t index,
                      const absl::Status& error) -> absl::Status {
    Supervision policy = w.child->supervision().value_or(DefaultSupervision());
    switch (policy.policy) {
      case Supervision::Policy::kFailFast:
        return error;
      case Supervision::Policy::kDegrade:
        ReportError(error);
        w.active = false;
        return absl::OkStatus();
      case Supervision::Policy::kRestart:
        break;
    }
    absl::Time now = lifecycle::Now();
    while (!w.restarts.empty() && w.restarts.front() <= now - policy.period) {
      w.restarts.pop_front();
    }
    if (policy.max_restarts < 1 || policy.period <= absl::ZeroDuration()) {
      return WithSuffix(
          error, absl::StrCat(" (not restarted: the restart policy allows "
                              "none, max_restarts ",
                              policy.max_restarts, " within ",
                              absl::FormatDuration(policy.period), ")"));
    }
    if (static_cast<int>(w.restarts.size()) >= policy.max_restarts) {
      return WithSuffix(
          error,
          absl::StrCat(" (restarted ", w.restarts.size(), " times within ",
                       absl::FormatDuration(policy.period), "; the limit is ",
                       policy.max_restarts, ")"));
    }
    absl::Duration backoff = std::max(policy.backoff, absl::ZeroDuration());
    for (size_t i = 0; i < w.restarts.size() && backoff < policy.max_backoff;
         ++i) {
      backoff *= 2;
    }
    backoff =
        std::min(backoff, std::max(policy.max_backoff, absl::ZeroDuration()));
    w.restarts.push_back(now);
    w.restart_at = now + backoff;
    if (*w.restart_at != absl::InfiniteFuture())
      due.emplace(*w.restart_at, index);
    return absl::OkStatus();
  };

  std::vector<size_t> ended;
  while (true) {
    Signal any = signal_internal::Unmade();
    {
      absl::MutexLock lock(&deaths->mu);
      ended.swap(deaths->ended);
      if (!ended.empty() && deaths->any.IsClosed()) deaths->any = Signal();
      any = deaths->any;
    }
    if (ended.empty() && (due.empty() || lifecycle::Now() < due.top().first)) {
      Signal waits[] = {ctx.Done(), any};
      WaitAnyUntil(waits,
                   due.empty() ? absl::InfiniteFuture() : due.top().first);
      if (ctx.IsCancelled()) return absl::OkStatus();
      continue;
    }
    if (ctx.IsCancelled()) return absl::OkStatus();
    // Restarts that are due.
    while (!due.empty() && due.top().first <= lifecycle::Now()) {
      auto [at, index] = due.top();
      due.pop();
      Watch& w = watches[index];
      if (!w.restart_at || *w.restart_at != at) continue;  // stale
      if (ctx.IsCancelled()) return absl::OkStatus();
      w.restart_at.reset();
      absl::Status started;
      // Not restarted if it was stopped on purpose (or destroyed) while
      // it awaited the restart: a stopped child stays stopped.
      if (!w.child->Restart(children_ctx, started)) {
        w.active = false;
        continue;
      }
      if (!w.child->CountsItsRestarts()) CountRestartOf(w.child->service());
      w.stopped = w.child->Stopped();
      WatchRun(w, index, deaths);
      if (!started.ok()) {
        if (absl::Status s = on_death(w, index, started); !s.ok()) return s;
      }
    }
    // Runs that ended.
    for (size_t index : ended) {
      Watch& w = watches[index];
      w.callback = 0;  // it ran
      if (!w.active || w.restart_at) continue;
      // A child ends when this composite is stopped, too: its context is a
      // child of `ctx`, which is cancelled first. Checked after seeing the
      // child stopped, so such an end is never taken for a death.
      if (ctx.IsCancelled()) return absl::OkStatus();
      Signal current = w.child->Stopped();
      if (current != w.stopped) {
        // Someone else started it again: watch that run.
        w.stopped = current;
        WatchRun(w, index, deaths);
        continue;
      }
      if (w.child->StopWasRequested()) {
        w.active = false;  // stopped on purpose, or destroyed: not a death
        continue;
      }
      ServiceSnapshot c = w.child->Snapshot();
      std::string path = w.child->Path();
      absl::Status error =
          c.state == ServiceState::kFailed
              ? AnnotateRunError(c.status, path)
              : AnnotateRunError(
                    absl::FailedPreconditionError(
                        "its run returned while nobody had asked it to stop"),
                    path);
      if (absl::Status s = on_death(w, index, error); !s.ok()) return s;
    }
    ended.clear();
  }
}

}  // namespace lifecycle
