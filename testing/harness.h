// -----------------------------------------------------------------------------
// harness.h
// -----------------------------------------------------------------------------
//
// `StartStopHarness` starts a constellation of services for a test, waits for
// all of them to signal started, and stops them all when the test ends. When
// something goes wrong it says exactly what: the path of the service that
// failed to start and its error, or the services still pending and for how
// long, followed by the health table of every component.
//
//   TEST(ClientTest, Serves) {
//     Client client;
//     lifecycle_testing::StartStopHarness harness({&client});
//     ASSERT_TRUE(harness.StartAll());
//     ...  // the client and all its subservices are started
//   }    // the harness stops everything, bounded by WaitTimeout()
//
// A failed start, under `ASSERT_TRUE`, is one failure that reads
// (harness_test.cc checks these lines):
//
//   client_test.cc:12: Failure
//   Value of: harness.StartAll()
//     Actual: false (StartStopHarness: UNAVAILABLE: service
//   'client/producer/bulk' failed to start: queue missing
//   Failed: client/producer/bulk (UNAVAILABLE: service 'client/producer/bulk'
//     failed to start: queue missing)
//   Pending: none
//   PATH                     STATE    SINCE  STARTUP  STARTS  RESTARTS  ...
//   client                   failed   ...
//   ...)
//   Expected: true
//
// and a start that times out names what is pending, down to the services that
// hold a composite up, with their worker threads' stacks:
//
//   StartStopHarness: DEADLINE_EXCEEDED: 1 of 1 services not started after
//     3s: client (starting for 3s) waiting on client/notifier (starting for
//     3s) (start timeout 3s)
//   Pending: client (starting for 3s), client/notifier (starting for 3s)
//   PATH ...
//   Stack of client/notifier (starting), thread 4242 'notifier':
//     #0 ...
//
// Services that die during the test do not pass silently. When the harness
// stops the services (`StopAll()` or its destructor), every service that
// failed after the harness had started it — its run ended with an error, or
// it returned while nobody had asked it to stop, whether or not its parent's
// supervision restarted it — fails the test once, named by the path of the
// innermost service that died, with its error and when it happened:
//
//   StartStopHarness (stopping on destruction): 1 service(s) died during the
//   test (expect it with ExpectFailure(path), or check it with HasFailed()):
//     client/producer/default died 293us after the start
//     (2026-11-28T17:08:53.924Z): INTERNAL: service 'client/producer/default'
//     failed while running: crashed (injected)
//
// unless the test expected it (`ExpectFailure(path)`) or examined it with a
// matcher (`HasFailed`, `HasRestarted`, `FailedToStart`; matchers.h). A test
// that expected a failure which did not happen fails too.
//
// A failed start or stop also writes files, in `TestOutputDirectory()` (below),
// named after the test: the snapshot as JSON (`SUITE.TEST.snapshot.json`) and
// the start-up's timeline (startup_report.h): `SUITE.TEST.startup.json`, Trace
// Event JSON to open in ui.perfetto.dev or chrome://tracing, and
// `SUITE.TEST.startup.json.svg`, a waterfall to open in a browser. The failure
// message says where ("Snapshot (JSON): ... in this test's outputs
// (bazel-testlogs/...)"). A test that fails otherwise gets the timeline when
// its harness is destroyed. A passing test writes nothing, unless
// `LIFECYCLE_OUTPUTS=all`, which writes the timeline of every start.
//
// Starting is bounded by `Options::start_timeout` as a whole, including a
// `Start()` that blocks (a slow `OnStart()`): `Start()` runs on a helper
// thread, and a start that does not return in time fails with the usual
// report. Stopping is bounded by `Options::stop_timeout` as a whole, with no
// helper thread (`StopAllParallelFor`, service.h); services that do not stop
// in time are reported as a test failure naming by path the services that
// hold the stop up, with their stacks. Their workers keep running; destroying
// such a service then ends the process with a message naming it instead of
// hanging or corrupting memory (`BaseService` aborts at once; `FuncService`
// and `FakeService` stop for `DestructionStopTimeout()` first,
// base_service.h). If a `Start()` still
// has not returned `stop_timeout` after the stop, the harness's destructor
// aborts naming what is pending, for the same reason.
//
// Thread safety: a harness belongs to its test's thread: call its members
// from that thread only. The services it manages may be used from any thread.

#ifndef LIFECYCLE_TESTING_HARNESS_H_
#define LIFECYCLE_TESTING_HARNESS_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/context.h"
#include "lifecycle/outputs_internal.h"
#include "lifecycle/service.h"
#include "lifecycle/testing/wait.h"
#include "lifecycle/thread.h"

namespace lifecycle_testing {

// What `StartStopHarness::StartAll()` and `StopAll()` return: the outcome
// with its whole report, for `ASSERT_TRUE`, `EXPECT_TRUE`, `EXPECT_FALSE` or
// `if (!result)` (it converts to `::testing::AssertionResult` and to bool).
//
// A failure can never pass silently. Converting the result (any assertion on
// it, `if`, `message()`), or an `ExpectFailure()` that covers the service that
// failed, counts as examining it. A failure that nobody examined — the result
// dropped as in `harness.StartAll();` (which compiles with a warning at most),
// or stored and never looked at — fails the test when the last copy of the
// result goes (destroyed, or assigned over as in `r = harness.StopAll();`),
// once, with the same report, at the line of the call.
class [[nodiscard]] HarnessResult {
 public:
  HarnessResult(::testing::AssertionResult result, const char* what,
                const char* file, int line, bool examined = false);
  HarnessResult(const HarnessResult&) = default;
  // A failure that nobody examined, held by no other copy, is reported when
  // it is assigned over, as when it is destroyed.
  HarnessResult& operator=(const HarnessResult& other);
  ~HarnessResult();

  operator ::testing::AssertionResult() const;  // NOLINT: for the assertions
  explicit operator bool() const;
  const char* message() const;

 private:
  struct State;
  // Reports the failure held, if nobody examined it and no other copy holds
  // it.
  void ReportIfUnexamined() const;

  std::shared_ptr<State> state_;
};

class StartStopHarness {
 public:
  struct Options {
    absl::Duration start_timeout = WaitTimeout();
    absl::Duration stop_timeout = WaitTimeout();
    // What the services are started under: the harness's context is made
    // from it. Give `VirtualTime::context()` to start them in virtual time.
    lifecycle::Context context = lifecycle::Context::Background();
  };

  explicit StartStopHarness(std::vector<lifecycle::Service*> services);
  StartStopHarness(std::vector<lifecycle::Service*> services, Options options);
  StartStopHarness(const StartStopHarness&) = delete;
  StartStopHarness& operator=(const StartStopHarness&) = delete;

  // Stops every service (see above).
  ~StartStopHarness();

  // Starts the services in order and waits until all have started. The
  // result carries the whole report; checked, it fails the test only through
  // the assertion that checks it, so `ASSERT_TRUE(harness.StartAll())`
  // records exactly one failure; unchecked, a failure still fails the test
  // (`HarnessResult`). (`file` and `line` say where failures found later are
  // reported: leave them to their defaults.)
  HarnessResult StartAll(const char* file = __builtin_FILE(),
                         int line = __builtin_LINE());

  // Stops every service now (in parallel), bounded by the stop timeout. The
  // result names those that did not stop and the deaths during the test (see
  // above); as with `StartAll()`, check it: `EXPECT_TRUE(harness.StopAll())`.
  HarnessResult StopAll(const char* file = __builtin_FILE(),
                        int line = __builtin_LINE());

  // Says that the service at `path` (or one below it) is expected to die
  // during the test: its death is not reported; if none happened by the time
  // the harness stops the services, that is reported instead. Paths are
  // compared from the root, as reports print them ("client/notifier").
  void ExpectFailure(std::string path);

  // The health table of every service.
  std::string Report() const;

  // The context the services were started with; cancelled when the harness
  // stops them.
  const lifecycle::Context& context() const { return scope_->context(); }

 private:
  ::testing::AssertionResult Start();
  ::testing::AssertionResult StopServices();
  // Whether an ExpectFailure() covers the service `status` names.
  bool Expected(const absl::Status& status) const;
  // Writes the snapshot as JSON (see above); returns the line that says where.
  std::string WriteSnapshotOutput() const;
  // Writes the start-up as Trace Event JSON and SVG (see above); returns the
  // line that says where.
  std::string WriteStartupTrace();
  // The deaths since the start, not expected nor examined, and the expected
  // deaths that did not happen; empty if none.
  std::string UnexpectedDeaths() const;

  std::vector<lifecycle::Service*> services_;
  Options options_;
  // Renewed by a start after a stop, so the harness can start again.
  std::unique_ptr<lifecycle::CancellableContext> scope_;
  bool stopped_ = false;
  // Where the test called StartAll(): failures found on destruction are
  // reported there.
  // The status of the last start, for `Expected()`.
  absl::Status start_status_;
  const char* start_file_ = __FILE__;
  int start_line_ = __LINE__;
  // Taken when a start succeeded, in the services' time (virtual time for a
  // harness started under it): the deaths counted then, per root (two roots
  // may share a name) and path.
  bool started_ = false;
  absl::Time started_at_;
  std::vector<absl::flat_hash_map<std::string, int64_t>> deaths_at_start_;
  uint64_t examined_generation_ = 0;
  std::vector<std::string> expected_failures_;
  // The thread that calls Start() (so a blocking Start() is bounded too) and
  // the signal it closes when Start() has returned.
  std::unique_ptr<lifecycle::Thread> starter_;
  lifecycle::Signal start_returned_ = lifecycle::Signal::Closed();
  bool trace_written_ = false;
};

// Where the harness and the hang watchdog (hang_watchdog.h) write their
// files: `$LIFECYCLE_OUTPUT_DIR` if set (`$LIFECYCLE_SNAPSHOT_DIR`, its
// deprecated name, too), else `$TEST_UNDECLARED_OUTPUTS_DIR` (under Bazel:
// each test's, and each shard's, own), else one folder for this run,
// `$TMPDIR/lifecycle-outputs-BINARY-PID` (`/tmp` without `TMPDIR`), made here
// on the first call (as is the folder a variable names, with its missing
// parents). Only a
// failure writes files, so a passing run makes none.
std::string TestOutputDirectory();

// The path of `file_name` in `TestOutputDirectory()`, each '/' of the name
// made '_' (parameterized tests' names have them).
std::string TestOutputPath(std::string_view file_name);

// The name of the running test's file of a kind ("snapshot.json"):
// `SUITE.TEST.snapshot.json` the first time, then `SUITE.TEST.2.snapshot.json`
// and on, when the test writes another (a second harness) or runs again
// (`--gtest_repeat`). Outside a test, `lifecycle.KIND`. Thread-safe.
std::string TestOutputFileName(std::string_view kind);

// How a failure message names a written file: under Bazel, "FILE in this
// test's outputs (bazel-testlogs/PACKAGE/TEST[/shard_K_of_N]/test.outputs,
// zipped as outputs.zip)", since the sandbox path is gone when the test ends;
// elsewhere the path itself.
std::string DescribeTestOutput(std::string_view path);

namespace outputs_internal {
// The shard this process runs of a sharded suite, from 0; nullopt when the
// suite runs in one process (lifecycle/outputs_internal.h). The hang watchdog
// names it in its report.
using ::lifecycle::outputs_internal::CurrentShard;
using ::lifecycle::outputs_internal::Shard;
}  // namespace outputs_internal

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_HARNESS_H_
