#include "lifecycle/testing/temp_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

TEST(ShortTempDirTest, GoneWhenTheProcessExits) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string dir = ShortTempDir();
    std::ofstream(dir + "/file") << "data";
    std::string parent = dir.substr(0, dir.rfind('/'));
    if (write(pipe_fds[1], parent.data(), parent.size()) < 0) _exit(2);
    std::exit(0);  // runs the removal
  }
  close(pipe_fds[1]);
  char buffer[256];
  ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer));
  close(pipe_fds[0]);
  int status;
  waitpid(child, &status, 0);
  ASSERT_GT(got, 0);
  std::string parent(buffer, static_cast<size_t>(got));
  EXPECT_EQ(parent.rfind("/tmp/lifecycle-", 0), 0u) << parent;
  EXPECT_FALSE(IsDirectory(parent)) << parent << " is still there";
}

}  // namespace
}  // namespace lifecycle_testing
