// Real servers started as services, side by side in one run
// (docs/PERFORMANCE.md, "Real servers"):
//
//   RedisReady/first_connection  Start() until a connection to its socket first
//                                succeeds, probed every 100us: when the server
//                                is actually ready (the floor).
//   RedisReady/notification      Start() until Started(), ready by its own
//                                READY=1 (Readiness::Notification()).
//   RedisReady/poll_100ms        Start() until a connection succeeds, probed
//                                every 100ms: the container tools' habit.
//   PostgresFresh/template_copy  a fresh PostgreSQL ready to serve: copy a data
//                                directory made once by initdb, then start.
//   PostgresFresh/initdb         the same with initdb each time.
//
// Each iteration starts a new server; stopping it is not timed. Real time.
// Run: bash tools/bench.sh --process (5 repetitions, medians).

#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lifecycle/process_service.h"

namespace {

using lifecycle::Context;
using lifecycle::ProcessOptions;
using lifecycle::ProcessService;
using lifecycle::Readiness;

constexpr char kRedis[] = "/usr/bin/redis-server";
constexpr char kPostgresBin[] = "/usr/lib/postgresql/15/bin";

std::string TempDir() {
  char dir[] = "/tmp/lifecycle-bench-XXXXXX";
  return mkdtemp(dir) != nullptr ? dir : "/tmp";
}

bool Connects(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

ProcessOptions Redis(const std::string& socket, bool notify) {
  ProcessOptions o;
  o.executable = kRedis;
  o.args = {"--port", "0", "--unixsocket", socket,
            "--save", "",  "--appendonly", "no"};
  if (notify) {
    o.args.insert(o.args.end(), {"--supervised", "systemd"});
    o.ready_when = {Readiness::Notification()};
  }
  return o;
}

enum RedisWay { kFirstConnection, kNotification, kPoll100ms };

void RedisReady(benchmark::State& state, RedisWay way) {
  if (access(kRedis, X_OK) != 0) {
    state.SkipWithError("redis-server is not installed");
    return;
  }
  std::string dir = TempDir();
  for (auto _ : state) {
    std::string socket = absl::StrCat(dir, "/redis.sock");
    unlink(socket.c_str());
    ProcessService redis("redis", Redis(socket, way == kNotification));
    if (!redis.Start(Context::Background()).ok()) {
      state.SkipWithError("redis-server did not start");
      break;
    }
    switch (way) {
      case kNotification:
        redis.Started().Wait();
        break;
      case kFirstConnection:
        while (!Connects(socket)) absl::SleepFor(absl::Microseconds(100));
        break;
      case kPoll100ms:
        while (!Connects(socket)) absl::SleepFor(absl::Milliseconds(100));
        break;
    }
    state.PauseTiming();
    redis.Stop();
    state.ResumeTiming();
  }
}
BENCHMARK_CAPTURE(RedisReady, first_connection, kFirstConnection)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(20);
BENCHMARK_CAPTURE(RedisReady, notification, kNotification)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(20);
BENCHMARK_CAPTURE(RedisReady, poll_100ms, kPoll100ms)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(20);

// PostgreSQL's user when running as root (it refuses root), else our own.
std::string PostgresUser() { return geteuid() == 0 ? "postgres" : ""; }

// In memory when the machine has /dev/shm: copying a data directory there
// takes a tenth of the time it takes on a disk.
std::string DirForPostgres() {
  char in_memory[] = "/dev/shm/lifecycle-bench-XXXXXX";
  std::string dir = mkdtemp(in_memory) != nullptr ? in_memory : TempDir();
  if (passwd* pw = geteuid() == 0 ? getpwnam("postgres") : nullptr) {
    if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) return "/tmp";
  }
  return dir;
}

bool Initdb(const std::string& data) {
  ProcessOptions o;
  o.executable = std::string(kPostgresBin) + "/initdb";
  o.args = {"-D",           data,
            "--auth=trust", "--username=postgres",
            "--no-sync",    "--encoding=UTF8",
            "--locale=C",   "--wal-segsize=1"};
  o.user = PostgresUser();
  ProcessService initdb("initdb", o);
  if (!initdb.Start(Context::Background()).ok()) return false;
  initdb.Stopped().Wait();
  return initdb.Snapshot().state == lifecycle::ServiceState::kStopped;
}

void PostgresFresh(benchmark::State& state, bool from_template) {
  if (access((std::string(kPostgresBin) + "/postgres").c_str(), X_OK) != 0) {
    state.SkipWithError("postgresql-15 is not installed");
    return;
  }
  std::string template_dir = DirForPostgres() + "/template";
  if (from_template && !Initdb(template_dir)) {
    state.SkipWithError("initdb failed");
    return;
  }
  absl::Duration preparing, starting;
  for (auto _ : state) {
    absl::Time began = absl::Now();
    std::string dir = DirForPostgres();
    std::string data = dir + "/data";
    if (from_template) {
      std::string copy =
          absl::StrCat("cp -a '", template_dir, "' '", data, "'");
      if (std::system(copy.c_str()) != 0) {
        state.SkipWithError("cp failed");
        break;
      }
    } else if (!Initdb(data)) {
      state.SkipWithError("initdb failed");
      break;
    }
    absl::Time prepared = absl::Now();
    preparing += prepared - began;
    ProcessOptions o;
    o.executable = std::string(kPostgresBin) + "/postgres";
    o.args = {"-D", data,
              "-k", dir,
              "-c", "listen_addresses=",
              "-c", "fsync=off",
              "-c", "full_page_writes=off"};
    o.user = PostgresUser();
    o.ready_when = {Readiness::Notification()};
    ProcessService postgres("postgres", o);
    if (!postgres.Start(Context::Background()).ok()) {
      state.SkipWithError("postgres did not start");
      break;
    }
    postgres.Started().Wait();
    starting += absl::Now() - prepared;
    state.PauseTiming();
    postgres.Stop();
    if (std::system(absl::StrCat("rm -rf '", dir, "'").c_str()) != 0) {
      state.SkipWithError("rm failed");
    }
    state.ResumeTiming();
  }
  // Where the time goes: the data directory, then the server's start.
  state.counters["prepare_ms"] =
      benchmark::Counter(absl::ToDoubleMilliseconds(preparing) /
                         static_cast<double>(state.iterations()));
  state.counters["start_ms"] =
      benchmark::Counter(absl::ToDoubleMilliseconds(starting) /
                         static_cast<double>(state.iterations()));
  if (from_template) {
    std::string parent = template_dir.substr(0, template_dir.rfind('/'));
    if (std::system(absl::StrCat("rm -rf '", parent, "'").c_str()) != 0) {
      state.SkipWithError("rm failed");
    }
  }
}
BENCHMARK_CAPTURE(PostgresFresh, template_copy, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);
BENCHMARK_CAPTURE(PostgresFresh, initdb, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
