// -----------------------------------------------------------------------------
// matchers.h
// -----------------------------------------------------------------------------
//
// gMock matchers on a service's state. Each accepts a `lifecycle::Service&`, a
// `lifecycle::Service*` or a `lifecycle::ServiceSnapshot`, and on a mismatch
// prints the snapshot's table. Arguments are values or gMock matchers:
//
//   EXPECT_THAT(client, IsStarted());
//   EXPECT_THAT(client, HasState(AnyOf(ServiceState::kStopped,
//                                      ServiceState::kFailed)));
//   EXPECT_THAT(notifier, IsDegraded());
//   EXPECT_THAT(db, FailedToStart(absl::StatusCode::kUnavailable));
//   EXPECT_THAT(client, HasFailed(absl::StatusCode::kDataLoss));
//   EXPECT_THAT(client, HasFailed(Property(&absl::Status::message,
//                                          HasSubstr("client/notifier"))));
//   EXPECT_THAT(listener, HasRestarted(Ge(2)));
//
// `HasFailed` matches a service whose last run failed, whether it failed to
// start or died while running; `FailedToStart` only the former;
// `HasRestarted` counts the restarts its parent's supervision made
// (composite_service.h). A failure that one of these matchers has matched counts
// as examined: the harness does not report it as a death the test did not
// notice (harness.h).
//
// Thread safety: the matchers are thread-safe; each takes one snapshot of the
// service it matches.

#ifndef LIFECYCLE_TESTING_MATCHERS_H_
#define LIFECYCLE_TESTING_MATCHERS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "lifecycle/health.h"
#include "lifecycle/service.h"
#include "lifecycle/snapshot_format.h"

namespace lifecycle_testing {
namespace matchers_internal {

inline lifecycle::ServiceSnapshot SnapshotOf(const lifecycle::Service& s) {
  return s.Snapshot();
}
inline lifecycle::ServiceSnapshot SnapshotOf(const lifecycle::Service* s) {
  return s->Snapshot();
}
inline lifecycle::ServiceSnapshot SnapshotOf(
    const lifecycle::ServiceSnapshot& s) {
  return s;
}

// A status code stands for "a status with this code"; anything else is a
// matcher of (or a value equal to) the status.
inline ::testing::Matcher<const absl::Status&> StatusMatcher(
    absl::StatusCode code) {
  return ::testing::Property("code", &absl::Status::code, code);
}
template <typename M>
::testing::Matcher<const absl::Status&> StatusMatcher(const M& m) {
  return ::testing::SafeMatcherCast<const absl::Status&>(m);
}

// Whether `s` failed (to start, if `start_only`) with a status `m` matches;
// explains the mismatch into `listener`, and notes a match as examined.
bool MatchFailure(const lifecycle::ServiceSnapshot& s, bool start_only,
                  const ::testing::Matcher<const absl::Status&>& m,
                  ::testing::MatchResultListener* listener);

// How many times `s` died: runs that failed, and runs that returned while
// nobody had asked them to stop.
inline int64_t Deaths(const lifecycle::ServiceSnapshot& s) {
  return s.failure_count + s.unasked_end_count;
}

// The deaths the matchers have matched, for the harness: `snapshot`'s, and
// the descendant's whose death made it fail, count as examined up to their
// current death counts (`Deaths()`).
void NoteFailuresExamined(const lifecycle::ServiceSnapshot& snapshot);
// Increases with every note.
uint64_t ExaminedGeneration();
// Whether a note after `generation` covered `failures` deaths of `path`.
bool FailureExamined(std::string_view path, int64_t failures,
                     uint64_t generation);

}  // namespace matchers_internal

MATCHER_P(HasState, state,
          ::testing::DescribeMatcher<lifecycle::ServiceState>(
              ::testing::SafeMatcherCast<lifecycle::ServiceState>(state),
              negation)
              .insert(0, "a service whose state ")) {
  lifecycle::ServiceSnapshot s = matchers_internal::SnapshotOf(arg);
  *result_listener << "whose state is " << s.StateLabel() << "\n" << s;
  return ::testing::Matches(
      ::testing::SafeMatcherCast<lifecycle::ServiceState>(state))(s.state);
}

MATCHER(IsStarted, negation ? "is not started" : "is started") {
  lifecycle::ServiceSnapshot s = matchers_internal::SnapshotOf(arg);
  *result_listener << "whose state is " << s.StateLabel() << "\n" << s;
  return s.state == lifecycle::ServiceState::kStarted;
}

MATCHER(IsDegraded, negation ? "is not degraded" : "is started but degraded") {
  lifecycle::ServiceSnapshot s = matchers_internal::SnapshotOf(arg);
  *result_listener << "whose state is " << s.StateLabel() << "\n" << s;
  return s.state == lifecycle::ServiceState::kStarted && s.degraded;
}

MATCHER_P(HasFailed, status_matcher,
          ::testing::DescribeMatcher<const absl::Status&>(
              matchers_internal::StatusMatcher(status_matcher), negation)
              .insert(0, negation ? "a service that did not fail, or whose "
                                    "failure "
                                  : "a failed service whose failure ")) {
  return matchers_internal::MatchFailure(
      matchers_internal::SnapshotOf(arg), /*start_only=*/false,
      matchers_internal::StatusMatcher(status_matcher), result_listener);
}

// A failed service, whatever its error.
inline auto HasFailed() { return HasFailed(::testing::_); }

// A service whose start failed: `HasFailed` with the failure's message naming
// the start ("service 'PATH' failed to start: ...").
MATCHER_P(FailedToStart, status_matcher,
          ::testing::DescribeMatcher<const absl::Status&>(
              matchers_internal::StatusMatcher(status_matcher), negation)
              .insert(0, negation ? "a service that did not fail to start, or "
                                    "whose failure "
                                  : "a service that failed to start, whose "
                                    "failure ")) {
  return matchers_internal::MatchFailure(
      matchers_internal::SnapshotOf(arg), /*start_only=*/true,
      matchers_internal::StatusMatcher(status_matcher), result_listener);
}

MATCHER_P(HasRestarted, count,
          ::testing::DescribeMatcher<int64_t>(
              ::testing::SafeMatcherCast<int64_t>(count), negation)
              .insert(0, "a service whose restart count ")) {
  lifecycle::ServiceSnapshot s = matchers_internal::SnapshotOf(arg);
  *result_listener << "which was restarted " << s.restart_count << " times\n"
                   << s;
  bool matched = ::testing::Matches(::testing::SafeMatcherCast<int64_t>(count))(
      s.restart_count);
  if (matched) matchers_internal::NoteFailuresExamined(s);
  return matched;
}

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_MATCHERS_H_
