// -----------------------------------------------------------------------------
// dependency_graph.h (internal)
// -----------------------------------------------------------------------------
//
// The dependencies among a composite's children (`CompositeService::
// AddDependency()`), for the library's own files. The start-up graph of a
// list of services, and its scheduler, are start_graph.h's.
//
// Thread safety: none of its own; the composite holds it under its mutex.

#ifndef LIFECYCLE_DEPENDENCY_GRAPH_H_
#define LIFECYCLE_DEPENDENCY_GRAPH_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "lifecycle/service.h"

namespace lifecycle {
namespace base_service_internal {

// The dependencies among a composite's children, by child: what each depends
// on and what depends on it. Kept as the dependencies are added, so that adding
// one costs what its cycle check visits, not a rebuild of the graph.
struct DependencyGraph {
  struct Node {
    std::vector<const Service*> on;     // its dependencies
    std::vector<const Service*> by;     // its dependents
    std::vector<std::string> on_names;  // of `on`, in order (for snapshots)
  };
  absl::flat_hash_set<const Service*> children;  // of the composite
  absl::flat_hash_map<const Service*, Node> nodes;
  absl::flat_hash_set<std::pair<const Service*, const Service*>> edges;

  bool Has(const Service* dependent, const Service* dependency) const {
    return edges.contains({dependent, dependency});
  }
  void Add(const Service* dependent, const Service* dependency,
           std::string dependency_name) {
    edges.insert({dependent, dependency});
    Node& node = nodes[dependent];
    node.on.push_back(dependency);
    node.on_names.push_back(std::move(dependency_name));
    nodes[dependency].by.push_back(dependent);
  }
  // The names of what `child` depends on, in the order given.
  std::vector<std::string> NamesOn(const Service* child) const {
    auto it = nodes.find(child);
    return it == nodes.end() ? std::vector<std::string>() : it->second.on_names;
  }
  // A child that left the tree leaves the graph.
  void Remove(const Service* child) {
    children.erase(child);
    auto it = nodes.find(child);
    if (it == nodes.end()) return;
    Node node = std::move(it->second);
    nodes.erase(it);
    for (const Service* dependency : node.on) {
      edges.erase({child, dependency});
      auto& by = nodes[dependency].by;
      by.erase(std::remove(by.begin(), by.end(), child), by.end());
    }
    for (const Service* dependent : node.by) {
      edges.erase({dependent, child});
      Node& d = nodes[dependent];
      for (size_t i = d.on.size(); i-- > 0;) {
        if (d.on[i] == child) {
          d.on.erase(d.on.begin() + static_cast<std::ptrdiff_t>(i));
          d.on_names.erase(d.on_names.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    }
  }

  // The chain of dependencies from `from` to `to` (both included), if `from`
  // depends on `to` directly or not. Searches from both ends at once, one
  // service at a time from each, so the cost is about twice the smaller of
  // "what `from` depends on" and "what depends on `to`": a chain or a fan-out
  // declared one link at a time stays linear in all.
  std::optional<std::vector<const Service*>> Chain(const Service* from,
                                                   const Service* to) const {
    if (from == to) return std::vector<const Service*>{from};
    // Each side: the service it reached each service from.
    absl::flat_hash_map<const Service*, const Service*> ahead = {
        {from, nullptr}};
    absl::flat_hash_map<const Service*, const Service*> back = {{to, nullptr}};
    std::deque<const Service*> ahead_todo = {from}, back_todo = {to};
    const Service* meet = nullptr;
    auto step = [&](std::deque<const Service*>& todo, auto& seen,
                    const auto& other,
                    std::vector<const Service*> Node::*next) {
      const Service* s = todo.front();
      todo.pop_front();
      auto it = nodes.find(s);
      if (it == nodes.end()) return;
      for (const Service* n : it->second.*next) {
        if (!seen.emplace(n, s).second) continue;
        if (other.contains(n)) {
          meet = n;
          return;
        }
        todo.push_back(n);
      }
    };
    while (!ahead_todo.empty() && !back_todo.empty() && meet == nullptr) {
      step(ahead_todo, ahead, back, &Node::on);
      if (meet == nullptr && !back_todo.empty()) {
        step(back_todo, back, ahead, &Node::by);
      }
    }
    if (meet == nullptr) return std::nullopt;
    std::vector<const Service*> chain;
    for (const Service* s = meet; s != nullptr; s = ahead.at(s)) {
      chain.push_back(s);
    }
    std::reverse(chain.begin(), chain.end());  // from ... meet
    for (const Service* s = back.at(meet); s != nullptr; s = back.at(s)) {
      chain.push_back(s);  // ... to
    }
    return chain;
  }
};

}  // namespace base_service_internal
}  // namespace lifecycle

#endif  // LIFECYCLE_DEPENDENCY_GRAPH_H_
