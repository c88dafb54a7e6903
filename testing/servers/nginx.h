// -----------------------------------------------------------------------------
// nginx.h
// -----------------------------------------------------------------------------
//
// nginx for a test, written once: Debian's `nginx-core`, run in the foreground
// as a service of this library on 127.0.0.1, serving a folder (and whatever
// `server { }` lines you add: a reverse proxy to the service under test, a
// fake upstream). A fixture gives each test an empty folder to serve, on a
// server shared by every test of the binary:
//
//   class DownloadsTest : public lifecycle_testing::NginxTest {};
//
//   TEST_F(DownloadsTest, ServesAFile) {
//     ASSERT_TRUE(nginx().WriteFile("hello.txt", "hi\n").ok());
//     EXPECT_EQ(nginx().Get("/hello.txt").value().body, "hi\n");
//   }
//
// `nginx().endpoint()` ("http://127.0.0.1:PORT") is what the code under test
// fetches from. A fresh server per test is one line too, `NginxServer nginx;`,
// in a harness like any service.
//
// nginx cannot listen on a port of its own choosing, so the module picks a free
// one on loopback; a port taken in between fails the start naming its holder.
// Its error log goes to the service's log; access logs are off. A missing
// server makes `NginxTest` skip with "... is not installed (Debian package
// nginx-core; tools/setup.sh installs it)".
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_TESTING_SERVERS_NGINX_H_
#define LIFECYCLE_TESTING_SERVERS_NGINX_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {

struct NginxOptions {
  // The service's name: its path in reports.
  std::string name = "nginx";
  // Lines added inside its `server { }` block, e.g.
  // "location /api/ { proxy_pass http://127.0.0.1:8080; }". Checked by nginx
  // at the start: an error fails it with nginx's message.
  std::string server_config;
  absl::Duration start_timeout = absl::Seconds(30);
};

class NginxServer final : public servers_internal::ServerModule {
 public:
  explicit NginxServer(NginxOptions options = {});
  ~NginxServer() override;

  // The server of this test binary for `options`, started on the first call,
  // stopped at the end of the program; the same start error on every call if
  // it could not start.
  static absl::StatusOr<NginxServer*> Shared(const NginxOptions& options = {});

  // GET `path` (from "/"): the status and the body.
  absl::StatusOr<servers_internal::HttpReply> Get(std::string_view path) const;
  // Writes `contents` to `name` (a path relative to the served folder; its
  // folders are made).
  absl::Status WriteFile(std::string_view name,
                         std::string_view contents) const;
  // Empties the served folder.
  absl::Status ClearFiles() const;

  // The folder it serves; empty before the first start.
  std::string root() const;
  // "http://127.0.0.1:PORT"; empty before the first start.
  std::string endpoint() const;
  // Its port; 0 before the first start.
  int port() const;

 private:
  absl::Status Prepare(const std::string& dir) override;
  lifecycle::ProcessOptions Program(const std::string& dir) override;
  absl::Status Ready() override;

  const NginxOptions options_;
  mutable absl::Mutex mu_;
  int port_ ABSL_GUARDED_BY(mu_) = 0;
};

// A test fixture: `nginx()` is the binary's shared server, its folder emptied
// before and after each test. Skips when nginx is not installed.
class NginxTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  virtual NginxOptions ServerOptions() const { return {}; }

  NginxServer& nginx() { return *nginx_; }

 private:
  NginxServer* nginx_ = nullptr;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_NGINX_H_
