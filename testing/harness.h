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
// A failed start reads (harness_test.cc checks these lines):
//
//   client_test.cc:12: Failure
//   StartStopHarness: UNAVAILABLE: service 'client/producer/bulk' failed to
//     start: queue missing
//   Failed: client/producer/bulk (UNAVAILABLE: service 'client/producer/bulk'
//     failed to start: queue missing)
//   Pending: none
//   PATH                     STATE    SINCE  STARTUP  STARTS  ERRORS  ...
//   client                   failed   ...
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
// The snapshot of a failed start or stop is also written as JSON to
// `lifecycle_snapshot.json` in `$LIFECYCLE_SNAPSHOT_DIR` if set, else in
// `$TEST_UNDECLARED_OUTPUTS_DIR` (under Bazel: the test's outputs.zip), else
// in GoogleTest's temporary folder (`testing::TempDir()`), and the failure
// message ends with "Snapshot (JSON): PATH".
//
// Starting is bounded by `Options::start_timeout` as a whole, including a
// `Start()` that blocks (a slow `OnStart()`): `Start()` runs on a helper
// thread, and a start that does not return in time fails with the usual
// report. Stopping on destruction is bounded by `Options::stop_timeout`;
// services that do not stop in time are reported as a test failure naming
// them by path. Their workers keep running; destroying such a service then
// ends the process with a message naming it instead of hanging or corrupting
// memory (`BaseService` aborts at once; `FuncService` and `FakeService` stop
// for `DestructionStopTimeout()` first, base_service.h). If a `Start()` still
// has not returned `stop_timeout` after the stop, the harness's destructor
// aborts naming what is pending, for the same reason.

#ifndef LIFECYCLE_TESTING_HARNESS_H_
#define LIFECYCLE_TESTING_HARNESS_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/context.h"
#include "lifecycle/service.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {

class StartStopHarness {
 public:
  struct Options {
    absl::Duration start_timeout = WaitTimeout();
    absl::Duration stop_timeout = WaitTimeout();
  };

  explicit StartStopHarness(std::vector<lifecycle::Service*> services);
  StartStopHarness(std::vector<lifecycle::Service*> services, Options options);
  StartStopHarness(const StartStopHarness&) = delete;
  StartStopHarness& operator=(const StartStopHarness&) = delete;

  // Stops every service (see above).
  ~StartStopHarness();

  // Starts the services in order and waits until all have started. Returns
  // the result with the report; does not fail the test by itself.
  ::testing::AssertionResult TryStartAll();

  // `TryStartAll()`, adding a failure at the caller's line when it fails.
  bool StartAll(const char* file = __builtin_FILE(),
                int line = __builtin_LINE());

  // Stops every service now (in parallel), bounded by the stop timeout;
  // `false` and a failure at the caller's line naming those that did not stop.
  bool StopAll(const char* file = __builtin_FILE(),
               int line = __builtin_LINE());

  // The health table of every service.
  std::string Report() const;

  // The context the services were started with; cancelled when the harness
  // ends.
  const lifecycle::Context& context() const { return scope_.context(); }

 private:
  ::testing::AssertionResult TryStopAll();
  // Writes the snapshot as JSON (see above); returns the line that says where.
  std::string WriteSnapshotOutput() const;

  std::vector<lifecycle::Service*> services_;
  Options options_;
  lifecycle::CancellableContext scope_;
  bool stopped_ = false;
  // The thread that calls Start() (so a blocking Start() is bounded too) and
  // the signal it closes when Start() has returned.
  std::thread starter_;
  lifecycle::Signal start_returned_ = lifecycle::Signal::Closed();
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_HARNESS_H_
