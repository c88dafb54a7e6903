#include "lifecycle/testing/hang_watchdog.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
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
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/live_services.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/strings_internal.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/wait.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle_testing {

namespace {

// A deadline as Unix nanoseconds, its lowest bit the slot: never 0 nor -1
// (Deadline's "disarmed" and "claimed"), and nearly the largest value for
// `InfiniteFuture()`.
int64_t ToNanos(absl::Time t, int slot = 0) {
  int64_t nanos = t == absl::InfiniteFuture()
                      ? std::numeric_limits<int64_t>::max() - 1
                      : std::max<int64_t>(absl::ToUnixNanos(t), 2);
  return (nanos & ~int64_t{1}) | (slot & 1);
}

}  // namespace

namespace hang_watchdog_internal {

bool Deadline::Arm(absl::Time deadline, int slot) {
  int64_t current = nanos_.load();
  do {
    if (current == kClaimed) return false;
  } while (!nanos_.compare_exchange_weak(current, ToNanos(deadline, slot)));
  return true;
}

bool Deadline::Disarm() {
  int64_t current = nanos_.load();
  do {
    if (current == kClaimed) return false;
  } while (!nanos_.compare_exchange_weak(current, kDisarmed));
  return true;
}

bool Deadline::Claim(absl::Time now, int* slot) {
  int64_t current = nanos_.load();
  do {
    if (current == kDisarmed || current == kClaimed) return false;
    if (ToNanos(now) < (current & ~int64_t{1})) return false;
  } while (!nanos_.compare_exchange_weak(current, kClaimed));
  if (slot != nullptr) *slot = static_cast<int>(current & 1);
  return true;
}

absl::Time Deadline::Get() const {
  int64_t current = nanos_.load();
  if (current == kDisarmed || current == kClaimed ||
      current >= std::numeric_limits<int64_t>::max() - 1) {
    return absl::InfiniteFuture();
  }
  return absl::FromUnixNanos(current & ~int64_t{1});
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
// The process name of a program's guard (kGuardName in
// lifecycle/process_internal.h; ContainerServiceTest's hang round checks that
// the two agree).
constexpr char kProgramGuardName[] = "lifecycle-guard";

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

// Every process whose parent is `parent`, from /proc: "PID (COMM) S PPID ...".
std::vector<std::pair<pid_t, std::string>> ChildProcessesOf(pid_t parent) {
  std::vector<std::pair<pid_t, std::string>> children;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return children;
  while (dirent* entry = readdir(dir)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::string path = absl::StrCat("/proc/", pid, "/stat");
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buffer[512];
    ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
    close(fd);
    if (n <= 0) continue;
    absl::string_view stat(buffer, static_cast<size_t>(n));
    size_t open_paren = stat.find('('), close_paren = stat.rfind(')');
    if (open_paren == absl::string_view::npos ||
        close_paren == absl::string_view::npos ||
        close_paren + 4 > stat.size()) {
      continue;
    }
    // After ") " come the state and the parent's pid.
    absl::string_view rest = stat.substr(close_paren + 4);
    int ppid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &ppid) ||
        ppid != parent) {
      continue;
    }
    children.push_back(
        {pid, std::string(
                  stat.substr(open_paren + 1, close_paren - open_paren - 1))});
  }
  closedir(dir);
  std::sort(children.begin(), children.end());
  return children;
}

// What a process is doing, so that a hang anywhere names where it is.
enum class Phase : int {
  kBeforeTests,          // from InstallHangWatchdog() to the environments
  kEnvironmentSetUp,     // the global environments' SetUp()
  kSuiteSetUp,           // a suite's SetUpTestSuite()
  kTest,                 // a test: fixture, SetUp(), body, TearDown()
  kAfterTest,            // its suite's TearDownTestSuite(), or the gap
  kBetweenSuites,        // after a suite, before the next
  kEnvironmentTearDown,  // the global environments' TearDown()
  kAfterTests,           // the program's exit
  kDeathTestChild,       // a death test's child process, as a whole
};

// What is watched under one armed deadline (see Deadline's slots).
struct Watched {
  std::atomic<int> phase{0};
  std::atomic<const ::testing::TestInfo*> test{nullptr};
  std::atomic<const ::testing::TestSuite*> suite{nullptr};
  std::atomic<int64_t> started_nanos{0};      // the phase's start
  std::atomic<int64_t> budget_from_nanos{0};  // its start, or SetTestBudget()
  std::atomic<int64_t> budget_nanos{0};
  std::atomic<int64_t> deadline_nanos{0};  // uncut by TEST_TIMEOUT
};

// Parks the calling thread until `*word` differs from `expected`, a wake, or
// `timeout`: the watchdog's sleep, which a test thread ends with a system
// call and no lock (a mutex here once cost the first test 0.4-0.9s under
// ThreadSanitizer, waiting for the watchdog's thread to reach its wait).
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               absl::Duration timeout) {
  timespec ts = absl::ToTimespec(std::max(timeout, absl::ZeroDuration()));
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE,
          expected, &ts, nullptr, 0);
}
void FutexWake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1,
          nullptr, nullptr, 0);
}

// The process-wide watchdog: made by the first InstallHangWatchdog() and
// never destroyed (its thread outlives GoogleTest's listeners). From then on
// every moment of the process is watched: each test, and each phase outside
// tests (the environments' set-up and tear-down, a suite's set-up and
// tear-down, the gaps), gets the budget.
class Watchdog {
 public:
  explicit Watchdog(HangWatchdogOptions options) {
    // The stderr of now: GoogleTest redirects fd 2 into a file while a death
    // test runs, and a report must reach the log.
    report_fd_ = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    if (report_fd_ < 0) report_fd_ = STDERR_FILENO;
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
      EnterPhase(Phase::kDeathTestChild, nullptr, nullptr);
    } else {
      EnterPhase(Phase::kBeforeTests, nullptr, nullptr);
    }
    std::thread([this] { Loop(); }).detach();
  }

  void SetOptions(const HangWatchdogOptions& options) {
    if (options.budget <= absl::ZeroDuration()) {
      std::fprintf(
          stderr,
          "[ WARNING  ] hang watchdog: off (a test budget of %s; "
          "%s=0 or a budget of zero or less turns it off)\n",
          lifecycle::strings_internal::DurationText(options.budget).c_str(),
          kTestBudgetVariable);
    }
    budget_nanos_.store(absl::ToInt64Nanoseconds(options.budget));
    report_limit_nanos_.store(absl::ToInt64Nanoseconds(options.report_limit));
  }

  // From GoogleTest's events (none come in a death test's child).
  void EnterPhase(Phase phase, const ::testing::TestInfo* test,
                  const ::testing::TestSuite* suite) {
    if (death_test_child_ != nullptr && phase != Phase::kDeathTestChild) return;
    absl::MutexLock lock(&writer_mu_);
    test_tid_.store(CurrentTid());  // the thread that runs the tests
    const absl::Time now = absl::Now();
    Watched& w = Next();
    w.phase.store(static_cast<int>(phase), std::memory_order_relaxed);
    w.test.store(test, std::memory_order_relaxed);
    w.suite.store(suite, std::memory_order_relaxed);
    w.started_nanos.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
    Budget(w, now, absl::Nanoseconds(budget_nanos_.load()));
  }

  void SetBudget(absl::Duration budget) {
    if (budget <= absl::ZeroDuration()) {
      if (!warned_unwatched_.exchange(true)) {
        std::fprintf(stderr,
                     "[ WARNING  ] hang watchdog: SetTestBudget(%s) leaves "
                     "the test unwatched\n",
                     lifecycle::strings_internal::DurationText(budget).c_str());
      }
      if (!deadline_.Disarm()) AwaitTheReport();
      return;
    }
    // The phase goes on, with a new budget from now.
    absl::MutexLock lock(&writer_mu_);
    const Watched& current = slots_[slot_.load(std::memory_order_relaxed)];
    Watched& w = Next();
    w.phase.store(current.phase.load(std::memory_order_relaxed),
                  std::memory_order_relaxed);
    w.test.store(current.test.load(std::memory_order_relaxed),
                 std::memory_order_relaxed);
    w.suite.store(current.suite.load(std::memory_order_relaxed),
                  std::memory_order_relaxed);
    w.started_nanos.store(current.started_nanos.load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
    Budget(w, absl::Now(), budget);
  }

  absl::Time TestDeadline() const { return deadline_.Get(); }

 private:
  // The slot not armed now, to describe the next deadline in. Writers
  // (GoogleTest's events, SetTestBudget()) hold `writer_mu_`; the watchdog's
  // thread never takes it, and reads only the slot of the deadline it
  // claimed, which no writer touches any more.
  Watched& Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    int next = 1 - slot_.load(std::memory_order_relaxed);
    slot_.store(next, std::memory_order_relaxed);
    return slots_[next];
  }

  // Watches `w` (the slot Next() returned) for `budget` from `from`.
  void Budget(Watched& w, absl::Time from, absl::Duration budget) {
    w.budget_from_nanos.store(absl::ToUnixNanos(from),
                              std::memory_order_relaxed);
    w.budget_nanos.store(absl::ToInt64Nanoseconds(budget),
                         std::memory_order_relaxed);
    if (budget <= absl::ZeroDuration()) {
      if (!deadline_.Disarm()) AwaitTheReport();
      return;
    }
    absl::Time deadline = from + budget;
    w.deadline_nanos.store(ToNanos(deadline), std::memory_order_relaxed);
    deadline = std::min(deadline, binary_deadline_);
    if (!deadline_.Arm(deadline, slot_.load(std::memory_order_relaxed))) {
      AwaitTheReport();
    }
    // The watchdog's thread sleeps until the deadline it last saw; wake it
    // only if this one is earlier. With `sleeping_until_` stored before it
    // looks at the deadline again (Loop()), either it sees this deadline or
    // this sees its sleep (both sequentially consistent); the futex word
    // changes before the wake, so a wake between its look and its sleep is
    // not lost.
    if (sleeping_until_.load() > ToNanos(deadline)) {
      wake_word_.fetch_add(1);
      FutexWake(&wake_word_);
    }
  }

  void Loop() {
    while (true) {
      const uint32_t word = wake_word_.load();
      absl::Time deadline = deadline_.Get();
      sleeping_until_.store(ToNanos(deadline));
      if (deadline_.Get() != deadline) continue;
      absl::Time now = absl::Now();
      if (now >= deadline) {
        int slot = 0;
        if (deadline_.Claim(now, &slot)) Report(now, deadline, slots_[slot]);
        continue;
      }
      FutexWait(&wake_word_, word,
                deadline == absl::InfiniteFuture() ? absl::Hours(24)
                                                   : deadline - now);
    }
  }

  // Ends the process after `limit` if the report has not: a second hang,
  // while reporting, must not hang the test.
  void GuardTheReport(absl::Duration limit) {
    std::string message =
        absl::StrCat("\n[ HANGING  ] the hang report did not finish within ",
                     lifecycle::strings_internal::DurationText(limit),
                     "; the process ends without the rest\n");
    try {
      std::thread([this, limit, message] {
        guard_tid_.store(CurrentTid());
        absl::SleepFor(limit);  // the delay this thread exists for
        KillChildProcesses();
        WriteAll(report_fd_, message);
        EndTheProcess();
      }).detach();
    } catch (const std::system_error&) {
      WriteAll(report_fd_,
               "[ HANGING  ] (no thread to bound the report's own time)\n");
    }
  }

  // Sends `sig` to this process's child processes and theirs (a death test's
  // child, a program a test started), but not to the guards of programs
  // (lifecycle/process_service.h): once this process has exited, they end
  // their programs and run their clean-up (a container's removal), which a
  // SIGKILL would skip. Returns them, "PID 'NAME'".
  static std::vector<std::string> SignalChildProcesses(int sig) {
    std::vector<std::string> signalled;
    std::vector<pid_t> todo = {getpid()};
    while (!todo.empty()) {
      pid_t parent = todo.back();
      todo.pop_back();
      for (const auto& [pid, name] : ChildProcessesOf(parent)) {
        if (name == kProgramGuardName) continue;
        kill(pid, sig);
        signalled.push_back(absl::StrCat(pid, " '", name, "'"));
        todo.push_back(pid);  // orphans are adopted by init, not by us: the
                              // list was read before the kill
      }
    }
    return signalled;
  }

  // Kills the child processes (see above): none may outlive the test.
  // Returns a line naming them, or "".
  std::string KillChildProcesses() {
    std::vector<std::string> killed = SignalChildProcesses(SIGKILL);
    if (killed.empty()) return "";
    return absl::StrCat("[ HANGING  ] killed ", killed.size(),
                        " child process(es), so that none outlives the test: ",
                        absl::StrJoin(killed, ", "), "\n");
  }

  // The name of what hung, and the same as a file name's part.
  static std::pair<std::string, std::string> NameOf(const Watched& w,
                                                    const std::string* child) {
    const ::testing::TestInfo* test = w.test.load(std::memory_order_relaxed);
    const ::testing::TestSuite* suite = w.suite.load(std::memory_order_relaxed);
    std::string test_name =
        test == nullptr
            ? ""
            : absl::StrCat(test->test_suite_name(), ".", test->name());
    std::string suite_name = suite == nullptr ? "" : suite->name();
    switch (static_cast<Phase>(w.phase.load(std::memory_order_relaxed))) {
      case Phase::kBeforeTests:
        return {"(before the first test)", "before_the_first_test"};
      case Phase::kEnvironmentSetUp:
        return {"(the global test environments' SetUp())",
                "environments_SetUp"};
      case Phase::kSuiteSetUp:
        return {absl::StrCat("SetUpTestSuite() of ", suite_name),
                absl::StrCat(suite_name, ".SetUpTestSuite")};
      case Phase::kTest:
        return {test_name, test_name};
      case Phase::kAfterTest:
        return {absl::StrCat("(after ", test_name, ": TearDownTestSuite() of ",
                             test->test_suite_name(), ", or between tests)"),
                absl::StrCat("after_", test_name)};
      case Phase::kBetweenSuites:
        if (suite == nullptr) {
          return {
              "(after the global test environments' SetUp(), before the "
              "first test suite)",
              "after_environments_SetUp"};
        }
        return {absl::StrCat("(after test suite ", suite_name,
                             ", between test suites)"),
                absl::StrCat("after_", suite_name)};
      case Phase::kEnvironmentTearDown:
        return {"(the global test environments' TearDown())",
                "environments_TearDown"};
      case Phase::kAfterTests:
        return {"(after the last test: the program's exit)",
                "after_the_last_test"};
      case Phase::kDeathTestChild:
        return {absl::StrCat(*child, " (in a death test's child process)"),
                *child};
    }
    return {"(unknown phase)", "unknown"};
  }

  // " (shard K of N)" in a sharded run, else "".
  static std::string ShardText() {
    auto shard = outputs_internal::CurrentShard();
    return shard ? absl::StrCat(" (shard ", shard->index + 1, " of ",
                                shard->total, ")")
                 : "";
  }

  [[noreturn]] void Report(absl::Time now, absl::Time deadline,
                           const Watched& w) {
    GuardTheReport(absl::Nanoseconds(report_limit_nanos_.load()));
    // The child processes stand still while the report is written, so that it
    // describes one moment: a death test's child, with a watchdog of its own
    // started a little later, cannot end itself (and be reaped) in between,
    // and is still there to be named and killed at the end.
    SignalChildProcesses(SIGSTOP);
    auto [name, file_name] = NameOf(w, death_test_child_);
    absl::Time started = absl::FromUnixNanos(w.started_nanos.load());
    absl::Time budget_from = absl::FromUnixNanos(w.budget_from_nanos.load());
    absl::Duration budget = absl::Nanoseconds(w.budget_nanos.load());
    auto ms = [](absl::Duration d) {
      return lifecycle::strings_internal::DurationText(
          absl::Trunc(d, absl::Milliseconds(1)));
    };
    const bool cut = ToNanos(deadline) < w.deadline_nanos.load();
    std::string out = absl::StrCat(
        "\n[ HANGING  ] ", name, ShardText(), " has run for ",
        ms(now - started), "; its budget is ", ms(budget),
        budget_from > started
            ? absl::StrCat(" from SetTestBudget(), called at ",
                           ms(budget_from - started))
            : "",
        cut ? " (cut to end before nine tenths of TEST_TIMEOUT)" : "", " (set ",
        kTestBudgetVariable, " or call SetTestBudget() to change it)\n");
    WriteAll(report_fd_, out);  // the name first, whatever happens next

    // Every live service, and which thread is whose worker.
    lifecycle::LiveServices live = lifecycle::SnapshotLiveServices();
    absl::flat_hash_map<pid_t, std::string> owner;
    std::string services;
    if (!live.complete) {
      services =
          "(the list of live services could not be read: its mutex "
          "stayed held)\n";
    } else if (live.roots.empty() && live.unreadable.empty()) {
      services = "(no live services)\n";
    } else {
      services = lifecycle::ToTable(live.roots);
      for (const lifecycle::ServiceSnapshot& root : live.roots) {
        for (const lifecycle::ServiceSnapshot* s : root.Flatten()) {
          for (pid_t tid : s->threads) owner[tid] = s->path;
        }
      }
    }
    for (size_t i = 0; i < live.unreadable.size(); ++i) {
      if (i < live.unreadable_workers.size() &&
          live.unreadable_workers[i] != 0) {
        owner[live.unreadable_workers[i]] =
            absl::StrCat(live.unreadable[i], ", whose mutex is held");
      }
    }
    if (!live.unreadable.empty()) {
      absl::StrAppend(&services, "Not readable (their mutex stayed held): ",
                      absl::StrJoin(live.unreadable, ", "), "\n");
    }
    std::string report = absl::StrCat(out, "Live services:\n", services);
    WriteAll(report_fd_, absl::StrCat("Live services:\n", services));

    std::vector<pid_t> tids = ThreadsOfThisProcess();
    std::string threads =
        absl::StrCat("Threads (", tids.size(), "):\n",
                     lifecycle::kThreadSanitizer
                         ? "(stacks are not captured under ThreadSanitizer, "
                           "which defers signals)\n"
                         : "");
    WriteAll(report_fd_, threads);
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
      WriteAll(report_fd_, stack);
      absl::StrAppend(&threads, stack);
    }
    absl::StrAppend(&report, threads);
    std::string killed = KillChildProcesses();
    WriteAll(report_fd_, killed);
    absl::StrAppend(&report, killed);

    std::string path =
        TestOutputPath(absl::StrCat("hang_report_", file_name, ".txt"));
    std::string where;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      WriteAll(fd, report);
      close(fd);
      where =
          absl::StrCat("[ HANGING  ] Report: ", DescribeTestOutput(path), "\n");
    } else {
      where = absl::StrCat("[ HANGING  ] (could not write the report to ", path,
                           ": ", std::strerror(errno), ")\n");
    }
    WriteAll(report_fd_, where);
    EndTheProcess();
  }

  Deadline deadline_;
  Watched slots_[2];
  std::atomic<int> slot_{0};                             // the one armed last
  int report_fd_ = STDERR_FILENO;                        // set once
  absl::Time binary_deadline_ = absl::InfiniteFuture();  // set once
  const std::string* death_test_child_ = nullptr;        // set once
  std::atomic<int64_t> budget_nanos_{0};
  std::atomic<int64_t> report_limit_nanos_{0};
  std::atomic<pid_t> test_tid_{0};
  std::atomic<pid_t> guard_tid_{0};
  std::atomic<bool> warned_unwatched_{false};
  std::atomic<int64_t> sleeping_until_{std::numeric_limits<int64_t>::max()};
  std::atomic<uint32_t> wake_word_{0};
  absl::Mutex writer_mu_;
};

std::atomic<Watchdog*> g_watchdog{nullptr};

// Forwards GoogleTest's events to the watchdog (GoogleTest owns and deletes
// its listeners; the watchdog outlives them).
class Listener : public ::testing::EmptyTestEventListener {
 public:
  explicit Listener(Watchdog& watchdog) : watchdog_(watchdog) {}
  void OnEnvironmentsSetUpStart(const ::testing::UnitTest&) override {
    watchdog_.EnterPhase(Phase::kEnvironmentSetUp, nullptr, nullptr);
  }
  void OnEnvironmentsSetUpEnd(const ::testing::UnitTest&) override {
    watchdog_.EnterPhase(Phase::kBetweenSuites, nullptr, nullptr);
  }
  void OnTestSuiteStart(const ::testing::TestSuite& suite) override {
    watchdog_.EnterPhase(Phase::kSuiteSetUp, nullptr, &suite);
  }
  void OnTestStart(const ::testing::TestInfo& test) override {
    watchdog_.EnterPhase(Phase::kTest, &test, nullptr);
  }
  void OnTestEnd(const ::testing::TestInfo& test) override {
    watchdog_.EnterPhase(Phase::kAfterTest, &test, nullptr);
  }
  void OnTestSuiteEnd(const ::testing::TestSuite& suite) override {
    watchdog_.EnterPhase(Phase::kBetweenSuites, nullptr, &suite);
  }
  void OnEnvironmentsTearDownStart(const ::testing::UnitTest&) override {
    watchdog_.EnterPhase(Phase::kEnvironmentTearDown, nullptr, nullptr);
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    watchdog_.EnterPhase(Phase::kAfterTests, nullptr, nullptr);
  }

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
