#include "lifecycle/composite_service.h"

#include <algorithm>
#include <deque>
#include <utility>

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
  if (supervision) {
    absl::MutexLock lock(&mu_);
    for (Child& c : children_) {
      if (c.service == &child) c.supervision = supervision;
    }
  }
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
  absl::MutexLock lock(&mu_);
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

Supervision CompositeService::SupervisionOf(const Service* child) const {
  absl::MutexLock lock(&mu_);
  for (const Child& c : children_) {
    if (c.service == child && c.supervision) return *c.supervision;
  }
  return supervision_;
}

void CompositeService::CountRestart(const Service* child, int delta) {
  absl::MutexLock lock(&mu_);
  for (Child& c : children_) {
    if (c.service == child) c.restarts += delta;
  }
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
  Signal stopped;      // of the run being watched
  bool active = true;  // false once it left, was stopped, or degraded us
  // A restart is due then (`InfiniteFuture()` for an infinite backoff: it
  // never comes).
  std::optional<absl::Time> restart_at;
  std::deque<absl::Time> restarts;  // within the period
};

}  // namespace

absl::Status CompositeService::Supervise(
    const Context& ctx, const Context& children_ctx,
    std::vector<std::unique_ptr<Service>>& children) {
  std::vector<Watch> watches;
  for (auto& child : children) {
    auto* handle = static_cast<ChildHandle*>(child.get());
    Watch w;
    w.child = handle;
    w.stopped = handle->Stopped();
    watches.push_back(std::move(w));
  }
  // What a death means for this composite: OK to go on, or its failure.
  auto on_death = [&](Watch& w, const absl::Status& error) -> absl::Status {
    Supervision policy = SupervisionOf(w.child->service());
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
    return absl::OkStatus();
  };

  while (true) {
    std::vector<Signal> waits = {ctx.Done()};
    absl::Time next_restart = absl::InfiniteFuture();
    for (const Watch& w : watches) {
      if (w.restart_at) {
        next_restart = std::min(next_restart, *w.restart_at);
      } else if (w.active) {
        waits.push_back(w.stopped);
      }
    }
    WaitAnyUntil(waits, next_restart);
    if (ctx.IsCancelled()) return absl::OkStatus();
    for (Watch& w : watches) {
      if (w.restart_at) {
        if (*w.restart_at == absl::InfiniteFuture() ||
            lifecycle::Now() < *w.restart_at) {
          continue;
        }
        if (ctx.IsCancelled()) return absl::OkStatus();
        w.restart_at.reset();
        absl::Status started;
        CountRestart(w.child->service(), 1);
        // Not restarted if it was stopped on purpose (or destroyed) while
        // it awaited the restart: a stopped child stays stopped.
        if (!w.child->Restart(children_ctx, started)) {
          CountRestart(w.child->service(), -1);
          w.active = false;
          continue;
        }
        w.stopped = w.child->Stopped();
        if (!started.ok()) {
          if (absl::Status s = on_death(w, started); !s.ok()) return s;
        }
        continue;
      }
      if (!w.active || !w.stopped.IsClosed()) continue;
      // A child ends when this composite is stopped, too: its context is a
      // child of `ctx`, which is cancelled first. Checked after seeing the
      // child stopped, so such an end is never taken for a death.
      if (ctx.IsCancelled()) return absl::OkStatus();
      Signal current = w.child->Stopped();
      if (current != w.stopped) {
        w.stopped = current;  // someone else started it again: watch that run
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
      if (absl::Status s = on_death(w, error); !s.ok()) return s;
    }
  }
}

}  // namespace lifecycle
