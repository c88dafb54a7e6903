#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lifecycle/process_internal.h"

extern char** environ;

namespace lifecycle {
namespace process_internal {

namespace {

// How long the guard of a program whose starting process died gives the
// program's group to end after SIGTERM, before SIGKILL.
constexpr int kGuardGraceMs = 1000;
// How long it gives the program's clean-up command after that.
constexpr int kGuardCleanupMs = 30000;

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

}  // namespace

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

GuardCommand::GuardCommand(std::vector<std::string> argv)
    : argv_(std::move(argv)) {
  if (argv_.empty()) return;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, kMarkVariable)) env_.emplace_back(*e);
  }
  for (std::string& a : argv_) c_argv_.push_back(a.data());
  c_argv_.push_back(nullptr);
  for (std::string& e : env_) c_env_.push_back(e.data());
  c_env_.push_back(nullptr);
}

void GuardCommand::RunAndWait(int timeout_ms) const {
  if (argv_.empty()) return;
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    execve(c_argv_[0], c_argv_.data(), c_env_.data());
    _exit(127);
  }
  int status;
  for (int waited_ms = 0; waited_ms < timeout_ms; waited_ms += 5) {
    if (waitpid(pid, &status, WNOHANG) == pid) return;
    usleep(5000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

pid_t ForkGuard(pid_t pgid, int read_end, const std::string& mark,
                const GuardCommand& cleanup) {
  const char* mark_text = mark.c_str();  // made before the fork
  const size_t mark_size = mark.size();
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);  // away from the terminal's signals
  // Its name, which the hang watchdog reads: it kills the test's children,
  // but leaves the guards to end their programs (and remove their
  // containers) once the test process has exited.
  prctl(PR_SET_NAME, kGuardName);
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
  if (pgid > 0) {
    kill(-pgid, SIGTERM);
    SignalMarked(mark_text, mark_size, SIGTERM);
    for (int waited_ms = 0; waited_ms < kGuardGraceMs && !Ended(pgid);
         waited_ms += 5) {
      usleep(5000);
    }
    kill(-pgid, SIGKILL);
    SignalMarked(mark_text, mark_size, SIGKILL);
  }
  // What is not a process of this tree: a container the engine keeps.
  cleanup.RunAndWait(kGuardCleanupMs);
  _exit(0);
}

}  // namespace process_internal
}  // namespace lifecycle
