#include "lifecycle/testing/fake_service.h"

#include <optional>
#include <utility>

namespace lifecycle_testing {

using lifecycle::Context;
using lifecycle::Signal;

FakeService::FakeService(std::string name) : BaseService(std::move(name)) {}

FakeService::~FakeService() {
  {
    absl::MutexLock lock(&mu_);
    release_start_.Close();
  }
  release_stop_.Close();
  StopForDestruction();
}

void FakeService::FailStartWith(absl::Status status) {
  absl::MutexLock lock(&mu_);
  start_error_ = std::move(status);
}

void FakeService::NeverSignalStarted() {
  absl::MutexLock lock(&mu_);
  never_started_ = true;
}

void FakeService::StartWhenReleased() {
  absl::MutexLock lock(&mu_);
  wait_for_release_ = true;
}

void FakeService::ReleaseStart() {
  Signal release;
  {
    absl::MutexLock lock(&mu_);
    release = release_start_;
  }
  release.Close();
}

void FakeService::FailNow(absl::Status status) {
  Signal fail;
  {
    absl::MutexLock lock(&mu_);
    fail_status_ = std::move(status);
    fail = fail_now_;
  }
  fail.Close();
}

void FakeService::BlockStopUntilReleased() {
  absl::MutexLock lock(&mu_);
  block_stop_ = true;
}

void FakeService::ReleaseStop() { release_stop_.Close(); }

absl::Status FakeService::OnStart(const Context&) {
  ++start_calls_;
  absl::MutexLock lock(&mu_);
  // Per-run state is set up here, before Start() returns, so a FailNow() or
  // ReleaseStart() made right after Start() belongs to this run.
  if (start_error_.ok()) {
    if (fail_now_.IsClosed()) fail_now_ = Signal();
    // A release applies to one run: once a run has used it, the next run
    // waits for a new one.
    if (release_used_) {
      release_start_ = Signal();
      release_used_ = false;
    }
  }
  return start_error_;
}

absl::Status FakeService::Run(const Context& ctx,
                              absl::FunctionRef<void()> started) {
  ++runs_;
  bool never_started, wait_for_release, block_stop;
  Signal fail, release;
  {
    absl::MutexLock lock(&mu_);
    never_started = never_started_;
    wait_for_release = wait_for_release_;
    block_stop = block_stop_;
    fail = fail_now_;
    release = release_start_;
  }
  auto failed = [&]() -> std::optional<absl::Status> {
    if (!fail.IsClosed() || ctx.IsCancelled()) return std::nullopt;
    absl::MutexLock lock(&mu_);
    return fail_status_;
  };
  if (wait_for_release) {
    Signal waits[] = {release, ctx.Done(), fail};
    lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
    if (auto status = failed()) return *status;
    if (release.IsClosed()) {
      absl::MutexLock lock(&mu_);
      release_used_ = true;
    }
  }
  if (!never_started && !ctx.IsCancelled()) started();

  Signal waits[] = {ctx.Done(), fail};
  lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
  if (auto status = failed()) return *status;
  if (block_stop) release_stop_.Wait();
  return ctx.Cause();
}

}  // namespace lifecycle_testing
