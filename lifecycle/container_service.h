// -----------------------------------------------------------------------------
// container_service.h
// -----------------------------------------------------------------------------
//
// `ContainerService` runs an image as a service: a server the test machine
// does not have (a pinned version, a broker, your team's own image) started
// in a container, with no daemon — podman by default — and never left behind:
//
//   lifecycle::ContainerOptions redis;
//   redis.image = "localhost/lifecycle-test/servers:1";
//   redis.command = {"redis-server", "--supervised", "systemd", "--save", "",
//                    "--protected-mode", "no"};
//   redis.ports = {6379};  // published on 127.0.0.1, on a free host port
//   redis.ready_when = {lifecycle::Readiness::Notification()};
//   lifecycle::ContainerService server("redis", redis);
//   absl::Status s = server.Start(ctx);
//   server.Started().Wait();              // the server said READY=1
//   int port = server.MappedPort(6379);   // connect to 127.0.0.1:port
//
// It is a `ProcessService` whose program is the engine's client, attached to
// the container (`podman run --rm ...`): it has a path, a snapshot, a place in
// a start-up graph and in supervision, its log (the container's stdout and
// stderr) and last lines, like any other program. What it adds:
//
//   * Readiness (`ready_when`), every rule of `Readiness` against the
//     container: `Notification()` is the server's own READY=1, forwarded by
//     `podman run --sdnotify=container` (pushed, never polled; not with
//     Docker, which has no such forwarding); `TcpPort(p)` and `HttpGet(p)` name
//     the *container's* port p, probed on its published host port;
//     `CommandSucceeds(argv)` runs `argv` inside the container (`exec`);
//     `OutputLine`, `UnixSocket` (a path on this machine, for example in a
//     mounted folder) and `Probe` as for any program. `ready_when_healthy` adds
//     the image's own HEALTHCHECK (or `health_command`). `ListensOnTcp()` does
//     not apply: the engine, not the program, holds the host ports.
//   * Ports (`ports`): each published on 127.0.0.1 only, on a host port that
//     was free when the service was made, kept across its restarts
//     (`MappedPort()`, and "ports" in the snapshot's details).
//   * Never left behind, with no reaper container: the container carries the
//     label `lifecycle.owner` (this process's pid and start time). `Stop()`
//     sends SIGTERM to the client, which passes it to the container's main
//     process, then SIGKILL after `stop_grace`; after every run, and from the
//     guard process when this process dies (SIGKILL, abort, the hang
//     watchdog), the run's container (by its id, never another container
//     of the same name) is removed with the engine's `rm -f` — the
//     engine's monitor (`conmon`) outlives its client, so ending the client is
//     not enough. The first start in a process also removes the containers
//     and networks whose owner no longer runs (a machine that lost power).
//   * Nothing is pulled unless `pull` is set: an image that is not local fails
//     the start naming it. Errors name the service, the image and what the
//     engine said; a container that exits before it is ready gives its exit
//     status and last log lines; an engine that hangs is bounded by
//     `start_timeout`.
//
// The engine (`ContainerEngine`): podman, or Docker's command-line client,
// from $LIFECYCLE_CONTAINER_ENGINE. On hosts where the defaults fail —
// crun on a hybrid cgroup layout, raising resource limits not permitted — the
// defaults here work: podman gets `--cgroup-manager=cgroupfs` and, when runc is
// installed, `--runtime=runc`, and every container gets this process's own
// open-file and process limits (`--ulimit`), never higher ones. docs/CONTAINERS.md
// has the details.
//
// `ContainerNetwork` is a network of its own for containers that reach one
// another by name: start it before them, give its `name()` as their
// `network` (`network_name()`), and each container is reachable on it by its `network_aliases`
// (by default its service's name).
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_CONTAINER_SERVICE_H_
#define LIFECYCLE_CONTAINER_SERVICE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/process_service.h"

namespace lifecycle {

// Which container engine runs the containers, and how.
struct ContainerEngine {
  // "podman", "docker", or a path to either; a name is searched in PATH.
  std::string executable = "podman";
  // Arguments before the engine's subcommand (`podman ARGS run ...`).
  std::vector<std::string> global_args;

  // Whether this is Docker's client (its name ends in "docker").
  bool is_docker() const;

  // The engine this machine uses: $LIFECYCLE_CONTAINER_ENGINE ("podman",
  // "docker" or a path; default "podman"), with $LIFECYCLE_CONTAINER_ENGINE_ARGS
  // as its global arguments (split at spaces) when set, else the defaults:
  // none for Docker; for podman `--cgroup-manager=cgroupfs`, and
  // `--runtime=runc` when runc is in PATH.
  static ContainerEngine FromEnvironment();
};

// A folder of this machine seen inside the container.
struct ContainerMount {
  std::string host_path;       // absolute; must exist
  std::string container_path;  // absolute
  bool read_only = false;
};

// What a `ContainerService` runs, and how.
struct ContainerOptions {
  // The image, as the engine names it ("localhost/lifecycle-test/servers:1").
  std::string image;
  // The command; empty: the image's own.
  std::vector<std::string> command;
  // Set in the container's environment (not this process's: the container
  // has its own).
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<ContainerMount> mounts;
  // Container TCP ports to publish on 127.0.0.1 (see `MappedPort()`).
  std::vector<int> ports;
  // The container's name. Empty: "lifecycle-<service name>-<pid>-<n>",
  // unique to this process. A name taken by a live container fails the start.
  std::string container_name;
  // Labels beside the library's own (`lifecycle.owner`, `lifecycle.service`).
  std::vector<std::pair<std::string, std::string>> labels;
  // A `ContainerNetwork`'s name to join; empty: the engine's default network.
  std::string network;
  // The names other containers on `network` reach it by; empty: the
  // service's name.
  std::vector<std::string> network_aliases;
  // The user inside the container (`--user`); empty: the image's.
  std::string user;
  // When it is ready: every rule must hold (see the top of this file).
  // Empty: once the engine has started it.
  std::vector<Readiness> ready_when;
  // Also wait for the image's HEALTHCHECK, or `health_command`, to pass.
  bool ready_when_healthy = false;
  // A health check of your own, run inside the container (argv).
  std::vector<std::string> health_command;
  // Pull the image when it is not local. Off: nothing is pulled unless asked.
  bool pull = false;
  // More arguments for the engine's `run`, before the image. Not one that
  // detaches (`-d`): the client must stay attached to the container.
  std::vector<std::string> run_args;
  // How long it may take to become ready, the engine's own start included.
  absl::Duration start_timeout = absl::Seconds(60);
  // How long `Stop()` waits after SIGTERM before SIGKILL; zero or more.
  absl::Duration stop_grace = absl::Seconds(10);
  // The log of the container's output (see `ProcessOptions::log_path`).
  std::string log_path;
  ContainerEngine engine = ContainerEngine::FromEnvironment();
};

class ContainerService : public ProcessService {
 public:
  ContainerService(std::string name, ContainerOptions options);
  ~ContainerService() override;

  // The container's name, as the engine knows it.
  const std::string& container_name() const { return container_name_; }
  const std::string& image() const { return options_.image; }
  // The port of 127.0.0.1 that container port `container_port` is published
  // on, or 0 when it is not in `ports`.
  int MappedPort(int container_port) const;

 protected:
  absl::Status OnStart(const Context& ctx) override;
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;

 private:
  struct Plan;
  explicit ContainerService(Plan plan);

  const ContainerOptions options_;
  const std::string container_name_;
  const std::vector<std::pair<int, int>> ports_;  // (container, host)
  const absl::Status invalid_;  // bad options, found when made
  const std::string cidfile_;   // where the engine writes the container's id
};

// A network of the engine's for containers that reach one another by name,
// made by `Start()` and removed when it stops (with the containers still on
// it); removed by a guard process too when this process dies.
class ContainerNetwork : public BaseService {
 public:
  // `network_name` empty: "lifecycle-<name>-<pid>-<n>".
  explicit ContainerNetwork(
      std::string name, std::string network_name = "",
      ContainerEngine engine = ContainerEngine::FromEnvironment());
  ~ContainerNetwork() override;

  // The network's name, for `ContainerOptions::network`.
  const std::string& network_name() const { return network_name_; }

 private:
  absl::Status OnStart(const Context& ctx) override;
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;

  const ContainerEngine engine_;
  const std::string network_name_;
};

}  // namespace lifecycle

#endif  // LIFECYCLE_CONTAINER_SERVICE_H_
