// nginx as a module: the fixture's server shared by the binary with an empty
// folder per test, extra configuration (and its errors), and a server of its
// own in a harness.

#include "lifecycle/testing/servers/nginx.h"

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
class DownloadsTest : public lifecycle_testing::NginxTest {};

TEST_F(DownloadsTest, ServesAFile) {
  ASSERT_TRUE(nginx().WriteFile("hello.txt", "hi\n").ok());
  EXPECT_EQ(nginx().Get("/hello.txt").value().body, "hi\n");
}

// A file one test writes is not there in the next (in either order).
TEST_F(DownloadsTest, AFileOfOneTest) {
  ASSERT_TRUE(nginx().WriteFile("a/b/only-here.txt", "1").ok());
  EXPECT_EQ(nginx().Get("/a/b/only-here.txt").value().status, 200);
}
TEST_F(DownloadsTest, IsNotInTheNext) {
  EXPECT_EQ(nginx().Get("/a/b/only-here.txt").value().status, 404);
  EXPECT_EQ(nginx().WriteFile("../escape", "x").code(),
            absl::StatusCode::kInvalidArgument);
}

class ProxyConfigTest : public NginxTest {
 protected:
  NginxOptions ServerOptions() const override {
    NginxOptions options;
    options.name = "configured-nginx";
    options.server_config = "location = /health { return 200 'ok'; }";
    return options;
  }
};

TEST_F(ProxyConfigTest, TheExtraLinesAreServed) {
  servers_internal::HttpReply reply = nginx().Get("/health").value();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "ok");
}

TEST(NginxServerTest, AServerOfItsOwnInAHarnessWithItsDetails) {
  NginxServer nginx;
  StartStopHarness harness({&nginx});
  ::testing::AssertionResult started = harness.StartAll();
  if (servers_internal::IsNotInstalled(nginx.Snapshot().status)) {
    GTEST_SKIP() << nginx.Snapshot().status.message();
  }
  ASSERT_TRUE(started);
  lifecycle::ServiceSnapshot s = nginx.Snapshot();
  std::map<std::string, std::string> details(s.details.begin(),
                                             s.details.end());
  EXPECT_EQ(details["uri"], nginx.endpoint());
  EXPECT_THAT(details["version"], ::testing::MatchesRegex("[0-9]+\\.[0-9.]+"));
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "nginx/nginx");
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(nginx.Get("/").status().code(), absl::StatusCode::kUnavailable);
}

TEST(NginxServerTest, ABadConfigurationFailsTheStartWithNginxsMessage) {
  NginxOptions options;
  options.server_config = "no_such_directive on;";
  NginxServer nginx(options);
  absl::Status start = nginx.Start(lifecycle::Context::Background());
  if (servers_internal::IsNotInstalled(start)) GTEST_SKIP() << start.message();
  EXPECT_THAT(start.message(), HasSubstr("nginx refuses its configuration"));
  EXPECT_THAT(start.message(), HasSubstr("no_such_directive"));
}

}  // namespace
}  // namespace lifecycle_testing
