// The names kept for one release after a rename (CHANGELOG.md, "Deprecated")
// still compile and are the new ones. Built with -Wno-deprecated-declarations:
// a user sees the warning; this test only checks the alias.

#include "lifecycle/testing/test_signal.h"

#include <type_traits>

#include "gtest/gtest.h"
#include "lifecycle/test_signal.h"

namespace {

static_assert(std::is_same_v<lifecycle_testing::TestSignal<int>,
                             lifecycle::TestSignal<int>>,
              "the old TestSignal is the new one");

TEST(DeprecatedAliasesTest, TestSignalInItsOldPlaceStillWorks) {
  lifecycle_testing::TestSignal<int> signal;
  signal.Init();
  signal.Signal(7);
  auto value = signal.WaitFor(absl::Seconds(10));
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, 7);
}

}  // namespace
