#include "lifecycle/testing/servers/server_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lifecycle/health.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/leftover_threads.h"

namespace lifecycle_testing {
namespace servers_internal {
namespace {

constexpr char kNotInstalledPayload[] = "lifecycle.servers/not-installed";

std::string ErrnoText(int error) {
  char buffer[256];
  return strerror_r(error, buffer, sizeof(buffer));
}

// The name of a helper run, as a service name: argv[0]'s last part.
std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return name.empty() ? "program" : name;
}

}  // namespace

absl::Status CheckInstalled(const std::string& program,
                            std::string_view package) {
  if (access(program.c_str(), X_OK) == 0) return absl::OkStatus();
  absl::Status status = absl::NotFoundError(
      absl::StrCat(program, " is not installed (Debian package ",
                   std::string(package), "; tools/setup.sh installs it)"));
  status.SetPayload(kNotInstalledPayload, absl::Cord(std::string(package)));
  return status;
}

bool IsNotInstalled(const absl::Status& status) {
  return status.GetPayload(kNotInstalledPayload).has_value();
}

absl::Status RunToEnd(const std::vector<std::string>& argv,
                      const std::string& user, absl::Duration timeout,
                      std::string* output) {
  if (argv.empty()) return absl::InvalidArgumentError("RunToEnd: no program");
  lifecycle::ProcessOptions o;
  o.executable = argv[0];
  o.args.assign(argv.begin() + 1, argv.end());
  o.user = user;
  o.log_path = "/dev/null";
  o.start_timeout = timeout;
  o.stop_grace = absl::Seconds(1);
  lifecycle::ProcessService program(BaseName(argv[0]), o);
  absl::Status status = program.Start(lifecycle::Context::Background());
  if (status.ok() && !program.Stopped().WaitFor(timeout)) {
    program.Stop();
    status = absl::DeadlineExceededError(
        absl::StrCat("did not end within ", absl::FormatDuration(timeout)));
  }
  program.Stop();
  if (status.ok()) {
    lifecycle::ServiceSnapshot s = program.Snapshot();
    if (s.state == lifecycle::ServiceState::kFailed) status = s.status;
  }
  std::vector<std::string> lines = program.LastOutputLines(100);
  if (output != nullptr) *output = absl::StrJoin(lines, "\n");
  if (status.ok()) return status;
  return absl::Status(
      status.code(),
      absl::StrCat("`", absl::StrJoin(argv, " "),
                   "` failed: ", status.message(), "\n",
                   absl::StrJoin(program.LastOutputLines(10), "\n")));
}

std::string UserForServersThatRefuseRoot() {
  return geteuid() == 0 ? "postgres" : "";
}

namespace {

// Whether the process `pid` exists (a folder's owner).
bool ProcessExists(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// Removes the folders `lifecycle-server-<kind>-<pid>-*` under `parent` whose
// process no longer exists.
void SweepDeadOwners(const std::string& parent) {
  DIR* dir = opendir(parent.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> dead;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (!absl::StartsWith(name, "lifecycle-server-")) continue;
    // lifecycle-server-KIND-PID-RANDOM, KIND possibly with '-' in it
    std::vector<std::string> parts = absl::StrSplit(name, '-');
    pid_t pid;
    if (parts.size() < 5 || !absl::SimpleAtoi(parts[parts.size() - 2], &pid) ||
        pid <= 0) {
      continue;
    }
    if (!ProcessExists(pid)) dead.push_back(parent + "/" + name);
  }
  closedir(dir);
  for (const std::string& path : dead) RemoveTree(path);
}

}  // namespace

absl::StatusOr<std::string> NewServerDir(std::string_view kind,
                                         const std::string& user) {
  std::string parent = "/dev/shm";
  if (access(parent.c_str(), W_OK) != 0) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  SweepDeadOwners(parent);
  std::string pattern =
      absl::StrCat(parent, "/lifecycle-server-", std::string(kind), "-",
                   getpid(), "-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make a folder for ", std::string(kind), " in ",
                     parent, ": ", ErrnoText(errno)));
  }
  if (!user.empty()) {
    passwd* pw = getpwnam(user.c_str());
    if (pw == nullptr || chown(pattern.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      RemoveTree(pattern);
      return absl::FailedPreconditionError(
          absl::StrCat("cannot give ", pattern, " to user '", user, "'"));
    }
  }
  return pattern;
}

void RemoveTree(const std::string& path) {
  if (path.empty() || path == "/") return;
  (void)RunToEnd({"/bin/rm", "-rf", "--", path});
}

absl::Status CopyTree(const std::string& from, const std::string& to) {
  return RunToEnd({"/bin/cp", "-a", "--", from, to});
}

std::string CacheRoot() {
  if (const char* dir = std::getenv("LIFECYCLE_SERVER_CACHE");
      dir != nullptr && *dir != '\0') {
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME");
      xdg != nullptr && *xdg == '/') {
    return absl::StrCat(xdg, "/lifecycle/servers");
  }
  const passwd* pw = getpwuid(geteuid());
  std::string home = pw != nullptr && pw->pw_dir != nullptr ? pw->pw_dir : "";
  if (home.empty()) home = "/tmp";
  return absl::StrCat(home, "/.cache/lifecycle/servers");
}

namespace {

absl::Status MakeFolders(const std::string& path) {
  std::string so_far;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    absl::StrAppend(&so_far, "/", part);
    if (mkdir(so_far.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot make the folder ", so_far, ": ", ErrnoText(errno)));
    }
  }
  return absl::OkStatus();
}

bool IsFolder(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<std::string> CachedTemplate(
    const std::string& name,
    absl::FunctionRef<absl::Status(const std::string& dir)> build) {
  const std::string root = CacheRoot();
  const std::string done = absl::StrCat(root, "/", name);
  if (IsFolder(done)) return done;  // renamed into place only when complete
  if (absl::Status s = MakeFolders(root); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the server template cache ", root, " cannot be written (", s.message(),
        "); set LIFECYCLE_SERVER_CACHE to a folder that can"));
  }
  // One builder per machine: the others wait here, then find it made.
  const std::string lock_path = done + ".lock";
  int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open the cache lock ", lock_path, ": ", ErrnoText(errno)));
  }
  absl::Cleanup close_lock = [lock] { close(lock); };
  while (flock(lock, LOCK_EX) != 0) {
    if (errno != EINTR) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot lock ", lock_path, ": ", ErrnoText(errno)));
    }
  }
  if (IsFolder(done)) return done;
  const std::string partial = absl::StrCat(done, ".partial-", getpid());
  RemoveTree(partial);
  if (mkdir(partial.c_str(), 0755) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot make ", partial, ": ", ErrnoText(errno),
        "; set LIFECYCLE_SERVER_CACHE to a folder that can be written"));
  }
  absl::Status built = build(partial);
  if (!built.ok()) {
    RemoveTree(partial);
    return absl::Status(built.code(), absl::StrCat("making the template ", name,
                                                   ": ", built.message()));
  }
  if (rename(partial.c_str(), done.c_str()) != 0) {
    absl::Status s = absl::FailedPreconditionError(absl::StrCat(
        "cannot rename ", partial, " to ", done, ": ", ErrnoText(errno)));
    RemoveTree(partial);
    return s;
  }
  return done;
}

std::string Fingerprint(std::string_view text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx",
                static_cast<unsigned long long>(hash));
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", ErrnoText(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<int> PickFreeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket: " + ErrnoText(errno));
  absl::Cleanup close_fd = [fd] { close(fd); };
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) != 0) {
    return absl::InternalError("cannot pick a TCP port: " + ErrnoText(errno));
  }
  return ntohs(a.sin_port);
}

absl::StatusOr<HttpReply> HttpRequest(int port, std::string_view method,
                                      std::string_view path,
                                      std::string_view body,
                                      absl::Duration timeout) {
  const std::string where = absl::StrCat("127.0.0.1:", port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket: " + ErrnoText(errno));
  absl::Cleanup close_fd = [fd] { close(fd); };
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", where, ": ", ErrnoText(errno)));
  }
  const std::string request = absl::StrCat(
      std::string(method), " ", std::string(path), " HTTP/1.1\r\nHost: ", where,
      "\r\nConnection: close\r\nContent-Type: application/json\r\n",
      "Content-Length: ", body.size(), "\r\n\r\n", std::string(body));
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      return absl::UnavailableError(
          absl::StrCat("sending to ", where, ": ", ErrnoText(errno)));
    }
    sent += static_cast<size_t>(n);
  }
  std::string answer;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    pollfd p{fd, POLLIN, 0};
    if (left <= absl::ZeroDuration() ||
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <=
            0) {
      return absl::DeadlineExceededError(absl::StrCat(
          where, " did not answer ", std::string(method), " ",
          std::string(path), " within ", absl::FormatDuration(timeout)));
    }
    char buffer[8192];
    ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got < 0) {
      return absl::UnavailableError(
          absl::StrCat("reading from ", where, ": ", ErrnoText(errno)));
    }
    if (got == 0) break;  // Connection: close
    answer.append(buffer, static_cast<size_t>(got));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  HttpReply reply;
  size_t head_end = answer.find("\r\n\r\n");
  std::vector<std::string> first = absl::StrSplit(
      answer.substr(0, answer.find("\r\n")), absl::MaxSplits(' ', 2));
  if (head_end == std::string::npos || first.size() < 2 ||
      !absl::SimpleAtoi(first[1], &reply.status)) {
    return absl::DataLossError(
        absl::StrCat(where, " answered no HTTP: ", answer.substr(0, 200)));
  }
  reply.body = answer.substr(head_end + 4);
  if (absl::StrContains(absl::AsciiStrToLower(answer.substr(0, head_end)),
                        "transfer-encoding: chunked")) {
    // De-chunk: "<hex size>\r\n<data>\r\n" ... "0\r\n\r\n".
    std::string plain;
    size_t at = 0;
    while (at < reply.body.size()) {
      size_t line_end = reply.body.find("\r\n", at);
      if (line_end == std::string::npos) break;
      unsigned long size = std::strtoul(
          reply.body.substr(at, line_end - at).c_str(), nullptr, 16);
      if (size == 0) break;
      plain += reply.body.substr(line_end + 2, size);
      at = line_end + 2 + size + 2;
    }
    reply.body = std::move(plain);
  }
  return reply;
}

std::vector<pid_t> IdsOf(const lifecycle::Service& service) {
  std::vector<pid_t> ids;
  lifecycle::ServiceSnapshot root = service.Snapshot();
  for (const lifecycle::ServiceSnapshot* s : root.Flatten()) {
    ids.insert(ids.end(), s->threads.begin(), s->threads.end());
    for (const auto& [key, value] : s->details) {
      pid_t id;
      if ((key == "pid" || key == "guard") && absl::SimpleAtoi(value, &id)) {
        ids.push_back(id);
      }
    }
  }
  return ids;
}

namespace {

struct Shared {
  std::unique_ptr<lifecycle::Service> service;
  absl::Status start;
  std::function<std::string()> end_of_test;
};

absl::Mutex shared_mu(absl::kConstInit);
// Never destroyed: stopped and emptied at the end of the program.
std::map<std::string, Shared>* shared ABSL_GUARDED_BY(shared_mu) = nullptr;

void StopSharedServers() {
  std::map<std::string, Shared> ending;
  {
    absl::MutexLock lock(&shared_mu);
    if (shared == nullptr) return;
    ending.swap(*shared);
  }
  for (auto& [key, entry] : ending) {
    if (entry.service != nullptr) entry.service->Stop();
  }
  ending.clear();  // destroyed: their folders go
}

// After each test, what each shared server says the test left; at the end of
// the program, stops them (before GoogleTest's own end, so that a server that
// will not stop is still reported).
class SharedServersListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& info) override {
    std::vector<std::function<std::string()>> checks;
    {
      absl::MutexLock lock(&shared_mu);
      if (shared == nullptr) return;
      for (auto& [key, entry] : *shared) {
        if (entry.end_of_test) checks.push_back(entry.end_of_test);
      }
    }
    for (const auto& check : checks) {
      std::string left = check();
      if (!left.empty()) {
        ADD_FAILURE() << info.test_suite_name() << "." << info.name() << " "
                      << left;
      }
    }
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    StopSharedServers();
  }
};

}  // namespace

absl::StatusOr<lifecycle::Service*> SharedServer(
    const std::string& key,
    absl::FunctionRef<std::unique_ptr<lifecycle::Service>()> make,
    absl::Duration timeout, std::function<std::string()> end_of_test) {
  absl::MutexLock lock(&shared_mu);
  if (shared == nullptr) {
    shared = new std::map<std::string, Shared>();
    ::testing::UnitTest::GetInstance()->listeners().Append(
        new SharedServersListener());
    std::atexit(StopSharedServers);
    RunsForTheBinary([] {
      std::vector<pid_t> ids;
      absl::MutexLock lock(&shared_mu);
      if (shared == nullptr) return ids;
      for (auto& [key, entry] : *shared) {
        if (entry.service == nullptr) continue;
        std::vector<pid_t> more = IdsOf(*entry.service);
        ids.insert(ids.end(), more.begin(), more.end());
      }
      return ids;
    });
  }
  auto found = shared->find(key);
  if (found != shared->end()) {
    if (!found->second.start.ok()) return found->second.start;
    return found->second.service.get();
  }
  Shared& entry = (*shared)[key];
  entry.service = make();
  entry.end_of_test = std::move(end_of_test);
  lifecycle::Service& service = *entry.service;
  absl::Status start = service.Start(lifecycle::Context::Background());
  if (start.ok()) {
    lifecycle::Signal waits[] = {service.Started(), service.Stopped()};
    lifecycle::WaitAnyUntil(waits, absl::Now() + timeout);
    lifecycle::ServiceSnapshot s = service.Snapshot();
    if (s.state != lifecycle::ServiceState::kStarted) {
      start = !s.status.ok() ? s.status
              : !s.last_failure.ok()
                  ? s.last_failure
                  : absl::DeadlineExceededError(absl::StrCat(
                        "the shared ", key, " did not start within ",
                        absl::FormatDuration(timeout)));
    }
  }
  if (!start.ok()) {
    service.Stop();
    entry.start = start;
    return start;
  }
  return &service;
}

absl::Status RunProgram(lifecycle::ProcessService& process,
                        const lifecycle::Context& ctx) {
  lifecycle::Signal waits[] = {ctx.Done(), process.Stopped()};
  lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
  if (ctx.Done().IsClosed()) {
    process.Stop();
    return absl::OkStatus();
  }
  return EndedWith(process);
}

absl::Status EndedWith(const lifecycle::ProcessService& process) {
  lifecycle::ServiceSnapshot s = process.Snapshot();
  if (!s.status.ok()) return s.status;
  return absl::UnavailableError(
      absl::StrCat(process.Path(), " exited while it should have run on; ",
                   absl::StrJoin(process.LastOutputLines(5), "\n")));
}

absl::Status StartProgram(lifecycle::ProcessService& process,
                          const lifecycle::Context& ctx) {
  if (absl::Status s = process.Start(ctx); !s.ok()) return s;
  lifecycle::Signal waits[] = {process.Started(), process.Stopped(),
                               ctx.Done()};
  lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
  if (process.State() == lifecycle::ServiceState::kStarted) {
    return absl::OkStatus();
  }
  if (ctx.Done().IsClosed()) {
    process.Stop();
    return absl::CancelledError("stopped while starting");
  }
  return EndedWith(process);
}

ServerModule::ServerModule(std::string name, std::string program,
                           std::string package)
    : BaseService(std::move(name)),
      program_(std::move(program)),
      package_(std::move(package)) {}

ServerModule::~ServerModule() {
  process_.reset();
  std::string folder = dir();
  if (!folder.empty()) RemoveTree(folder);
}

std::string ServerModule::dir() const {
  absl::MutexLock lock(&mu_);
  return dir_;
}

absl::Status ServerModule::OnStart(const lifecycle::Context&) {
  if (absl::Status s = CheckInstalled(program_, package_); !s.ok()) return s;
  if (process_ != nullptr) return absl::OkStatus();  // a restart: same folder
  absl::StatusOr<std::string> folder =
      NewServerDir(BaseName(program_), FolderOwner());
  if (!folder.ok()) return folder.status();
  if (absl::Status s = Prepare(*folder); !s.ok()) {
    RemoveTree(*folder);
    return s;
  }
  {
    absl::MutexLock lock(&mu_);
    dir_ = *folder;
  }
  SetDetail("data", *folder);
  process_ = std::make_unique<lifecycle::ProcessService>(BaseName(program_),
                                                         Program(*folder));
  return AddChild(*process_);
}

absl::Status ServerModule::Run(const lifecycle::Context& ctx,
                               absl::FunctionRef<void()> started) {
  if (absl::Status s = StartProgram(*process_, ctx); !s.ok()) return s;
  SetDetail("log", process_->log_path());
  if (absl::Status s = Ready(); !s.ok()) {
    process_->Stop();
    return s;
  }
  started();
  return RunProgram(*process_, ctx);
}

}  // namespace servers_internal
}  // namespace lifecycle_testing
