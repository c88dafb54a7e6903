// -----------------------------------------------------------------------------
// memcached.h
// -----------------------------------------------------------------------------
//
// memcached for a test, written once: Debian's `memcached`, run as a service
// of this library on a Unix socket of its own, ready when the socket accepts.
// A fixture gives each test an empty cache, shared by every test of the binary
// and flushed between tests:
//
//   class CacheTest : public lifecycle_testing::MemcachedTest {};
//
//   TEST_F(CacheTest, KeepsAValue) {
//     ASSERT_TRUE(memcached().Set("user:1", "ada").ok());
//     EXPECT_EQ(memcached().Get("user:1").value(), "ada");
//   }
//
// `memcached().socket_path()` is what the code under test connects to (with
// libmemcached: "--SOCKET=" and the path). A fresh server per test is one line
// too, `MemcachedServer memcached;`, in a harness like any service.
//
// The client speaks memcached's text protocol over the socket (memcached has
// no client library in its own project). When the test runs as root the
// server is told to stay root (`-u root`), as memcached refuses root
// otherwise. A missing server makes `MemcachedTest` skip with "... is not
// installed (Debian package memcached; tools/setup.sh installs it)".
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_TESTING_SERVERS_MEMCACHED_H_
#define LIFECYCLE_TESTING_SERVERS_MEMCACHED_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {

struct MemcachedOptions {
  // The service's name: its path in reports.
  std::string name = "memcached";
  // Its memory for items, in megabytes.
  int memory_mb = 16;
  absl::Duration start_timeout = absl::Seconds(30);
};

class MemcachedServer final : public servers_internal::ServerModule {
 public:
  explicit MemcachedServer(MemcachedOptions options = {});
  ~MemcachedServer() override;

  // The server of this test binary for `options`, started on the first call,
  // stopped at the end of the program; the same start error on every call if
  // it could not start.
  static absl::StatusOr<MemcachedServer*> Shared(
      const MemcachedOptions& options = {});

  // Stores `value` under `key` (no expiry).
  absl::Status Set(std::string_view key, std::string_view value) const;
  // The value under `key`; NotFound if there is none.
  absl::StatusOr<std::string> Get(std::string_view key) const;
  // Empties the cache (`flush_all`).
  absl::Status Flush() const;
  // "1.6.18"; empty before the first start.
  std::string version() const;

  // Its Unix socket; empty before the first start.
  std::string socket_path() const;

 private:
  lifecycle::ProcessOptions Program(const std::string& dir) override;
  absl::Status Ready() override;
  // Sends `request` and reads the answer until it ends with `end` (or an
  // error line).
  absl::StatusOr<std::string> Ask(const std::string& request,
                                  const std::string& end) const;

  const MemcachedOptions options_;
  mutable absl::Mutex mu_;
  std::string version_ ABSL_GUARDED_BY(mu_);
};

// A test fixture: `memcached()` is the binary's shared server, flushed before
// and after each test. Skips when memcached is not installed.
class MemcachedTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  virtual MemcachedOptions ServerOptions() const { return {}; }

  MemcachedServer& memcached() { return *memcached_; }

 private:
  MemcachedServer* memcached_ = nullptr;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_MEMCACHED_H_
