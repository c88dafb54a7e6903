#include "lifecycle/testing/temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace lifecycle_testing {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

TEST(ShortTempDirTest, NewEmptyDirectoriesShortEnoughForASocket) {
  std::string a = ShortTempDir(), b = ShortTempDir();
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsDirectory(a));
  EXPECT_TRUE(IsDirectory(b));
  // Room for a socket's name in the 107 bytes of a Unix socket path.
  EXPECT_LT(a.size(), 60u) << a;
  EXPECT_EQ(a.substr(0, a.rfind('/')), b.substr(0, b.rfind('/')));
}

constexpr char kChildVariable[] = "LIFECYCLE_TEMP_DIR_CHILD";

// Run by the test below in a new process of this binary (a fork of a process
// with threads must not run exit handlers): makes a directory with a file and
// prints its parent, then exits normally.
TEST(ShortTempDirChild, MakesADirectoryAndExits) {
  if (std::getenv(kChildVariable) == nullptr) {
    GTEST_SKIP() << "run by GoneWhenTheProcessExits only";
  }
  std::string dir = ShortTempDir();
  std::ofstream(dir + "/file") << "data";
  std::printf("parent=%s\n", dir.substr(0, dir.rfind('/')).c_str());
}

TEST(ShortTempDirTest, GoneWhenTheProcessExits) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  std::string command = std::string(kChildVariable) + "=1 '" + self +
                        "' --gtest_filter=ShortTempDirChild.* 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, got);
  }
  ASSERT_EQ(pclose(pipe), 0) << output;
  size_t at = output.find("parent=");
  ASSERT_NE(at, std::string::npos) << output;
  std::string parent = output.substr(at + 7, output.find('\n', at) - at - 7);
  EXPECT_EQ(parent.rfind("/tmp/lifecycle-", 0), 0u) << parent;
  EXPECT_FALSE(IsDirectory(parent)) << parent << " is still there";
}

}  // namespace
}  // namespace lifecycle_testing
