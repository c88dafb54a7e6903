// The example store with a real redis-server: a round trip, a missing key,
// and a server killed under it that its supervision brings back.

#include "examples/redis_store.h"

#include <signal.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/wait.h"

namespace examples {
namespace {

using ::lifecycle_testing::HasRestarted;
using ::lifecycle_testing::IsStarted;
using ::lifecycle_testing::ShortTempDir;
using ::lifecycle_testing::StartStopHarness;
using ::lifecycle_testing::WaitSnapshotOrTimeout;
using ::testing::AllOf;

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/redis-server", X_OK) != 0) {
      GTEST_SKIP() << "/usr/bin/redis-server is not installed (Debian package "
                      "redis-server; tools/setup.sh installs it)";
    }
  }
};

// redis_store.h's example, line for line (tools/check_examples.py).
TEST_F(RedisStoreTest, StoresAndReadsBack) {
  examples::RedisStore store(lifecycle_testing::ShortTempDir());
  lifecycle_testing::StartStopHarness harness({&store});
  ASSERT_TRUE(harness.StartAll());
  ASSERT_TRUE(store.Set("greeting", "hello").ok());
  EXPECT_EQ(*store.Get("greeting"), "hello");
  EXPECT_EQ(store.Get("nothing").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(store.Set("greeting", "again").code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(RedisStoreTest, AKilledServerIsStartedAgain) {
  RedisStore store(ShortTempDir());
  StartStopHarness harness({&store});
  ASSERT_TRUE(harness.StartAll());
  ASSERT_TRUE(store.Set("k", "v").ok());
  ASSERT_EQ(kill(store.server().pid(), SIGKILL), 0);
  // Restarted once and ready again (the matcher examines the death).
  ASSERT_TRUE(WaitSnapshotOrTimeout(store.server(),
                                    AllOf(HasRestarted(1), IsStarted())));
  EXPECT_THAT(store, IsStarted());
  // It keeps nothing on disk: the value went with the server.
  EXPECT_EQ(store.Get("k").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store.Set("k", "v2").ok());
  EXPECT_EQ(*store.Get("k"), "v2");
  ASSERT_TRUE(harness.StopAll());
}

}  // namespace
}  // namespace examples
