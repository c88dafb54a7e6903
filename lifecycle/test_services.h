// -----------------------------------------------------------------------------
// test_services.h
// -----------------------------------------------------------------------------
//
// The services this package's own tests use (testonly, not part of the
// library): one `TestService` whose behaviour a test sets, and `Parent`, a
// composite of given children. Each test says what it needs of them instead of
// writing a service of its own. (Users of the library have the richer
// `lifecycle_testing::FakeService`; these tests do not depend on testing/.)
//
//   TestService db("db");
//   db.SetStartError(absl::UnavailableError("down"));  // OnStart() fails
//   TestService worker("worker");
//   Parent client("client", {&db, {&worker, Supervision::Restart()}});
//   ...
//   worker.Kill(absl::InternalError("bug"));  // the running worker dies
//
// Thread safety: all members are thread-safe.

#ifndef LIFECYCLE_TEST_SERVICES_H_
#define LIFECYCLE_TEST_SERVICES_H_

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/signal.h"

namespace lifecycle::test_services {

class TestService : public BaseService {
 public:
  explicit TestService(std::string name = "test");
  // Releases a run held by IgnoreStopUntilReleased(), then stops it.
  ~TestService() override;

  // How later runs behave; each run reads them as it begins.
  void SetStartError(absl::Status error);  // OnStart() returns it (OK: starts)
  void ThrowInStart();                     // OnStart() throws
  void NeverSignalStarted();               // Run() never calls started()
  void FailRunsWith(absl::Status error);   // Run() returns it before started()
  void DieAfterStarting(absl::Status error);  // ... or at once after started()
  void ThrowInRun();                          // Run() throws after started()
  void IgnoreStopUntilReleased();             // a run ignores its context ...
  void Release();                             // ... until this

  // Ends the current run (or the next one) with `error`, as a worker that died
  // would; OK makes it return cleanly while nobody asked it to stop. The runs
  // after it live until killed again.
  void Kill(absl::Status error);

  using BaseService::AddChild;
  using BaseService::ReportError;
  using BaseService::ReportHealthy;

  int runs() const { return runs_; }
  // Runs that ended because their context was cancelled.
  int stops() const { return stops_; }
  // Of the last run: its worker thread's name, its context's cause at the end.
  std::string thread_name() const;
  absl::Status seen_cause() const;

 private:
  absl::Status OnStart(const Context& ctx) override;
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;

  mutable absl::Mutex mu_;
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  bool throw_in_start_ ABSL_GUARDED_BY(mu_) = false;
  bool signal_started_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status run_error_ ABSL_GUARDED_BY(mu_);
  absl::Status die_after_starting_ ABSL_GUARDED_BY(mu_);
  bool throw_in_run_ ABSL_GUARDED_BY(mu_) = false;
  bool ignore_stop_ ABSL_GUARDED_BY(mu_) = false;
  Signal release_;
  Signal kill_ ABSL_GUARDED_BY(mu_);
  absl::Status kill_error_ ABSL_GUARDED_BY(mu_);
  std::string thread_name_ ABSL_GUARDED_BY(mu_);
  absl::Status seen_cause_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> runs_{0};
  std::atomic<int> stops_{0};
};

// A child of a `Parent`, with its own supervision policy or the parent's.
struct ChildSpec {
  ChildSpec(Service* service) : service(service) {}  // NOLINT: implicit
  ChildSpec(Service* service, Supervision supervision)
      : service(service), supervision(supervision) {}
  Service* service;
  std::optional<Supervision> supervision;
};

// A composite of `children` (AddChildOrDie, in order), with `supervision` for
// those without a policy of their own.
class Parent : public CompositeService {
 public:
  explicit Parent(std::string name, std::vector<ChildSpec> children = {},
                  std::optional<Supervision> supervision = std::nullopt);
  ~Parent() override { StopForDestruction(); }
  using BaseService::AddChild;
  using CompositeService::AddDependency;
};

}  // namespace lifecycle::test_services

#endif  // LIFECYCLE_TEST_SERVICES_H_
