// The main of the server modules' tests: GoogleTest's, with the hang watchdog
// and the leftover checks on every test, so that a shared server (started by
// one test, kept until the end of the program) is shown not to count as left
// over, and anything else a module leaves is caught.

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/hang_watchdog.h"
#include "lifecycle/testing/leftover_threads.h"

int main(int argc, char** argv) {
  testing::InitGoogleMock(&argc, argv);
  lifecycle_testing::InstallHangWatchdog();
  testing::TestEventListeners& listeners =
      testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new lifecycle_testing::LeftoverThreadListener());
  listeners.Append(new lifecycle_testing::LeftoverProcessListener());
  return RUN_ALL_TESTS();
}
