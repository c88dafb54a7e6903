// -----------------------------------------------------------------------------
// leftover_threads.h
// -----------------------------------------------------------------------------
//
// Finds threads a test left running (Go's goleak, for C++): it lists the
// process's threads from /proc/self/task before and after, and reports the new
// ones with their names. Workers of a `BaseService` are named after their
// service, so the report usually names the culprit:
//
//   TEST(ClientTest, StopsEverything) {
//     lifecycle_testing::LeftoverThreadCheck check;
//     { Client client; ... }
//     EXPECT_TRUE(check.NoNewThreads());
//     // Failure: "1 thread(s) left running: 'notifier' (tid 4242)"
//   }
//
// For every test of a binary, register the listener once in main():
//   ::testing::UnitTest::GetInstance()->listeners().Append(
//       new lifecycle_testing::LeftoverThreadListener());
//
// Threads that belong to the library for the whole process (the context
// deadline timer) are not counted; they are recognised by thread id
// (`lifecycle::DeadlineTimerThreadId()`), never by name. A thread that is still
// exiting when the check runs is given until `grace` to go away, so a joined
// worker does not count as left over.
//
// Child processes a test left running (a server a `ProcessService` would
// have stopped, a `fork()` nobody waited for) are found the same way, from
// the processes whose parent is this one, zombies included:
//
//   lifecycle_testing::LeftoverProcessCheck processes;
//   ...
//   EXPECT_TRUE(processes.NoNewProcesses());
//   // Failure: "1 child process(es) left: 4250 'redis-server' (running)"
//
// and `LeftoverProcessListener` checks every test of a binary.
//
// What runs for the whole test binary on purpose — a shared server of
// testing/servers/, started by the first test that uses it and stopped at the
// end of the program — is not left over: `RunsForTheBinary()` registers a
// function that says, at each check, which thread and process ids are its.
//
// Thread safety: `LiveThreads()`, `ChildProcesses()` and the const checks are
// thread-safe (they only read /proc); the listeners are GoogleTest's to call.

#ifndef LIFECYCLE_TESTING_LEFTOVER_THREADS_H_
#define LIFECYCLE_TESTING_LEFTOVER_THREADS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace lifecycle_testing {

// The live threads of this process: tid -> name.
std::map<pid_t, std::string> LiveThreads();

class LeftoverThreadCheck {
 public:
  LeftoverThreadCheck();

  // Succeeds if every thread alive now (after waiting up to `grace` for
  // exiting ones) was alive at construction.
  ::testing::AssertionResult NoNewThreads(
      absl::Duration grace = absl::Milliseconds(500)) const;

 private:
  std::map<pid_t, std::string> before_;
};

// Checks every test of the binary; a test that leaves threads fails with their
// names.
class LeftoverThreadListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override;
  void OnTestEnd(const ::testing::TestInfo&) override;

 private:
  std::unique_ptr<LeftoverThreadCheck> check_;
};

// Registers `ids`, called at every check of this file from then on: the
// thread ids and child process ids it returns are not counted as left over.
// For what lives until the end of the test program on purpose (a shared server
// of testing/servers/); `ids` must stay callable until the program ends.
void RunsForTheBinary(std::function<std::vector<pid_t>()> ids);

// The child processes of this process: pid -> "'name' (state)", the state
// "running", "sleeping", "zombie", ... from /proc.
std::map<pid_t, std::string> ChildProcesses();

class LeftoverProcessCheck {
 public:
  LeftoverProcessCheck();
  // Succeeds if every child process alive now (after waiting up to `grace`
  // for ones being reaped) was alive at construction.
  ::testing::AssertionResult NoNewProcesses(
      absl::Duration grace = absl::Milliseconds(500)) const;

 private:
  std::map<pid_t, std::string> before_;
};

// Checks every test of the binary; a test that leaves child processes fails
// with their pids and names.
class LeftoverProcessListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override;
  void OnTestEnd(const ::testing::TestInfo&) override;

 private:
  std::unique_ptr<LeftoverProcessCheck> check_;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_LEFTOVER_THREADS_H_
