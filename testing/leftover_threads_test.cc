#include "testing/leftover_threads.h"

#include <pthread.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/signal.h"
#include "testing/fake_service.h"

namespace lifecycle_testing {
namespace {

using ::testing::HasSubstr;

TEST(LeftoverThreadsTest, ListsThisThread) {
  EXPECT_FALSE(LiveThreads().empty());
}

TEST(LeftoverThreadsTest, NamesAThreadLeftRunning) {
  LeftoverThreadCheck check;
  lifecycle::Signal release;
  lifecycle::Signal named;
  std::thread straggler([&] {
    pthread_setname_np(pthread_self(), "straggler");
    named.Close();
    release.Wait();
  });
  named.Wait();
  ::testing::AssertionResult result = check.NoNewThreads(absl::ZeroDuration());
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(),
              HasSubstr("1 thread(s) left running: 'straggler'"));
  release.Close();
  straggler.join();
  EXPECT_TRUE(check.NoNewThreads());
}

TEST(LeftoverThreadsTest, AStoppedServiceLeavesNoThread) {
  LeftoverThreadCheck check;
  FakeService fake("tidy");
  ASSERT_TRUE(fake.Start(lifecycle::Context::Background()).ok());
  fake.Started().Wait();
  ::testing::AssertionResult running = check.NoNewThreads(absl::ZeroDuration());
  EXPECT_THAT(running.message(), HasSubstr("'tidy'"));
  fake.Stop();
  EXPECT_TRUE(check.NoNewThreads());
}

}  // namespace
}  // namespace lifecycle_testing
