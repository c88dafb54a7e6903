// A matrix fixture (tools/matrix_split_check.sh): a harness whose start fails
// every other run, so a failed run leaves what a real flake leaves in its
// outputs: the harness's snapshot and its start-up waterfall. The run number
// comes from a counter in MATRIX_FIXTURE_DIR, taken under a lock, so the
// count of failures over any split of the runs is exact.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/harness.h"

namespace {

// This run's number across every machine, from 0.
int NextRun(const std::string& counter) {
  const char* dir = std::getenv("MATRIX_FIXTURE_DIR");
  if (dir == nullptr) return 0;
  std::string path = std::string(dir) + "/" + counter;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  flock(fd, LOCK_EX);
  char text[32] = {};
  ssize_t got = pread(fd, text, sizeof(text) - 1, 0);
  int n = got > 0 ? std::atoi(text) : 0;
  std::string next = std::to_string(n + 1);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, next.data(), next.size(), 0) < 0) {
    n = 0;
  }
  close(fd);  // and the lock with it
  return n;
}

TEST(FlakyServiceFixture, StartsTheStore) {
  lifecycle_testing::FakeService db("db");
  lifecycle_testing::FakeService cache("cache");
  if (NextRun("flaky_service.count") % 2 == 1) {
    cache.FailStartWith(absl::UnavailableError("port 6379 taken (injected)"));
  }
  lifecycle_testing::StartStopHarness harness({&db, &cache});
  ASSERT_TRUE(harness.StartAll());
}

}  // namespace
