// -----------------------------------------------------------------------------
// wait.h
// -----------------------------------------------------------------------------
//
// Waits for GoogleTest suites that never sleep and never hang: each waits on a
// signal (or a `TestSignal` value) for at most `WaitTimeout()`, and on timeout
// fails the test *at the caller's file and line* with what was still pending.
// Arguments come in one order everywhere: what to wait on, the services to
// describe on failure, the timeout (the naming rule is in signal.h).
//
//   * `WaitTimeout()`  the one default timeout. If you are not sure which
//     timeout to use, this is the one you want.
//   * `WaitOrTimeout(signal)`  waits on a `lifecycle::Signal`; with services
//     given, the failure lists the pending ones and every component's health.
//   * `WaitOrTimeout(test_signal)` / `WaitOrTimeoutN(test_signal, n)`  take
//     values from a `lifecycle::TestSignal<T>`.
//   * `SignalClosesWithin(signal, services, timeout)`  the same wait as an
//     `AssertionResult`, for callers who add their own message:
//       EXPECT_TRUE(SignalClosesWithin(client.Started())) << "after failover";
//   * `WaitSnapshotOrTimeout(service, condition)`  waits for a state no signal
//     stands for ("restarted once and started again", "degraded"): until the
//     service's snapshot satisfies `condition`, a gMock matcher (matchers.h)
//     or a predicate; `SnapshotMatchesWithin` is its `AssertionResult`:
//       WaitSnapshotOrTimeout(client, HasRestarted(Ge(1)));
//       WaitSnapshotOrTimeout(client, [](const lifecycle::ServiceSnapshot& s) {
//         return s.restart_count >= 1 && s.state == ServiceState::kStarted;
//       });
//
// A failure reads, for example:
//
//   client_test.cc:42: Failure
//   WaitOrTimeout: signal not closed after 3s (WaitTimeout(); set
//   LIFECYCLE_WAIT_TIMEOUT to change it)
//   Pending: client/notifier (starting for 3.001s)
//   PATH             STATE     SINCE   STARTUP  STARTS  RESTARTS  ERRORS  LAST ERROR
//   client           starting  3.002s  -        1       0         0
//   client/notifier  starting  3.001s  -        1       0         0
//   Stack of client (starting), thread 4241 'client':
//     ...
//   Stack of client/notifier (starting), thread 4242 'notifier':
//     #0 syscall
//     ...
//     #9 examples::Notifier::Run()
//
// WARNING: a value passed as `timeout` is used as is. Hard-coded short
// timeouts are how suites become flaky on loaded CI machines: prefer the
// default.
//
// Thread safety: the waits may be called from any thread, but GoogleTest
// records failures of other threads only where the platform supports it
// (Linux does); `WaitTimeout()` is thread-safe.

#ifndef LIFECYCLE_TESTING_WAIT_H_
#define LIFECYCLE_TESTING_WAIT_H_

#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/health.h"
#include "lifecycle/service.h"
#include "lifecycle/signal.h"
#include "lifecycle/test_signal.h"

namespace lifecycle_testing {

// The environment variable that overrides `WaitTimeout()`, as an
// `absl::ParseDuration` string such as "500ms" or "20s".
inline constexpr char kWaitTimeoutVariable[] = "LIFECYCLE_WAIT_TIMEOUT";

// The default wait: 3s locally, 10s on CI (`CI` or `GITHUB_ACTIONS` is "true"
// or "1"), times 2 in a sanitizer build; `LIFECYCLE_WAIT_TIMEOUT` replaces all
// of that. The result is capped at three quarters of Bazel's `TEST_TIMEOUT`
// (seconds), so a wait fails with its report before Bazel kills the test.
// An unparsable or non-positive override is ignored, with a warning on stderr.
absl::Duration WaitTimeout();

// The factor `WaitTimeout()` applies in this build: 2 under AddressSanitizer,
// ThreadSanitizer or MemorySanitizer, 1 otherwise.
int SanitizerTimeoutFactor();

// `WaitTimeout()` as a pure function of its inputs, for tests of the rules.
// `getenv` reads one environment variable (nullptr when unset).
absl::Duration ComputeWaitTimeout(const char* (*getenv)(const char*),
                                  int sanitizer_factor);

// What a failed wait reports about `services` and their descendants:
//   Failed: client/producer/bulk (UNAVAILABLE: ...)   (only if any failed)
//   Pending: client/notifier (starting for 1.2s)      (or "none")
// followed by the health table and the stack of every pending service's worker
// thread (lifecycle/thread_stack.h). Empty when `services` is.
std::string DescribeServices(absl::Span<lifecycle::Service* const> services);

// Whether `signal` closes within `timeout`; the failure carries the report
// `WaitOrTimeout` would add (same arguments, same order).
::testing::AssertionResult SignalClosesWithin(
    const lifecycle::Signal& signal,
    absl::Span<lifecycle::Service* const> services = {},
    absl::Duration timeout = WaitTimeout());
inline ::testing::AssertionResult SignalClosesWithin(
    const lifecycle::Signal& signal, absl::Duration timeout) {
  return SignalClosesWithin(signal, {}, timeout);
}

// Waits for `signal`; on timeout adds a failure at the caller's line and
// returns false. `services`, if given, are described in the failure.
bool WaitOrTimeout(const lifecycle::Signal& signal,
                   absl::Span<lifecycle::Service* const> services = {},
                   absl::Duration timeout = WaitTimeout(),
                   const char* file = __builtin_FILE(),
                   int line = __builtin_LINE());
// The same with a timeout and no services to describe:
// `WaitOrTimeout(signal, absl::Minutes(1))`.
bool WaitOrTimeout(const lifecycle::Signal& signal, absl::Duration timeout,
                   const char* file = __builtin_FILE(),
                   int line = __builtin_LINE());

namespace wait_internal {
using SnapshotMatcher = ::testing::Matcher<const lifecycle::ServiceSnapshot&>;
// A predicate `bool(const ServiceSnapshot&)` as a matcher; a matcher as is.
template <typename Condition>
SnapshotMatcher ToSnapshotMatcher(const Condition& condition) {
  if constexpr (std::is_invocable_r_v<bool, const Condition&,
                                      const lifecycle::ServiceSnapshot&>) {
    return ::testing::Truly(condition);
  } else {
    return ::testing::SafeMatcherCast<const lifecycle::ServiceSnapshot&>(
        condition);
  }
}
::testing::AssertionResult SnapshotMatchesWithin(
    const lifecycle::Service& service, const SnapshotMatcher& condition,
    absl::Duration timeout);
// `result`, its message made valid UTF-8 (each invalid byte U+FFFD): a service's
// error is bytes, and an invalid byte in a failure makes Bazel's test.xml
// unreadable. Every failure the kit reports goes through it.
::testing::AssertionResult ValidUtf8(::testing::AssertionResult result);
}  // namespace wait_internal

// Whether `service`'s snapshot satisfies `condition` within `timeout`:
// `condition` is a gMock matcher of a `lifecycle::ServiceSnapshot` (every
// matcher of matchers.h is one) or a predicate `bool(const ServiceSnapshot&)`.
// The snapshot is examined again at each change of a `BaseService`
// (`NextChange()`), never polled; any other `Service` has no change signal and
// is examined at a backoff from 1ms to 50ms. The failure says what was wanted
// and shows the last snapshot:
//
//   WaitSnapshotOrTimeout: the snapshot of 'client/notifier' still does not
//   match after 3s (WaitTimeout(); set LIFECYCLE_WAIT_TIMEOUT to change it)
//   Expected: a service restarted is >= 1 time(s)
//     Actual: restarted 0 time(s)
//   PATH             STATE    ...
//
// A negative `timeout` counts as zero: the snapshot is examined once.
template <typename Condition>
::testing::AssertionResult SnapshotMatchesWithin(
    const lifecycle::Service& service, const Condition& condition,
    absl::Duration timeout = WaitTimeout()) {
  return wait_internal::SnapshotMatchesWithin(
      service, wait_internal::ToSnapshotMatcher(condition), timeout);
}

// Waits until `service`'s snapshot satisfies `condition` (as above); on
// timeout adds the failure at the caller's line and returns false.
template <typename Condition>
bool WaitSnapshotOrTimeout(const lifecycle::Service& service,
                           const Condition& condition,
                           absl::Duration timeout = WaitTimeout(),
                           const char* file = __builtin_FILE(),
                           int line = __builtin_LINE()) {
  ::testing::AssertionResult result =
      SnapshotMatchesWithin(service, condition, timeout);
  if (!result) {
    ADD_FAILURE_AT(file, line) << "WaitSnapshotOrTimeout: " << result.message();
  }
  return static_cast<bool>(result);
}

// Takes the next value of `test_signal`; on timeout (or an uninitialized or
// overflowed signal) adds a failure at the caller's line and returns T{}.
template <typename T>
T WaitOrTimeout(lifecycle::TestSignal<T>& test_signal,
                absl::Duration timeout = WaitTimeout(),
                const char* file = __builtin_FILE(),
                int line = __builtin_LINE()) {
  auto value = test_signal.WaitFor(timeout);
  if (value.ok()) return *std::move(value);
  ADD_FAILURE_AT(file, line)
      << "WaitOrTimeout(TestSignal): " << value.status().message();
  return T{};
}

// Takes `n` values; on failure adds "received 2 value(s), wanted 3 ..." at the
// caller's line and returns what it could not (an empty vector).
template <typename T>
std::vector<T> WaitOrTimeoutN(lifecycle::TestSignal<T>& test_signal, size_t n,
                              absl::Duration timeout = WaitTimeout(),
                              const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  auto values = test_signal.WaitForN(n, timeout);
  if (values.ok()) return *std::move(values);
  ADD_FAILURE_AT(file, line)
      << "WaitOrTimeoutN(TestSignal): " << values.status().message();
  return {};
}

// Fails at the caller's line if `test_signal` holds unread values.
template <typename T>
void RequireEmpty(lifecycle::TestSignal<T>& test_signal,
                  const char* file = __builtin_FILE(),
                  int line = __builtin_LINE()) {
  absl::Status status = test_signal.RequireEmpty();
  if (!status.ok()) {
    ADD_FAILURE_AT(file, line)
        << "RequireEmpty(TestSignal): " << status.message();
  }
}

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_WAIT_H_
