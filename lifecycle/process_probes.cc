#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/process_internal.h"

namespace lifecycle {
namespace process_internal {

std::string ErrnoText(int error) { return std::strerror(error); }

// `executable` resolved as `execve` will see it: a path as is (relative to
// `dir` when it is not absolute), a bare name searched in `path_variable`.
absl::StatusOr<std::string> Resolve(const std::string& executable,
                                    const std::string& dir,
                                    const char* path_variable) {
  auto check = [](const std::string& file) -> absl::Status {
    struct stat st;
    if (stat(file.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat("'", file, "' does not exist"));
    }
    if (!S_ISREG(st.st_mode) || access(file.c_str(), X_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("'", file, "' is not an executable file"));
    }
    return absl::OkStatus();
  };
  if (absl::StrContains(executable, '/')) {
    std::string file = executable;
    if (file[0] != '/' && !dir.empty()) file = absl::StrCat(dir, "/", file);
    if (absl::Status s = check(file); !s.ok()) return s;
    return file;
  }
  std::string path = path_variable != nullptr ? path_variable : "/usr/bin:/bin";
  for (absl::string_view d : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string file = absl::StrCat(d, "/", executable);
    if (check(file).ok()) return file;
  }
  return absl::NotFoundError(
      absl::StrCat("'", executable, "' is not found in PATH (", path, ")"));
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return absl::StrCat(
        "was killed by signal ", WTERMSIG(status),
        name != nullptr ? absl::StrCat(" (SIG", name, ")") : std::string());
  }
  return absl::StrCat("ended with wait status ", status);
}

bool TcpConnects(const std::string& host, int port, Fd* keep) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return false;
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return false;
  }
  if (keep != nullptr) *keep = std::move(fd);
  return true;
}

bool UnixConnects(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) return false;
  std::memcpy(a.sun_path, path.data(), path.size());
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return fd.valid() &&
         connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

// Waits at most `timeout` for `fd` to be readable, or for `stop` to be
// written (a stop ends a probe at once); whether `fd` is.
bool ReadableUnlessStopped(int fd, int stop, absl::Duration timeout) {
  pollfd p[2] = {{fd, POLLIN, 0}, {stop, POLLIN, 0}};
  int ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(
      std::max(timeout, absl::ZeroDuration()), absl::Milliseconds(1))));
  return poll(p, 2, ms) > 0 && p[1].revents == 0 && p[0].revents != 0;
}

// Whether `GET path` answers 2xx within `timeout`; false at once on a stop.
bool HttpAnswers2xx(const std::string& host, int port, const std::string& path,
                    absl::Duration timeout, int stop) {
  Fd fd;
  if (!TcpConnects(host, port, &fd)) return false;
  std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host,
                                     "\r\nConnection: close\r\n\r\n");
  if (send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return false;
  }
  std::string answer;
  absl::Time deadline = absl::Now() + timeout;
  while (answer.find("\r\n") == std::string::npos && answer.size() < 512) {
    if (!ReadableUnlessStopped(fd.get(), stop, deadline - absl::Now())) {
      return false;
    }
    char buffer[256];
    ssize_t got = recv(fd.get(), buffer, sizeof(buffer), 0);
    if (got <= 0) break;
    answer.append(buffer, static_cast<size_t>(got));
  }
  // "HTTP/1.1 204 No Content"
  const std::string status_line = answer.substr(0, answer.find("\r\n"));
  std::vector<absl::string_view> words = absl::StrSplit(status_line, ' ');
  int code = 0;
  return words.size() >= 2 && absl::StartsWith(words[0], "HTTP/") &&
         absl::SimpleAtoi(words[1], &code) && code >= 200 && code < 300;
}

// Runs `argv` with its output discarded; whether it exits 0 within `timeout`
// (it is killed otherwise, and at once on a stop).
bool CommandExitsZero(const std::vector<std::string>& argv,
                      absl::Duration timeout, int stop) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    lifecycle::clock_internal::UseProcessCpus();
    execvp(args[0], args.data());
    _exit(127);
  }
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    ReadableUnlessStopped(fd, stop, timeout);
    close(fd);
  }
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool CommandResult::succeeded() const {
  return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

CommandResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout) {
  constexpr size_t kMostOutput = 1 << 20;
  CommandResult result;
  if (argv.empty()) {
    result.status = 127 << 8;
    result.output = "no command";
    return result;
  }
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    result.status = 127 << 8;
    result.output = absl::StrCat("cannot make a pipe: ", ErrnoText(errno));
    return result;
  }
  Fd read_end(out[0]), write_end(out[1]);
  pid_t pid = fork();
  if (pid < 0) {
    result.status = 127 << 8;
    result.output = absl::StrCat("cannot fork: ", ErrnoText(errno));
    return result;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    lifecycle::clock_internal::UseProcessCpus();
    execvp(args[0], args.data());
    const char* why = std::strerror(errno);
    if (write(2, "cannot run it: ", 15) < 0 ||
        write(2, why, std::strlen(why)) < 0) {
    }
    _exit(127);
  }
  write_end.Reset();
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    pollfd p{read_end.get(), POLLIN, 0};
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      result.timed_out = true;
      break;
    }
    int ms = static_cast<int>(absl::ToInt64Milliseconds(
        absl::Ceil(std::min(left, absl::Seconds(1)), absl::Milliseconds(1))));
    int n = poll(&p, 1, ms);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buffer[4096];
    ssize_t got = read(read_end.get(), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the command (and whatever held the pipe)
    if (result.output.size() < kMostOutput) {
      result.output.append(buffer, static_cast<size_t>(got));
    }
  }
  if (result.timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = status;
  return result;
}

}  // namespace process_internal
}  // namespace lifecycle
