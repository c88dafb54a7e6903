// -----------------------------------------------------------------------------
// process_service.h
// -----------------------------------------------------------------------------
//
// `ProcessService` runs another program — a database, a cache, a sidecar — as
// a service: `Start()` launches it, `Started()` closes when the program is
// ready by the rule you chose, `Stop()` ends it and everything it forked. It
// is a `BaseService`, so it has a path, a snapshot, a place in a composite's
// start-up graph and its supervision, like any other service:
//
//   lifecycle::ProcessOptions redis;
//   redis.executable = "redis-server";
//   redis.args = {"--port", "0", "--unixsocket", socket_path,
//                 "--supervised", "systemd", "--save", ""};
//   redis.ready_when = {lifecycle::Readiness::Notification()};
//   lifecycle::ProcessService server("redis", redis);
//   absl::Status s = server.Start(ctx);   // launched; fails if it cannot run
//   server.Started().Wait();              // ready: it said READY=1
//
// What it does:
//   * `Start()` checks the options on the caller's thread (`OnStart()`): an
//     executable that is missing or not executable, an unknown user, a
//     readiness pattern that does not compile, a bad port or timeout each
//     fail the start with an error naming the service and the program.
//   * The program runs in a process group of its own, with stdin from
//     /dev/null and stdout and stderr into a pipe that the service copies to a
//     log file (`log_path()`, and "log" in the snapshot's details) and keeps
//     the last lines of (`LastOutputLines()`). Under `bazel test`, errors and
//     the "log" detail name the log where it stays after the test, as the
//     harness names its files ("redis.log in this test's outputs
//     (bazel-testlogs/.../test.outputs, zipped as outputs.zip)"), not the
//     sandbox path that goes with the test.
//   * Readiness (`ready_when`): every rule listed must hold; with none, the
//     program is started once it runs (the `exec` succeeded). The program's
//     own notification is pushed, never polled; the others are probed with a
//     backoff from 5ms to 250ms. A program that exits before it is ready
//     fails the start with its exit status and its last output lines; one
//     that is not ready within `start_timeout` is stopped and fails the start
//     the same way, naming the rules still unmet.
//   * `Stop()` sends SIGTERM (or `stop_signal`) to the program's process
//     group, waits up to `stop_grace`, then sends SIGKILL. Whatever is left of the group when the
//     program has exited is killed too, so a server's forked workers never
//     outlive it. A program that had to be killed ends the run with a
//     `DeadlineExceededError` saying so.
//   * A program that exits on its own is a run that ended: with an error
//     (exit status other than 0, or a signal) or cleanly (status 0), and a
//     parent's supervision restarts it like any other service.
//   * Never orphaned: the program dies with the process that started it, even
//     one killed with SIGKILL. The program gets `PR_SET_PDEATHSIG` (it fires
//     when the service's worker thread ends, which outlives the program), and
//     a small guard process per program, in a group of its own, ends the
//     program's whole process group when the starting process is gone: SIGTERM
//     first (and as the death signal), so that a server can clean up after
//     itself (PostgreSQL's shared memory in /dev/shm), then SIGKILL a second
//     later. Programs run on every CPU of the process, also when started from a
//     thread that virtual time pinned to one.
//     A process that leaves the program's group (a daemon's forked child,
//     after setsid()) is ended too, by the service and by the guard: every
//     process the program starts inherits a mark in its environment
//     (LIFECYCLE_PROGRAM_RUN, unique to the run), found in /proc. A program
//     that daemonises itself still cannot be waited on: run servers in the
//     foreground (the "exited with status 0 before it was ready" error says
//     so, and how many processes it left were killed).
//   * The snapshot's details (health.h) show the program's pid (and its
//     guard's, "guard"), its log file,
//     the last "STATUS=" it notified and how it exited.
//
// Readiness is in real time, also under virtual time: programs do not run in
// it. Under virtual time the start holds the time still (the program's start
// counts as work); once the program is ready, the service's thread waits on it
// outside the time, so the time moves while the program runs, and a stop holds
// it still again until the program has ended. A stop is bounded by
// `stop_grace` whatever the start is doing: a readiness probe in progress (an
// HTTP GET, a command) ends at once. Output lines are kept up to 64 KiB each
// (the rest counted in the kept line; the log has every byte).
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_PROCESS_SERVICE_H_
#define LIFECYCLE_PROCESS_SERVICE_H_

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"

namespace lifecycle {

// One rule for when a program counts as ready. A `ProcessService` waits until
// every rule of its `ready_when` holds.
class Readiness {
 public:
  enum class Kind {
    kNotification,  // the program's own "READY=1"
    kTcpPort,       // a TCP port accepts connections
    kUnixSocket,    // a Unix stream socket accepts connections
    kOutputLine,    // a line of its output matches a pattern
    kHttpGet,       // an HTTP GET answers 2xx
    kCommand,       // a command exits with status 0
    kProbe,         // a function of yours returns true
    kListensOnTcp,  // the program listens on a TCP port, whichever
  };

  // The program says so itself, with systemd's notification protocol
  // (`sd_notify(3)`, as `Type=notify` units use it): the service hands it a
  // datagram socket in `NOTIFY_SOCKET`; "READY=1" makes it ready, each
  // "STATUS=..." shows in the snapshot's details, and "ERRNO=N" fails the
  // start with that error. An "ERRNO=N" after "READY=1" does not stop the
  // program (systemd does not stop a running service for it either): it is
  // the "errno" detail and the service's reported error (`ReportError`,
  // health.h), and the program runs on. Pushed: no polling. Debian's `redis-server
  // --supervised systemd` and PostgreSQL's `postgres` speak it.
  static Readiness Notification();
  // A connection to `host`:`port` succeeds. The port is the program's own:
  // one that already accepts connections before the program runs fails the
  // start, naming the process that holds it (else a second server told the
  // same port would look ready because the first answers).
  static Readiness TcpPort(int port, std::string host = "127.0.0.1");
  // A connection to the Unix stream socket at `path` succeeds.
  static Readiness UnixSocket(std::string path);
  // A line the program writes (stdout or stderr) matches `pattern`, a POSIX
  // extended regular expression (regcomp(3), as `grep -E` reads it) searched
  // anywhere in the line.
  static Readiness OutputLine(std::string pattern);
  // `GET path` on `host`:`port` answers with a status from 200 to 299.
  static Readiness HttpGet(int port, std::string path = "/",
                           std::string host = "127.0.0.1");
  // `argv` (argv[0] searched in PATH) exits with status 0, for example
  // {"pg_isready", "-h", dir} or {"redis-cli", "-s", socket, "ping"}.
  static Readiness CommandSucceeds(std::vector<std::string> argv);
  // `probe()` returns true; `description` names it in errors. It runs on the
  // service's worker thread, and should return quickly.
  static Readiness Probe(std::string description, std::function<bool()> probe);
  // The program itself listens on a TCP port, whichever it is: for a server
  // told to bind port 0, so that no port is chosen before it runs and none can
  // be taken by someone else in between. `ProcessService::ListeningTcpPorts()`
  // then says which port it got.
  static Readiness ListensOnTcp();

  Kind kind() const { return kind_; }
  // What the rule waits for, as errors name it: "READY=1 notification",
  // "TCP port 127.0.0.1:6379", "an output line matching 'Ready'", ...
  const std::string& description() const { return description_; }

 private:
  friend class ProcessService;
  friend class ContainerService;
  Readiness(Kind kind, std::string description)
      : kind_(kind), description_(std::move(description)) {}

  Kind kind_;
  std::string description_;
  std::string host_;
  std::string path_;  // Unix socket, HTTP path, or the output pattern
  int port_ = 0;
  std::vector<std::string> argv_;
  std::function<bool()> probe_;
};

// What a `ProcessService` runs, and how.
struct ProcessOptions {
  // The program: a path (relative to `working_directory` if not absolute), or
  // a name without '/', searched in PATH.
  std::string executable;
  // Its arguments, after argv[0] (which is `executable`).
  std::vector<std::string> args;
  // Set in its environment, over the environment of this process.
  std::vector<std::pair<std::string, std::string>> env;
  // Where it runs; empty: this process's working directory.
  std::string working_directory;
  // Run it as this user (its uid, its primary group) rather than as this
  // process; needs root. For servers that refuse root, such as PostgreSQL.
  std::string user;
  // The log of its stdout and stderr, appended to, each run preceded by a
  // line saying so. Empty: `<dir>/<path>.log`, the service's path with '/'
  // replaced by '.', in the first of $TEST_UNDECLARED_OUTPUTS_DIR (Bazel
  // keeps it with the test's outputs), $TEST_TMPDIR, $TMPDIR and /tmp.
  std::string log_path;
  // When it is ready: every rule must hold (see `Readiness`). Empty: once it
  // runs.
  std::vector<Readiness> ready_when;
  // How long it may take to become ready; positive.
  absl::Duration start_timeout = absl::Seconds(30);
  // How long `Stop()` waits after `stop_signal` before SIGKILL; zero or more.
  absl::Duration stop_grace = absl::Seconds(10);
  // What `Stop()` sends first (systemd's KillSignal=): SIGTERM, or the signal
  // the program takes for a quick, clean exit — SIGINT for PostgreSQL, whose
  // SIGTERM waits for every client to disconnect. Not SIGKILL or SIGSTOP.
  int stop_signal = SIGTERM;
  // Where `NOTIFY_SOCKET` points (see `Readiness::Notification()`). Empty: an
  // abstract socket, which has no file. A path: a socket made there for each
  // run and removed after it, for a program that hands it on where abstract
  // sockets do not reach — podman's `--sdnotify=container` passes it into the
  // container's network namespace. At most 107 bytes.
  std::string notify_socket_path;
  // A command run after each run of the program, however the run ended, and
  // by the guard when this process dies: for what the program leaves that is
  // not one of its processes — a container the engine keeps running
  // (`ContainerService` removes its container with it). argv[0] is searched
  // in PATH; it is given 30s. Its failure is the service's reported error.
  std::vector<std::string> cleanup_command;
};

class ProcessService : public BaseService {
 public:
  ProcessService(std::string name, ProcessOptions options);
  ~ProcessService() override;

  // The pid of the running program, or 0 when none runs.
  pid_t pid() const { return pid_.load(); }
  // The log file (see `ProcessOptions::log_path`); empty before the first
  // start.
  std::string log_path() const;
  // The last `count` lines the program wrote (at most 100 are kept), oldest
  // first; across runs.
  std::vector<std::string> LastOutputLines(size_t count = 20) const;
  // The TCP ports the running program listens on (IPv4 and IPv6), ascending,
  // read from /proc; empty when none runs. For a server that bound port 0
  // (see `Readiness::ListensOnTcp()`).
  std::vector<int> ListeningTcpPorts() const;

 protected:
  // For a service that runs its program through another, as `ContainerService`
  // does: its own checks before `ProcessService::OnStart()`.
  absl::Status OnStart(const Context& ctx) override;
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;

 private:
  // A line the program wrote: kept, and matched against the output rules.
  void AddOutputLine(std::string line);

  const ProcessOptions options_;
  std::atomic<pid_t> pid_{0};

  mutable absl::Mutex process_mu_;
  // Set by OnStart(), read by the run it starts.
  std::string resolved_executable_ ABSL_GUARDED_BY(process_mu_);
  std::vector<std::string> cleanup_argv_ ABSL_GUARDED_BY(process_mu_);
  uid_t uid_ ABSL_GUARDED_BY(process_mu_) = 0;
  gid_t gid_ ABSL_GUARDED_BY(process_mu_) = 0;
  std::string log_path_ ABSL_GUARDED_BY(process_mu_);
  std::deque<std::string> last_lines_ ABSL_GUARDED_BY(process_mu_);
};

}  // namespace lifecycle

#endif  // LIFECYCLE_PROCESS_SERVICE_H_
