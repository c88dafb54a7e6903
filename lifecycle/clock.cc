#include "lifecycle/clock.h"

#include <utility>

#include "absl/time/clock.h"
#include "lifecycle/signal.h"

namespace lifecycle {
namespace clock_internal {
namespace {
thread_local TimeSource* current_time_source = nullptr;
}  // namespace

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
