#include "lifecycle/testing/servers/redis.h"

#include <hiredis/hiredis.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace lifecycle_testing {
namespace {

constexpr char kRedisServer[] = "/usr/bin/redis-server";

// A reply as `RedisServer::Command()` gives it.
absl::StatusOr<std::string> ReplyText(const redisReply* reply) {
  switch (reply->type) {
    case REDIS_REPLY_ERROR:
      return absl::InvalidArgumentError(std::string(reply->str, reply->len));
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(reply->integer);
    case REDIS_REPLY_NIL:
      return std::string("(nil)");
    case REDIS_REPLY_ARRAY: {
      std::vector<std::string> lines;
      for (size_t i = 0; i < reply->elements; ++i) {
        absl::StatusOr<std::string> line = ReplyText(reply->element[i]);
        if (!line.ok()) return line.status();
        lines.push_back(*std::move(line));
      }
      return absl::StrJoin(lines, "\n");
    }
    default:  // string, status, and RESP3's verbatim strings and doubles
      return reply->str != nullptr ? std::string(reply->str, reply->len)
                                   : std::string();
  }
}

}  // namespace

RedisServer::RedisServer(RedisOptions options)
    : ServerModule(options.name, kRedisServer, "redis-server"),
      options_(std::move(options)) {}

RedisServer::~RedisServer() { StopForDestruction(); }

absl::StatusOr<RedisServer*> RedisServer::Shared(const RedisOptions& options) {
  std::string key = absl::StrCat("redis|", options.name);
  for (const auto& [k, v] : options.seed) absl::StrAppend(&key, "|", k, "=", v);
  absl::StatusOr<lifecycle::Service*> server = servers_internal::SharedServer(
      key, [&] { return std::make_unique<RedisServer>(options); },
      options.start_timeout);
  if (!server.ok()) return server.status();
  return static_cast<RedisServer*>(*server);
}

lifecycle::ProcessOptions RedisServer::Program(const std::string& dir) {
  lifecycle::ProcessOptions o;
  o.executable = kRedisServer;
  o.args = {"--port",       "0",       "--unixsocket", dir + "/redis.sock",
            "--supervised", "systemd", "--save",       "",
            "--appendonly", "no",      "--dir",        dir};
  o.ready_when = {lifecycle::Readiness::Notification()};
  o.start_timeout = options_.start_timeout;
  return o;
}

absl::Status RedisServer::Ready() {
  absl::StatusOr<std::string> info = Command({"INFO", "server"});
  if (!info.ok()) return info.status();
  for (absl::string_view line :
       absl::StrSplit(*info, absl::ByAnyChar("\r\n"))) {
    if (absl::ConsumePrefix(&line, "redis_version:")) {
      absl::MutexLock lock(&mu_);
      version_ = std::string(line);
    }
  }
  SetDetail("version", version());
  SetDetail("uri", Uri());
  return Flush();
}

absl::StatusOr<std::string> RedisServer::Command(
    const std::vector<std::string>& argv) const {
  if (argv.empty()) return absl::InvalidArgumentError("Command: no command");
  const std::string socket = socket_path();
  timeval timeout{10, 0};
  std::unique_ptr<redisContext, void (*)(redisContext*)> c(
      redisConnectUnixWithTimeout(socket.c_str(), timeout), redisFree);
  if (c == nullptr || c->err != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", Path(), " at ", socket, ": ",
                     c != nullptr ? c->errstr : "out of memory"));
  }
  std::vector<const char*> args;
  std::vector<size_t> sizes;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    sizes.push_back(a.size());
  }
  std::unique_ptr<redisReply, void (*)(void*)> reply(
      static_cast<redisReply*>(redisCommandArgv(
          c.get(), static_cast<int>(args.size()), args.data(), sizes.data())),
      freeReplyObject);
  if (reply == nullptr) {
    return absl::UnavailableError(absl::StrCat(Path(), ": ", c->errstr));
  }
  return ReplyText(reply.get());
}

absl::Status RedisServer::Flush() {
  if (absl::StatusOr<std::string> s = Command({"FLUSHALL"}); !s.ok()) {
    return s.status();
  }
  for (const auto& [key, value] : options_.seed) {
    if (absl::StatusOr<std::string> s = Command({"SET", key, value}); !s.ok()) {
      return s.status();
    }
  }
  return absl::OkStatus();
}

std::string RedisServer::socket_path() const {
  std::string folder = dir();
  return folder.empty() ? "" : folder + "/redis.sock";
}

std::string RedisServer::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

void RedisTest::SetUp() {
  absl::StatusOr<RedisServer*> server = RedisServer::Shared(ServerOptions());
  if (servers_internal::IsNotInstalled(server.status())) {
    GTEST_SKIP() << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  redis_ = *server;
  ASSERT_TRUE(redis_->Flush().ok());
}

void RedisTest::TearDown() {
  if (redis_ != nullptr) {
    EXPECT_TRUE(redis_->Flush().ok());
  }
}

}  // namespace lifecycle_testing
