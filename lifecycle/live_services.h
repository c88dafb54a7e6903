// -----------------------------------------------------------------------------
// live_services.h
// -----------------------------------------------------------------------------
//
// `SnapshotLiveServices()`: every `BaseService` alive in the process, as trees,
// read without ever waiting for a lock a hung thread could hold. What the hang
// watchdog (testing/hang_watchdog.h) prints; what a debug endpoint can serve.
//
// Thread safety: `SnapshotLiveServices()` may be called from any thread,
// including one that must not block (a watchdog's).

#ifndef LIFECYCLE_LIVE_SERVICES_H_
#define LIFECYCLE_LIVE_SERVICES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lifecycle/health.h"

namespace lifecycle {

// Every live `BaseService` of the process as trees (a root is a service with
// no parent), for reports written while some thread may be hung: the hang
// watchdog's (testing/hang_watchdog.h), a debug endpoint's.
//
// It never waits for a lock a hung thread could hold. The process-wide list
// of live services and each service's own mutex are only *tried*
// (`TryLock()`), again and again for at most `patience` in all; a service
// whose mutex stays held is named in `unreadable` (its name is immutable, so
// it can be read without the lock) and its children become roots; if the
// list's own mutex stays held, `complete` is false and `roots` is empty.
// Children that are not `BaseService`s are not in the list and not shown. Every
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

}  // namespace lifecycle

#endif  // LIFECYCLE_LIVE_SERVICES_H_
