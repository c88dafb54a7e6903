// -----------------------------------------------------------------------------
// startup_report.h
// -----------------------------------------------------------------------------
//
// Why a start-up took as long as it did, read from a snapshot: every service
// records when its last start began (`ServiceSnapshot::start_began`) and how
// long it took to signal started (`startup_duration`), and every child of a
// composite the siblings it started after (`depends_on`, composite_service.h's
// "Start-up as a graph"). From those:
//
//   * `CriticalPath()`  the chain that made the root's start-up as long as it
//     was, in the manner of `systemd-analyze critical-chain`:
//       client 91.2ms: client @0 +91.2ms → client/elector @30.3ms +30.2ms →
//       client/producer @60.6ms +30.5ms
//     Each hop is a service, when its start began after the root's (@) and
//     how long it took (+). From a composite the chain goes into the child
//     that signalled started last, and from a child to the dependency that
//     signalled last before it began: the one it waited for.
//   * `SlowestStarts()`  the leaves that took longest.
//   * `ToTraceEventJson()`  the timeline in the Trace Event format that
//     Perfetto (ui.perfetto.dev) and chrome://tracing open: one track per
//     service, one slice per start-up.
//   * `ToStartupSvg()`  the same timeline as a self-contained SVG waterfall
//     (no script, no external resource), the critical path in red.
//
// The test harness writes the last two for every start (harness.h); the demo
// with `--trace=FILE`. Services that never completed a start are left out,
// except in the SVG, where a start that failed is a grey bar to when it failed
// (a failed test's waterfall shows what failed, and when).
//
// Opt-in: its own target, `//lifecycle:startup_report` (CMake: part of
// `lifecycle::snapshot_format`). Thread safety: pure functions of their
// arguments.

#ifndef LIFECYCLE_STARTUP_REPORT_H_
#define LIFECYCLE_STARTUP_REPORT_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lifecycle/health.h"

namespace lifecycle {

// One service on a critical path.
struct StartupHop {
  std::string path;
  absl::Duration at;    // when its start began, after the root's
  absl::Duration took;  // its start-up duration
};

// The critical path of `root`'s last start-up, root first; empty if the root
// never completed a start.
std::vector<StartupHop> CriticalPath(const ServiceSnapshot& root);

// "client 91.2ms: client @0 +91.2ms → client/elector @30.3ms +30.2ms → ...",
// or "client: no completed start-up". Dependencies that form a cycle (only a
// hand-made snapshot, or one read back from JSON, can have one) are named
// after the path: "(the dependencies form a cycle: app/a -> app/b -> app/a;
// the path past it is a guess)".
std::string CriticalPathText(const ServiceSnapshot& root);

// "Slowest starts: client/producer/bulk 30.6ms, client/notifier 30.4ms, ..."
// (the `count` slowest services without children), or "" if none started.
std::string SlowestStarts(const ServiceSnapshot& root, int count = 5);

// The start-ups of `roots` and their descendants as Trace Event JSON.
std::string ToTraceEventJson(const std::vector<ServiceSnapshot>& roots);

// The start-ups of `roots` and their descendants as an SVG waterfall.
std::string ToStartupSvg(const std::vector<ServiceSnapshot>& roots);

}  // namespace lifecycle

#endif  // LIFECYCLE_STARTUP_REPORT_H_
