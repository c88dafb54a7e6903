// -----------------------------------------------------------------------------
// etcd.h
// -----------------------------------------------------------------------------
//
// etcd for a test, written once: Debian's `etcd-server`, a one-member cluster
// run as a service of this library on 127.0.0.1, ready when it says so itself
// (`READY=1`) and its client port accepts. A fixture gives each test an empty
// key space, on a server shared by every test of the binary:
//
//   class ConfigTest : public lifecycle_testing::EtcdTest {};
//
//   TEST_F(ConfigTest, StoresAKey) {
//     ASSERT_TRUE(etcd().Put("/config/mode", "fast").ok());
//     EXPECT_EQ(etcd().Get("/config/mode").value(), "fast");
//   }
//
// `etcd().endpoint()` ("http://127.0.0.1:PORT") is what the code under test
// connects to (gRPC, or the JSON gateway under /v3/). A fresh server per test
// is one line too, `EtcdServer etcd;`, in a harness like any service.
//
// etcd cannot be told to listen on a port of its own choosing and still serve
// its JSON gateway, so the module picks free ports (client and peer) on
// loopback; a port taken in between fails the start naming its holder.
// `EtcdOptions::seed` keys are put at every start and after every
// `DeleteAll()`. The client is etcd's own JSON gateway (/v3/kv/...), over
// HTTP. A missing server makes `EtcdTest` skip with "... is not installed
// (Debian package etcd-server; tools/setup.sh installs it)".
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_TESTING_SERVERS_ETCD_H_
#define LIFECYCLE_TESTING_SERVERS_ETCD_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {

struct EtcdOptions {
  // The service's name: its path in reports, and the member's name.
  std::string name = "etcd";
  // Keys put at every start and after every `DeleteAll()`, in order.
  std::vector<std::pair<std::string, std::string>> seed;
  absl::Duration start_timeout = absl::Seconds(30);
};

class EtcdServer final : public servers_internal::ServerModule {
 public:
  explicit EtcdServer(EtcdOptions options = {});
  ~EtcdServer() override;

  // The server of this test binary for `options`, started on the first call,
  // stopped at the end of the program; the same start error on every call if
  // it could not start.
  static absl::StatusOr<EtcdServer*> Shared(const EtcdOptions& options = {});

  absl::Status Put(std::string_view key, std::string_view value) const;
  // The value of `key`; NotFound if there is none.
  absl::StatusOr<std::string> Get(std::string_view key) const;
  // The keys that start with `prefix`, sorted.
  absl::StatusOr<std::vector<std::string>> Keys(std::string_view prefix) const;
  // Deletes every key, then puts the seed keys again.
  absl::Status DeleteAll() const;

  // "http://127.0.0.1:PORT"; empty before the first start.
  std::string endpoint() const;
  // The client port; 0 before the first start.
  int port() const;
  // "3.4.23"; empty before the first start.
  std::string version() const;

 private:
  absl::Status Prepare(const std::string& dir) override;
  lifecycle::ProcessOptions Program(const std::string& dir) override;
  absl::Status Ready() override;
  // POSTs `body` to the JSON gateway's `path`; the answer's JSON text.
  absl::StatusOr<std::string> Call(std::string_view path,
                                   const std::string& body) const;

  const EtcdOptions options_;
  mutable absl::Mutex mu_;
  int client_port_ ABSL_GUARDED_BY(mu_) = 0;
  int peer_port_ ABSL_GUARDED_BY(mu_) = 0;
  std::string version_ ABSL_GUARDED_BY(mu_);
};

// A test fixture: `etcd()` is the binary's shared server, emptied (and
// seeded) before and after each test. Skips when etcd is not installed.
class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  virtual EtcdOptions ServerOptions() const { return {}; }

  EtcdServer& etcd() { return *etcd_; }

 private:
  EtcdServer* etcd_ = nullptr;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_ETCD_H_
