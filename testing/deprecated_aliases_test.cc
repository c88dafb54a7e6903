// The names kept for one release after a rename (CHANGELOG.md, "Deprecated")
// still compile and are the new ones. Built with -Wno-deprecated-declarations:
// a user sees the warning; this test only checks the alias.

#include <type_traits>

#include "gtest/gtest.h"
#include "lifecycle/testing/test_signal.h"
// Only these two of lifecycle/: what they declared before the split of
// lifecycle/ into one concept per file must still be there.
#include "lifecycle/base_service.h"
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

// base_service.h used to declare `FuncService` and `CompositeService`, and
// service.h the start-up graph: both still include their new headers.
TEST(DeprecatedAliasesTest, BaseServiceHStillDeclaresWhatItDid) {
  lifecycle::FuncService a("a", [](const lifecycle::Context& ctx,
                                   absl::FunctionRef<void()> started) {
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  lifecycle::FuncService b("b", [](const lifecycle::Context& ctx,
                                   absl::FunctionRef<void()> started) {
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  lifecycle::Dependency deps[] = {{&b, &a}};
  ASSERT_TRUE(lifecycle::CheckDependencies({&a, &b}, deps).ok());
  lifecycle::CompositeService app("app");
  app.AddOrDie(a);
  app.AddOrDie(b, lifecycle::After(a),
               lifecycle::Supervision::Restart().WithBackoff(absl::Seconds(1)));
  ASSERT_TRUE(app.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(app.Started().WaitFor(absl::Seconds(10)));
  EXPECT_EQ(b.Snapshot().state, lifecycle::ServiceState::kStarted);
  EXPECT_TRUE(app.StopFor(absl::Seconds(10)).ok());
}

}  // namespace
