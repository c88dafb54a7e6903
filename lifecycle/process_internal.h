// -----------------------------------------------------------------------------
// process_internal.h
// -----------------------------------------------------------------------------
//
// The parts `ProcessService` and `ContainerService` share, not for users:
//   * output lines matched against a pattern (`OutputPattern`);
//   * running commands and probing programs (process_probes.cc): finding an
//     executable, describing how a process ended, TCP, Unix-socket and HTTP
//     probes, a command's exit status and output;
//   * the process tree (process_tree.cc): which TCP ports a process listens
//     on and who holds a port, the run's mark in the environment of every
//     process it starts, and the guard that ends a program (and runs its
//     clean-up command) when the process that started it dies.

#ifndef LIFECYCLE_PROCESS_INTERNAL_H_
#define LIFECYCLE_PROCESS_INTERNAL_H_

#include <regex.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lifecycle {
namespace process_internal {

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A POSIX extended regular expression, searched anywhere in a line.
class OutputPattern {
 public:
  explicit OutputPattern(const std::string& pattern)
      : status_(
            regcomp(&compiled_, pattern.c_str(), REG_EXTENDED | REG_NOSUB)) {}
  ~OutputPattern() {
    if (status_ == 0) regfree(&compiled_);
  }
  OutputPattern(const OutputPattern&) = delete;
  OutputPattern& operator=(const OutputPattern&) = delete;

  // Why the pattern does not compile, or empty.
  std::string error() const {
    if (status_ == 0) return "";
    char text[256];
    regerror(status_, &compiled_, text, sizeof(text));
    return text;
  }
  bool Matches(const std::string& line) const {
    return status_ == 0 &&
           regexec(&compiled_, line.c_str(), 0, nullptr, 0) == 0;
  }

 private:
  regex_t compiled_;
  const int status_;
};

// strerror(3) of `error`.
std::string ErrnoText(int error);

// --- Running commands and probing programs (process_probes.cc) ---------------

// `executable` resolved as `execve` will see it: a path as is (relative to
// `dir` when it is not absolute), a bare name searched in `path_variable`
// (nullptr: "/usr/bin:/bin").
absl::StatusOr<std::string> Resolve(const std::string& executable,
                                    const std::string& dir,
                                    const char* path_variable);

// "exited with status 3", "was killed by signal 9 (SIGKILL)".
std::string DescribeExit(int status);

// Whether a TCP connection to `host`:`port` (IPv4) succeeds; the connected
// socket is kept in `keep` when given.
bool TcpConnects(const std::string& host, int port, Fd* keep = nullptr);
// Whether a connection to the Unix stream socket at `path` succeeds.
bool UnixConnects(const std::string& path);
// Waits at most `timeout` for `fd` to be readable, or for `stop` to be
// written (a stop ends a probe at once; -1: none); whether `fd` is.
bool ReadableUnlessStopped(int fd, int stop, absl::Duration timeout);
// Whether `GET path` answers 2xx within `timeout`; false at once on a stop.
bool HttpAnswers2xx(const std::string& host, int port, const std::string& path,
                    absl::Duration timeout, int stop);
// Runs `argv` with its output discarded; whether it exits 0 within `timeout`
// (it is killed otherwise, and at once on a stop).
bool CommandExitsZero(const std::vector<std::string>& argv,
                      absl::Duration timeout, int stop);

// How a command run by `RunCommand()` ended.
struct CommandResult {
  bool timed_out = false;  // killed after its timeout
  int status = 0;          // its wait status (when it did not time out)
  std::string output;      // stdout and stderr, at most 1 MiB
  bool succeeded() const;  // exited with status 0
};
// Runs `argv` (argv[0] searched in PATH), stdin from /dev/null, and collects
// its output; kills it after `timeout`. An `argv` that cannot be run ends
// with status 127 and says why in `output`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout);

// --- The process tree (process_tree.cc) --------------------------------------

// The TCP ports process `pid` listens on, ascending.
std::vector<int> ListeningTcpPortsOf(pid_t pid);
// Who listens on TCP port `port` here: "pid 4242 (redis-server)", or
// "a process this one cannot see".
std::string TcpPortHolder(int port);

// Whether process `pid` has ended: gone, or a zombie nobody reaped yet.
// Async-signal-safe.
bool Ended(pid_t pid);

// Every process a run starts carries this in its environment, with a value
// unique to the run: a process that left the program's group (a daemon that
// forked and called setsid()) is still found by it, in /proc/PID/environ.
inline constexpr char kMarkVariable[] = "LIFECYCLE_PROGRAM_RUN";

// Sends `sig` to every process whose environment starts with `mark` (the
// whole "NAME=VALUE" entry), but this one; returns how many.
// Async-signal-safe.
int SignalMarked(const char* mark, size_t mark_size, int sig);

// A command for a guard to run once the program is gone: made before the
// fork, so that the guard runs it without allocating.
class GuardCommand {
 public:
  GuardCommand() = default;
  // `argv[0]` must be resolved already (a path); empty: no command.
  explicit GuardCommand(std::vector<std::string> argv);
  GuardCommand(const GuardCommand&) = delete;
  GuardCommand& operator=(const GuardCommand&) = delete;

  bool empty() const { return argv_.empty(); }
  // Forks and execs the command (stdio on /dev/null) and waits for it at
  // most `timeout_ms`, killing it after. Async-signal-safe.
  void RunAndWait(int timeout_ms) const;

 private:
  std::vector<std::string> argv_, env_;
  std::vector<char*> c_argv_, c_env_;
};

// The process name of every guard (`/proc/PID/comm`).
inline constexpr char kGuardName[] = "lifecycle-guard";

// Forks the guard of a program: it waits for EOF on `read_end` (the write end
// is held by the parent only, so EOF means the parent died), then ends the
// program's process group `pgid` and the processes that carry `mark` —
// SIGTERM first, SIGKILL a second later — and then runs `cleanup` (bounded).
// `pgid` 0: no program, only the cleanup (a container network's removal).
// Returns the guard's pid, or -1. Async-signal-safe after the fork.
pid_t ForkGuard(pid_t pgid, int read_end, const std::string& mark,
                const GuardCommand& cleanup);

}  // namespace process_internal
}  // namespace lifecycle

#endif  // LIFECYCLE_PROCESS_INTERNAL_H_
