// Redis as a module: the fixture's flushed server shared by the binary, seed
// keys, a server of its own in a harness, and its errors.

#include "lifecycle/testing/servers/redis.h"

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
class SessionsTest : public lifecycle_testing::RedisTest {};

TEST_F(SessionsTest, StoresASession) {
  ASSERT_TRUE(redis().Command({"SET", "session:1", "ada"}).ok());
  EXPECT_EQ(redis().Command({"GET", "session:1"}).value(), "ada");
}

// A key one test sets is not there in the next (in either order).
TEST_F(SessionsTest, AKeyOfOneTest) {
  ASSERT_TRUE(redis().Command({"SET", "only-here", "1"}).ok());
  EXPECT_EQ(redis().Command({"EXISTS", "only-here"}).value(), "1");
}
TEST_F(SessionsTest, IsNotInTheNext) {
  EXPECT_EQ(redis().Command({"EXISTS", "only-here"}).value(), "0");
  EXPECT_EQ(redis().Command({"DBSIZE"}).value(), "0");
}

TEST_F(SessionsTest, RepliesAsText) {
  EXPECT_EQ(redis().Command({"PING"}).value(), "PONG");
  EXPECT_EQ(redis().Command({"GET", "missing"}).value(), "(nil)");
  EXPECT_EQ(redis().Command({"RPUSH", "l", "a", "b"}).value(), "2");
  EXPECT_EQ(redis().Command({"LRANGE", "l", "0", "-1"}).value(), "a\nb");
  // Values are binary-safe.
  std::string binary("a\0b", 3);
  ASSERT_TRUE(redis().Command({"SET", "bin", binary}).ok());
  EXPECT_EQ(redis().Command({"GET", "bin"}).value(), binary);
  EXPECT_THAT(redis().Command({"NOSUCHCOMMAND"}).status().message(),
              HasSubstr("unknown command"));
  EXPECT_EQ(redis().Command({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<RedisServer*> again = RedisServer::Shared();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, &redis());
}

class SeededTest : public RedisTest {
 protected:
  RedisOptions ServerOptions() const override {
    RedisOptions options;
    options.name = "seeded-redis";
    options.seed = {{"greeting", "hello"}, {"limit", "10"}};
    return options;
  }
};

TEST_F(SeededTest, EveryTestStartsWithTheSeedKeys) {
  EXPECT_EQ(redis().Command({"GET", "greeting"}).value(), "hello");
  ASSERT_TRUE(redis().Command({"DEL", "greeting"}).ok());
}
TEST_F(SeededTest, EvenAfterAnotherTestDeletedThem) {
  EXPECT_EQ(redis().Command({"MGET", "greeting", "limit"}).value(),
            "hello\n10");
}

TEST(RedisServerTest, AServerOfItsOwnInAHarnessWithItsDetails) {
  RedisServer redis;
  StartStopHarness harness({&redis});
  ::testing::AssertionResult started = harness.StartAll();
  if (servers_internal::IsNotInstalled(redis.Snapshot().status)) {
    GTEST_SKIP() << redis.Snapshot().status.message();
  }
  ASSERT_TRUE(started);
  EXPECT_EQ(redis.Command({"PING"}).value(), "PONG");
  EXPECT_THAT(redis.version(), ::testing::MatchesRegex("[0-9]+\\.[0-9.]+"));
  lifecycle::ServiceSnapshot s = redis.Snapshot();
  std::map<std::string, std::string> details(s.details.begin(),
                                             s.details.end());
  EXPECT_EQ(details["uri"], "unix://" + redis.dir() + "/redis.sock");
  EXPECT_EQ(details["version"], redis.version());
  EXPECT_EQ(details["data"], redis.dir());
  EXPECT_THAT(details["log"], HasSubstr("redis.redis-server.log"));
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "redis/redis-server");
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(redis.Command({"PING"}).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lifecycle_testing
