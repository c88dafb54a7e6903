// -----------------------------------------------------------------------------
// health.h
// -----------------------------------------------------------------------------
//
// What a service tells about itself at any moment: its place in a tree (a path
// such as `client/producer/default`), its lifecycle state, and the health it
// reports while running. A `ServiceSnapshot` is a plain value taken from a
// service (and, for a composite, from all its descendants): it can be compared,
// copied to another thread, printed as an aligned table and serialized as JSON.
//
// The lifecycle states (`ServiceState`):
//
//   kStopped --Start()--> kStarting --started--> kStarted --Stop()--> kStopping
//       ^                     |                      |                    |
//       |                     +--start error--> kFailed <--worker error---+
//       |                                          ^ |     (or died while
//       |                                          | |      running)
//       +------------------------------------------|-+---------------------+
//                                                  | |
//                     a restart by its parent (supervision) re-enters kStarting
//
// A failed service keeps the status that made it fail (a start error, an
// exception's message, the error its worker returned) and can be started again.
// A composite's state follows its supervision policy when a child dies while
// running (composite_service.h): with fail-fast it goes kStarted ->
// kStopping -> kFailed naming the child; with degrade it stays kStarted and is
// degraded; with restart it stays kStarted while the child goes kFailed ->
// kStarting -> kStarted, and fails like fail-fast once the restart limit is
// reached.
// While started, a service may report itself degraded (`ReportError`) and
// healthy again (`ReportHealthy`); the snapshot counts errors and keeps the
// last.
//
// A snapshot's table and JSON forms are in snapshot_format.h, a target of its
// own (//lifecycle:snapshot_format) that the services themselves do not need.
//
// Thread safety: a `ServiceSnapshot` is a plain value (copy it freely; do not
// mutate one that another thread reads); the functions are thread-safe.

#ifndef LIFECYCLE_HEALTH_H_
#define LIFECYCLE_HEALTH_H_

#include <sys/types.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace lifecycle {

enum class ServiceState {
  kStopped,   // not running: never started, or stopped cleanly
  kStarting,  // Start() was called; the started signal is not closed yet
  kStarted,   // running; see `degraded` for self-reported health
  kStopping,  // Stop() was called; the worker has not finished yet
  kFailed,    // the last run ended with an error (see `status`)
};

// "stopped", "starting", "started", "stopping", "failed".
std::string_view ServiceStateName(ServiceState state);

template <typename Sink>
void AbslStringify(Sink& sink, ServiceState state) {
  sink.Append(ServiceStateName(state));
}
std::ostream& operator<<(std::ostream& os, ServiceState state);

struct ServiceSnapshot {
  std::string name;
  std::string path;  // names from the root, joined by '/'
  ServiceState state = ServiceState::kStopped;
  absl::Time since = absl::InfinitePast();     // when `state` was entered
  absl::Time taken_at = absl::InfinitePast();  // when the snapshot was taken
  absl::Status status;  // why the service failed; OK unless state is kFailed

  bool degraded = false;  // the service reported an error since it was healthy
  int64_t error_count = 0;  // errors reported in this service's lifetime
  absl::Status last_error;  // OK if none was reported
  absl::Time last_error_at = absl::InfinitePast();

  int64_t start_count = 0;    // calls to Start() that began a run
  int64_t failure_count = 0;  // runs that ended in kFailed
  // The error of the last run that ended in kFailed, and when it did; kept
  // when the service is started again (unlike `status`).
  absl::Status last_failure;
  absl::Time last_failure_at = absl::InfinitePast();
  // Runs that returned cleanly while nobody had asked them to stop (no
  // `Stop()`, context not cancelled), and when the last one did: for a
  // service that should run until stopped, a death without an error (a
  // composite's supervision counts it as one; so does the test harness).
  int64_t unasked_end_count = 0;
  absl::Time last_unasked_end_at = absl::InfinitePast();
  // Times its parent's supervision restarted it after it died
  // (composite_service.h, `Supervision::Restart`).
  int64_t restart_count = 0;
  // The last start-up: when it began (its Start() call; InfinitePast() if
  // never), whether it completed (signalled started), and how long it took
  // (zero until it completed; a start in virtual time may take zero too).
  // The span start-up reports draw (startup_report.h). A restart by the
  // parent's supervision does not replace it: it stays the start-up that the
  // parent's start waited for.
  absl::Time start_began = absl::InfinitePast();
  bool startup_completed = false;
  absl::Duration startup_duration = absl::ZeroDuration();
  // The siblings this service starts after, by name
  // (`CompositeService::AddDependency()`).
  std::vector<std::string> depends_on;

  // OS thread ids of the service's own worker threads while a run is in
  // progress (see thread_stack.h for what they are good for).
  std::vector<pid_t> threads;

  // What the service says of itself beyond these fields, as (key, value)
  // pairs in the order first set (`BaseService::SetDetail()`): a
  // `ProcessService`'s pid, exit status, log file and last "STATUS=" line
  // (process_service.h). The table shows them in a last column, DETAILS, when
  // any row has some; the JSON as the object "details".
  std::vector<std::pair<std::string, std::string>> details;

  std::vector<ServiceSnapshot> children;

  // Time spent in the current state at `taken_at`.
  absl::Duration InState() const { return taken_at - since; }

  // The state word shown in the table: the state, or "degraded" when started
  // and degraded.
  std::string_view StateLabel() const;

  // The state label, with the time in it for a service in transition:
  // "starting for 1.204s", "stopping for 20ms", "started", "degraded", ...
  // How reports name what is pending.
  std::string StateText() const;

  // This snapshot and its descendants, depth first, parents before children.
  // The pointers point into this snapshot, so calling it on a temporary does
  // not compile.
  std::vector<const ServiceSnapshot*> Flatten() const&;
  std::vector<const ServiceSnapshot*> Flatten() const&& = delete;

  // The descendant (or this) with `path`, or nullptr. Not on a temporary.
  const ServiceSnapshot* Find(std::string_view path) const&;
  const ServiceSnapshot* Find(std::string_view path) const&& = delete;

  friend bool operator==(const ServiceSnapshot&, const ServiceSnapshot&);
  friend bool operator!=(const ServiceSnapshot& a, const ServiceSnapshot& b) {
    return !(a == b);
  }
};

// "CODE: message", without payloads; "" for OK. How statuses print here.
std::string StatusText(const absl::Status& status);

}  // namespace lifecycle

#endif  // LIFECYCLE_HEALTH_H_
