// -----------------------------------------------------------------------------
// fake_service.h
// -----------------------------------------------------------------------------
//
// `FakeService` is a service whose behaviour a test chooses, for injecting
// failures into a constellation of services. It keeps the whole `Service`
// contract (it is a `BaseService`) and counts the calls it receives.
//
//   FakeService db("db");
//   db.FailStartWith(absl::UnavailableError("no route"));  // Start() fails
//   db.NeverSignalStarted();         // runs, but its started signal stays open
//   db.StartWhenReleased();          // starts on the test's ReleaseStart()
//   db.FailNow(absl::DataLossError("disk"));  // a running fake fails now
//   db.BlockStopUntilReleased();     // Stop() hangs until ReleaseStop()
//   db.ReportError(...); db.ReportHealthy();  // degraded health
//
// The behaviour set before `Start()` applies to every later run until changed.
// The destructor releases anything blocked and stops the fake
// (`StopForDestruction()`).
//
// Thread safety: all members are thread-safe.

#ifndef LIFECYCLE_TESTING_FAKE_SERVICE_H_
#define LIFECYCLE_TESTING_FAKE_SERVICE_H_

#include <atomic>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "lifecycle/base_service.h"
#include "lifecycle/signal.h"

namespace lifecycle_testing {

class FakeService : public lifecycle::BaseService {
 public:
  explicit FakeService(std::string name);
  ~FakeService() override;

  // Makes `Start()` return `status` (OK restores the normal start).
  void FailStartWith(absl::Status status);
  // Makes runs never call `started()`; they still stop when asked.
  void NeverSignalStarted();
  // Makes runs wait for `ReleaseStart()` before signalling started. Each
  // `ReleaseStart()` releases one run: the current one, or the next one if
  // none is waiting.
  void StartWhenReleased();
  void ReleaseStart();
  // Makes the current run fail with `status`, as a worker that died would:
  // also right after `Start()` returned and while the run waits for
  // `ReleaseStart()`. A failure is never lost.
  void FailNow(absl::Status status);
  // Makes the run ignore its cancelled context until `ReleaseStop()`: a stop
  // that hangs.
  void BlockStopUntilReleased();
  void ReleaseStop();

  using BaseService::ReportError;
  using BaseService::ReportHealthy;

  int start_calls() const { return start_calls_; }
  int runs() const { return runs_; }

 private:
  absl::Status OnStart(const lifecycle::Context& ctx) override;
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override;

  mutable absl::Mutex mu_;
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  bool never_started_ ABSL_GUARDED_BY(mu_) = false;
  bool wait_for_release_ ABSL_GUARDED_BY(mu_) = false;
  bool block_stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  lifecycle::Signal release_start_ ABSL_GUARDED_BY(mu_);
  bool release_used_ ABSL_GUARDED_BY(mu_) = false;  // by a run, so renew it
  lifecycle::Signal release_stop_;
  lifecycle::Signal fail_now_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> start_calls_{0};
  std::atomic<int> runs_{0};
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_FAKE_SERVICE_H_
