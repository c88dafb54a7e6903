// A shared Bazel cache on this machine: Debian's nginx, with its WebDAV
// module, serving a folder of your choosing on 127.0.0.1, run as a service of
// this library (a ProcessService: ready when it answers, stopped with this
// tool, and never left running when this tool is killed).
//
//   bazel build //tools/cache
//   bazel-bin/tools/cache/cache --dir=~/.cache/lifecycle/remote-cache
//       [--port=0] [--port_file=FILE] [--max_size_mb=0]
//
// Once nginx answers it prints one line,
//   remote cache ready: --remote_cache=http://127.0.0.1:PORT (folder DIR)
// writes PORT to --port_file (if given; written whole, by rename), and runs
// until SIGINT or SIGTERM, when it stops nginx and exits 0. Bazel's HTTP cache
// protocol is plain GET and PUT of /ac/HASH and /cas/HASH, which is what
// bazel-remote, BuildBuddy and every other Bazel cache serve too.
//
// --max_size_mb bounds the folder: when over it (checked at the start and
// every minute), the files read longest ago go first, down to nine tenths of
// it. 0 (the default) never removes anything.
//
// Exit status: 0 after a requested stop; 1 if nginx could not start or died
// (its last lines are printed); 2 for bad flags.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "lifecycle/context.h"
#include "lifecycle/process_service.h"
#include "lifecycle/service.h"

ABSL_FLAG(std::string, dir, "",
          "the folder the cache keeps its entries in (made if missing)");
ABSL_FLAG(int, port, 0, "the port on 127.0.0.1; 0 picks a free one");
ABSL_FLAG(std::string, port_file, "",
          "a file to write the port to once the cache answers");
ABSL_FLAG(int64_t, max_size_mb, 0,
          "remove the entries read longest ago beyond this size (0: never)");

namespace {

namespace fs = std::filesystem;

// A port free on 127.0.0.1 now: nginx cannot be told to pick its own.
absl::StatusOr<int> FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  if (port == 0) return absl::UnavailableError("no free port on 127.0.0.1");
  return port;
}

// nginx's configuration: PUT and GET of any path under `root`, no body limit,
// uploads written beside the entries and renamed into place (so a reader
// never sees half an entry), and `health` for the readiness check: a path of
// this run's own, so that another server already on the port is not taken
// for this one.
std::string NginxConfig(const std::string& root, const std::string& state,
                        int port, const std::string& health) {
  return absl::StrCat("daemon off;\n", geteuid() == 0 ? "user root;\n" : "",
                      "worker_processes 2;\n"
                      "pid ",
                      state,
                      "/nginx.pid;\n"
                      "error_log stderr warn;\n"
                      "events { worker_connections 512; }\n"
                      "http {\n"
                      "  access_log off;\n"
                      "  client_body_temp_path ",
                      root,
                      "/.incoming;\n"
                      "  server {\n"
                      "    listen 127.0.0.1:",
                      port,
                      ";\n"
                      "    root ",
                      root,
                      ";\n"
                      "    client_max_body_size 0;\n"
                      "    location = ",
                      health,
                      " { return 200 \"ok\\n\"; }\n"
                      "    location /.incoming/ { return 404; }\n"
                      "    location / {\n"
                      "      dav_methods PUT DELETE;\n"
                      "      create_full_put_path on;\n"
                      "      dav_access user:rw group:r all:r;\n"
                      "    }\n"
                      "  }\n"
                      "}\n");
}

// Removes the entries read longest ago until the folder is at most nine
// tenths of `max_bytes`. Entries that vanish meanwhile are skipped.
void Prune(const std::string& root, int64_t max_bytes) {
  struct Entry {
    fs::path path;
    int64_t size;
    time_t read;
  };
  std::vector<Entry> entries;
  int64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (!it->is_regular_file(ec) || stat(it->path().c_str(), &st) != 0 ||
        it->path().parent_path().filename() == ".incoming") {
      continue;
    }
    entries.push_back(
        {it->path(), st.st_size, std::max(st.st_atime, st.st_mtime)});
    total += st.st_size;
  }
  if (total <= max_bytes) return;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.read < b.read; });
  int64_t removed = 0;
  int count = 0;
  for (const Entry& e : entries) {
    if (total - removed <= max_bytes / 10 * 9) break;
    if (fs::remove(e.path, ec)) {
      removed += e.size;
      ++count;
    }
  }
  std::fprintf(stderr,
               "remote cache: removed %d entries (%lld KiB) read "
               "longest ago, over --max_size_mb\n",
               count, static_cast<long long>(removed >> 10));
}

int Run(const std::string& dir_flag) {
  std::string root = std::string(absl::StripSuffix(dir_flag, "/"));
  if (root.rfind("~/", 0) == 0 && std::getenv("HOME") != nullptr) {
    root = absl::StrCat(std::getenv("HOME"), root.substr(1));
  }
  std::error_code ec;
  fs::create_directories(root + "/.incoming", ec);
  if (ec) {
    std::fprintf(stderr, "remote cache: cannot make %s: %s\n", root.c_str(),
                 ec.message().c_str());
    return 1;
  }
  root = fs::canonical(root).string();
  // nginx's own state (its configuration, pid file, temp folders) lives
  // apart from the entries, and goes with this run.
  char state_template[] = "/tmp/lifecycle-cache-XXXXXX";
  if (mkdtemp(state_template) == nullptr) {
    std::perror("remote cache: mkdtemp");
    return 1;
  }
  const std::string state = state_template;
  int port = absl::GetFlag(FLAGS_port);
  if (port == 0) {
    absl::StatusOr<int> free = FreePort();
    if (!free.ok()) {
      std::fprintf(stderr, "remote cache: %s\n",
                   free.status().ToString().c_str());
      return 1;
    }
    port = *free;
  }
  const std::string health = "/" + fs::path(state).filename().string();
  std::ofstream(state + "/nginx.conf")
      << NginxConfig(root, state, port, health);
  const int64_t max_bytes = absl::GetFlag(FLAGS_max_size_mb) << 20;
  if (max_bytes > 0) Prune(root, max_bytes);

  lifecycle::ProcessOptions options;
  options.executable = "nginx";
  options.args = {"-p", state, "-c", state + "/nginx.conf", "-e", "stderr"};
  options.ready_when = {lifecycle::Readiness::HttpGet(port, health)};
  options.start_timeout = absl::Seconds(20);
  options.stop_grace = absl::Seconds(5);
  options.cleanup_command = {"rm", "-rf", state};
  lifecycle::ProcessService nginx("remote-cache", options);

  absl::Status status = nginx.Start(lifecycle::Context::Background());
  if (status.ok()) {
    lifecycle::Service* services[] = {&nginx};
    status = lifecycle::WaitAllStarted(services);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "remote cache: nginx did not start: %s\n%s\n",
                 status.ToString().c_str(),
                 absl::StrJoin(nginx.LastOutputLines(), "\n").c_str());
    nginx.Stop();
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::string tmp = absl::StrCat(port_file, ".", getpid());
    std::ofstream(tmp) << port << "\n";
    fs::rename(tmp, port_file, ec);
  }
  std::printf(
      "remote cache ready: --remote_cache=http://127.0.0.1:%d "
      "(folder %s)\n",
      port, root.c_str());
  std::fflush(stdout);

  // SIGINT and SIGTERM were blocked in every thread (main() did it before
  // any thread was made); they are taken here, a second at a time, between
  // checks that nginx still runs and prunes.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  absl::Time next_prune = absl::Now() + absl::Minutes(1);
  for (;;) {
    timespec second = {1, 0};
    int sig = sigtimedwait(&stop_signals, nullptr, &second);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (nginx.Stopped().IsClosed()) {
      std::fprintf(stderr, "remote cache: nginx ended: %s\n%s\n",
                   nginx.Snapshot().status.ToString().c_str(),
                   absl::StrJoin(nginx.LastOutputLines(), "\n").c_str());
      return 1;
    }
    if (max_bytes > 0 && absl::Now() >= next_prune) {
      Prune(root, max_bytes);
      next_prune = absl::Now() + absl::Minutes(1);
    }
  }
  nginx.Stop();
  std::printf("remote cache stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::SetProgramUsageMessage(
      "A Bazel HTTP remote cache on 127.0.0.1 (nginx WebDAV), until SIGINT "
      "or SIGTERM.\n  cache --dir=FOLDER [--port=N] [--port_file=FILE] "
      "[--max_size_mb=N]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const int port = absl::GetFlag(FLAGS_port);
  if (rest.size() > 1 || dir.empty() || port < 0 || port > 65535 ||
      absl::GetFlag(FLAGS_max_size_mb) < 0) {
    std::fprintf(stderr,
                 "%s\ncache: --dir is required, --port is 0 to 65535 and "
                 "--max_size_mb is not negative%s%s\n",
                 absl::ProgramUsageMessage().data(),
                 rest.size() > 1 ? "; unexpected argument " : "",
                 rest.size() > 1 ? rest[1] : "");
    return 2;
  }
  return Run(dir);
}
