// -----------------------------------------------------------------------------
// test_signal.h
// -----------------------------------------------------------------------------
//
// `TestSignal<T>` is a hook production code carries so that a test can observe
// an internal event (River's `testsignal`): "a retry was scheduled", "the
// leader was elected", with a value. It does nothing, and costs one relaxed
// atomic load per `Signal()`, until a test calls `Init()`. It never blocks the
// production code: values go into a bounded buffer, and an overflow is
// remembered and reported when the test waits, not turned into a block.
//
// It lives in the production package (`//lifecycle:test_signal`, not testonly,
// no GoogleTest), so production code depends on nothing made for tests; the
// gtest-facing waits on it are in testing/wait.h:
//
//   // production code
//   struct NotifierTestSignals {
//     lifecycle::TestSignal<int> reconnect_scheduled;  // attempt #
//   };
//   ... test_signals_.reconnect_scheduled.Signal(attempt);
//
//   // test
//   notifier.test_signals().reconnect_scheduled.Init();
//   EXPECT_EQ(lifecycle_testing::WaitOrTimeout(
//                 notifier.test_signals().reconnect_scheduled), 1);
//
// A wait on it is a library wait (lifecycle/clock.h): in a test body that
// runs in virtual time (`VirtualTime::Run()`) its timeout is virtual time.
//
// Thread safety: all members are thread-safe. `Init()` must happen before the
// code under test can `Signal()` for the value to be seen.

#ifndef LIFECYCLE_TEST_SIGNAL_H_
#define LIFECYCLE_TEST_SIGNAL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <deque>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lifecycle/clock.h"
#include "lifecycle/signal.h"

namespace lifecycle {

template <typename T>
class TestSignal {
 public:
  static constexpr size_t kDefaultCapacity = 100;

  TestSignal() = default;
  TestSignal(const TestSignal&) = delete;
  TestSignal& operator=(const TestSignal&) = delete;

  // Makes the signal record values, at most `capacity` unread at once. Calling
  // it again clears the buffer and any overflow.
  void Init(size_t capacity = kDefaultCapacity) {
    absl::MutexLock lock(&mu_);
    values_.clear();
    capacity_ = capacity;
    overflowed_ = 0;
    initialized_.store(true, std::memory_order_release);
  }

  bool IsInitialized() const {
    return initialized_.load(std::memory_order_acquire);
  }

  // Records `value` if the signal is initialized; otherwise does nothing. Never
  // blocks: with the buffer full the value is dropped and the overflow is
  // reported by the next wait.
  void Signal(T value) {
    if (!initialized_.load(std::memory_order_relaxed)) return;
    ::lifecycle::Signal arrived = ::lifecycle::signal_internal::Unmade();
    {
      absl::MutexLock lock(&mu_);
      if (values_.size() >= capacity_) {
        ++overflowed_;
      } else {
        values_.push_back(std::move(value));
      }
      arrived = TakeArrivedLocked();
    }
    if (!::lifecycle::signal_internal::IsUnmade(arrived)) arrived.Close();
  }

  // Takes the next value, waiting up to `timeout`. Errors:
  // `FailedPreconditionError` if never initialized, `ResourceExhaustedError` if
  // values were dropped on overflow, `DeadlineExceededError` on timeout.
  absl::StatusOr<T> WaitFor(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckLocked(); !s.ok()) return s;
    auto has_value = [this] {
      mu_.AssertReaderHeld();  // called with mu_ held
      return !values_.empty();
    };
    if (!AwaitLocked(has_value, timeout)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no value received within ", absl::FormatDuration(timeout)));
    }
    T value = std::move(values_.front());
    values_.pop_front();
    return value;
  }

  // Takes `n` values, waiting up to `timeout` in all. On timeout the error
  // says how many arrived ("received 2 value(s), wanted 3") and the received
  // ones stay unread. Values dropped by an overflow meanwhile end the wait at
  // once with the overflow error, which says how many were dropped.
  absl::StatusOr<std::vector<T>> WaitForN(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckLocked(); !s.ok()) return s;
    auto enough = [this, n] {
      mu_.AssertReaderHeld();  // called with mu_ held
      return values_.size() >= n || overflowed_ > 0;
    };
    bool done = AwaitLocked(enough, timeout);
    if (absl::Status s = CheckLocked(); !s.ok()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("received ", values_.size(), " value(s), wanted ", n,
                       ", and then: ", s.message()));
    }
    if (!done) {
      return absl::DeadlineExceededError(
          absl::StrCat("received ", values_.size(), " value(s), wanted ", n,
                       ", within ", absl::FormatDuration(timeout)));
    }
    std::vector<T> out;
    for (size_t i = 0; i < n; ++i) {
      out.push_back(std::move(values_.front()));
      values_.pop_front();
    }
    return out;
  }

  // OK if no value is waiting to be read; otherwise an error saying how many.
  absl::Status RequireEmpty() {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckLocked(); !s.ok()) return s;
    if (!values_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          values_.size(), " unexpected value(s) received and not read"));
    }
    return absl::OkStatus();
  }

 private:
  // Waits, `mu_` released meanwhile, until `done()` holds or `timeout` has
  // passed; returns `done()`. The wait is a library wait: in virtual time
  // (lifecycle/clock.h) its timeout is virtual, and the waiting thread counts
  // as blocked.
  template <typename Done>
  bool AwaitLocked(Done done, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time deadline =
        timeout == absl::InfiniteDuration()
            ? absl::InfiniteFuture()
            : ::lifecycle::Now() + std::max(timeout, absl::ZeroDuration());
    while (!done()) {
      if (::lifecycle::signal_internal::IsUnmade(arrived_)) {
        arrived_ = ::lifecycle::Signal();
      }
      ::lifecycle::Signal arrived = arrived_;
      mu_.Unlock();
      bool in_time = arrived.WaitUntil(deadline);
      mu_.Lock();
      if (!in_time) return done();
    }
    return true;
  }

  // The signal a waiter waits on, to close once `mu_` is released (unmade if
  // nobody waits).
  ::lifecycle::Signal TakeArrivedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::exchange(arrived_, ::lifecycle::signal_internal::Unmade());
  }

  absl::Status CheckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!initialized_.load(std::memory_order_relaxed)) {
      return absl::FailedPreconditionError(
          "test signal is not initialized: call Init() before the code under "
          "test runs");
    }
    if (overflowed_ > 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "test signal overflowed: ", overflowed_,
          " value(s) dropped with capacity ", capacity_,
          "; read values sooner or Init() with a larger capacity"));
    }
    return absl::OkStatus();
  }

  std::atomic<bool> initialized_{false};
  absl::Mutex mu_;
  std::deque<T> values_ ABSL_GUARDED_BY(mu_);
  size_t capacity_ ABSL_GUARDED_BY(mu_) = kDefaultCapacity;
  size_t overflowed_ ABSL_GUARDED_BY(mu_) = 0;
  // Closed (and dropped) by the next value: what a waiter waits on. Made by
  // the first waiter, so a signal nobody waits on allocates nothing for it.
  ::lifecycle::Signal arrived_ ABSL_GUARDED_BY(mu_) =
      ::lifecycle::signal_internal::Unmade();
};

}  // namespace lifecycle

#endif  // LIFECYCLE_TEST_SIGNAL_H_
