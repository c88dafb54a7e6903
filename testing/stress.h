// -----------------------------------------------------------------------------
// stress.h
// -----------------------------------------------------------------------------
//
// `StressStartStop` hammers one service with start/stop cycles from many
// threads at once (River's 10 threads x 50 cycles), with seeded random delays
// between operations, and checks the contract after every step: a started
// signal that closes, a stop that returns within its timeout. A failure names
// the seed, so the same interleaving pressure can be reproduced:
//
//   EXPECT_TRUE(lifecycle_testing::StressStartStop(client));
//   // Failure: "stress (seed 1234567, 10 threads x 50 cycles): thread 3
//   //  cycle 17: service 'client' did not stop within 3s ..." + the snapshot
//
// Re-run with the seed: `StressStartStop(client, {.seed = 1234567})`.
//
// Thread safety: `StressStartStop` is thread-safe as long as the service is;
// it makes its own threads and joins them before it returns.

#ifndef LIFECYCLE_TESTING_STRESS_H_
#define LIFECYCLE_TESTING_STRESS_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/service.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {

struct StressOptions {
  int threads = 10;
  int cycles = 50;  // per thread
  // 0 picks a random seed; the seed used is always in the failure message.
  uint64_t seed = 0;
  // Each operation is preceded by a random delay in [0, max_delay): the delay
  // this helper is about, to shake out interleavings.
  absl::Duration max_delay = absl::Microseconds(200);
  // Start errors that are allowed (a service that refuses some starts).
  std::function<bool(const absl::Status&)> allowed_start_error;
  absl::Duration wait_timeout = WaitTimeout();  // per wait and per stop
};

::testing::AssertionResult StressStartStop(lifecycle::Service& service,
                                           StressOptions options = {});

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_STRESS_H_
