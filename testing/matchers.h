// -----------------------------------------------------------------------------
// matchers.h
// -----------------------------------------------------------------------------
//
// gMock matchers on a service's state. Each accepts a `lifecycle::Service&`, a
// `lifecycle::Service*` or a `lifecycle::ServiceSnapshot`, and on a mismatch
// prints the snapshot's table:
//
//   EXPECT_THAT(client, IsStarted());
//   EXPECT_THAT(db, FailedToStart(absl::StatusCode::kUnavailable));
//   EXPECT_THAT(notifier, IsDegraded());
//   EXPECT_THAT(client.Snapshot(),
//   HasState(lifecycle::ServiceState::kStopped));

#ifndef LIFECYCLE_TESTING_MATCHERS_H_
#define LIFECYCLE_TESTING_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "lifecycle/health.h"
#include "lifecycle/service.h"

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

}  // namespace matchers_internal

MATCHER_P(HasState, state,
          std::string(negation ? "is not " : "is ") +
              std::string(lifecycle::ServiceStateName(state))) {
  lifecycle::ServiceSnapshot s = matchers_internal::SnapshotOf(arg);
  *result_listener << "whose state is " << s.StateLabel() << "\n" << s;
  return s.state == state;
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

MATCHER_P(FailedToStart, code,
          absl::StrCat(negation ? "did not fail" : "failed", " to start with ",
                       absl::StatusCodeToString(code))) {
  lifecycle::ServiceSnapshot s = matchers_internal::SnapshotOf(arg);
  *result_listener << "whose state is " << s.StateLabel() << " with status "
                   << lifecycle::StatusText(s.status) << "\n"
                   << s;
  return s.state == lifecycle::ServiceState::kFailed && s.status.code() == code;
}

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_MATCHERS_H_
