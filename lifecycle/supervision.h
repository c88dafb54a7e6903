// -----------------------------------------------------------------------------
// supervision.h
// -----------------------------------------------------------------------------
//
// `Supervision`: what a `CompositeService` (composite_service.h) does when one
// of its children dies once it has started — fail fast, degrade, or restart
// with limits and a backoff. A policy is one expression:
//
//   app.AddOrDie(api, lifecycle::After(db),
//                lifecycle::Supervision::Restart(5, absl::Minutes(1))
//                    .WithBackoff(absl::Seconds(1), absl::Seconds(30)));
//
// Thread safety: a plain value; the composite copies it under its own lock.

#ifndef LIFECYCLE_SUPERVISION_H_
#define LIFECYCLE_SUPERVISION_H_

#include "absl/time/time.h"

namespace lifecycle {

// What a `CompositeService` does when a child's run ends on its own once the
// composite has started: the child failed (an error, an exception), or
// returned while nobody had asked it to stop. See `CompositeService`.
struct Supervision {
  enum class Policy {
    kFailFast,  // the composite fails with the child's error
    kDegrade,   // the composite stays up, degraded with the child's error
    kRestart,   // the child is started again, within limits
  };
  Policy policy = Policy::kFailFast;

  // For kRestart (OTP's restart intensity): more than `max_restarts` restarts
  // within `period` fail the composite as kFailFast would. Each restart waits
  // a backoff first: `backoff`, doubling with every restart still within the
  // period, at most `max_backoff`. `max_restarts` < 1 or a `period` that is
  // not positive allows no restart at all; a negative backoff counts as zero;
  // an infinite one means the restart never comes (the child stays down and
  // the composite stays started).
  int max_restarts = 3;
  absl::Duration period = absl::Minutes(1);
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);

  static Supervision FailFast() { return {}; }
  static Supervision Degrade() {
    Supervision s;
    s.policy = Policy::kDegrade;
    return s;
  }
  static Supervision Restart(int max_restarts = 3,
                             absl::Duration period = absl::Minutes(1)) {
    Supervision s;
    s.policy = Policy::kRestart;
    s.max_restarts = max_restarts;
    s.period = period;
    return s;
  }

  // The same policy with another backoff, so that a whole policy is one
  // expression:
  //   Supervision::Restart(5, absl::Minutes(1))
  //       .WithBackoff(absl::Seconds(1), absl::Seconds(30))
  Supervision WithBackoff(absl::Duration first,
                          absl::Duration most = absl::Seconds(30)) const {
    Supervision s = *this;
    s.backoff = first;
    s.max_backoff = most;
    return s;
  }
};

}  // namespace lifecycle

#endif  // LIFECYCLE_SUPERVISION_H_
