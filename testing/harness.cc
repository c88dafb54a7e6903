#include "lifecycle/testing/harness.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
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
  if (stopped_) return;
  ::testing::AssertionResult result = TryStopAll();
  if (!result) ADD_FAILURE() << "StartStopHarness: " << result.message();
}

std::string StartStopHarness::Report() const {
  return lifecycle::ToTable(lifecycle::SnapshotAll(services_));
}

void StartStopHarness::WriteSnapshotOutput() const {
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (dir == nullptr || *dir == '\0') return;
  std::ofstream out(absl::StrCat(dir, "/lifecycle_snapshot.json"));
  out << lifecycle::ToJson(lifecycle::SnapshotAll(services_), 2) << "\n";
}

::testing::AssertionResult StartStopHarness::TryStartAll() {
  stopped_ = false;
  absl::Status status = lifecycle::StartAll(services_, scope_.context());
  if (status.ok()) {
    status = lifecycle::WaitAllStartedUntil(
        services_, absl::Now() + options_.start_timeout);
  }
  if (status.ok()) return ::testing::AssertionSuccess();
  WriteSnapshotOutput();
  // The status names the service: the innermost one that failed (its own
  // error, with its path), or every one still pending and for how long.
  std::string headline = lifecycle::StatusText(status);
  if (absl::IsDeadlineExceeded(status)) {
    absl::StrAppend(&headline, " (start timeout ",
                    absl::FormatDuration(options_.start_timeout), ")");
  }
  return ::testing::AssertionFailure() << headline << "\n"
                                       << DescribeServices(services_);
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
      bounded.emplace_back([base, done = stopper.done, deadline] {
        if (base->StopFor(
                    std::max(deadline - absl::Now(), absl::ZeroDuration()))
                .ok()) {
          done.Close();
        }
      });
    } else {
      // A Service whose stop cannot be bounded: stop it on a thread that is
      // abandoned if the stop hangs.
      std::thread([service, done = stopper.done] {
        service->Stop();
        done.Close();
      }).detach();
    }
    stoppers.push_back(stopper);
  }
  for (std::thread& t : bounded) t.join();
  for (const Stopper& stopper : stoppers) stopper.done.WaitUntil(deadline);
  std::vector<std::string> stuck;
  for (const Stopper& stopper : stoppers) {
    if (!stopper.done.IsClosed()) {
      stuck.push_back(std::string(stopper.service->Name()));
    }
  }
  scope_.Cancel(lifecycle::StoppedError());
  if (stuck.empty()) return ::testing::AssertionSuccess();
  WriteSnapshotOutput();
  return ::testing::AssertionFailure()
         << stuck.size() << " service(s) did not stop within "
         << absl::FormatDuration(options_.stop_timeout) << ": "
         << absl::StrJoin(stuck, ", ") << "\n"
         << Report();
}

bool StartStopHarness::StopAll(const char* file, int line) {
  ::testing::AssertionResult result = TryStopAll();
  if (!result) {
    ADD_FAILURE_AT(file, line) << "StartStopHarness: " << result.message();
  }
  return static_cast<bool>(result);
}

}  // namespace lifecycle_testing
