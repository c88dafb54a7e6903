// -----------------------------------------------------------------------------
// redis_store.h
// -----------------------------------------------------------------------------
//
// The example client's store made real: a key-value store backed by a
// redis-server that it runs itself, as a child `ProcessService`
// (lifecycle/process_service.h). The server is ready when it says so
// (sd_notify), listens on a Unix socket in the store's directory only, keeps
// nothing on disk, and is restarted by the store's supervision if it dies:
//
//   examples::RedisStore store(lifecycle_testing::ShortTempDir());
//   lifecycle_testing::StartStopHarness harness({&store});
//   ASSERT_TRUE(harness.StartAll());
//   ASSERT_TRUE(store.Set("greeting", "hello").ok());
//   EXPECT_EQ(*store.Get("greeting"), "hello");
//
// Thread safety: all public members are thread-safe; each call uses a
// connection of its own.

#ifndef EXAMPLES_REDIS_STORE_H_
#define EXAMPLES_REDIS_STORE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/process_service.h"

namespace examples {

class RedisStore : public lifecycle::CompositeService {
 public:
  // The server's socket and files go in `dir`, which must exist and have a
  // short path (a Unix socket path has at most 107 bytes).
  explicit RedisStore(std::string dir,
                      std::string executable = "/usr/bin/redis-server");
  ~RedisStore() override;

  // Stores `value` under `key`. UNAVAILABLE while the server is not up.
  absl::Status Set(std::string_view key, std::string_view value);
  // The value under `key`; NOT_FOUND if there is none, UNAVAILABLE while the
  // server is not up.
  absl::StatusOr<std::string> Get(std::string_view key);

  lifecycle::ProcessService& server() { return server_; }
  const std::string& socket_path() const { return socket_; }

 private:
  // Sends one command and returns Redis's reply, as it came.
  absl::StatusOr<std::string> Command(
      const std::vector<std::string_view>& args);

  const std::string socket_;
  lifecycle::ProcessService server_;
};

}  // namespace examples

#endif  // EXAMPLES_REDIS_STORE_H_
