// A matrix fixture (tools/matrix_split_check.sh): a test that hangs every run,
// so the hang watchdog (linked in through hang_watchdog_main) ends it and
// leaves its report in the test's outputs.

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/hang_watchdog.h"

namespace {

TEST(HangingFixture, WaitsForANeverClosedSignal) {
  lifecycle_testing::SetTestBudget(absl::Milliseconds(300));
  lifecycle::Signal never;
  never.Wait();
}

}  // namespace
