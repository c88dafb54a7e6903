#include "lifecycle/process_service.h"

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

using process_internal::ListeningTcpPortsOf;
using process_internal::OutputPattern;
using process_internal::Resolve;
using process_internal::TcpConnects;
using process_internal::TcpPortHolder;

constexpr size_t kKeptLines = 100;

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
  if (o.notify_socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "notify_socket_path '", o.notify_socket_path, "' is longer than ",
        sizeof(sockaddr_un{}.sun_path) - 1, " bytes")));
  }
  std::vector<std::string> cleanup = o.cleanup_command;
  if (!cleanup.empty()) {
    absl::StatusOr<std::string> program =
        Resolve(cleanup[0], o.working_directory, path_variable);
    if (!program.ok()) {
      return fail(absl::Status(
          program.status().code(),
          absl::StrCat("its cleanup_command: ", program.status().message())));
    }
    cleanup[0] = *std::move(program);
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
  cleanup_argv_ = std::move(cleanup);
  uid_ = uid;
  gid_ = gid;
  log_path_ =
      o.log_path.empty() ? DefaultLogPath(std::string(Path())) : o.log_path;
  return absl::OkStatus();
}

}  // namespace lifecycle
