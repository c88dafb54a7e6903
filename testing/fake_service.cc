#include "lifecycle/testing/fake_service.h"

#include <utility>

namespace lifecycle_testing {

using lifecycle::Context;
using lifecycle::Signal;

FakeService::FakeService(std::string name) : BaseService(std::move(name)) {}

FakeService::~FakeService() {
  release_start_.Close();
  release_stop_.Close();
  Stop();
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

void FakeService::ReleaseStart() { release_start_.Close(); }

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
  return start_error_;
}

absl::Status FakeService::Run(const Context& ctx,
                              absl::FunctionRef<void()> started) {
  ++runs_;
  bool never_started, wait_for_release, block_stop;
  Signal fail;
  {
    absl::MutexLock lock(&mu_);
    never_started = never_started_;
    wait_for_release = wait_for_release_;
    block_stop = block_stop_;
    if (fail_now_.IsClosed()) fail_now_ = Signal();  // a fresh one per run
    fail = fail_now_;
  }
  if (wait_for_release) {
    Signal waits[] = {release_start_, ctx.Done()};
    lifecycle::WaitForAny(waits, absl::InfiniteFuture());
  }
  if (!never_started && !ctx.IsCancelled()) started();

  Signal waits[] = {ctx.Done(), fail};
  lifecycle::WaitForAny(waits, absl::InfiniteFuture());
  if (fail.IsClosed() && !ctx.IsCancelled()) {
    absl::MutexLock lock(&mu_);
    return fail_status_;
  }
  if (block_stop) release_stop_.Wait();
  return ctx.Cause();
}

}  // namespace lifecycle_testing
