#include "lifecycle/container_service.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "lifecycle/process_internal.h"

namespace lifecycle {

namespace {

using process_internal::CommandResult;
using process_internal::RunCommand;

constexpr char kOwnerLabel[] = "lifecycle.owner";
constexpr absl::Duration kEngineTimeout = absl::Seconds(30);

// This process as the owner label names it: "PID:START", its start time (in
// clock ticks since boot) telling it from a later process with the same pid.
std::string OwnerOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return "";
  // After "pid (comm)": state is field 3, starttime field 22.
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(stat).substr(close_paren + 2), ' ', absl::SkipEmpty());
  if (fields.size() < 20) return "";
  return absl::StrCat(pid, ":", fields[19]);
}

const std::string& ThisOwner() {
  static const std::string* owner = new std::string(OwnerOf(getpid()));
  return *owner;
}

// Whether the process an owner label names still runs.
bool OwnerRuns(absl::string_view owner) {
  int pid = 0;
  if (!absl::SimpleAtoi(owner.substr(0, owner.find(':')), &pid) || pid <= 0) {
    return false;
  }
  return OwnerOf(pid) == owner;
}

// A port of 127.0.0.1 that was free a moment ago.
int FreeLocalPort() {
  process_internal::Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(a);
  if (!fd.valid() ||
      bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &size) != 0) {
    return 0;
  }
  return ntohs(a.sin_port);
}

// "lifecycle-<name>-<pid>-<n>", with what engines refuse in a name replaced.
std::string UniqueName(absl::string_view name) {
  static std::atomic<uint64_t> next{0};
  std::string clean;
  for (char c : name) {
    clean += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
                 ? c
                 : '-';
  }
  return absl::StrCat("lifecycle-", clean, "-", getpid(), "-", next++);
}

std::vector<std::string> EngineCommand(const ContainerEngine& engine,
                                       std::vector<std::string> args) {
  std::vector<std::string> argv = {engine.executable};
  argv.insert(argv.end(), engine.global_args.begin(), engine.global_args.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// The command that removes container or network `name` and succeeds when it
// is gone (also when it was gone already).
std::vector<std::string> RemoveCommand(const ContainerEngine& engine,
                                       bool network, const std::string& name) {
  if (engine.is_docker()) {
    // Docker's `rm -f` fails for a container that is gone: check instead.
    std::string kind = network ? "network" : "container";
    return {"sh", "-c",
            absl::StrCat("\"$0\" ", kind, " rm ", network ? "" : "-f ",
                         "\"$1\" >/dev/null 2>&1; ! \"$0\" ", kind,
                         " inspect \"$1\" >/dev/null 2>&1"),
            engine.executable, name};
  }
  if (network) return EngineCommand(engine, {"network", "rm", "-f", name});
  return EngineCommand(engine, {"rm", "-f", "-t", "0", "--ignore", name});
}

// The command that removes the container whose id the engine wrote to
// "<files>.cid" (`run --cidfile`): that container only, never another one that
// has the same name, and nothing when the run made none.
// Then it removes the service's files ("<files>.cid", "<files>.notify"),
// which a killed test would leave otherwise.
std::vector<std::string> RemoveByIdCommand(const ContainerEngine& engine,
                                           const std::string& files) {
  // $1: the files' prefix; the rest: the engine and its global arguments.
  const char* remove =
      engine.is_docker()
          // Docker's `rm -f` fails for a container that is gone: check instead.
          ? "id=$(cat \"$f.cid\"); \"$@\" rm -f \"$id\" >/dev/null 2>&1; "
            "! \"$@\" container inspect \"$id\" >/dev/null 2>&1 || s=1"
          : "\"$@\" rm -f -t 0 --ignore \"$(cat \"$f.cid\")\" >/dev/null || "
            "s=$?";
  std::vector<std::string> argv = {
      "sh", "-c",
      absl::StrCat("f=$1; shift; s=0; if [ -s \"$f.cid\" ]; then ", remove,
                   "; fi; rm -f \"$f.cid\" \"$f.notify\"; exit $s"),
      "sh", files};
  std::vector<std::string> engine_argv = EngineCommand(engine, {});
  argv.insert(argv.end(), engine_argv.begin(), engine_argv.end());
  return argv;
}

// `--ulimit` values that are this process's own: an engine's defaults may be
// higher, which a host without CAP_SYS_RESOURCE refuses.
std::vector<std::string> OwnLimits() {
  std::vector<std::string> args;
  for (auto [name, resource] :
       {std::pair<const char*, int>{"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC}}) {
    rlimit limit;
    if (getrlimit(resource, &limit) != 0) continue;
    if (resource == RLIMIT_NPROC) {
      // podman runs with no more than the machine's pid_max processes, and
      // refuses a container more than it has itself.
      int64_t pid_max = 0;
      std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
      if (pid_max > 0) {
        limit.rlim_cur = std::min<rlim_t>(limit.rlim_cur, pid_max);
        limit.rlim_max = std::min<rlim_t>(limit.rlim_max, pid_max);
      }
    }
    auto text = [](rlim_t value) {
      return value == RLIM_INFINITY ? std::string("-1") : absl::StrCat(value);
    };
    args.push_back("--ulimit");
    args.push_back(absl::StrCat(name, "=", text(limit.rlim_cur), ":",
                                text(limit.rlim_max)));
  }
  return args;
}

// Removes the containers and networks whose owner no longer runs: once per
// engine and process.
void SweepLeftovers(const ContainerEngine& engine) {
  static absl::Mutex mu(absl::kConstInit);
  static std::set<std::string>* swept ABSL_GUARDED_BY(mu) =
      new std::set<std::string>();
  absl::MutexLock lock(&mu);
  if (!swept->insert(engine.executable).second) return;
  for (bool network : {false, true}) {
    // Labels as the engine prints them: "map[k:v k2:v2]" (podman's
    // containers), "k=v,k2=v2" (podman's networks, Docker): found by their
    // key either way. The engines' label filters differ too, so every
    // container and network is listed.
    std::vector<std::string> list =
        network ? std::vector<std::string>{"network", "ls"}
                : std::vector<std::string>{"ps", "-a"};
    list.insert(list.end(), {"--format", network ? "{{.Name}} {{.Labels}}"
                                                 : "{{.Names}} {{.Labels}}"});
    CommandResult listed =
        RunCommand(EngineCommand(engine, list), kEngineTimeout);
    if (!listed.succeeded()) continue;
    for (absl::string_view line :
         absl::StrSplit(listed.output, '\n', absl::SkipEmpty())) {
      std::pair<std::string, std::string> entry =
          absl::StrSplit(line, absl::MaxSplits(' ', 1));
      size_t at = entry.second.find(kOwnerLabel);
      if (entry.first.empty() || at == std::string::npos) continue;
      at += sizeof(kOwnerLabel);  // the key and its '=' or ':'
      std::string owner =
          entry.second.substr(at, entry.second.find_first_of(" ,]", at) - at);
      if (OwnerRuns(owner)) continue;
      RunCommand(RemoveCommand(engine, network, entry.first), kEngineTimeout);
    }
  }
}

bool IsAbsolute(const std::string& path) {
  return !path.empty() && path[0] == '/';
}

}  // namespace

// --- ContainerEngine -----------------------------------------------------------

bool ContainerEngine::is_docker() const {
  return absl::EndsWith(executable, "docker");
}

ContainerEngine ContainerEngine::FromEnvironment() {
  ContainerEngine engine;
  const char* chosen = std::getenv("LIFECYCLE_CONTAINER_ENGINE");
  if (chosen != nullptr && *chosen != '\0') engine.executable = chosen;
  if (const char* args = std::getenv("LIFECYCLE_CONTAINER_ENGINE_ARGS")) {
    engine.global_args = absl::StrSplit(args, ' ', absl::SkipEmpty());
    return engine;
  }
  if (engine.is_docker()) return engine;
  engine.global_args = {"--cgroup-manager=cgroupfs"};
  const char* path = std::getenv("PATH");
  if (process_internal::Resolve("runc", "", path).ok()) {
    engine.global_args.push_back("--runtime=runc");
  }
  return engine;
}

// --- ContainerService ----------------------------------------------------------

// What the constructor works out before the `ProcessService` is made.
struct ContainerService::Plan {
  std::string name;
  ContainerOptions options;
  std::string container_name;
  std::vector<std::pair<int, int>> ports;
  absl::Status invalid;
  ProcessOptions process;
  // Where this service's files go: "<files>.cid", "<files>.notify".
  std::string files;
  std::string cidfile;

  static Plan Make(std::string name, ContainerOptions options);
};

ContainerService::Plan ContainerService::Plan::Make(std::string name,
                                                    ContainerOptions options) {
  Plan plan;
  plan.name = std::move(name);
  const ContainerEngine& engine = options.engine;
  plan.container_name = options.container_name.empty() ? UniqueName(plan.name)
                                                       : options.container_name;
  auto invalid = [&](std::string why) {
    if (plan.invalid.ok()) plan.invalid = absl::InvalidArgumentError(why);
  };
  if (options.image.empty()) invalid("no image: `image` is empty");
  for (int port : options.ports) {
    if (port < 1 || port > 65535) {
      invalid(absl::StrCat("port ", port, " is not 1-65535"));
      continue;
    }
    bool twice = false;
    for (const auto& [container, host] : plan.ports) twice |= container == port;
    if (twice) {
      invalid(absl::StrCat("port ", port, " is published twice"));
      continue;
    }
    plan.ports.emplace_back(port, FreeLocalPort());
  }
  auto host_port = [&](int container_port) {
    for (const auto& [container, host] : plan.ports) {
      if (container == container_port) return host;
    }
    return 0;
  };
  for (const ContainerMount& m : options.mounts) {
    if (!IsAbsolute(m.host_path) || !IsAbsolute(m.container_path)) {
      invalid(absl::StrCat("mount '", m.host_path, "' -> '", m.container_path,
                           "': both paths must be absolute"));
    }
  }

  // Readiness, translated from the container's view to this machine's.
  std::vector<Readiness> ready_when;
  bool notify = false;
  for (const Readiness& r : options.ready_when) {
    switch (r.kind()) {
      case Readiness::Kind::kNotification:
        notify = true;
        if (engine.is_docker()) {
          invalid(
              "Readiness::Notification() needs podman's "
              "--sdnotify=container; Docker does not forward READY=1 (use "
              "another rule, such as TcpPort or OutputLine)");
        }
        ready_when.push_back(r);
        break;
      case Readiness::Kind::kTcpPort:
      case Readiness::Kind::kHttpGet: {
        int host = host_port(r.port_);
        if (host == 0) {
          invalid(absl::StrCat("readiness rule '", r.description(),
                               "' names container port ", r.port_,
                               ", which is not published: add it to `ports`"));
          break;
        }
        ready_when.push_back(r.kind() == Readiness::Kind::kTcpPort
                                 ? Readiness::TcpPort(host)
                                 : Readiness::HttpGet(host, r.path_));
        break;
      }
      case Readiness::Kind::kCommand: {
        std::vector<std::string> exec = {"exec", plan.container_name};
        exec.insert(exec.end(), r.argv_.begin(), r.argv_.end());
        Readiness inside =
            Readiness::CommandSucceeds(EngineCommand(engine, exec));
        inside.description_ =
            absl::StrCat("the command '", absl::StrJoin(r.argv_, " "),
                         "' succeeding inside the container");
        ready_when.push_back(std::move(inside));
        break;
      }
      case Readiness::Kind::kListensOnTcp:
        invalid(
            "Readiness::ListensOnTcp() does not apply to a container (the "
            "engine holds its host ports): publish the port in `ports` and "
            "use TcpPort");
        break;
      default:
        ready_when.push_back(r);
        break;
    }
  }
  if (options.ready_when_healthy) {
    Readiness healthy = Readiness::CommandSucceeds(
        engine.is_docker()
            ? std::vector<std::string>{"sh", "-c",
                                       "[ \"$(\"$0\" inspect -f "
                                       "'{{.State.Health.Status}}' \"$1\")\" "
                                       "= healthy ]",
                                       engine.executable, plan.container_name}
            : EngineCommand(engine,
                            {"healthcheck", "run", plan.container_name}));
    healthy.description_ = "the container's health check passing";
    ready_when.push_back(std::move(healthy));
  }

  // The engine's command line.
  static std::atomic<uint64_t> next{0};
  plan.files = absl::StrCat("/tmp/lifecycle-container-", getpid(), "-", next++);
  plan.cidfile = absl::StrCat(plan.files, ".cid");
  std::vector<std::string> args = engine.global_args;
  args.insert(
      args.end(),
      {"run", "--rm", "--cidfile", plan.cidfile, "--name", plan.container_name,
       "--label", absl::StrCat(kOwnerLabel, "=", ThisOwner()), "--label",
       absl::StrCat("lifecycle.service=", plan.name), "--pull",
       options.pull ? "missing" : "never"});
  if (notify) args.push_back("--sdnotify=container");
  std::vector<std::string> limits = OwnLimits();
  args.insert(args.end(), limits.begin(), limits.end());
  for (const auto& [container, host] : plan.ports) {
    args.insert(args.end(),
                {"-p", absl::StrCat("127.0.0.1:", host, ":", container)});
  }
  for (const auto& [key, value] : options.env) {
    args.insert(args.end(), {"-e", absl::StrCat(key, "=", value)});
  }
  for (const ContainerMount& m : options.mounts) {
    args.insert(args.end(),
                {"-v", absl::StrCat(m.host_path, ":", m.container_path,
                                    m.read_only ? ":ro" : "")});
  }
  for (const auto& [key, value] : options.labels) {
    args.insert(args.end(), {"--label", absl::StrCat(key, "=", value)});
  }
  if (!options.network.empty()) {
    args.insert(args.end(), {"--network", options.network});
    std::vector<std::string> aliases = options.network_aliases;
    if (aliases.empty()) aliases.push_back(plan.name);
    for (const std::string& alias : aliases) {
      args.insert(args.end(), {"--network-alias", alias});
    }
  }
  if (!options.user.empty()) args.insert(args.end(), {"--user", options.user});
  if (!options.health_command.empty()) {
    std::vector<std::string> quoted;
    for (const std::string& a : options.health_command) {
      quoted.push_back(absl::StrCat("\"", absl::CHexEscape(a), "\""));
    }
    args.insert(
        args.end(),
        {"--health-cmd", absl::StrCat("[", absl::StrJoin(quoted, ","), "]")});
  }
  // The health check runs when a readiness probe asks, not on a timer (which
  // podman would hand to systemd).
  if ((options.ready_when_healthy || !options.health_command.empty()) &&
      !engine.is_docker()) {
    args.push_back("--health-interval=disable");
  }
  args.insert(args.end(), options.run_args.begin(), options.run_args.end());
  args.push_back(options.image);
  args.insert(args.end(), options.command.begin(), options.command.end());

  ProcessOptions& p = plan.process;
  p.executable = engine.executable;
  p.args = std::move(args);
  p.ready_when = std::move(ready_when);
  p.start_timeout = options.start_timeout;
  p.stop_grace = options.stop_grace;
  p.log_path = options.log_path;
  p.cleanup_command = RemoveByIdCommand(engine, plan.files);
  if (notify) {
    // A path: an abstract socket does not cross into the container's
    // network namespace.
    p.notify_socket_path = absl::StrCat(plan.files, ".notify");
  }
  plan.options = std::move(options);
  return plan;
}

ContainerService::ContainerService(std::string name, ContainerOptions options)
    : ContainerService(Plan::Make(std::move(name), std::move(options))) {}

ContainerService::ContainerService(Plan plan)
    : ProcessService(plan.name, std::move(plan.process)),
      options_(std::move(plan.options)),
      container_name_(std::move(plan.container_name)),
      ports_(std::move(plan.ports)),
      invalid_(std::move(plan.invalid)),
      cidfile_(std::move(plan.cidfile)) {}

ContainerService::~ContainerService() {
  StopForDestruction();
  unlink(cidfile_.c_str());
}

int ContainerService::MappedPort(int container_port) const {
  for (const auto& [container, host] : ports_) {
    if (container == container_port) return host;
  }
  return 0;
}

absl::Status ContainerService::OnStart(const Context& ctx) {
  const ContainerEngine& engine = options_.engine;
  auto fail = [&](absl::StatusCode code, absl::string_view why) {
    return absl::Status(
        code, absl::StrCat("container '", container_name_, "' of image '",
                           options_.image, "': ", why));
  };
  if (!invalid_.ok()) return fail(invalid_.code(), invalid_.message());
  if (!process_internal::Resolve(engine.executable, "", std::getenv("PATH"))
           .ok()) {
    return fail(absl::StatusCode::kFailedPrecondition,
                absl::StrCat("the container engine '", engine.executable,
                             "' is not installed (Debian package ",
                             engine.is_docker() ? "docker.io" : "podman", ")"));
  }
  for (const ContainerMount& m : options_.mounts) {
    struct stat st;
    if (stat(m.host_path.c_str(), &st) != 0) {
      return fail(absl::StatusCode::kNotFound,
                  absl::StrCat("the mount's folder '", m.host_path,
                               "' does not exist"));
    }
  }
  SweepLeftovers(engine);
  // The engine refuses to write over the id of the last run's container
  // (removed after that run).
  unlink(cidfile_.c_str());
  SetDetail("image", options_.image);
  SetDetail("container", container_name_);
  std::vector<std::string> ports;
  for (const auto& [container, host] : ports_) {
    ports.push_back(absl::StrCat(container, "->127.0.0.1:", host));
  }
  SetDetail("ports", absl::StrJoin(ports, ","));
  if (!options_.network.empty()) SetDetail("network", options_.network);
  absl::Status s = ProcessService::OnStart(ctx);
  if (!s.ok()) return fail(s.code(), s.message());
  return absl::OkStatus();
}

absl::Status ContainerService::Run(const Context& ctx,
                                   absl::FunctionRef<void()> started) {
  absl::Status s = ProcessService::Run(ctx, started);
  if (s.ok() || s.code() == absl::StatusCode::kCancelled) return s;
  // The engine's own complaints, made plain.
  std::string hint;
  std::string said = absl::StrJoin(LastOutputLines(10), "\n");
  if (absl::StrContains(said, "image not known") ||
      absl::StrContains(said, "No such image") ||
      absl::StrContains(said, "Unable to find image")) {
    hint = options_.pull
               ? "the image could not be pulled; "
               : "the image is not among the engine's local images, and "
                 "nothing is pulled unless `pull` is set (this project's test "
                 "images: tools/setup.sh --containers); ";
  } else if (absl::StrContains(said, "address already in use")) {
    hint = "a published host port was taken after it was chosen; ";
  } else if (absl::StrContains(said, "already in use")) {
    hint = absl::StrCat(
        "the name is taken by a container that is not a "
        "leftover of a finished test (remove it: ",
        options_.engine.executable, " rm -f ", container_name_, "); ");
  }
  absl::StatusCode code = s.code();
  if (absl::StartsWith(hint, "the image is not")) {
    code = absl::StatusCode::kNotFound;
  }
  return absl::Status(
      code, absl::StrCat("container '", container_name_, "' of image '",
                         options_.image, "': ", hint, s.message()));
}

// --- ContainerNetwork ----------------------------------------------------------

ContainerNetwork::ContainerNetwork(std::string name, std::string network_name,
                                   ContainerEngine engine)
    : BaseService(std::move(name)),
      engine_(std::move(engine)),
      network_name_(network_name.empty() ? UniqueName(std::string(Name()))
                                         : std::move(network_name)) {}

ContainerNetwork::~ContainerNetwork() { StopForDestruction(); }

absl::Status ContainerNetwork::OnStart(const Context&) {
  if (!process_internal::Resolve(engine_.executable, "", std::getenv("PATH"))
           .ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("network '", network_name_, "': the container engine '",
                     engine_.executable, "' is not installed (Debian package ",
                     engine_.is_docker() ? "docker.io" : "podman", ")"));
  }
  SweepLeftovers(engine_);
  SetDetail("network", network_name_);
  return absl::OkStatus();
}

absl::Status ContainerNetwork::Run(const Context& ctx,
                                   absl::FunctionRef<void()> started) {
  // The guard first: it removes the network if this process dies from here.
  int guard[2];
  if (pipe2(guard, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "network '", network_name_, "': ", process_internal::ErrnoText(errno)));
  }
  process_internal::Fd guard_write(guard[1]);
  std::vector<std::string> remove =
      RemoveCommand(engine_, /*network=*/true, network_name_);
  absl::StatusOr<std::string> remover =
      process_internal::Resolve(remove[0], "", std::getenv("PATH"));
  if (remover.ok()) remove[0] = *remover;
  const process_internal::GuardCommand guard_cleanup(remove);
  pid_t guard_pid = process_internal::ForkGuard(0, guard[0], "", guard_cleanup);
  close(guard[0]);
  absl::Cleanup reap_guard = [&] {
    if (guard_pid > 0) {
      int status;
      kill(guard_pid, SIGKILL);
      waitpid(guard_pid, &status, 0);
    }
  };

  CommandResult created = RunCommand(
      EngineCommand(engine_, {"network", "create", "--label",
                              absl::StrCat(kOwnerLabel, "=", ThisOwner()),
                              network_name_}),
      kEngineTimeout);
  if (!created.succeeded()) {
    return absl::UnavailableError(absl::StrCat(
        "network '", network_name_, "' could not be made (",
        created.timed_out ? "the engine did not answer within 30s"
                          : process_internal::DescribeExit(created.status),
        "): ", absl::StripAsciiWhitespace(created.output)));
  }
  started();
  ctx.Done().Wait();
  CommandResult removed = RunCommand(remove, kEngineTimeout);
  if (!removed.succeeded()) {
    return absl::UnavailableError(
        absl::StrCat("network '", network_name_, "' could not be removed: ",
                     absl::StripAsciiWhitespace(removed.output)));
  }
  return ctx.Cause();
}

}  // namespace lifecycle
