#include "lifecycle/start_graph.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using service_internal::CheckList;
using strings_internal::AbslView;

namespace {

// `services` and `dependencies` as indices: for each service, the services it
// depends on and the services that depend on it.
struct Graph {
  std::vector<std::vector<size_t>> dependencies;
  std::vector<std::vector<size_t>> dependents;
};

absl::Status BuildGraph(absl::Span<Service* const> services,
                        absl::Span<const Dependency> dependencies,
                        Graph& graph) {
  if (absl::Status s = CheckList(services); !s.ok()) return s;
  absl::flat_hash_map<const Service*, size_t> index;
  for (size_t i = 0; i < services.size(); ++i) index[services[i]] = i;
  graph.dependencies.assign(services.size(), {});
  graph.dependents.assign(services.size(), {});
  absl::flat_hash_set<std::pair<size_t, size_t>> seen;
  for (size_t k = 0; k < dependencies.size(); ++k) {
    const Dependency& d = dependencies[k];
    if (d.dependent == nullptr || d.dependency == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("dependency #", k, " has a null service"));
    }
    auto describe = [&] {
      return absl::StrCat("the dependency of '", d.dependent->Path(), "' on '",
                          d.dependency->Path(), "'");
    };
    for (const Service* end : {d.dependent, d.dependency}) {
      if (!index.contains(end)) {
        return absl::InvalidArgumentError(absl::StrCat(
            describe(), ": '", end->Path(), "' is not among the services"));
      }
    }
    size_t from = index[d.dependent];
    size_t to = index[d.dependency];
    if (!seen.insert({from, to}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(describe(), " is given twice"));
    }
    graph.dependencies[from].push_back(to);
    graph.dependents[to].push_back(from);
  }
  // A cycle, found depth first from each service in list order, is named
  // from where the search entered it. Iterative: a chain of any length is
  // searched without recursion (an explicit stack of (service, next edge)).
  enum Color { kWhite, kGrey, kBlack };
  std::vector<Color> color(services.size(), kWhite);
  std::vector<std::pair<size_t, size_t>> stack;  // the grey path
  std::optional<std::vector<size_t>> cycle;
  for (size_t root = 0; root < services.size() && !cycle; ++root) {
    if (color[root] != kWhite) continue;
    color[root] = kGrey;
    stack.push_back({root, 0});
    while (!stack.empty() && !cycle) {
      auto& [i, next] = stack.back();
      if (next == graph.dependencies[i].size()) {
        color[i] = kBlack;
        stack.pop_back();
        continue;
      }
      size_t j = graph.dependencies[i][next++];
      if (color[j] == kGrey) {
        auto start = std::find_if(stack.begin(), stack.end(),
                                  [j](const auto& e) { return e.first == j; });
        cycle.emplace();
        for (auto it = start; it != stack.end(); ++it) {
          cycle->push_back(it->first);
        }
        cycle->push_back(j);
      } else if (color[j] == kWhite) {
        color[j] = kGrey;
        stack.push_back({j, 0});  // `i` and `next` are not used after this
      }
    }
  }
  if (cycle) {
    std::vector<std::string> names;
    for (size_t i : *cycle) names.push_back(services[i]->Path());
    return absl::InvalidArgumentError(
        absl::StrCat("a cycle of dependencies: ", absl::StrJoin(names, " -> "),
                     "; each starts after the next"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckDependencies(absl::Span<Service* const> services,
                               absl::Span<const Dependency> dependencies) {
  Graph graph;
  return BuildGraph(services, dependencies, graph);
}

absl::Status StartInDependencyOrder(absl::Span<Service* const> services,
                                    absl::Span<const Dependency> dependencies,
                                    const Context& ctx) {
  return service_internal::StartInDependencyOrder(services, dependencies, ctx,
                                                  ctx, nullptr);
}

void StopInReverseDependencyOrder(absl::Span<Service* const> services,
                                  absl::Span<const Dependency> dependencies) {
  service_internal::StopInReverseDependencyOrder(services, dependencies,
                                                 nullptr);
}

namespace service_internal {

absl::Status StartInDependencyOrder(absl::Span<Service* const> services,
                                    absl::Span<const Dependency> dependencies,
                                    const Context& start_ctx,
                                    const Context& watch,
                                    RequestStopFunction request_stop) {
  const Context& ctx = watch;
  Graph graph;
  if (absl::Status s = BuildGraph(services, dependencies, graph); !s.ok()) {
    return s;
  }
  const size_t n = services.size();
  std::vector<size_t> waiting_for(n);  // dependencies not started yet
  std::vector<size_t> ready;
  for (size_t i = 0; i < n; ++i) {
    waiting_for[i] = graph.dependencies[i].size();
    if (waiting_for[i] == 0) ready.push_back(i);
  }
  std::vector<Service*> started;  // Start() called, in that order
  std::vector<size_t> pending;    // Start() called, not signalled yet
  std::optional<size_t> failed;
  absl::Status failure;
  size_t done = 0;
  while (done < n) {
    for (size_t i : ready) {
      absl::Status status = services[i]->Start(start_ctx);
      if (!status.ok()) {
        failed = i;
        failure = AnnotateStartError(std::move(status), services[i]->Path());
        break;
      }
      started.push_back(services[i]);
      pending.push_back(i);
    }
    ready.clear();
    if (failed || pending.empty()) break;
    std::vector<Signal> signals;
    signals.reserve(pending.size() + 1);
    for (size_t i : pending) signals.push_back(services[i]->Started());
    signals.push_back(ctx.Done());
    WaitAnyUntil(signals, absl::InfiniteFuture());
    if (ctx.IsCancelled()) break;
    std::vector<size_t> still_pending;
    for (size_t k = 0; k < pending.size(); ++k) {
      size_t i = pending[k];
      if (failed || !signals[k].IsClosed()) {
        still_pending.push_back(i);
        continue;
      }
      ++done;
      if (services[i]->State() == ServiceState::kStarted) {
        for (size_t j : graph.dependents[i]) {
          if (--waiting_for[j] == 0) ready.push_back(j);
        }
      } else {
        ServiceSnapshot s = services[i]->Snapshot();
        // Closed without starting: it failed, or its run ended first.
        failed = i;
        failure = s.state == ServiceState::kFailed
                      ? s.status
                      : AnnotateStartError(
                            absl::FailedPreconditionError(absl::StrCat(
                                "its run ended (", AbslView(s.StateLabel()),
                                ") before it signalled started")),
                            s.path);
      }
    }
    pending.swap(still_pending);
    if (failed) break;
    std::sort(ready.begin(), ready.end());  // list order
  }
  if (!failed && !ctx.IsCancelled()) return absl::OkStatus();
  StopInReverseDependencyOrder(started, dependencies, request_stop);
  if (!failed) return ctx.Cause();
  // The services that depend on the failed one, directly or not.
  std::vector<bool> skipped(n, false);
  std::vector<size_t> todo = {*failed};
  while (!todo.empty()) {
    size_t i = todo.back();
    todo.pop_back();
    for (size_t j : graph.dependents[i]) {
      if (!skipped[j]) {
        skipped[j] = true;
        todo.push_back(j);
      }
    }
  }
  std::vector<std::string> names;
  for (size_t j = 0; j < n; ++j) {
    if (skipped[j]) names.push_back(services[j]->Path());
  }
  if (names.empty()) return failure;
  return service_internal::WithSuffix(
      failure, absl::StrCat("; not started, as they depend on it: ",
                            absl::StrJoin(names, ", ")));
}

void StopInReverseDependencyOrder(absl::Span<Service* const> services,
                                  absl::Span<const Dependency> dependencies,
                                  RequestStopFunction request_stop) {
  const bool join = request_stop == nullptr;
  if (join) {
    request_stop = [](Service& service) { service.RequestStop(); };
  }
  std::vector<Service*> present;
  for (Service* service : services) {
    if (service != nullptr) present.push_back(service);
  }
  // Dependencies among the given services only (a partial start stops a
  // subset of the graph).
  absl::flat_hash_set<const Service*> in_list(present.begin(), present.end());
  std::vector<Dependency> among;
  for (const Dependency& d : dependencies) {
    if (in_list.contains(d.dependent) && in_list.contains(d.dependency)) {
      among.push_back(d);
    }
  }
  Graph graph;
  if (!BuildGraph(present, among, graph).ok()) {
    for (Service* service : present) request_stop(*service);
    for (Service* service : present) service->Stopped().Wait();
    if (join) StopAllParallel(present);
    return;
  }
  const size_t n = present.size();
  std::vector<size_t> running_dependents(n);
  std::vector<size_t> requested;  // stop requested, not seen stopped yet
  for (size_t i = 0; i < n; ++i) {
    running_dependents[i] = graph.dependents[i].size();
  }
  auto request = [&](size_t i) {
    request_stop(*present[i]);
    requested.push_back(i);
  };
  for (size_t i = 0; i < n; ++i) {
    if (running_dependents[i] == 0) request(i);
  }
  while (!requested.empty()) {
    std::vector<Signal> signals;
    for (size_t i : requested) signals.push_back(present[i]->Stopped());
    WaitAnyUntil(signals, absl::InfiniteFuture());
    std::vector<size_t> still;
    std::vector<size_t> now_free;
    for (size_t k = 0; k < requested.size(); ++k) {
      size_t i = requested[k];
      if (!signals[k].IsClosed()) {
        still.push_back(i);
        continue;
      }
      for (size_t j : graph.dependencies[i]) {
        if (--running_dependents[j] == 0) now_free.push_back(j);
      }
    }
    requested.swap(still);
    std::sort(now_free.begin(), now_free.end());
    for (size_t j : now_free) request(j);
  }
  if (!join) return;
  for (Service* service : present) service->Stop();  // joins, at once
}

}  // namespace service_internal
}  // namespace lifecycle
