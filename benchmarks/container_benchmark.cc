// Containers started as services, side by side in one run
// (docs/PERFORMANCE.md, "Containers"):
//
//   ContainerReady/engine_floor   `podman run IMAGE true` from start to exit:
//                                 the least a container costs (create, start,
//                                 a program that exits at once); its removal
//                                 is not timed.
//   ContainerReady/notification   ContainerService: Start() until Started(),
//                                 Redis ready by its own READY=1 through
//                                 --sdnotify=container.
//   ContainerReady/poll_100ms     the same container, ready when a connection
//                                 to its published port succeeds, probed every
//                                 100ms: Testcontainers' habit.
//   ContainerReady/native_process the same Redis as a ProcessService on this
//                                 machine, by notification: what the engine
//                                 adds.
//
// Each iteration starts a new container; stopping it is not timed. Real time.
// Needs podman and the image tools/test_images.sh builds.
// Run: bash tools/bench.sh --containers (5 repetitions, medians).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lifecycle/container_service.h"
#include "lifecycle/process_service.h"

namespace {

using lifecycle::ContainerEngine;
using lifecycle::ContainerOptions;
using lifecycle::ContainerService;
using lifecycle::Context;
using lifecycle::ProcessOptions;
using lifecycle::ProcessService;
using lifecycle::Readiness;

constexpr char kImage[] = "localhost/lifecycle-test/servers:1";

// Runs `argv` to its end; whether it exited 0.
bool Run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool Connects(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

bool HaveEngineAndImage(benchmark::State& state) {
  ContainerEngine engine = ContainerEngine::FromEnvironment();
  std::vector<std::string> exists = {engine.executable};
  exists.insert(exists.end(), engine.global_args.begin(),
                engine.global_args.end());
  exists.insert(exists.end(), {"image", "exists", kImage});
  if (!Run(exists)) {
    state.SkipWithError(
        "podman or the test image is missing: bash "
        "tools/setup.sh --containers");
    return false;
  }
  return true;
}

ContainerOptions Redis(bool notify) {
  ContainerOptions o;
  o.image = kImage;
  o.command = {"redis-server", "--save",           "",  "--appendonly",
               "no",           "--protected-mode", "no"};
  o.ports = {6379};
  if (notify) {
    o.command.insert(o.command.end(), {"--supervised", "systemd"});
    o.ready_when = {Readiness::Notification()};
  }
  return o;
}

enum Way { kEngineFloor, kNotification, kPoll100ms, kNativeProcess };

void ContainerReady(benchmark::State& state, Way way) {
  if (!HaveEngineAndImage(state)) return;
  ContainerEngine engine = ContainerEngine::FromEnvironment();
  std::vector<std::string> floor = {engine.executable};
  floor.insert(floor.end(), engine.global_args.begin(),
               engine.global_args.end());
  std::vector<std::string> remove = floor;
  const std::string name = absl::StrCat("lifecycle-bench-floor-", getpid());
  floor.insert(floor.end(), {"run", "--name", name, "--pull=never", "--ulimit",
                             "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                             kImage, "true"});
  remove.insert(remove.end(), {"rm", "-f", "-t", "0", name});
  for (auto _ : state) {
    switch (way) {
      case kEngineFloor:
        if (!Run(floor)) state.SkipWithError("podman run failed");
        state.PauseTiming();
        Run(remove);
        state.ResumeTiming();
        break;
      case kNotification:
      case kPoll100ms: {
        ContainerService redis("redis", Redis(way == kNotification));
        if (!redis.Start(Context::Background()).ok()) {
          state.SkipWithError("the container did not start");
          break;
        }
        if (way == kNotification) {
          redis.Started().Wait();
        } else {
          while (!Connects(redis.MappedPort(6379))) {
            absl::SleepFor(absl::Milliseconds(100));
          }
        }
        state.PauseTiming();
        redis.Stop();
        state.ResumeTiming();
        break;
      }
      case kNativeProcess: {
        ProcessOptions o;
        o.executable = "redis-server";
        o.args = {"--port",       "0",  "--save",       "",
                  "--appendonly", "no", "--supervised", "systemd"};
        o.ready_when = {Readiness::Notification()};
        ProcessService redis("redis", o);
        if (!redis.Start(Context::Background()).ok()) {
          state.SkipWithError("redis-server did not start");
          break;
        }
        redis.Started().Wait();
        state.PauseTiming();
        redis.Stop();
        state.ResumeTiming();
        break;
      }
    }
  }
}
BENCHMARK_CAPTURE(ContainerReady, engine_floor, kEngineFloor)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(10);
BENCHMARK_CAPTURE(ContainerReady, notification, kNotification)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(10);
BENCHMARK_CAPTURE(ContainerReady, poll_100ms, kPoll100ms)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(10);
BENCHMARK_CAPTURE(ContainerReady, native_process, kNativeProcess)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(10);

}  // namespace

BENCHMARK_MAIN();
