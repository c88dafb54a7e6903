#include "lifecycle/testing/hang_watchdog.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/wait.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle_testing {

namespace {

// A deadline as Unix nanoseconds: never 0 (Deadline's "disarmed"), and
// the largest value for `InfiniteFuture()`.
int64_t ToNanos(absl::Time t) {
  if (t == absl::InfiniteFuture()) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(absl::ToUnixNanos(t), 1);
}

}  // namespace

namespace hang_watchdog_internal {

bool Deadline::Arm(absl::Time deadline) {
  int64_t current = nanos_.load();
  do {
    if (current == kClaimed) return false;
  } while (!nanos_.compare_exchange_weak(current, ToNanos(deadline)));
  return true;
}

bool Deadline::Disarm() {
  int64_t current = nanos_.load();
  do {
    if (current == kClaimed) return false;
  } while (!nanos_.compare_exchange_weak(current, kDisarmed));
  return true;
}

bool Deadline::Claim(absl::Time now) {
  int64_t current = nanos_.load();
  do {
    if (current == kDisarmed || current == kClaimed) return false;
    if (ToNanos(now) < current) return false;
  } while (!nanos_.compare_exchange_weak(current, kClaimed));
  return true;
}

absl::Time Deadline::Get() const {
  int64_t current = nanos_.load();
  if (current == kDisarmed || current == kClaimed ||
      current == std::numeric_limits<int64_t>::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromUnixNanos(current);
}

}  // namespace hang_watchdog_internal

namespace {

using hang_watchdog_internal::Deadline;

// Asked once per thread: a system call costs more than the rest of arming.
pid_t CurrentTid() {
  thread_local const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  return tid;
}

void WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

// Once the watchdog has claimed the test's expiry, the test's thread must not
// go on as if the test had passed: it waits here for the report to end the
// process.
// Ends the process with `kHangExitCode` at once: no atexit handlers, no
// destructors (threads are hung), and not through `_exit()`, which sanitizers
// intercept to run their own checks and change the status (ThreadSanitizer
// reports the hung threads as leaked and exits 66).
[[noreturn]] void EndTheProcess() {
  syscall(SYS_exit_group, kHangExitCode);
  _exit(kHangExitCode);  // not reached
}

[[noreturn]] void AwaitTheReport() {
  while (true) pause();
}

std::vector<pid_t> ThreadsOfThisProcess() {
  std::vector<pid_t> tids;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return tids;
  while (dirent* entry = readdir(dir)) {
    int tid = 0;
    if (absl::SimpleAtoi(entry->d_name, &tid)) tids.push_back(tid);
  }
  closedir(dir);
  std::sort(tids.begin(), tids.end());
  return tids;
}

// The process-wide watchdog: made by the first InstallHangWatchdog() and
// never destroyed (its thread outlives GoogleTest's listeners).
class Watchdog {
 public:
  explicit Watchdog(HangWatchdogOptions options) {
    SetOptions(options);
    if (const char* seconds = std::getenv("TEST_TIMEOUT")) {
      int value = 0;
      if (absl::SimpleAtoi(seconds, &value) && value > 0) {
        binary_deadline_ = absl::Now() + absl::Seconds(value) * 9 / 10;
      }
    }
    // GoogleTest forwards no test events in a death test's child process:
    // the child is watched as a whole, from now, named by its filter (the
    // test's full name).
    if (!GTEST_FLAG_GET(internal_run_death_test).empty()) {
      death_test_child_ = new std::string(GTEST_FLAG_GET(filter));
      test_tid_.store(CurrentTid());
      absl::Time now = absl::Now();
      started_nanos_.store(absl::ToUnixNanos(now));
      budget_from_nanos_.store(absl::ToUnixNanos(now));
      if (options.budget > absl::ZeroDuration()) Watch(now + options.budget);
    }
    std::thread([this] { Loop(); }).detach();
  }

  void SetOptions(const HangWatchdogOptions& options) {
    if (options.budget <= absl::ZeroDuration()) {
      std::fprintf(stderr,
                   "[ WARNING  ] hang watchdog: off (a test budget of %s; "
                   "%s=0 or a budget of zero or less turns it off)\n",
                   absl::FormatDuration(options.budget).c_str(),
                   kTestBudgetVariable);
    }
    budget_nanos_.store(absl::ToInt64Nanoseconds(options.budget));
    report_limit_nanos_.store(absl::ToInt64Nanoseconds(options.report_limit));
  }

  // The stores before Watch() may be relaxed: the report reads them only
  // after its Claim() has read (acquire) the deadline that Watch() stores.
  void TestStarted(const ::testing::TestInfo& test) {
    test_.store(&test, std::memory_order_relaxed);
    test_tid_.store(CurrentTid(), std::memory_order_relaxed);
    absl::Time now = absl::Now();
    started_nanos_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
    budget_from_nanos_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
    absl::Duration budget = absl::Nanoseconds(budget_nanos_.load());
    if (budget <= absl::ZeroDuration()) return;
    Watch(now + budget);
  }

  void TestEnded() {
    if (!deadline_.Disarm()) AwaitTheReport();
    test_.store(nullptr, std::memory_order_relaxed);
  }

  void SetBudget(absl::Duration budget) {
    if (test_.load() == nullptr && death_test_child_ == nullptr) return;
    if (budget <= absl::ZeroDuration()) {
      if (!warned_unwatched_.exchange(true)) {
        std::fprintf(stderr,
                     "[ WARNING  ] hang watchdog: SetTestBudget(%s) leaves "
                     "the test unwatched\n",
                     absl::FormatDuration(budget).c_str());
      }
      if (!deadline_.Disarm()) AwaitTheReport();
      return;
    }
    absl::Time now = absl::Now();
    budget_from_nanos_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
    Watch(now + budget);
  }

  absl::Time TestDeadline() const { return deadline_.Get(); }

 private:
  void Watch(absl::Time deadline) {
    deadline = std::min(deadline, binary_deadline_);
    if (!deadline_.Arm(deadline)) AwaitTheReport();
    // The watchdog's thread sleeps until the deadline it last saw; wake it
    // only if this one is earlier. With `sleeping_until_` stored before it
    // looks at the deadline again (Loop()), either it sees this deadline or
    // this sees its sleep (both sequentially consistent).
    if (sleeping_until_.load() > ToNanos(deadline)) {
      absl::MutexLock lock(&mu_);
      wake_.Signal();
    }
  }

  void Loop() {
    absl::MutexLock lock(&mu_);
    while (true) {
      absl::Time deadline = deadline_.Get();
      sleeping_until_.store(ToNanos(deadline));
      if (deadline_.Get() != deadline) continue;
      absl::Time now = absl::Now();
      if (now >= deadline) {
        // The report holds `mu_` to the end: nothing waits for it then (a
        // claimed deadline wakes nobody).
        if (deadline_.Claim(now)) Report(now, deadline);
        continue;
      }
      wake_.WaitWithDeadline(&mu_, deadline);
    }
  }

  // Ends the process after `limit` if the report has not: a second hang,
  // while reporting, must not hang the test.
  void GuardTheReport(absl::Duration limit) {
    std::string message = absl::StrCat(
        "\n[ HANGING  ] the hang report did not finish within ",
        absl::FormatDuration(limit), "; the process ends without the rest\n");
    try {
      std::thread([this, limit, message] {
        guard_tid_.store(CurrentTid());
        absl::SleepFor(limit);  // the delay this thread exists for
        WriteAll(STDERR_FILENO, message);
        EndTheProcess();
      }).detach();
    } catch (const std::system_error&) {
      WriteAll(STDERR_FILENO,
               "[ HANGING  ] (no thread to bound the report's own time)\n");
    }
  }

  [[noreturn]] void Report(absl::Time now, absl::Time deadline) {
    GuardTheReport(absl::Nanoseconds(report_limit_nanos_.load()));
    const ::testing::TestInfo* test = test_.load();
    std::string name =
        test != nullptr
            ? absl::StrCat(test->test_suite_name(), ".", test->name())
        : death_test_child_ != nullptr ? *death_test_child_
                                       : std::string("(between tests)");
    const char* in_child = test == nullptr && death_test_child_ != nullptr
                               ? " (in a death test's child process)"
                               : "";
    absl::Time started = absl::FromUnixNanos(started_nanos_.load());
    absl::Time budget_from = absl::FromUnixNanos(budget_from_nanos_.load());
    auto ms = [](absl::Duration d) {
      return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
    };
    std::string out = absl::StrCat(
        "\n[ HANGING  ] ", name, in_child, " has run for ", ms(now - started),
        "; its budget is ", ms(deadline - budget_from),
        budget_from > started
            ? absl::StrCat(" from SetTestBudget(), called at ",
                           ms(budget_from - started))
            : "",
        deadline == binary_deadline_
            ? " (cut to end before nine tenths of TEST_TIMEOUT)"
            : "",
        " (set ", kTestBudgetVariable,
        " or call SetTestBudget() to change it)\n");
    WriteAll(STDERR_FILENO, out);  // the name first, whatever happens next

    // Every live service, and which thread is whose worker.
    lifecycle::LiveServices live = lifecycle::SnapshotLiveServices();
    absl::flat_hash_map<pid_t, std::string> owner;
    std::string services;
    if (!live.complete) {
      services =
          "(the list of live services could not be read: its mutex "
          "stayed held)\n";
    } else if (live.roots.empty()) {
      services = "(no live services)\n";
    } else {
      services = lifecycle::ToTable(live.roots);
      for (const lifecycle::ServiceSnapshot& root : live.roots) {
        for (const lifecycle::ServiceSnapshot* s : root.Flatten()) {
          for (pid_t tid : s->threads) owner[tid] = s->path;
        }
      }
    }
    if (!live.unreadable.empty()) {
      absl::StrAppend(&services, "Not readable (their mutex stayed held): ",
                      absl::StrJoin(live.unreadable, ", "), "\n");
    }
    std::string report = absl::StrCat(out, "Live services:\n", services);
    WriteAll(STDERR_FILENO, absl::StrCat("Live services:\n", services));

    std::vector<pid_t> tids = ThreadsOfThisProcess();
    std::string threads =
        absl::StrCat("Threads (", tids.size(), "):\n",
                     lifecycle::kThreadSanitizer
                         ? "(stacks are not captured under ThreadSanitizer, "
                           "which defers signals)\n"
                         : "");
    WriteAll(STDERR_FILENO, threads);
    const pid_t self = CurrentTid();
    for (pid_t tid : tids) {
      std::string label;
      if (tid == test_tid_.load()) label = " (the test's thread)";
      if (auto it = owner.find(tid); it != owner.end()) {
        absl::StrAppend(&label, " (worker of ", it->second, ")");
      }
      std::string stack;
      if (tid == self) {
        stack = absl::StrCat("thread ", tid,
                             " (the hang watchdog, writing this report)\n");
      } else if (tid == guard_tid_.load()) {
        stack = absl::StrCat("thread ", tid,
                             " (the hang watchdog's guard of the report)\n");
      } else {
        stack = lifecycle::ThreadStack(tid);
        // "thread TID 'NAME':\n..." -> "thread TID 'NAME' LABEL:\n..."
        if (size_t colon = stack.find(":\n"); colon != std::string::npos) {
          stack.insert(colon, label);
        }
      }
      WriteAll(STDERR_FILENO, stack);
      absl::StrAppend(&threads, stack);
    }
    absl::StrAppend(&report, threads);

    std::string path =
        TestOutputPath(absl::StrCat("hang_report_", name, ".txt"));
    std::string where;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      WriteAll(fd, report);
      close(fd);
      where = absl::StrCat("[ HANGING  ] Report: ", path, "\n");
    } else {
      where = absl::StrCat("[ HANGING  ] (could not write the report to ", path,
                           ": ", std::strerror(errno), ")\n");
    }
    WriteAll(STDERR_FILENO, where);
    EndTheProcess();
  }

  Deadline deadline_;
  absl::Time binary_deadline_ = absl::InfiniteFuture();  // set once
  const std::string* death_test_child_ = nullptr;        // set once
  std::atomic<int64_t> budget_nanos_{0};
  std::atomic<int64_t> report_limit_nanos_{0};
  std::atomic<const ::testing::TestInfo*> test_{nullptr};
  std::atomic<int64_t> started_nanos_{0};
  std::atomic<int64_t> budget_from_nanos_{0};  // the test's start, or the
                                               // last SetTestBudget() call
  std::atomic<pid_t> test_tid_{0};
  std::atomic<pid_t> guard_tid_{0};
  std::atomic<bool> warned_unwatched_{false};
  std::atomic<int64_t> sleeping_until_{std::numeric_limits<int64_t>::max()};
  absl::Mutex mu_;
  absl::CondVar wake_;
};

std::atomic<Watchdog*> g_watchdog{nullptr};

// Forwards GoogleTest's events to the watchdog (GoogleTest owns and deletes
// its listeners; the watchdog outlives them).
class Listener : public ::testing::EmptyTestEventListener {
 public:
  explicit Listener(Watchdog& watchdog) : watchdog_(watchdog) {}
  void OnTestStart(const ::testing::TestInfo& test) override {
    watchdog_.TestStarted(test);
  }
  void OnTestEnd(const ::testing::TestInfo&) override { watchdog_.TestEnded(); }

 private:
  Watchdog& watchdog_;
};

}  // namespace

absl::Duration ComputeTestBudget(const char* (*getenv)(const char*),
                                 int sanitizer_factor) {
  absl::Duration budget = absl::Seconds(60) * std::max(sanitizer_factor, 1);
  if (const char* value = getenv(kTestBudgetVariable)) {
    absl::Duration parsed;
    if (absl::ParseDuration(value, &parsed)) {
      budget = parsed;
    } else {
      std::fprintf(stderr,
                   "[ WARNING  ] hang watchdog: ignoring %s=\"%s\": not a "
                   "duration such as \"90s\" (0 turns the watchdog off)\n",
                   kTestBudgetVariable, value);
    }
  }
  int test_timeout_seconds = 0;
  if (const char* test_timeout = getenv("TEST_TIMEOUT");
      budget > absl::ZeroDuration() && test_timeout != nullptr &&
      absl::SimpleAtoi(test_timeout, &test_timeout_seconds) &&
      test_timeout_seconds > 0) {
    budget = std::min(budget, absl::Seconds(test_timeout_seconds) * 3 / 4);
  }
  return budget;
}

absl::Duration TestBudget() {
  return ComputeTestBudget(
      [](const char* name) -> const char* { return std::getenv(name); },
      SanitizerTimeoutFactor());
}

void InstallHangWatchdog(HangWatchdogOptions options) {
  static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  if (Watchdog* watchdog = g_watchdog.load()) {
    watchdog->SetOptions(options);
    return;
  }
  auto* watchdog = new Watchdog(options);  // never destroyed: see Watchdog
  g_watchdog.store(watchdog);
  ::testing::UnitTest::GetInstance()->listeners().Append(
      new Listener(*watchdog));
}

void SetTestBudget(absl::Duration budget) {
  if (Watchdog* watchdog = g_watchdog.load()) watchdog->SetBudget(budget);
}

absl::Time TestDeadline() {
  Watchdog* watchdog = g_watchdog.load();
  return watchdog == nullptr ? absl::InfiniteFuture()
                             : watchdog->TestDeadline();
}

}  // namespace lifecycle_testing
