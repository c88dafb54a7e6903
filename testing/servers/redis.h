// -----------------------------------------------------------------------------
// redis.h
// -----------------------------------------------------------------------------
//
// Redis for a test, written once: Debian's `redis-server`, run as a service of
// this library, ready when it says so itself (`--supervised systemd`), on a
// Unix socket of its own. A fixture gives each test an empty Redis, shared by
// every test of the binary and flushed between tests:
//
//   class SessionsTest : public lifecycle_testing::RedisTest {};
//
//   TEST_F(SessionsTest, StoresASession) {
//     ASSERT_TRUE(redis().Command({"SET", "session:1", "ada"}).ok());
//     EXPECT_EQ(redis().Command({"GET", "session:1"}).value(), "ada");
//   }
//
// `redis().socket_path()` (or `Uri()`, "unix:///dev/shm/.../redis.sock") is
// what the code under test connects to. A fresh server per test is one line
// too, `RedisServer redis;`, in a harness like any service.
//
// `RedisOptions::seed` keys are set at every start and after every flush, so
// each test begins with them. The client is hiredis, Redis's own C client.
// A missing server makes `RedisTest` skip with "... is not installed (Debian
// package redis-server; tools/setup.sh installs it)".
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_TESTING_SERVERS_REDIS_H_
#define LIFECYCLE_TESTING_SERVERS_REDIS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {

struct RedisOptions {
  // The service's name: its path in reports.
  std::string name = "redis";
  // Keys set at every start and after every `Flush()`, in order.
  std::vector<std::pair<std::string, std::string>> seed;
  absl::Duration start_timeout = absl::Seconds(30);
};

class RedisServer final : public servers_internal::ServerModule {
 public:
  explicit RedisServer(RedisOptions options = {});
  ~RedisServer() override;

  // The server of this test binary for `options`, started on the first call,
  // stopped at the end of the program; the same start error on every call if
  // it could not start.
  static absl::StatusOr<RedisServer*> Shared(const RedisOptions& options = {});

  // Runs one command through hiredis: {"SET", "k", "v"}. The reply as text: a
  // string or status as is, an integer in decimal, nil as "(nil)", an array's
  // elements one per line; a Redis error is an error.
  absl::StatusOr<std::string> Command(
      const std::vector<std::string>& argv) const;
  // Empties every database, then sets the seed keys again.
  absl::Status Flush();

  // Its Unix socket; empty before the first start.
  std::string socket_path() const;
  // "unix://" and the socket's path.
  std::string Uri() const { return "unix://" + socket_path(); }
  // "7.0.15"; empty before the first start.
  std::string version() const;

 private:
  lifecycle::ProcessOptions Program(const std::string& dir) override;
  absl::Status Ready() override;

  const RedisOptions options_;
  mutable absl::Mutex mu_;
  std::string version_ ABSL_GUARDED_BY(mu_);
};

// A test fixture: `redis()` is the binary's shared server, flushed (and
// seeded) before and after each test. Override `ServerOptions()` for seed
// keys. Skips when Redis is not installed.
class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  virtual RedisOptions ServerOptions() const { return {}; }

  RedisServer& redis() { return *redis_; }

 private:
  RedisServer* redis_ = nullptr;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_REDIS_H_
