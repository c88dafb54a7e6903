// One run of a `ProcessService`'s program: the spawn, the guard, the output
// and the notifications, readiness, the stop and the clean-up
// (ProcessService::Run). The options are checked in process_service.cc.

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <regex.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/outputs_internal.h"
#include "lifecycle/process_internal.h"
#include "lifecycle/process_service.h"

extern char** environ;

namespace lifecycle {

namespace {

using process_internal::CommandExitsZero;
using process_internal::DescribeExit;
using process_internal::ErrnoText;
using process_internal::Fd;
using process_internal::ForkGuard;
using process_internal::GuardCommand;
using process_internal::HttpAnswers2xx;
using process_internal::kMarkVariable;
using process_internal::ListeningTcpPortsOf;
using process_internal::OutputPattern;
using process_internal::RunCommand;
using process_internal::SignalMarked;
using process_internal::TcpConnects;
using process_internal::UnixConnects;

constexpr size_t kLinesInErrors = 10;
// The longest output line kept (the log file has every byte).
constexpr size_t kMaxLineKept = 64 * 1024;
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(5);
constexpr absl::Duration kMostBackoff = absl::Milliseconds(250);
constexpr absl::Duration kCleanupTimeout = absl::Seconds(30);

// A unique abstract socket name for a run's notifications (abstract: no file,
// no path length limit of the directory, no permissions to give a user).
std::string NotifySocketName() {
  static std::atomic<uint64_t> next{0};
  return absl::StrCat("lifecycle-notify/", getpid(), "/", next++);
}

struct RunFds {
  Fd output;  // read end of the program's stdout and stderr
  Fd notify;  // the notification socket, if any
  Fd stop;    // an eventfd written when the run's context is cancelled
  Fd exited;  // a pidfd of the program
  Fd guard;   // the write end the guard waits on
};

}  // namespace

absl::Status ProcessService::Run(const Context& ctx,
                                 absl::FunctionRef<void()> started) {
  const ProcessOptions& o = options_;
  std::string executable, log_file;
  std::vector<std::string> cleanup_argv;
  uid_t uid;
  gid_t gid;
  {
    absl::MutexLock lock(&process_mu_);
    executable = resolved_executable_;
    cleanup_argv = cleanup_argv_;
    log_file = log_path_;
    uid = uid_;
    gid = gid_;
  }
  const absl::Time began = absl::Now();
  // How errors and the snapshot name the log: under Bazel, where it stays
  // after the test (its outputs), not the sandbox path that goes with it.
  const std::string log_name = outputs_internal::DescribeTestOutput(log_file);
  auto error = [&](absl::StatusCode code, absl::string_view what) {
    std::vector<std::string> lines = LastOutputLines(kLinesInErrors);
    return absl::Status(
        code, absl::StrCat(
                  "program '", executable, "' ", what,
                  lines.empty()
                      ? "; it wrote nothing"
                      : absl::StrCat("; its last output lines (", log_name,
                                     "):\n  ", absl::StrJoin(lines, "\n  "))));
  };

  // The log, the pipes and the sockets, before the fork.
  Fd log(
      open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log.valid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open the log file '", log_file, "': ", ErrnoText(errno)));
  }
  std::vector<std::string> argv = {executable};
  argv.insert(argv.end(), o.args.begin(), o.args.end());
  {
    std::string header = absl::StrCat("=== lifecycle: ", Path(), " runs '",
                                      absl::StrJoin(argv, "' '"), "' at ",
                                      absl::FormatTime(absl::Now()), "\n");
    if (write(log.get(), header.data(), header.size()) < 0) {
      // The log is for people; the run goes on without it.
    }
  }
  RunFds fds;
  int out[2], failed_exec[2], guard[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(ErrnoText(errno));
  }
  fds.output.Reset(out[0]);
  Fd out_write(out[1]);
  bool notify = false;
  for (const Readiness& r : o.ready_when) {
    notify |= r.kind() == Readiness::Kind::kNotification;
  }
  // The notification socket: abstract ("@name") unless a path is asked for.
  std::string notify_socket;
  const std::string& notify_path = o.notify_socket_path;
  if (notify) {
    const bool abstract = notify_path.empty();
    const std::string name = abstract ? NotifySocketName() : notify_path;
    notify_socket = abstract ? absl::StrCat("@", name) : name;
    fds.notify.Reset(
        socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + (abstract ? 1 : 0), name.data(), name.size());
    socklen_t size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                            (abstract ? 1 : 0) + name.size());
    if (!abstract) unlink(name.c_str());  // a socket an earlier run left
    if (!fds.notify.valid() ||
        bind(fds.notify.get(), reinterpret_cast<sockaddr*>(&a), size) != 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot make the notification socket '", notify_socket,
                       "': ", ErrnoText(errno)));
    }
    // A program that runs as another user may write to it.
    if (!abstract) chmod(name.c_str(), 0666);
  }
  absl::Cleanup remove_notify_socket = [&] {
    if (notify && !notify_path.empty()) unlink(notify_path.c_str());
  };
  if (pipe2(failed_exec, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(ErrnoText(errno));
  }
  Fd exec_read(failed_exec[0]), exec_write(failed_exec[1]);

  // argv and envp as C strings, made before the fork.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry(*e);
    absl::string_view key = entry.substr(0, entry.find('='));
    bool replaced = key == "NOTIFY_SOCKET" || key == kMarkVariable;
    for (const auto& [k, v] : o.env) replaced |= key == k;
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [k, v] : o.env) env.push_back(absl::StrCat(k, "=", v));
  if (notify) env.push_back(absl::StrCat("NOTIFY_SOCKET=", notify_socket));
  // The run's mark, which every process the program starts inherits: first,
  // where SignalMarked() looks.
  static std::atomic<uint64_t> runs{0};
  const std::string mark =
      absl::StrCat(kMarkVariable, "=", getpid(), ".", runs++);
  env.insert(env.begin(), mark);
  std::vector<char*> c_argv, c_env;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  for (std::string& e : env) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  const char* dir =
      o.working_directory.empty() ? nullptr : o.working_directory.c_str();
  const bool switch_user = !o.user.empty();
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot fork: ", ErrnoText(errno)));
  }
  if (pid == 0) {
    // The child: async-signal-safe calls only, until execve.
    auto die = [&](int stage) {
      int report[2] = {stage, errno};
      if (write(failed_exec[1], report, sizeof(report)) < 0) {
      }
      _exit(127);
    };
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0) die(1);
    if (dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) die(1);
    if (switch_user) {
      if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        die(2);
      }
    }
    // After the change of user, which clears it. SIGTERM, so that the
    // program can clean up; the guard sends SIGKILL after a grace.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    // Not the one CPU of a VirtualTime that the starting thread may be on.
    clock_internal::UseProcessCpus();
    if (getppid() != parent) _exit(127);  // the parent died already
    if (dir != nullptr && chdir(dir) != 0) die(3);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    }
    execve(c_argv[0], c_argv.data(), c_env.data());
    die(4);
  }
  setpgid(pid, pid);  // also here: whichever of the two runs first
  out_write.Reset();
  exec_write.Reset();
  {
    int report[2] = {0, 0};
    ssize_t got;
    do {
      got = read(exec_read.get(), report, sizeof(report));
    } while (got < 0 && errno == EINTR);
    if (got > 0) {
      int status;
      waitpid(pid, &status, 0);
      const char* stage = report[0] == 1   ? "redirecting its output"
                          : report[0] == 2 ? "changing to its user"
                          : report[0] == 3 ? "changing to its directory"
                                           : "executing it";
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run program '", executable,
                       "': ", ErrnoText(report[1]), " (", stage, ")"));
    }
  }
  pid_.store(pid);
  SetDetail("pid", absl::StrCat(pid));
  SetDetail("log", log_name);
  SetDetail("exit", "");
  SetDetail("status", "");

  // The guard, which kills the program's group if this process dies.
  pid_t guard_pid = -1;
  const GuardCommand guard_cleanup(cleanup_argv);
  if (pipe2(guard, O_CLOEXEC) == 0) {
    fds.guard.Reset(guard[1]);
    guard_pid = ForkGuard(pid, guard[0], mark, guard_cleanup);
    close(guard[0]);
  }
  // Beside "pid": what a leftover check that passes over a server kept for the
  // whole test binary needs (testing/leftover_threads.h).
  if (guard_pid > 0) SetDetail("guard", absl::StrCat(guard_pid));
  // Killed before its pipe is closed: EOF would set it off, ending a group
  // that is gone (its id free for reuse) and running the cleanup command a
  // second time.
  absl::Cleanup reap_guard = [guard_pid, &fds] {
    if (guard_pid > 0) {
      int status;
      kill(guard_pid, SIGKILL);
      waitpid(guard_pid, &status, 0);
    }
    fds.guard.Reset();
  };

  fds.exited.Reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  fds.stop.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const int stop_fd = fds.stop.get();
  // Once the program is ready, this thread only waits on it, in real time:
  // under virtual time, the time moves meanwhile. A stop wakes it first, so
  // the time stands still again until the program has ended.
  clock_internal::OutsideWait outside;
  uint64_t on_stop = ctx.Done().OnClose([stop_fd, &outside] {
    outside.Wake();
    uint64_t one = 1;
    if (write(stop_fd, &one, sizeof(one)) < 0) {
    }
  });
  absl::Cleanup forget_stop = [&] { ctx.Done().CancelOnClose(on_stop); };

  // Readiness, rule by rule.
  struct Pending {
    const Readiness* rule;
    std::shared_ptr<OutputPattern> pattern;
    absl::Time next_probe;
    absl::Duration backoff = kFirstBackoff;
  };
  std::vector<Pending> pending;
  for (const Readiness& r : o.ready_when) {
    Pending p{&r, nullptr, began};
    if (r.kind() == Readiness::Kind::kOutputLine) {
      p.pattern = std::make_shared<OutputPattern>(r.path_);
    }
    pending.push_back(std::move(p));
  }
  bool ready = false;
  auto check_ready = [&] {
    if (!ready && pending.empty()) {
      ready = true;
      started();
    }
  };
  check_ready();

  // An output line not ended yet: its first kMaxLineKept bytes, and how many
  // more there were (the log file has them all).
  std::string partial;
  size_t partial_dropped = 0;
  auto end_line = [&] {
    std::string line = std::exchange(partial, "");
    for (size_t i = 0; i < pending.size();) {
      if (pending[i].pattern && pending[i].pattern->Matches(line)) {
        pending.erase(pending.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
    if (partial_dropped > 0) {
      absl::StrAppend(&line, " [", std::exchange(partial_dropped, 0),
                      " more bytes in the log]");
    }
    AddOutputLine(std::move(line));
  };
  auto add_text = [&](absl::string_view text) {
    size_t room = kMaxLineKept - std::min(partial.size(), kMaxLineKept);
    partial.append(text.data(), std::min(text.size(), room));
    partial_dropped += text.size() - std::min(text.size(), room);
  };
  auto take_output = [&](bool all) {
    char buffer[4096];
    while (true) {
      ssize_t got = read(fds.output.get(), buffer, sizeof(buffer));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        if (got == 0 && (!partial.empty() || partial_dropped > 0)) end_line();
        return got == 0;  // EOF
      }
      if (write(log.get(), buffer, static_cast<size_t>(got)) < 0) {
      }
      // Only what was read now is searched for the end of a line.
      absl::string_view rest(buffer, static_cast<size_t>(got));
      for (size_t newline; (newline = rest.find('\n')) != rest.npos;) {
        add_text(rest.substr(0, newline));
        end_line();
        rest.remove_prefix(newline + 1);
      }
      add_text(rest);
      if (!all) return false;
    }
  };
  absl::Status notified_error;
  auto take_notifications = [&] {
    char buffer[4096];
    ssize_t got;
    while ((got = recv(fds.notify.get(), buffer, sizeof(buffer) - 1, 0)) > 0) {
      for (absl::string_view line :
           absl::StrSplit(absl::string_view(buffer, static_cast<size_t>(got)),
                          '\n', absl::SkipEmpty())) {
        if (line == "READY=1") {
          pending.erase(std::remove_if(pending.begin(), pending.end(),
                                       [](const Pending& p) {
                                         return p.rule->kind() ==
                                                Readiness::Kind::kNotification;
                                       }),
                        pending.end());
        } else if (absl::ConsumePrefix(&line, "STATUS=")) {
          SetDetail("status", std::string(line));
        } else if (absl::ConsumePrefix(&line, "ERRNO=")) {
          int number = 0;
          if (!absl::SimpleAtoi(line, &number)) number = 0;
          std::string errno_text =
              absl::StrCat(number, " (", ErrnoText(number), ")");
          SetDetail("errno", errno_text);
          if (!ready) {
            // Before ready: the start fails.
            notified_error = error(absl::StatusCode::kUnavailable,
                                   absl::StrCat("notified ERRNO=", errno_text));
          } else {
            // After ready, as systemd has it: recorded, the program left be.
            ReportError(absl::UnavailableError(absl::StrCat(
                "program '", executable, "' notified ERRNO=", errno_text,
                " while running")));
          }
        }
      }
    }
  };

  // The loop: until the program has exited.
  bool stopping = false;  // SIGTERM sent
  bool killed = false;    // SIGKILL sent after the grace
  absl::Time kill_at = absl::InfiniteFuture();
  absl::Status failure;  // why this run fails, if it does
  int status = 0;
  bool output_open = true;
  auto begin_stop = [&](absl::Status why) {
    if (failure.ok()) failure = std::move(why);
    if (stopping) return;
    stopping = true;
    kill(-pid, o.stop_signal);
    SignalMarked(mark.data(), mark.size(), o.stop_signal);  // left its group
    kill_at = absl::Now() + o.stop_grace;
  };
  while (true) {
    // Exited?
    pid_t waited = waitpid(pid, &status, WNOHANG);
    if (waited == pid) break;
    absl::Time now = absl::Now();
    if (ctx.IsCancelled() && !stopping) begin_stop(absl::OkStatus());
    if (!notified_error.ok() && !stopping) begin_stop(notified_error);
    if (!ready && !stopping && now - began >= o.start_timeout) {
      std::vector<std::string> unmet;
      for (const Pending& p : pending) unmet.push_back(p.rule->description());
      begin_stop(error(
          absl::StatusCode::kDeadlineExceeded,
          absl::StrCat("is not ready after ",
                       absl::FormatDuration(o.start_timeout),
                       "; still waiting for: ", absl::StrJoin(unmet, ", "))));
    }
    if (stopping && !killed && now >= kill_at) {
      killed = true;
      kill(-pid, SIGKILL);
    }
    // Probes that are due.
    absl::Time wake = stopping ? kill_at : began + o.start_timeout;
    if (!stopping && !ready) {
      for (size_t i = 0; i < pending.size();) {
        Pending& p = pending[i];
        Readiness::Kind kind = p.rule->kind();
        if (kind == Readiness::Kind::kNotification ||
            kind == Readiness::Kind::kOutputLine) {
          ++i;
          continue;
        }
        if (now < p.next_probe) {
          wake = std::min(wake, p.next_probe);
          ++i;
          continue;
        }
        absl::Duration limit =
            std::max(began + o.start_timeout - now, absl::Milliseconds(1));
        bool ok = false;
        switch (kind) {
          case Readiness::Kind::kTcpPort:
            ok = TcpConnects(p.rule->host_, p.rule->port_);
            break;
          case Readiness::Kind::kUnixSocket:
            ok = UnixConnects(p.rule->path_);
            break;
          case Readiness::Kind::kHttpGet:
            ok = HttpAnswers2xx(p.rule->host_, p.rule->port_, p.rule->path_,
                                std::min(limit, absl::Seconds(5)), stop_fd);
            break;
          case Readiness::Kind::kCommand:
            ok = CommandExitsZero(p.rule->argv_,
                                  std::min(limit, absl::Seconds(10)), stop_fd);
            break;
          case Readiness::Kind::kProbe:
            ok = p.rule->probe_();
            break;
          case Readiness::Kind::kListensOnTcp:
            if (std::vector<int> ports = ListeningTcpPortsOf(pid);
                !ports.empty()) {
              SetDetail("tcp", absl::StrJoin(ports, ","));
              ok = true;
            }
            break;
          default:
            break;
        }
        if (ok) {
          pending.erase(pending.begin() + static_cast<long>(i));
          continue;
        }
        p.next_probe = absl::Now() + p.backoff;
        p.backoff = std::min(p.backoff * 2, kMostBackoff);
        wake = std::min(wake, p.next_probe);
        ++i;
      }
      check_ready();
    }
    pollfd polled[4];
    nfds_t count = 0;
    polled[count++] = {fds.stop.get(), POLLIN, 0};
    if (output_open) polled[count++] = {fds.output.get(), POLLIN, 0};
    if (fds.notify.valid()) polled[count++] = {fds.notify.get(), POLLIN, 0};
    if (fds.exited.valid()) polled[count++] = {fds.exited.get(), POLLIN, 0};
    absl::Duration wait = std::max(wake - absl::Now(), absl::ZeroDuration());
    if (!fds.exited.valid()) wait = std::min(wait, absl::Milliseconds(10));
    int ms = static_cast<int>(absl::ToInt64Milliseconds(
        absl::Ceil(std::min(wait, absl::Seconds(1)), absl::Milliseconds(1))));
    const bool waits_outside = ready && !stopping;
    if (waits_outside) outside.Enter();
    int n = poll(polled, count, ms);
    if (waits_outside) outside.Leave();
    if (n < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < count && n > 0; ++i) {
      if (polled[i].revents == 0) continue;
      if (polled[i].fd == fds.stop.get()) {
        uint64_t value;
        if (read(fds.stop.get(), &value, sizeof(value)) < 0) {
        }
      } else if (polled[i].fd == fds.output.get()) {
        if (take_output(/*all=*/false)) output_open = false;
      } else if (polled[i].fd == fds.notify.get()) {
        take_notifications();
      }
    }
    check_ready();
  }

  // The program has exited: the rest of its group goes too, and its output
  // is read to the end (bounded: a descendant may hold the pipe).
  pid_.store(0);
  kill(-pid, SIGKILL);
  // And what it started that left its group: a daemon's forked child.
  const int escaped = SignalMarked(mark.data(), mark.size(), SIGKILL);
  fcntl(fds.output.get(), F_SETFL, O_NONBLOCK);
  absl::Time drain_until = absl::Now() + absl::Milliseconds(200);
  while (output_open && absl::Now() < drain_until) {
    pollfd p{fds.output.get(), POLLIN, 0};
    if (poll(&p, 1, 20) > 0 && take_output(/*all=*/true)) output_open = false;
  }
  if (!partial.empty() || partial_dropped > 0) end_line();
  std::string how = DescribeExit(status);
  SetDetail("exit", how);
  // What the program leaves that is not a process: its cleanup command.
  if (!cleanup_argv.empty()) {
    process_internal::CommandResult cleaned =
        RunCommand(cleanup_argv, kCleanupTimeout);
    if (!cleaned.succeeded()) {
      ReportError(absl::InternalError(absl::StrCat(
          "the cleanup command '", absl::StrJoin(cleanup_argv, "' '"), "' ",
          cleaned.timed_out ? "did not end within 30s"
                            : DescribeExit(cleaned.status),
          ": ", absl::StripAsciiWhitespace(cleaned.output))));
    }
  }
  if (killed) {
    return error(
        absl::StatusCode::kDeadlineExceeded,
        absl::StrCat("did not exit within its stop grace of ",
                     absl::FormatDuration(o.stop_grace), " after ",
                     sigabbrev_np(o.stop_signal) != nullptr
                         ? absl::StrCat("SIG", sigabbrev_np(o.stop_signal))
                         : absl::StrCat("signal ", o.stop_signal),
                     "; killed with SIGKILL"));
  }
  if (!failure.ok()) return failure;
  if (stopping) return ctx.Cause();  // a stop asked for
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ready) {
    return error(
        absl::StatusCode::kUnavailable,
        absl::StrCat(how, " before it was ready",
                     clean ? " (a program that daemonises itself must run in "
                             "the foreground here)"
                           : "",
                     escaped > 0 ? absl::StrCat("; ", escaped,
                                                " process(es) it had started "
                                                "outside its process group "
                                                "were killed")
                                 : ""));
  }
  if (!clean) {
    return error(absl::StatusCode::kUnavailable,
                 absl::StrCat(how, " while running"));
  }
  return absl::OkStatus();  // a clean exit nobody asked for
}

}  // namespace lifecycle
