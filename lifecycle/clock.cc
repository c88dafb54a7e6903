#include "lifecycle/clock.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include "absl/time/clock.h"
#include "lifecycle/signal.h"

namespace lifecycle {
namespace clock_internal {
namespace {
thread_local TimeSource* current_time_source = nullptr;

// The CPUs of the process as it was loaded, before any thread was pinned.
struct ProcessCpus {
  ProcessCpus() { known = sched_getaffinity(0, sizeof(set), &set) == 0; }
  cpu_set_t set;
  bool known = false;
};
const ProcessCpus process_cpus;
}  // namespace

void UseProcessCpus() {
  if (process_cpus.known) {
    sched_setaffinity(0, sizeof(process_cpus.set), &process_cpus.set);
  }
}

OutsideWait::OutsideWait()
    : source_(current_time_source),
      thread_(source_ == nullptr ? 0 : syscall(SYS_gettid)) {}

OutsideWait::~OutsideWait() { Leave(); }

void OutsideWait::Enter() {
  if (source_ != nullptr) source_->EnterOutsideWait(thread_);
}

void OutsideWait::Leave() {
  if (source_ != nullptr) source_->LeaveOutsideWait(thread_);
}

void OutsideWait::Wake() {
  if (source_ != nullptr) source_->WakeOutsideWait(thread_);
}

TimeSource* CurrentTimeSource() { return current_time_source; }

absl::Time NowIn(TimeSource* source) {
  return source == nullptr ? absl::Now() : source->Now();
}

ScopedThreadTime::ScopedThreadTime(TimeSource* source, std::string label)
    : source_(source) {
  if (source_ == nullptr) return;
  current_time_source = source_;
  source_->ThreadBegins(std::move(label));
}

ScopedThreadTime::~ScopedThreadTime() {
  if (source_ == nullptr) return;
  source_->ThreadEnds();
  current_time_source = nullptr;
}

}  // namespace clock_internal

absl::Time Now() {
  return clock_internal::NowIn(clock_internal::current_time_source);
}

void SleepFor(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) return;
  clock_internal::TimeSource* time = clock_internal::current_time_source;
  if (time == nullptr) {
    absl::SleepFor(duration);
    return;
  }
  Signal never;  // a wait that only its deadline ends
  time->Wait(never, time->Now() + duration);
}

}  // namespace lifecycle
