#include "lifecycle/testing/leftover_threads.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/context.h"
#include "lifecycle/signal.h"

namespace lifecycle_testing {
namespace {

// The library's own process-wide thread, by identity: a service that happens
// to be named like it is still reported.
bool IsLibraryThread(pid_t tid) {
  return tid == lifecycle::DeadlineTimerThreadId();
}

absl::Mutex for_the_binary_mu(absl::kConstInit);
std::vector<std::function<std::vector<pid_t>()>>* for_the_binary
    ABSL_GUARDED_BY(for_the_binary_mu) = nullptr;

// The ids `RunsForTheBinary()` registered functions return now.
std::set<pid_t> IdsForTheBinary() {
  std::vector<std::function<std::vector<pid_t>()>> functions;
  {
    absl::MutexLock lock(&for_the_binary_mu);
    if (for_the_binary != nullptr) functions = *for_the_binary;
  }
  std::set<pid_t> ids;
  for (const auto& f : functions) {
    for (pid_t id : f()) ids.insert(id);
  }
  return ids;
}

// The entries `list()` still returns after up to `grace`: what a test left
// behind. Threads and processes that end have no signal to wait on here (a
// joined thread leaves /proc a moment after join() returns), so this polls,
// bounded by `grace`.
template <typename List>
std::vector<std::string> LeftAfter(absl::Duration grace, List list) {
  absl::Time deadline = absl::Now() + grace;
  std::vector<std::string> left;
  lifecycle::Signal never;
  do {
    left = list();
  } while (!left.empty() && !never.WaitFor(absl::Milliseconds(5)) &&
           absl::Now() < deadline);
  return left;
}

}  // namespace

void RunsForTheBinary(std::function<std::vector<pid_t>()> ids) {
  absl::MutexLock lock(&for_the_binary_mu);
  if (for_the_binary == nullptr) {
    for_the_binary = new std::vector<std::function<std::vector<pid_t>()>>();
  }
  for_the_binary->push_back(std::move(ids));
}

std::map<pid_t, std::string> LiveThreads() {
  std::map<pid_t, std::string> threads;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return threads;
  while (dirent* entry = readdir(dir)) {
    pid_t tid;
    if (!absl::SimpleAtoi(entry->d_name, &tid)) continue;
    std::ifstream comm(absl::StrCat("/proc/self/task/", tid, "/comm"));
    std::string name;
    std::getline(comm, name);
    threads[tid] = name;
  }
  closedir(dir);
  return threads;
}

LeftoverThreadCheck::LeftoverThreadCheck() {
  // Sanitizer runtimes (ThreadSanitizer) start a background thread at the
  // first pthread_create; start and join one thread now so that it, if any,
  // is part of "before" rather than blamed on the test.
  std::thread([] {}).join();
  before_ = LiveThreads();
}

::testing::AssertionResult LeftoverThreadCheck::NoNewThreads(
    absl::Duration grace) const {
  std::vector<std::string> leftover = LeftAfter(grace, [this] {
    std::vector<std::string> left;
    const std::set<pid_t> kept = IdsForTheBinary();
    for (const auto& [tid, name] : LiveThreads()) {
      if (before_.count(tid) == 0 && !IsLibraryThread(tid) &&
          kept.count(tid) == 0) {
        left.push_back(absl::StrCat("'", name, "' (tid ", tid, ")"));
      }
    }
    return left;
  });
  if (leftover.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << leftover.size()
         << " thread(s) left running: " << absl::StrJoin(leftover, ", ");
}

std::map<pid_t, std::string> ChildProcesses() {
  std::map<pid_t, std::string> children;
  const pid_t self = getpid();
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return children;
  while (dirent* entry = readdir(dir)) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
    std::string stat;
    std::getline(in, stat);
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos ||
        close + 2 >= stat.size()) {
      continue;
    }
    std::vector<std::string> fields =
        absl::StrSplit(stat.substr(close + 2), ' ');
    pid_t parent;
    if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &parent) ||
        parent != self) {
      continue;
    }
    const char* state = fields[0] == "R"   ? "running"
                        : fields[0] == "S" ? "sleeping"
                        : fields[0] == "D" ? "in disk wait"
                        : fields[0] == "Z" ? "zombie"
                        : fields[0] == "T" ? "stopped"
                                           : "other";
    children[pid] = absl::StrCat("'", stat.substr(open + 1, close - open - 1),
                                 "' (", state, ")");
  }
  closedir(dir);
  return children;
}

LeftoverProcessCheck::LeftoverProcessCheck() : before_(ChildProcesses()) {}

::testing::AssertionResult LeftoverProcessCheck::NoNewProcesses(
    absl::Duration grace) const {
  std::vector<std::string> leftover = LeftAfter(grace, [this] {
    std::vector<std::string> left;
    const std::set<pid_t> kept = IdsForTheBinary();
    for (const auto& [pid, what] : ChildProcesses()) {
      if (before_.count(pid) == 0 && kept.count(pid) == 0) {
        left.push_back(absl::StrCat(pid, " ", what));
      }
    }
    return left;
  });
  if (leftover.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << leftover.size()
         << " child process(es) left: " << absl::StrJoin(leftover, ", ");
}

void LeftoverProcessListener::OnTestStart(const ::testing::TestInfo&) {
  check_ = std::make_unique<LeftoverProcessCheck>();
}

void LeftoverProcessListener::OnTestEnd(const ::testing::TestInfo& info) {
  if (check_ == nullptr) return;
  ::testing::AssertionResult result = check_->NoNewProcesses();
  check_.reset();
  if (!result) {
    ADD_FAILURE() << "leftover child processes after " << info.test_suite_name()
                  << "." << info.name() << ": " << result.message();
  }
}

void LeftoverThreadListener::OnTestStart(const ::testing::TestInfo&) {
  check_ = std::make_unique<LeftoverThreadCheck>();
}

void LeftoverThreadListener::OnTestEnd(const ::testing::TestInfo& info) {
  if (check_ == nullptr) return;
  ::testing::AssertionResult result = check_->NoNewThreads();
  check_.reset();
  // The test is still the current one here, so the failure is its own (the
  // pretty printer, listed earlier, has already printed its verdict line).
  if (!result) {
    ADD_FAILURE() << "leftover threads after " << info.test_suite_name() << "."
                  << info.name() << ": " << result.message();
  }
}

}  // namespace lifecycle_testing
