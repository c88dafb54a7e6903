// GoogleTest's main with the hang watchdog installed (hang_watchdog.h): link
// this instead of gtest's main and every test gets a budget.

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/hang_watchdog.h"

int main(int argc, char** argv) {
  testing::InitGoogleMock(&argc, argv);
  lifecycle_testing::InstallHangWatchdog();
  return RUN_ALL_TESTS();
}
