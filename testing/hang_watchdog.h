// -----------------------------------------------------------------------------
// hang_watchdog.h
// -----------------------------------------------------------------------------
//
// Turns a hung GoogleTest test into a report instead of a silent kill. The
// library's own waits are bounded, but a test can still hang anywhere else: a
// `join()`, a mutex, a blocking read, a destructor. Bazel then kills the
// binary at `TEST_TIMEOUT` (ctest at its `TIMEOUT`) and the log does not even
// say which test was running. The watchdog gives every test a budget; a test
// that overruns it gets, on stderr and in a file:
//
//   * its full name and how long it has run;
//   * the health table of every live service of the process
//     (`lifecycle::SnapshotLiveServices()`);
//   * the stack of every thread of the process, each labelled with the
//     service whose worker it is, the test's own thread marked;
//
// and then the process ends with exit status `kHangExitCode` (124, as
// `timeout(1)` uses). Install it in one line: link `//testing:hang_watchdog_main`
// (CMake: `lifecycle::hang_watchdog_main`) instead of gtest's main, or, in a
// `main` of your own, call `InstallHangWatchdog()` before `RUN_ALL_TESTS()`:
//
//   int main(int argc, char** argv) {
//     testing::InitGoogleMock(&argc, argv);
//     lifecycle_testing::InstallHangWatchdog();
//     return RUN_ALL_TESTS();
//   }
//
// A report reads, for example (README.md shows a whole one):
//
//   [ HANGING  ] ClientTest.Serves has run for 10.001s; its budget is 10s
//   (set LIFECYCLE_TEST_BUDGET or call SetTestBudget() to change it)
//   PATH             STATE    SINCE    STARTUP  STARTS  RESTARTS  ERRORS  ...
//   client           started  10.000s  1.203ms  1       0         0
//   ...
//   thread 4240 'client_test' (the test's thread):
//     #0 __lll_lock_wait
//     ...
//     #3 ClientTest_Serves_Test::TestBody()
//   thread 4242 'notifier' (worker of client/notifier):
//     ...
//
// Outside test bodies too. From `InstallHangWatchdog()` on, every moment of
// the process is watched, each phase with the same budget and named by what
// runs in it: "(the global test environments' SetUp())", "SetUpTestSuite()
// of SUITE", the test (its fixture, `SetUp()`, body and `TearDown()`), "(after
// SUITE.TEST: TearDownTestSuite() of SUITE, or between tests)", "(after test
// suite SUITE, between test suites)", "(the global test environments'
// TearDown())", "(after the last test: the program's exit)".
//
// Death tests. The report goes to the stderr the process had when the
// watchdog was installed (GoogleTest redirects fd 2 into a capture file while
// a death test runs, which would hide it), and before the process ends, every
// child process of it and theirs is killed and named ("killed 1 child
// process(es), so that none outlives the test: 4242 'client_test'"): a death
// test's child that hangs — in the "fast" style it has no watchdog of its own
// — never outlives the test. A "threadsafe" child runs `main` again, so its
// own watchdog watches it too, named "SUITE.TEST (in a death test's child
// process)". The child processes are stopped (SIGSTOP) while the report is
// written, so that none ends itself in between. The guards of programs
// (`ProcessService`, `ContainerService`) are neither stopped nor killed: once
// the process has ended they end their programs, SIGTERM first, and remove
// their containers.
//
// The budget. Each test gets `TestBudget()`: 60 seconds, doubled under a
// sanitizer (as `WaitTimeout()` is), or `LIFECYCLE_TEST_BUDGET` (an
// `absl::ParseDuration` string such as "90s"), and never more than three
// quarters of Bazel's `TEST_TIMEOUT`. However long each test's budget, the
// watchdog also reports before nine tenths of `TEST_TIMEOUT` has passed since
// it was installed, so Bazel's kill never comes first. ctest tells a test
// nothing of its timeout; the default of 60s is well under ctest's 1500s. A
// test that is slow on purpose says so: `SetTestBudget(absl::Minutes(5))`
// (counted from the call; outside a test body it sets the budget of the
// phase that runs, a slow `SetUpTestSuite()`'s for instance). Which wins:
// `SetTestBudget()` over `LIFECYCLE_TEST_BUDGET`, which is over the default;
// whichever it is, the report comes before nine tenths of `TEST_TIMEOUT`. A
// budget of zero or less turns the watchdog off (for the test, or for every
// test when installed so) with one warning on stderr.
//
// The file: `hang_report_SUITE.TEST.txt` in `TestOutputDirectory()`, where
// the harness writes its files (harness.h): under Bazel the test's outputs
// (each shard's own), elsewhere a folder for the run. The report's last line
// says where it is.
//
// Sharded suites (Bazel's `shard_count`, or GoogleTest's `GTEST_TOTAL_SHARDS`
// and `GTEST_SHARD_INDEX`): each shard is its own process with its own
// budget, cut to its own `TEST_TIMEOUT`, and the report's first line names the
// shard ("[ HANGING  ] Suite.Test (shard 2 of 4) has run for ...").
//
// Reporting while something hangs. The hung thread may hold any lock, the
// library's included, so the report path never blocks on one: the list of
// live services and each service's mutex are only tried, for 100ms in all (a
// service whose mutex stays held is named as unreadable); stacks are captured
// by a signal and waited for at most 200ms per thread (one that does not
// answer says so, and the report goes on); the report is written with
// `write(2)`, not through `stderr`'s `FILE` lock; the test's name is read from
// what the watchdog stored when the test started, not from GoogleTest's
// `UnitTest`, which takes a mutex. If the report itself has not finished after
// `HangWatchdogOptions::report_limit` (30s), the process ends anyway, saying
// so. Only one report is ever written: a test that ends just as its budget
// expires is either not reported or reported once, never both; its thread
// then waits for the report to end the process.
//
// Limits. Under ThreadSanitizer stacks are not captured (it defers signals);
// the report says so and still names the test and shows the services and the
// threads. Services that are not `BaseService`s are not in the table. The
// watchdog measures wall time: a test stopped in a debugger is reported too
// (set LIFECYCLE_TEST_BUDGET=0 to debug).
//
// Cost when nothing hangs: entering a phase is a clock read, an uncontended
// mutex (only writers of the budget take it, never the watchdog's thread) and
// a few atomic operations; the watchdog's thread wakes only when a budget
// expires, or, through a futex and without a lock, when a budget shorter than
// the one it sleeps on is set. docs/PERFORMANCE.md has the measured ratio to an
// empty test.
//
// Thread safety: everything here is thread-safe. `SetTestBudget()` and
// `TestDeadline()` refer to the test (or phase) running at the time of the
// call.

#ifndef LIFECYCLE_TESTING_HANG_WATCHDOG_H_
#define LIFECYCLE_TESTING_HANG_WATCHDOG_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace lifecycle_testing {

inline constexpr char kTestBudgetVariable[] = "LIFECYCLE_TEST_BUDGET";

// The exit status of a process the watchdog ended.
inline constexpr int kHangExitCode = 124;

// The default budget of a test, from the environment (see above).
absl::Duration TestBudget();

// `TestBudget()` computed with an injected environment (for tests).
absl::Duration ComputeTestBudget(const char* (*getenv)(const char*),
                                 int sanitizer_factor);

struct HangWatchdogOptions {
  // Each test's budget. Zero or less: no test is watched (one warning).
  absl::Duration budget = TestBudget();
  // How long the report may take before the process ends without it.
  absl::Duration report_limit = absl::Seconds(30);
};

// Adds the watchdog to GoogleTest's listeners, and starts its thread. Call it
// once, after `InitGoogleTest()` and before `RUN_ALL_TESTS()`; calling it again
// only replaces the options (from the next test on).
void InstallHangWatchdog(HangWatchdogOptions options = {});

// The running test must end within `budget` from now. Zero or less: this
// test is not watched (one warning per process). Call it at the top of a test
// that is slow on purpose, or, in a test of a hang, just before the hang.
// Without an installed watchdog it does nothing.
void SetTestBudget(absl::Duration budget);

// When the running test (or phase) will be reported as hung;
// `absl::InfiniteFuture()` when it is not watched.
absl::Time TestDeadline();

namespace hang_watchdog_internal {

// The watched test's deadline and the one decision that matters: who acts
// first at its expiry, the test's end (`Disarm()`) or the watchdog
// (`Claim()`). Exactly one of them wins, so a test is never both passed and
// reported, nor reported twice. Lock-free.
class Deadline {
 public:
  // Watches until `deadline`; false if a report is already in progress.
  // `slot` (0 or 1) travels with the deadline to `Claim()`: it says which of
  // two buffers describes what is watched, so the watchdog reads the one
  // that belongs to the deadline it claimed while the next is being written.
  bool Arm(absl::Time deadline, int slot = 0);
  // Stops watching; false if a report is in progress (the caller then must not
  // go on as if the test had passed).
  bool Disarm();
  // True once, for the watchdog, if the deadline is armed and `now` is past
  // it; then `*slot` (if given) is the slot it was armed with.
  bool Claim(absl::Time now, int* slot = nullptr);
  // The armed deadline (to the nanosecond, but for its lowest bit);
  // `absl::InfiniteFuture()` when disarmed or claimed.
  absl::Time Get() const;

 private:
  static constexpr int64_t kDisarmed = 0;
  static constexpr int64_t kClaimed = -1;
  // Unix nanoseconds of the deadline, its lowest bit the slot, or one of the
  // above.
  std::atomic<int64_t> nanos_{kDisarmed};
};

}  // namespace hang_watchdog_internal
}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_HANG_WATCHDOG_H_
