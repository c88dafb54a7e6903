// The ready-made servers of testing/servers/, side by side in one run
// (docs/PERFORMANCE.md, "Servers in a test"): what a test pays for an
// isolated database, by way of isolation.
//
//   PostgresPerTest/fresh_database  NewDatabase() on a running server, then
//                                   Release(): what PostgresTest's SetUp and
//                                   TearDown cost, with 20ms of test between
//                                   (untimed), so the pool refills as it does
//                                   between real tests.
//   PostgresPerTest/fresh_database_100ms_tests  the same with tests of 100ms.
//   PostgresPerTest/fresh_database_back_to_back  the same with no test in
//                                   between: the pool is empty, each database
//                                   is made on the spot.
//   PostgresPerTest/fresh_server    a new server per test from the machine's
//                                   template (the first server of a binary),
//                                   until its first database is handed out.
//   PostgresPerTest/initdb_each     the same with an empty template cache:
//                                   initdb every time.
//   MariadbPerTest/...              the same three for MariaDB.
//   RedisPerTest/flush              Flush() of a running server.
//   RedisPerTest/fresh_server       a new Redis per test until it answers.
//
// Stopping a server is not timed. Real time. Run: bash tools/bench.sh
// --servers (5 repetitions, medians).

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "benchmark/benchmark.h"
#include "lifecycle/context.h"
#include "lifecycle/testing/servers/mariadb.h"
#include "lifecycle/testing/servers/postgres.h"
#include "lifecycle/testing/servers/redis.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace {

using lifecycle_testing::MariadbServer;
using lifecycle_testing::PostgresServer;
using lifecycle_testing::RedisServer;

enum Mode {
  kFreshDatabase,
  kSlowerTests,
  kBackToBack,
  kFreshServer,
  kEmptyCache
};

// Starts `server` and waits until it is ready; false (and the benchmark told)
// if it did not start.
template <typename Server>
bool StartedOk(benchmark::State& state, Server& server) {
  absl::Status s = server.Start(lifecycle::Context::Background());
  if (s.ok()) server.Started().Wait();
  if (!s.ok() || server.State() != lifecycle::ServiceState::kStarted) {
    state.SkipWithError(
        std::string(s.ok() ? server.Snapshot().status.message() : s.message())
            .c_str());
    return false;
  }
  return true;
}

// An empty template cache for this process: initdb (mariadb-install-db) runs
// at each start.
std::string EmptyCache() {
  absl::StatusOr<std::string> dir =
      lifecycle_testing::servers_internal::NewServerDir("bench-cache");
  return dir.ok() ? *dir : "";
}

template <typename Server>
void PerTest(benchmark::State& state, Mode mode) {
  if (mode == kFreshDatabase || mode == kSlowerTests || mode == kBackToBack) {
    const int test_ms = mode == kSlowerTests ? 100 : 20;
    Server server;
    if (!StartedOk(state, server)) return;
    for (auto _ : state) {
      auto db = server.NewDatabase();
      if (!db.ok()) {
        state.SkipWithError(std::string(db.status().message()).c_str());
        break;
      }
      db->Release();
      if (mode != kBackToBack) {
        state.PauseTiming();
        std::this_thread::sleep_for(
            std::chrono::milliseconds(test_ms));  // a test
        state.ResumeTiming();
      }
    }
    return;
  }
  for (auto _ : state) {
    std::string cache;
    if (mode == kEmptyCache) {
      state.PauseTiming();
      cache = EmptyCache();
      setenv("LIFECYCLE_SERVER_CACHE", cache.c_str(), 1);
      state.ResumeTiming();
    }
    {
      Server server;
      if (!StartedOk(state, server)) break;
      auto db = server.NewDatabase();
      if (!db.ok()) {
        state.SkipWithError(std::string(db.status().message()).c_str());
        break;
      }
      state.PauseTiming();
    }  // stopped and removed, untimed
    if (!cache.empty()) {
      lifecycle_testing::servers_internal::RemoveTree(cache);
      unsetenv("LIFECYCLE_SERVER_CACHE");
    }
    state.ResumeTiming();
  }
}

void PostgresPerTest(benchmark::State& state, Mode mode) {
  PerTest<PostgresServer>(state, mode);
}
void MariadbPerTest(benchmark::State& state, Mode mode) {
  PerTest<MariadbServer>(state, mode);
}

void RedisPerTest(benchmark::State& state, bool fresh_server) {
  if (!fresh_server) {
    RedisServer redis;
    if (!StartedOk(state, redis)) return;
    for (auto _ : state) {
      if (!redis.Flush().ok()) state.SkipWithError("FLUSHALL failed");
    }
    return;
  }
  for (auto _ : state) {
    {
      RedisServer redis;
      if (!StartedOk(state, redis)) break;
      if (!redis.Command({"PING"}).ok()) state.SkipWithError("no PONG");
      state.PauseTiming();
    }
    state.ResumeTiming();
  }
}

#define PER_TEST(function, name, mode, iterations) \
  BENCHMARK_CAPTURE(function, name, mode)          \
      ->Unit(benchmark::kMillisecond)              \
      ->UseRealTime()                              \
      ->Iterations(iterations)

PER_TEST(PostgresPerTest, fresh_database, kFreshDatabase, 20);
PER_TEST(PostgresPerTest, fresh_database_100ms_tests, kSlowerTests, 20);
PER_TEST(PostgresPerTest, fresh_database_back_to_back, kBackToBack, 20);
PER_TEST(PostgresPerTest, fresh_server, kFreshServer, 5);
PER_TEST(PostgresPerTest, initdb_each, kEmptyCache, 3);
PER_TEST(MariadbPerTest, fresh_database, kFreshDatabase, 20);
PER_TEST(MariadbPerTest, fresh_database_back_to_back, kBackToBack, 20);
PER_TEST(MariadbPerTest, fresh_server, kFreshServer, 5);
PER_TEST(MariadbPerTest, install_db_each, kEmptyCache, 3);
PER_TEST(RedisPerTest, flush, false, 50);
PER_TEST(RedisPerTest, fresh_server, true, 5);

}  // namespace

BENCHMARK_MAIN();
