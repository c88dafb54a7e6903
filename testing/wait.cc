#include "lifecycle/testing/wait.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/base_service.h"
#include "lifecycle/clock.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/strings_internal.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle_testing {

using lifecycle::Service;
using lifecycle::ServiceSnapshot;
using lifecycle::ServiceState;

int SanitizerTimeoutFactor() { return lifecycle::kAnySanitizer ? 2 : 1; }

namespace {

bool IsTrue(const char* value) {
  if (value == nullptr) return false;
  std::string_view v(value);
  return v == "true" || v == "1" || v == "TRUE" || v == "True";
}

// True the first time a bad value is seen: every wait reads the variable, and
// one warning per value is enough.
bool FirstWarningFor(std::string_view value) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* warned = new absl::flat_hash_set<std::string>();
  absl::MutexLock lock(&mu);
  return warned->insert(std::string(value)).second;
}

// How a timeout is named in a failure.
std::string TimeoutText(absl::Duration timeout) {
  return timeout == WaitTimeout()
             ? absl::StrCat(" (WaitTimeout(); set ", kWaitTimeoutVariable,
                            " to change it)")
             : absl::StrCat(" (timeout ",
                            lifecycle::strings_internal::DurationText(timeout),
                            ")");
}

absl::Duration ElapsedSince(absl::Time began) {
  return absl::Trunc(lifecycle::Now() - began, absl::Milliseconds(1));
}

}  // namespace

absl::Duration ComputeWaitTimeout(const char* (*getenv)(const char*),
                                  int sanitizer_factor) {
  absl::Duration timeout = absl::Seconds(3);
  if (IsTrue(getenv("CI")) || IsTrue(getenv("GITHUB_ACTIONS"))) {
    timeout = absl::Seconds(10);
  }
  timeout *= std::max(sanitizer_factor, 1);
  if (const char* override_value = getenv(kWaitTimeoutVariable)) {
    absl::Duration parsed;
    if (absl::ParseDuration(override_value, &parsed) &&
        parsed > absl::ZeroDuration()) {
      timeout = parsed;
    } else if (FirstWarningFor(override_value)) {
      std::fprintf(stderr,
                   "lifecycle_testing: ignoring %s=\"%s\": not a positive "
                   "duration such as \"500ms\" or \"20s\"\n",
                   kWaitTimeoutVariable, override_value);
    }
  }
  int test_timeout_seconds = 0;
  if (const char* test_timeout = getenv("TEST_TIMEOUT");
      test_timeout != nullptr &&
      absl::SimpleAtoi(test_timeout, &test_timeout_seconds) &&
      test_timeout_seconds > 0) {
    timeout = std::min(timeout, absl::Seconds(test_timeout_seconds) * 3 / 4);
  }
  return timeout;
}

absl::Duration WaitTimeout() {
  return ComputeWaitTimeout(
      [](const char* name) -> const char* { return std::getenv(name); },
      SanitizerTimeoutFactor());
}

std::string DescribeServices(absl::Span<Service* const> services) {
  if (services.empty()) return "";
  std::vector<ServiceSnapshot> snapshots = lifecycle::SnapshotAll(services);
  std::vector<std::string> failed;
  std::vector<std::string> pending;
  for (const ServiceSnapshot& root : snapshots) {
    for (const ServiceSnapshot* s : root.Flatten()) {
      if (s->state == ServiceState::kFailed) {
        // Name only the service where the failure began, not every ancestor
        // that failed because of it.
        auto origin = lifecycle::FailedServicePath(s->status);
        if (!origin || *origin == s->path) {
          failed.push_back(absl::StrCat(s->path, " (",
                                        lifecycle::StatusText(s->status), ")"));
        }
      } else if (s->state == ServiceState::kStarting ||
                 s->state == ServiceState::kStopping) {
        pending.push_back(absl::StrCat(s->path, " (", s->StateText(), ")"));
      }
    }
  }
  std::string out;
  if (!failed.empty()) {
    absl::StrAppend(&out, "Failed: ", absl::StrJoin(failed, ", "), "\n");
  }
  absl::StrAppend(&out, "Pending: ",
                  pending.empty() ? "none" : absl::StrJoin(pending, ", "), "\n",
                  lifecycle::ToTable(snapshots));
  for (const ServiceSnapshot& root : snapshots) {
    absl::StrAppend(&out, lifecycle::PendingThreadStacks(root));
  }
  return out;
}

::testing::AssertionResult SignalClosesWithin(
    const lifecycle::Signal& signal, absl::Span<Service* const> services,
    absl::Duration timeout) {
  absl::Time began = lifecycle::Now();
  if (signal.WaitFor(timeout)) return ::testing::AssertionSuccess();
  return wait_internal::ValidUtf8(
      ::testing::AssertionFailure()
      << "signal not closed after "
      << lifecycle::strings_internal::DurationText(ElapsedSince(began))
      << TimeoutText(timeout) << (services.empty() ? "" : "\n")
      << DescribeServices(services));
}

namespace wait_internal {

::testing::AssertionResult ValidUtf8(::testing::AssertionResult result) {
  if (result) return result;
  return ::testing::AssertionFailure()
         << lifecycle::strings_internal::ValidUtf8(result.message());
}

::testing::AssertionResult SnapshotMatchesWithin(
    const Service& service, const SnapshotMatcher& condition,
    absl::Duration timeout) {
  absl::Time began = lifecycle::Now();
  absl::Time deadline = began + std::max(timeout, absl::ZeroDuration());
  const auto* base = dynamic_cast<const lifecycle::BaseService*>(&service);
  absl::Duration backoff = absl::Milliseconds(1);
  ServiceSnapshot last;
  while (true) {
    // Taken before the look, so that no change between the two is lost.
    lifecycle::Signal next =
        base != nullptr ? base->NextChange() : lifecycle::Signal();
    last = service.Snapshot();
    if (condition.Matches(last)) return ::testing::AssertionSuccess();
    if (lifecycle::Now() >= deadline) break;
    if (base == nullptr) {
      next.WaitUntil(std::min(lifecycle::Now() + backoff, deadline));
      backoff = std::min(backoff * 2, absl::Milliseconds(50));
    } else if (!next.WaitUntil(deadline)) {
      last = service.Snapshot();
      if (condition.Matches(last)) return ::testing::AssertionSuccess();
      break;
    }
  }
  ::testing::StringMatchResultListener explanation;
  condition.MatchAndExplain(last, &explanation);
  std::stringstream wanted;
  condition.DescribeTo(&wanted);
  std::string actual = explanation.str();
  // The matchers of matchers.h end their explanation with the table (its
  // header row); the table is added for any other condition.
  if (!absl::StrContains(actual, "PATH") ||
      !absl::StrContains(actual, "STATE")) {
    if (!actual.empty()) actual += "\n";
    actual += lifecycle::ToTable(last);
  }
  return ValidUtf8(
      ::testing::AssertionFailure()
      << "the snapshot of '" << service.Path()
      << "' still does not match after "
      << lifecycle::strings_internal::DurationText(ElapsedSince(began))
      << TimeoutText(timeout) << "\nExpected: " << wanted.str()
      << "\n  Actual: " << actual);
}

}  // namespace wait_internal

bool WaitOrTimeout(const lifecycle::Signal& signal,
                   absl::Span<Service* const> services, absl::Duration timeout,
                   const char* file, int line) {
  ::testing::AssertionResult result =
      SignalClosesWithin(signal, services, timeout);
  if (!result)
    ADD_FAILURE_AT(file, line) << "WaitOrTimeout: " << result.message();
  return static_cast<bool>(result);
}

bool WaitOrTimeout(const lifecycle::Signal& signal, absl::Duration timeout,
                   const char* file, int line) {
  return WaitOrTimeout(signal, {}, timeout, file, line);
}

}  // namespace lifecycle_testing
