// What the modules share: the not-installed error, the machine's template
// cache (one build however many ask at once, never a half-made template, a
// clear error when it cannot be written), and the folders of dead processes.

#include "lifecycle/testing/servers/server_internal.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {
namespace servers_internal {
namespace {

using ::testing::HasSubstr;

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Points the template cache at `dir` for the life of this object.
class CacheIn {
 public:
  explicit CacheIn(const std::string& dir) {
    setenv("LIFECYCLE_SERVER_CACHE", dir.c_str(), 1);
  }
  ~CacheIn() { unsetenv("LIFECYCLE_SERVER_CACHE"); }
};

TEST(ServerInternalTest, AMissingProgramNamesItsDebianPackage) {
  absl::Status s = CheckInstalled("/nonexistent/bin/server", "server-pkg");
  EXPECT_TRUE(IsNotInstalled(s));
  EXPECT_EQ(s.message(),
            "/nonexistent/bin/server is not installed (Debian package "
            "server-pkg; tools/setup.sh installs it)");
  EXPECT_TRUE(CheckInstalled("/bin/sh", "dash").ok());
  EXPECT_FALSE(IsNotInstalled(absl::NotFoundError("something else")));
}

TEST(ServerInternalTest, ATemplateIsBuiltOnceWhoeverAsksAtOnce) {
  CacheIn cache(ShortTempDir());
  std::atomic<int> builds{0};
  lifecycle::Signal go;
  std::vector<std::string> got(4);
  std::vector<std::thread> askers;
  for (size_t i = 0; i < got.size(); ++i) {
    askers.emplace_back([&, i] {
      go.Wait();
      absl::StatusOr<std::string> dir =
          CachedTemplate("thing-1", [&](const std::string& into) {
            ++builds;
            std::ofstream(into + "/made") << "yes";
            return absl::OkStatus();
          });
      got[i] = dir.ok() ? *dir : std::string(dir.status().message());
    });
  }
  go.Close();
  for (std::thread& t : askers) t.join();
  EXPECT_EQ(builds.load(), 1);
  for (const std::string& dir : got) {
    EXPECT_EQ(dir, CacheRoot() + "/thing-1");
  }
  EXPECT_TRUE(Exists(CacheRoot() + "/thing-1/made"));
}

TEST(ServerInternalTest, AFailedBuildLeavesNothingAndIsTriedAgain) {
  CacheIn cache(ShortTempDir());
  std::string partial;
  absl::StatusOr<std::string> failed =
      CachedTemplate("thing-2", [&](const std::string& into) {
        partial = into;
        std::ofstream(into + "/half") << "made";
        return absl::InternalError("initdb crashed");
      });
  EXPECT_THAT(failed.status().message(),
              HasSubstr("making the template thing-2: initdb crashed"));
  EXPECT_FALSE(Exists(partial));
  EXPECT_FALSE(Exists(CacheRoot() + "/thing-2"));
  absl::StatusOr<std::string> again = CachedTemplate(
      "thing-2", [](const std::string&) { return absl::OkStatus(); });
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(Exists(*again + "/half"));
}

TEST(ServerInternalTest, ACacheThatCannotBeWrittenSaysWhatToDo) {
  CacheIn cache("/proc/no-cache-here");
  absl::StatusOr<std::string> dir = CachedTemplate(
      "thing-3", [](const std::string&) { return absl::OkStatus(); });
  EXPECT_THAT(dir.status().message(),
              HasSubstr("the server template cache /proc/no-cache-here cannot "
                        "be written"));
  EXPECT_THAT(dir.status().message(),
              HasSubstr("set LIFECYCLE_SERVER_CACHE to a folder that can"));
}

TEST(ServerInternalTest, FoldersOfProcessesThatNoLongerExistAreRemoved) {
  // A pid that does not exist: a child's, once reaped.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  absl::StatusOr<std::string> mine = NewServerDir("sweep");
  ASSERT_TRUE(mine.ok()) << mine.status();
  const std::string parent = mine->substr(0, mine->rfind('/'));
  const std::string dead =
      absl::StrCat(parent, "/lifecycle-server-sweep-", child, "-abcdef");
  ASSERT_EQ(mkdir(dead.c_str(), 0755), 0);
  absl::StatusOr<std::string> next = NewServerDir("sweep");
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(Exists(dead));
  EXPECT_TRUE(Exists(*mine));  // this process's own stay
  RemoveTree(*mine);
  RemoveTree(*next);
}

TEST(ServerInternalTest, HttpRequestSaysWhatFailed) {
  absl::StatusOr<int> port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  absl::StatusOr<HttpReply> reply = HttpRequest(*port, "GET", "/");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(),
              HasSubstr(absl::StrCat("cannot connect to 127.0.0.1:", *port)));
}

}  // namespace
}  // namespace servers_internal
}  // namespace lifecycle_testing
