#include "lifecycle/test_services.h"

#include <pthread.h>

#include <stdexcept>
#include <utility>

#include "lifecycle/composite_service.h"

namespace lifecycle::test_services {

TestService::TestService(std::string name) : BaseService(std::move(name)) {}

TestService::~TestService() {
  release_.Close();
  StopForDestruction();
}

void TestService::SetStartError(absl::Status error) {
  absl::MutexLock lock(&mu_);
  start_error_ = std::move(error);
}
void TestService::ThrowInStart() {
  absl::MutexLock lock(&mu_);
  throw_in_start_ = true;
}
void TestService::NeverSignalStarted() {
  absl::MutexLock lock(&mu_);
  signal_started_ = false;
}
void TestService::FailRunsWith(absl::Status error) {
  absl::MutexLock lock(&mu_);
  run_error_ = std::move(error);
}
void TestService::DieAfterStarting(absl::Status error) {
  absl::MutexLock lock(&mu_);
  die_after_starting_ = std::move(error);
}
void TestService::ThrowInRun() {
  absl::MutexLock lock(&mu_);
  throw_in_run_ = true;
}
void TestService::IgnoreStopUntilReleased() {
  absl::MutexLock lock(&mu_);
  ignore_stop_ = true;
}
void TestService::Release() { release_.Close(); }

void TestService::Kill(absl::Status error) {
  Signal kill;
  {
    absl::MutexLock lock(&mu_);
    kill_error_ = std::move(error);
    kill = kill_;
  }
  kill.Close();
}

std::string TestService::thread_name() const {
  absl::MutexLock lock(&mu_);
  return thread_name_;
}

absl::Status TestService::seen_cause() const {
  absl::MutexLock lock(&mu_);
  return seen_cause_;
}

absl::Status TestService::OnStart(const Context&) {
  absl::MutexLock lock(&mu_);
  if (throw_in_start_) throw std::runtime_error("start blew up");
  return start_error_;
}

absl::Status TestService::Run(const Context& ctx,
                              absl::FunctionRef<void()> started) {
  ++runs_;
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  absl::Status run_error, die_after_starting;
  bool signal_started, throw_in_run, ignore_stop;
  Signal kill;
  {
    absl::MutexLock lock(&mu_);
    thread_name_ = name;
    run_error = run_error_;
    die_after_starting = die_after_starting_;
    signal_started = signal_started_;
    throw_in_run = throw_in_run_;
    ignore_stop = ignore_stop_;
    kill = kill_;
  }
  if (!run_error.ok()) return run_error;
  if (signal_started) started();
  if (throw_in_run) throw std::logic_error("worker blew up");
  if (!die_after_starting.ok()) return die_after_starting;
  if (ignore_stop) {
    release_.Wait();
  } else {
    Signal waits[] = {ctx.Done(), kill};
    WaitAnyUntil(waits, absl::InfiniteFuture());
  }
  absl::MutexLock lock(&mu_);
  seen_cause_ = ctx.Cause();
  if (!ctx.IsCancelled() && kill.IsClosed()) {
    kill_ = Signal();  // the next run lives until killed again
    return kill_error_;
  }
  if (ctx.IsCancelled()) ++stops_;
  return ctx.Cause();
}

Parent::Parent(std::string name, std::vector<ChildSpec> children,
               std::optional<Supervision> supervision)
    : CompositeService(std::move(name)) {
  if (supervision) SetSupervision(*supervision);
  for (const ChildSpec& child : children) {
    if (child.supervision) {
      AddChildOrDie(*child.service, *child.supervision);
    } else {
      AddChildOrDie(*child.service);
    }
  }
}

}  // namespace lifecycle::test_services
