#include "lifecycle/testing/harness.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lifecycle/base_service.h"

namespace lifecycle_testing {

using lifecycle::Service;
using lifecycle::Signal;

StartStopHarness::StartStopHarness(std::vector<Service*> services)
    : StartStopHarness(std::move(services), Options()) {}

StartStopHarness::StartStopHarness(std::vector<Service*> services,
                                   Options options)
    : services_(std::move(services)), options_(options) {}

StartStopHarness::~StartStopHarness() {
  if (!stopped_) {
    ::testing::AssertionResult result = TryStopAll();
    if (!result) ADD_FAILURE() << "StartStopHarness: " << result.message();
  }
  if (!starter_.joinable()) return;
  // A start that timed out may still be inside a Start() (a blocking
  // OnStart()); the stop above cancelled its context. Its thread uses the
  // services, so it must end before they are destroyed.
  if (!start_returned_.WaitFor(options_.stop_timeout)) {
    std::fprintf(stderr,
                 "lifecycle: FATAL: StartStopHarness: a Start() has not "
                 "returned %s after the harness stopped its services; they "
                 "cannot be destroyed safely, so the process stops here.\n%s",
                 absl::FormatDuration(options_.stop_timeout).c_str(),
                 Report().c_str());
    std::fflush(stderr);
    std::abort();
  }
  starter_.join();
}

std::string StartStopHarness::Report() const {
  return lifecycle::ToTable(lifecycle::SnapshotAll(services_));
}

std::string SnapshotDirectory() {
  for (const char* name :
       {"LIFECYCLE_SNAPSHOT_DIR", "TEST_UNDECLARED_OUTPUTS_DIR"}) {
    const char* dir = std::getenv(name);
    if (dir != nullptr && *dir != '\0') return dir;
  }
  return ::testing::TempDir();
}

std::string StartStopHarness::WriteSnapshotOutput() const {
  std::string dir = SnapshotDirectory();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  std::string path = absl::StrCat(dir, "/lifecycle_snapshot.json");
  std::ofstream out(path);
  out << lifecycle::ToJson(lifecycle::SnapshotAll(services_), 2) << "\n";
  out.close();
  if (!out) return absl::StrCat("(could not write the snapshot to ", path, ")");
  return absl::StrCat("Snapshot (JSON): ", path);
}

::testing::AssertionResult StartStopHarness::TryStartAll() {
  if (starter_.joinable()) {
    if (!start_returned_.IsClosed()) {
      return ::testing::AssertionFailure()
             << "an earlier start has not returned yet\n"
             << DescribeServices(services_);
    }
    starter_.join();
  }
  stopped_ = false;
  absl::Time deadline = absl::Now() + options_.start_timeout;
  // Start() runs on a helper thread, so that a Start() that blocks (in
  // OnStart()) is bounded by the start timeout like everything else.
  auto status_holder = std::make_shared<absl::Status>();
  start_returned_ = Signal();
  try {
    starter_ = std::thread([services = services_, ctx = scope_.context(),
                            status_holder, done = start_returned_] {
      *status_holder = lifecycle::StartAll(services, ctx);
      done.Close();
    });
  } catch (const std::system_error&) {
    // Out of threads: start on this thread, unbounded.
    *status_holder = lifecycle::StartAll(services_, scope_.context());
    start_returned_.Close();
  }
  absl::Status status;
  if (start_returned_.WaitUntil(deadline)) {
    status = *status_holder;  // the helper wrote it before closing the signal
  } else {
    status = absl::DeadlineExceededError(absl::StrCat(
        "Start() did not return within ",
        absl::FormatDuration(options_.start_timeout),
        " (a blocking OnStart()?); pending: ",
        absl::StrJoin(lifecycle::PendingServices(services_), ", ")));
  }
  if (status.ok()) {
    status = lifecycle::WaitAllStartedUntil(
        services_, absl::Now() + options_.start_timeout);
  }
  if (status.ok()) return ::testing::AssertionSuccess();
  std::string written = WriteSnapshotOutput();
  // The status names the service: the innermost one that failed (its own
  // error, with its path), or every one still pending and for how long.
  std::string headline = lifecycle::StatusText(status);
  if (absl::IsDeadlineExceeded(status)) {
    absl::StrAppend(&headline, " (start timeout ",
                    absl::FormatDuration(options_.start_timeout), ")");
  }
  return ::testing::AssertionFailure()
         << headline << "\n"
         << DescribeServices(services_) << written << "\n";
}

bool StartStopHarness::StartAll(const char* file, int line) {
  ::testing::AssertionResult result = TryStartAll();
  if (!result) {
    ADD_FAILURE_AT(file, line) << "StartStopHarness: " << result.message();
  }
  return static_cast<bool>(result);
}

::testing::AssertionResult StartStopHarness::TryStopAll() {
  stopped_ = true;
  // One stopper thread per service, each bounded: a service that does not stop
  // is reported, never waited for forever.
  struct Stopper {
    Service* service;
    Signal done;
  };
  std::vector<Stopper> stoppers;
  std::vector<std::thread> bounded;
  absl::Time deadline = absl::Now() + options_.stop_timeout;
  for (Service* service : services_) {
    if (service == nullptr) continue;
    Stopper stopper{service, Signal()};
    if (auto* base = dynamic_cast<lifecycle::BaseService*>(service)) {
      auto stop = [base, done = stopper.done, deadline] {
        if (base->StopFor(
                    std::max(deadline - absl::Now(), absl::ZeroDuration()))
                .ok()) {
          done.Close();
        }
      };
      try {
        bounded.emplace_back(stop);
      } catch (const std::system_error&) {
        stop();  // out of threads: stop it here, still bounded
      }
    } else {
      // A Service whose stop cannot be bounded: stop it on a thread that is
      // abandoned if the stop hangs.
      auto stop = [service, done = stopper.done] {
        service->Stop();
        done.Close();
      };
      try {
        std::thread(stop).detach();
      } catch (const std::system_error&) {
        stop();  // out of threads: on this thread, unbounded
      }
    }
    stoppers.push_back(stopper);
  }
  for (std::thread& t : bounded) t.join();
  for (const Stopper& stopper : stoppers) stopper.done.WaitUntil(deadline);
  std::vector<std::string> stuck;
  for (const Stopper& stopper : stoppers) {
    if (!stopper.done.IsClosed()) {
      stuck.push_back(stopper.service->Snapshot().path);
    }
  }
  scope_.Cancel(lifecycle::StoppedError());
  if (stuck.empty()) return ::testing::AssertionSuccess();
  std::string written = WriteSnapshotOutput();
  return ::testing::AssertionFailure()
         << stuck.size() << " service(s) did not stop within "
         << absl::FormatDuration(options_.stop_timeout) << ": "
         << absl::StrJoin(stuck, ", ") << "\n"
         << Report() << written << "\n";
}

bool StartStopHarness::StopAll(const char* file, int line) {
  ::testing::AssertionResult result = TryStopAll();
  if (!result) {
    ADD_FAILURE_AT(file, line) << "StartStopHarness: " << result.message();
  }
  return static_cast<bool>(result);
}

}  // namespace lifecycle_testing
