#include "lifecycle/live_services.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/base_service.h"
#include "lifecycle/service_tree.h"

namespace lifecycle {
namespace {

// The process-wide list of live services (SnapshotLiveServices()): an
// intrusive doubly-linked list, so joining and leaving it allocate nothing.
absl::Mutex g_live_mu(absl::kConstInit);
BaseService* g_live_head ABSL_GUARDED_BY(g_live_mu) = nullptr;
BaseService* g_live_tail ABSL_GUARDED_BY(g_live_mu) = nullptr;

// Locks `mu` if it can before `deadline`, never blocking on it: a hung thread
// may hold it. The report paths that use it have no waiter to wake them, so
// they look again every 100us.
bool TryLockUntil(absl::Mutex& mu, absl::Time deadline)
    ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, mu) {
  while (!mu.TryLock()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Microseconds(100));
  }
  return true;
}

}  // namespace

namespace base_service_internal {

void Access::JoinLiveList(BaseService& service) {
  absl::MutexLock live(&g_live_mu);
  service.live_prev_ = g_live_tail;
  (g_live_tail != nullptr ? g_live_tail->live_next_ : g_live_head) = &service;
  g_live_tail = &service;
}

void Access::LeaveLiveList(BaseService& service) {
  absl::MutexLock live(&g_live_mu);
  (service.live_prev_ != nullptr ? service.live_prev_->live_next_
                                 : g_live_head) = service.live_next_;
  (service.live_next_ != nullptr ? service.live_next_->live_prev_
                                 : g_live_tail) = service.live_prev_;
}

}  // namespace base_service_internal

LiveServices SnapshotLiveServices(absl::Duration patience) {
  const absl::Time deadline = absl::Now() + patience;
  LiveServices live;
  struct Row {
    const BaseService* parent;
    ServiceSnapshot snapshot;
  };
  std::vector<Row> rows;  // in the order the services were made
  absl::flat_hash_map<const BaseService*, size_t> index;
  if (!TryLockUntil(g_live_mu, deadline)) {
    live.complete = false;
    return live;
  }
  for (const BaseService* s = g_live_head; s != nullptr; s = s->live_next_) {
    // Past the deadline each mutex is still tried once.
    if (!TryLockUntil(s->mu_, std::max(deadline, absl::Now()))) {
      live.unreadable.push_back(s->name_);
      live.unreadable_workers.push_back(
          s->worker_tid_.load(std::memory_order_relaxed));
      continue;
    }
    Row row{s->parent_, {}};
    s->FillSnapshotLocked(row.snapshot);
    s->mu_.Unlock();
    row.snapshot.name = s->name_;
    index[s] = rows.size();
    rows.push_back(std::move(row));
  }
  g_live_mu.Unlock();

  // Children of each row, then the trees top-down from the roots (a parent
  // that is gone or unreadable makes its child a root).
  std::vector<std::vector<size_t>> children(rows.size());
  std::vector<size_t> roots;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto parent = index.find(rows[i].parent);
    if (rows[i].parent != nullptr && parent != index.end()) {
      children[parent->second].push_back(i);
    } else {
      roots.push_back(i);
    }
  }
  // Builds row `i` at `path` (children are moved out of `rows`; each row is
  // built once: the parent links form trees).
  auto build = [&](auto& self, size_t i, std::string path) -> ServiceSnapshot {
    ServiceSnapshot s = std::move(rows[i].snapshot);
    s.path = std::move(path);
    for (size_t c : children[i]) {
      s.children.push_back(
          self(self, c, absl::StrCat(s.path, "/", rows[c].snapshot.name)));
    }
    return s;
  };
  for (size_t r : roots) {
    std::string name = rows[r].snapshot.name;
    live.roots.push_back(build(build, r, std::move(name)));
  }
  return live;
}

}  // namespace lifecycle
