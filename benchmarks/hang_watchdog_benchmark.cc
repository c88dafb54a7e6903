// What the hang watchdog (testing/hang_watchdog.h) costs a suite when nothing
// hangs: the time per empty test, with and without the watchdog, as a ratio.
//
//   bazel run -c opt //benchmarks:hang_watchdog_benchmark
//
// Each measurement is a child process (fork, from this single-threaded
// process) that runs 20,000 registered empty tests through GoogleTest with
// its result printer removed, so what is timed is GoogleTest's own work per
// test plus, in every other child, the watchdog's arm and disarm. The two
// kinds of child alternate, 7 of each, and the medians are compared.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/hang_watchdog.h"

namespace {

constexpr int kTests = 20000;
constexpr int kRuns = 7;

class EmptyTest : public ::testing::Test {
 public:
  void TestBody() override {}
};

// Nanoseconds per test of one run of every test in a child process.
double NanosPerTest(bool with_watchdog) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (with_watchdog) lifecycle_testing::InstallHangWatchdog();
    absl::Time start = absl::Now();
    int failed = RUN_ALL_TESTS();
    double nanos = absl::ToDoubleNanoseconds(absl::Now() - start) / kTests;
    if (write(fds[1], &nanos, sizeof(nanos)) != sizeof(nanos)) _exit(2);
    _exit(failed);
  }
  close(fds[1]);
  double nanos = -1;
  if (read(fds[0], &nanos, sizeof(nanos)) != sizeof(nanos)) nanos = -1;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? nanos : -1;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 0; i < kTests; ++i) {
    ::testing::RegisterTest("Empty", absl::StrCat("Test", i).c_str(), nullptr,
                            nullptr, __FILE__, __LINE__,
                            []() -> ::testing::Test* { return new EmptyTest; });
  }
  ::testing::TestEventListeners& listeners =
      ::testing::UnitTest::GetInstance()->listeners();
  delete listeners.Release(listeners.default_result_printer());

  std::vector<double> without, with;
  for (int run = 0; run < kRuns; ++run) {
    without.push_back(NanosPerTest(false));
    with.push_back(NanosPerTest(true));
    if (without.back() < 0 || with.back() < 0) {
      std::fprintf(stderr, "a measuring child failed\n");
      return 1;
    }
  }
  double base = Median(without);
  double watched = Median(with);
  std::printf(
      "%d empty tests, %d runs each, alternating; medians per test:\n"
      "  without the watchdog  %8.1f ns\n"
      "  with the watchdog     %8.1f ns\n"
      "  arm + disarm          %8.1f ns (ratio %.3f)\n",
      kTests, kRuns, base, watched, watched - base, watched / base);
  return 0;
}
