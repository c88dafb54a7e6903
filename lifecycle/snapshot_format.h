// -----------------------------------------------------------------------------
// snapshot_format.h
// -----------------------------------------------------------------------------
//
// A `ServiceSnapshot` (health.h) as people and programs read it: an aligned
// table and JSON. A target of its own (//lifecycle:snapshot_format, CMake
// `lifecycle::lifecycle` as a whole), so that a service that never prints its
// health does not link a JSON library; the harness and the demo use it.
//
// The table (`ToTable`, `operator<<`, and `AbslStringify` for abseil versions
// whose StrCat/StrFormat use it, 2023 and later) of a small tree, as
// health_test.cc checks it:
//
//   PATH             STATE     SINCE    STARTUP  STARTS  RESTARTS  ERRORS  LAST ERROR
//   client           started   1.204s   3.1ms    1       0         0
//   client/notifier  degraded  511.0ms  1.2ms    2       1         2       UNAVAILABLE: connection reset
//   client/producer  failed    1.202s   400us    2       0         0       INTERNAL: boom
//
// SINCE is the time spent in the current state up to the snapshot; STARTUP is
// how long the last completed start took (Start() to the started signal), "-"
// if none completed; RESTARTS counts the restarts its parent's supervision
// made after it died; LAST ERROR is the failure status of a failed service, or
// the last error a running service reported.
//
// `ToJson(snapshot, 2)` of the first two of those services, also as the test
// checks it (one object per service, keys sorted, children nested; absent
// values are null):
//
//   {
//     "children": [
//       {
//         "children": [],
//         "degraded": true,
//         "errors": 2,
//         "failures": 1,
//         "in_state_seconds": 0.511,
//         "last_error": {
//           "code": "UNAVAILABLE",
//           "message": "connection reset"
//         },
//         "last_error_at": "2026-11-18T11:06:41.100000Z",
//         "last_failure": {
//           "code": "UNAVAILABLE",
//           "message": "lost the database"
//         },
//         "last_failure_at": "2026-11-18T11:06:40.690000Z",
//         "last_unasked_end_at": null,
//         "name": "notifier",
//         "path": "client/notifier",
//         "restarts": 1,
//         "since": "2026-11-18T11:06:40.693000Z",
//         "starts": 2,
//         "startup_seconds": 0.0012,
//         "state": "started",
//         "status": null,
//         "taken_at": "2026-11-18T11:06:41.204000Z",
//         "threads": [],
//         "unasked_ends": 0
//       }
//     ],
//     "degraded": false,
//     "errors": 0,
//     "failures": 0,
//     "in_state_seconds": 1.204,
//     "last_error": null,
//     "last_error_at": null,
//     "last_failure": null,
//     "last_failure_at": null,
//     "last_unasked_end_at": null,
//     "name": "client",
//     "path": "client",
//     "restarts": 0,
//     "since": "2026-11-18T11:06:40.000000Z",
//     "starts": 1,
//     "startup_seconds": 0.0031,
//     "state": "started",
//     "status": null,
//     "taken_at": "2026-11-18T11:06:41.204000Z",
//     "threads": [],
//     "unasked_ends": 0
//   }
//
// Times are RFC 3339 in UTC, to the microsecond; durations are seconds as
// numbers; statuses ("status", the current failure; "last_failure", the last
// one, kept across restarts; "last_error") are
// {"code": "UNAVAILABLE", "message": "..."} or null; "unasked_ends" counts
// runs that returned cleanly while nobody had asked them to stop; "threads"
// lists the worker thread ids while a run is in progress.
//
// Thread safety: the functions are thread-safe.

#ifndef LIFECYCLE_SNAPSHOT_FORMAT_H_
#define LIFECYCLE_SNAPSHOT_FORMAT_H_

#include <ostream>
#include <string>
#include <vector>

#include "lifecycle/health.h"

namespace lifecycle {

// The aligned table shown above, one line per service, ending in a newline.
// Columns are aligned by characters (UTF-8 code points), not bytes.
std::string ToTable(const ServiceSnapshot& snapshot);
// The same for several roots, under one header.
std::string ToTable(const std::vector<ServiceSnapshot>& snapshots);

// JSON as documented above; `indent` < 0 gives one line. Never throws: bytes
// that are not valid UTF-8 (in a name or an error message) are written as
// U+FFFD, so a report is written whatever its messages hold.
std::string ToJson(const ServiceSnapshot& snapshot, int indent = -1);
std::string ToJson(const std::vector<ServiceSnapshot>& snapshots,
                   int indent = -1);

template <typename Sink>
void AbslStringify(Sink& sink, const ServiceSnapshot& snapshot) {
  sink.Append(ToTable(snapshot));
}
std::ostream& operator<<(std::ostream& os, const ServiceSnapshot& snapshot);

}  // namespace lifecycle

#endif  // LIFECYCLE_SNAPSHOT_FORMAT_H_
