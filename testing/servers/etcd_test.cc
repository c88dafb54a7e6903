// etcd as a module: the fixture's emptied server shared by the binary, seed
// keys, prefixes, and a server of its own in a harness.

#include "lifecycle/testing/servers/etcd.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The header's example, as it is there.
class ConfigTest : public lifecycle_testing::EtcdTest {};

TEST_F(ConfigTest, StoresAKey) {
  ASSERT_TRUE(etcd().Put("/config/mode", "fast").ok());
  EXPECT_EQ(etcd().Get("/config/mode").value(), "fast");
}

// A key one test puts is not there in the next (in either order).
TEST_F(ConfigTest, AKeyOfOneTest) {
  ASSERT_TRUE(etcd().Put("only-here", "1").ok());
  EXPECT_TRUE(etcd().Get("only-here").ok());
}
TEST_F(ConfigTest, IsNotInTheNext) {
  EXPECT_EQ(etcd().Get("only-here").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(etcd().Keys("").value(), ::testing::IsEmpty());
}

TEST_F(ConfigTest, KeysUnderAPrefix) {
  ASSERT_TRUE(etcd().Put("/a/2", "x").ok());
  ASSERT_TRUE(etcd().Put("/a/1", "y").ok());
  ASSERT_TRUE(etcd().Put("/b/1", "z").ok());
  EXPECT_THAT(etcd().Keys("/a/").value(), ElementsAre("/a/1", "/a/2"));
  std::string binary("v\0\xff", 3);
  ASSERT_TRUE(etcd().Put("/bin", binary).ok());
  EXPECT_EQ(etcd().Get("/bin").value(), binary);
}

class SeededEtcdTest : public EtcdTest {
 protected:
  EtcdOptions ServerOptions() const override {
    EtcdOptions options;
    options.name = "seeded-etcd";
    options.seed = {{"/config/region", "eu"}};
    return options;
  }
};

TEST_F(SeededEtcdTest, EveryTestStartsWithTheSeedKeys) {
  EXPECT_EQ(etcd().Get("/config/region").value(), "eu");
  ASSERT_TRUE(etcd().DeleteAll().ok());
  EXPECT_EQ(etcd().Get("/config/region").value(), "eu");
}

TEST(EtcdServerTest, AServerOfItsOwnInAHarnessWithItsDetails) {
  EtcdServer etcd;
  StartStopHarness harness({&etcd});
  ::testing::AssertionResult started = harness.StartAll();
  if (servers_internal::IsNotInstalled(etcd.Snapshot().status)) {
    GTEST_SKIP() << etcd.Snapshot().status.message();
  }
  ASSERT_TRUE(started);
  EXPECT_THAT(etcd.version(), ::testing::MatchesRegex("[0-9]+\\.[0-9.]+"));
  EXPECT_GT(etcd.port(), 0);
  lifecycle::ServiceSnapshot s = etcd.Snapshot();
  std::map<std::string, std::string> details(s.details.begin(),
                                             s.details.end());
  EXPECT_EQ(details["uri"], etcd.endpoint());
  EXPECT_EQ(details["version"], etcd.version());
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "etcd/etcd");
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(etcd.Put("k", "v").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lifecycle_testing
