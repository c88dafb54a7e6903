#include "lifecycle/process_service.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
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
#include <fstream>
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

extern char** environ;

namespace lifecycle {

// --- Readiness -----------------------------------------------------------------

Readiness Readiness::Notification() {
  return Readiness(Kind::kNotification, "READY=1 notification");
}

Readiness Readiness::TcpPort(int port, std::string host) {
  Readiness r(Kind::kTcpPort, absl::StrCat("TCP port ", host, ":", port));
  r.port_ = port;
  r.host_ = std::move(host);
  return r;
}

Readiness Readiness::UnixSocket(std::string path) {
  Readiness r(Kind::kUnixSocket, absl::StrCat("Unix socket ", path));
  r.path_ = std::move(path);
  return r;
}

Readiness Readiness::OutputLine(std::string pattern) {
  Readiness r(Kind::kOutputLine,
              absl::StrCat("an output line matching '", pattern, "'"));
  r.path_ = std::move(pattern);
  return r;
}

Readiness Readiness::HttpGet(int port, std::string path, std::string host) {
  Readiness r(Kind::kHttpGet,
              absl::StrCat("HTTP GET http://", host, ":", port, path, " 2xx"));
  r.port_ = port;
  r.path_ = std::move(path);
  r.host_ = std::move(host);
  return r;
}

Readiness Readiness::CommandSucceeds(std::vector<std::string> argv) {
  Readiness r(Kind::kCommand,
              absl::StrCat("command '", absl::StrJoin(argv, " "), "' exit 0"));
  r.argv_ = std::move(argv);
  return r;
}

Readiness Readiness::ListensOnTcp() {
  return Readiness(Kind::kListensOnTcp, "a TCP port it listens on");
}

Readiness Readiness::Probe(std::string description,
                           std::function<bool()> probe) {
  Readiness r(Kind::kProbe, std::move(description));
  r.probe_ = std::move(probe);
  return r;
}

namespace {

constexpr size_t kKeptLines = 100;
constexpr size_t kLinesInErrors = 10;
// The longest output line kept (the log file has every byte).
constexpr size_t kMaxLineKept = 64 * 1024;
// How long the guard of a program whose starting process died gives the
// program's group to end after SIGTERM, before SIGKILL.
constexpr int kGuardGraceMs = 1000;
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(5);
constexpr absl::Duration kMostBackoff = absl::Milliseconds(250);

std::string ErrnoText(int error) { return std::strerror(error); }

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

bool TcpConnects(const std::string& host, int port, Fd* keep = nullptr) {
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

// The socket inodes among the open files of process `pid`.
std::vector<std::string> SocketInodesOf(pid_t pid) {
  std::vector<std::string> inodes;
  std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(fd_dir.c_str());
  if (dir == nullptr) return inodes;
  while (dirent* entry = readdir(dir)) {
    char target[64];
    std::string link = absl::StrCat(fd_dir, "/", entry->d_name);
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    absl::string_view t(target, static_cast<size_t>(n));
    // "socket:[12345]"
    if (absl::ConsumePrefix(&t, "socket:[") && absl::ConsumeSuffix(&t, "]")) {
      inodes.emplace_back(t);
    }
  }
  closedir(dir);
  return inodes;
}

// The listening TCP sockets (IPv4 and IPv6) of the network namespace that
// `proc` ("/proc/PID" or "/proc/self") sees: (inode, port) pairs.
std::vector<std::pair<std::string, int>> ListeningTcpSockets(
    const std::string& proc) {
  std::vector<std::pair<std::string, int>> sockets;
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream in(absl::StrCat(proc, "/net/", table));
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // sl local_address rem_address st ... uid timeout inode
      std::vector<absl::string_view> fields =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 10 || fields[3] != "0A") continue;  // 0A: LISTEN
      absl::string_view local = fields[1];
      int port = 0;
      if (absl::SimpleHexAtoi(local.substr(local.rfind(':') + 1), &port)) {
        sockets.emplace_back(std::string(fields[9]), port);
      }
    }
  }
  return sockets;
}

// The TCP ports process `pid` listens on: its socket inodes, looked up in its
// network namespace's tables of listening sockets.
std::vector<int> ListeningTcpPortsOf(pid_t pid) {
  std::vector<std::string> inodes = SocketInodesOf(pid);
  std::vector<int> ports;
  for (const auto& [inode, port] :
       ListeningTcpSockets(absl::StrCat("/proc/", pid))) {
    if (std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
      ports.push_back(port);
    }
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

// Who listens on TCP port `port` here: "pid 4242 (redis-server)", or
// "a process this one cannot see" when no process it may read holds it.
std::string TcpPortHolder(int port) {
  std::vector<std::string> inodes;
  for (const auto& [inode, listening] : ListeningTcpSockets("/proc/self")) {
    if (listening == port) inodes.push_back(inode);
  }
  if (DIR* proc = opendir("/proc")) {
    while (dirent* entry = readdir(proc)) {
      int pid = 0;
      if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
      for (const std::string& inode : SocketInodesOf(pid)) {
        if (std::find(inodes.begin(), inodes.end(), inode) == inodes.end()) {
          continue;
        }
        closedir(proc);
        std::string name;
        std::ifstream(absl::StrCat("/proc/", pid, "/comm")) >> name;
        return absl::StrCat("pid ", pid, " (", name, ")");
      }
    }
    closedir(proc);
  }
  return "a process this one cannot see";
}

// The default log: `<dir>/<path with '/' as '.'>.log`.
std::string DefaultLogPath(const std::string& service_path) {
  const char* dir = nullptr;
  for (const char* variable :
       {"TEST_UNDECLARED_OUTPUTS_DIR", "TEST_TMPDIR", "TMPDIR"}) {
    dir = std::getenv(variable);
    if (dir != nullptr && *dir != '\0') break;
    dir = nullptr;
  }
  std::string name = service_path;
  std::replace(name.begin(), name.end(), '/', '.');
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".log");
}

// A unique abstract socket name for a run's notifications (abstract: no file,
// no path length limit of the directory, no permissions to give a user).
std::string NotifySocketName() {
  static std::atomic<uint64_t> next{0};
  return absl::StrCat("lifecycle-notify/", getpid(), "/", next++);
}

// Whether process `pid` has ended: gone, or a zombie nobody reaped yet.
// Async-signal-safe (for the guard, after a fork).
bool Ended(pid_t pid) {
  if (kill(pid, 0) != 0) return true;
  char path[32] = "/proc/";
  char digits[16];
  int n = 0;
  for (pid_t rest = pid; rest > 0 && n < 15; rest /= 10) {
    digits[n++] = static_cast<char>('0' + rest % 10);
  }
  size_t at = 6;
  while (n > 0) path[at++] = digits[--n];
  std::memcpy(path + at, "/stat", 6);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char stat[512];
  ssize_t got = read(fd, stat, sizeof(stat));
  close(fd);
  // "pid (comm) S ...": the state follows the last ')'.
  for (ssize_t i = got - 1; i >= 0; --i) {
    if (stat[i] == ')') return i + 2 < got && stat[i + 2] == 'Z';
  }
  return false;
}

// Every process a run starts carries this in its environment, with a value
// unique to the run: a process that left the program's group (a daemon that
// forked and called setsid()) is still found by it, in /proc/PID/environ.
constexpr char kMarkVariable[] = "LIFECYCLE_PROGRAM_RUN";

// Sends `sig` to every process whose environment holds `mark` (the whole
// "NAME=VALUE" entry), but this one; returns how many. Async-signal-safe (no
// allocation: the guard calls it after a fork), so it reads /proc with raw
// system calls into buffers on the stack (the workers of several services
// call it at once). It reads the start of each environment: the run puts the
// mark first.
int SignalMarked(const char* mark, size_t mark_size, int sig) {
  int fd_proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_proc < 0) return 0;
  const pid_t self = getpid();
  int count = 0;
  alignas(8) char entries[4096];
  char environ_text[16384];  // the start of a process's environ
  while (true) {
    long got = syscall(SYS_getdents64, fd_proc, entries, sizeof(entries));
    if (got <= 0) break;
    for (long at = 0; at < got;) {
      struct Dirent64 {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* entry = reinterpret_cast<const Dirent64*>(entries + at);
      at += entry->reclen;
      pid_t pid = 0;
      const char* c = entry->name;
      for (; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
      if (*c != '\0' || pid <= 0 || pid == self) continue;
      char path[40] = "/proc/";
      size_t n = 6;
      for (const char* d = entry->name; *d != '\0';) path[n++] = *d++;
      std::memcpy(path + n, "/environ", 9);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t size = read(fd, environ_text, sizeof(environ_text));
      close(fd);
      // Each entry ends with '\0': match a whole one.
      for (ssize_t i = 0;
           size > 0 && i + static_cast<ssize_t>(mark_size) <= size;) {
        if (std::memcmp(environ_text + i, mark, mark_size) == 0 &&
            (i + static_cast<ssize_t>(mark_size) == size ||
             environ_text[i + mark_size] == '\0')) {
          kill(pid, sig);
          ++count;
          break;
        }
        const void* end =
            std::memchr(environ_text + i, '\0', static_cast<size_t>(size - i));
        if (end == nullptr) break;
        i = static_cast<const char*>(end) - environ_text + 1;
      }
    }
  }
  close(fd_proc);
  return count;
}

// Kills the process group of `pgid`, and the processes that carry `mark` (those
// that left the group), when the process that made it dies: forked with the
// write end of `guard` held by the parent only, it waits for EOF.
// Async-signal-safe after the fork.
pid_t ForkGuard(pid_t pgid, int read_end, const std::string& mark) {
  const char* mark_text = mark.c_str();  // made before the fork
  const size_t mark_size = mark.size();
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);  // away from the terminal's signals
  for (int fd = 0; fd < 1024; ++fd) {
    if (fd != read_end) close(fd);
  }
  char c;
  while (read(read_end, &c, 1) < 0 && errno == EINTR) {
  }
  // A chance to clean up first (PostgreSQL removes its shared memory on
  // SIGTERM; SIGKILL would leave it in /dev/shm), then whatever is left goes.
  // Once the program itself has ended, the rest of its group goes at once,
  // as in a stop.
  kill(-pgid, SIGTERM);
  SignalMarked(mark_text, mark_size, SIGTERM);
  for (int waited_ms = 0; waited_ms < kGuardGraceMs && !Ended(pgid);
       waited_ms += 5) {
    usleep(5000);
  }
  kill(-pgid, SIGKILL);
  SignalMarked(mark_text, mark_size, SIGKILL);
  _exit(0);
}

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

struct RunFds {
  Fd output;  // read end of the program's stdout and stderr
  Fd notify;  // the notification socket, if any
  Fd stop;    // an eventfd written when the run's context is cancelled
  Fd exited;  // a pidfd of the program
  Fd guard;   // the write end the guard waits on
};

}  // namespace

// --- ProcessService ----------------------------------------------------------

ProcessService::ProcessService(std::string name, ProcessOptions options)
    : BaseService(std::move(name)), options_(std::move(options)) {}

ProcessService::~ProcessService() { StopForDestruction(); }

std::string ProcessService::log_path() const {
  absl::MutexLock lock(&process_mu_);
  return log_path_;
}

std::vector<int> ProcessService::ListeningTcpPorts() const {
  pid_t pid = pid_.load();
  return pid == 0 ? std::vector<int>() : ListeningTcpPortsOf(pid);
}

std::vector<std::string> ProcessService::LastOutputLines(size_t count) const {
  absl::MutexLock lock(&process_mu_);
  size_t n = std::min(count, last_lines_.size());
  return std::vector<std::string>(last_lines_.end() - static_cast<long>(n),
                                  last_lines_.end());
}

void ProcessService::AddOutputLine(std::string line) {
  absl::MutexLock lock(&process_mu_);
  last_lines_.push_back(std::move(line));
  if (last_lines_.size() > kKeptLines) last_lines_.pop_front();
}

absl::Status ProcessService::OnStart(const Context&) {
  const ProcessOptions& o = options_;
  auto fail = [&](absl::Status s) {
    return absl::Status(
        s.code(), absl::StrCat("program '", o.executable, "': ", s.message()));
  };
  if (o.executable.empty()) {
    return absl::InvalidArgumentError("no program: `executable` is empty");
  }
  if (o.start_timeout <= absl::ZeroDuration()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("start_timeout must be positive, not ",
                     absl::FormatDuration(o.start_timeout))));
  }
  if (o.stop_signal <= 0 || o.stop_signal >= NSIG || o.stop_signal == SIGKILL ||
      o.stop_signal == SIGSTOP) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("stop_signal must be a signal a program can catch, not ",
                     o.stop_signal)));
  }
  if (o.stop_grace < absl::ZeroDuration()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("stop_grace must not be negative, not ",
                     absl::FormatDuration(o.stop_grace))));
  }
  if (!o.working_directory.empty()) {
    struct stat st;
    if (stat(o.working_directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return fail(absl::NotFoundError(absl::StrCat(
          "working directory '", o.working_directory, "' does not exist")));
    }
  }
  const char* path_variable = std::getenv("PATH");
  for (const auto& [key, value] : o.env) {
    if (key == "PATH") path_variable = value.c_str();
  }
  absl::StatusOr<std::string> resolved =
      Resolve(o.executable, o.working_directory, path_variable);
  if (!resolved.ok()) return fail(resolved.status());
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (!o.user.empty()) {
    passwd entry;
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwnam_r(o.user.c_str(), &entry, buffer.data(), buffer.size(),
                   &found) != 0 ||
        found == nullptr) {
      return fail(
          absl::NotFoundError(absl::StrCat("unknown user '", o.user, "'")));
    }
    if (geteuid() != 0 && found->pw_uid != geteuid()) {
      return fail(absl::PermissionDeniedError(
          absl::StrCat("running it as user '", o.user, "' needs root")));
    }
    uid = found->pw_uid;
    gid = found->pw_gid;
  }
  for (const Readiness& r : o.ready_when) {
    switch (r.kind()) {
      case Readiness::Kind::kOutputLine:
        if (std::string why = OutputPattern(r.path_).error(); !why.empty()) {
          return fail(absl::InvalidArgumentError(
              absl::StrCat("the readiness pattern '", r.path_,
                           "' is not a regular expression: ", why)));
        }
        break;
      case Readiness::Kind::kTcpPort:
      case Readiness::Kind::kHttpGet:
        if (r.port_ < 1 || r.port_ > 65535) {
          return fail(absl::InvalidArgumentError(
              absl::StrCat("readiness port ", r.port_, " is not 1-65535")));
        }
        // The program's own port: one that answers before the program runs
        // would make it look ready (a second server told the same port).
        if (r.kind() == Readiness::Kind::kTcpPort &&
            TcpConnects(r.host_, r.port_)) {
          return fail(absl::FailedPreconditionError(absl::StrCat(
              "readiness port ", r.host_, ":", r.port_,
              " already accepts connections before the program runs; it is "
              "held by ",
              TcpPortHolder(r.port_))));
        }
        break;
      case Readiness::Kind::kCommand:
        if (r.argv_.empty()) {
          return fail(absl::InvalidArgumentError(
              "a readiness command needs at least its program"));
        }
        break;
      case Readiness::Kind::kProbe:
        if (!r.probe_) {
          return fail(absl::InvalidArgumentError(absl::StrCat(
              "readiness probe '", r.description(), "' has no function")));
        }
        break;
      case Readiness::Kind::kUnixSocket:
      case Readiness::Kind::kNotification:
      case Readiness::Kind::kListensOnTcp:
        break;
    }
  }
  absl::MutexLock lock(&process_mu_);
  resolved_executable_ = *std::move(resolved);
  uid_ = uid;
  gid_ = gid;
  log_path_ =
      o.log_path.empty() ? DefaultLogPath(std::string(Path())) : o.log_path;
  return absl::OkStatus();
}

absl::Status ProcessService::Run(const Context& ctx,
                                 absl::FunctionRef<void()> started) {
  const ProcessOptions& o = options_;
  std::string executable, log_file;
  uid_t uid;
  gid_t gid;
  {
    absl::MutexLock lock(&process_mu_);
    executable = resolved_executable_;
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
  std::string notify_name;
  if (notify) {
    notify_name = NotifySocketName();
    fds.notify.Reset(
        socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + 1, notify_name.data(), notify_name.size());
    socklen_t size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                            1 + notify_name.size());
    if (!fds.notify.valid() ||
        bind(fds.notify.get(), reinterpret_cast<sockaddr*>(&a), size) != 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot make the notification socket: ", ErrnoText(errno)));
    }
  }
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
  if (notify) env.push_back(absl::StrCat("NOTIFY_SOCKET=@", notify_name));
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
  if (pipe2(guard, O_CLOEXEC) == 0) {
    fds.guard.Reset(guard[1]);
    guard_pid = ForkGuard(pid, guard[0], mark);
    close(guard[0]);
  }
  // Beside "pid": what a leftover check that passes over a server kept for the
  // whole test binary needs (testing/leftover_threads.h).
  if (guard_pid > 0) SetDetail("guard", absl::StrCat(guard_pid));
  absl::Cleanup reap_guard = [guard_pid, &fds] {
    fds.guard.Reset();
    if (guard_pid > 0) {
      int status;
      kill(guard_pid, SIGKILL);
      waitpid(guard_pid, &status, 0);
    }
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
