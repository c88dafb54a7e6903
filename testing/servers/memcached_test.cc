// memcached as a module: the fixture's flushed server shared by the binary,
// and a server of its own in a harness.

#include "lifecycle/testing/servers/memcached.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {
namespace {

using ::testing::HasSubstr;

// The header's example, as it is there.
class CacheTest : public lifecycle_testing::MemcachedTest {};

TEST_F(CacheTest, KeepsAValue) {
  ASSERT_TRUE(memcached().Set("user:1", "ada").ok());
  EXPECT_EQ(memcached().Get("user:1").value(), "ada");
}

// A key one test sets is not there in the next (in either order).
TEST_F(CacheTest, AKeyOfOneTest) {
  ASSERT_TRUE(memcached().Set("only-here", "1").ok());
  EXPECT_TRUE(memcached().Get("only-here").ok());
}
TEST_F(CacheTest, IsNotInTheNext) {
  EXPECT_EQ(memcached().Get("only-here").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CacheTest, ValuesAreKeptByteForByte) {
  std::string value("line 1\r\nEND\r\n\0", 14);
  ASSERT_TRUE(memcached().Set("tricky", value).ok());
  EXPECT_EQ(memcached().Get("tricky").value(), value);
  EXPECT_THAT(memcached().Set("a key with spaces", "x").message(),
              HasSubstr("memcached"));
}

TEST(MemcachedServerTest, AServerOfItsOwnInAHarnessWithItsDetails) {
  MemcachedServer memcached;
  StartStopHarness harness({&memcached});
  ::testing::AssertionResult started = harness.StartAll();
  if (servers_internal::IsNotInstalled(memcached.Snapshot().status)) {
    GTEST_SKIP() << memcached.Snapshot().status.message();
  }
  ASSERT_TRUE(started);
  EXPECT_THAT(memcached.version(), ::testing::MatchesRegex("[0-9]+\\.[0-9.]+"));
  lifecycle::ServiceSnapshot s = memcached.Snapshot();
  std::map<std::string, std::string> details(s.details.begin(),
                                             s.details.end());
  EXPECT_EQ(details["uri"], "unix://" + memcached.socket_path());
  EXPECT_EQ(details["version"], memcached.version());
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "memcached/memcached");
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(memcached.Get("k").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lifecycle_testing
