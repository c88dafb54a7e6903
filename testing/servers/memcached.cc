#include "lifecycle/testing/servers/memcached.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace lifecycle_testing {
namespace {

constexpr char kMemcached[] = "/usr/bin/memcached";
constexpr absl::Duration kAnswerTimeout = absl::Seconds(10);

}  // namespace

MemcachedServer::MemcachedServer(MemcachedOptions options)
    : ServerModule(options.name, kMemcached, "memcached"),
      options_(std::move(options)) {}

MemcachedServer::~MemcachedServer() { StopForDestruction(); }

absl::StatusOr<MemcachedServer*> MemcachedServer::Shared(
    const MemcachedOptions& options) {
  absl::StatusOr<lifecycle::Service*> server = servers_internal::SharedServer(
      absl::StrCat("memcached|", options.name, "|", options.memory_mb),
      [&] { return std::make_unique<MemcachedServer>(options); },
      options.start_timeout);
  if (!server.ok()) return server.status();
  return static_cast<MemcachedServer*>(*server);
}

lifecycle::ProcessOptions MemcachedServer::Program(const std::string& dir) {
  const std::string socket = dir + "/memcached.sock";
  lifecycle::ProcessOptions o;
  o.executable = kMemcached;
  o.args = {"-s", socket, "-U", "0", "-m", absl::StrCat(options_.memory_mb)};
  if (geteuid() == 0) o.args.insert(o.args.end(), {"-u", "root"});
  o.ready_when = {lifecycle::Readiness::UnixSocket(socket)};
  o.start_timeout = options_.start_timeout;
  return o;
}

absl::Status MemcachedServer::Ready() {
  absl::StatusOr<std::string> answer = Ask("version\r\n", "\r\n");
  if (!answer.ok()) return answer.status();
  absl::string_view version = absl::StripSuffix(*answer, "\r\n");
  absl::ConsumePrefix(&version, "VERSION ");
  {
    absl::MutexLock lock(&mu_);
    version_ = std::string(version);
  }
  SetDetail("version", std::string(version));
  SetDetail("uri", "unix://" + socket_path());
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemcachedServer::Ask(const std::string& request,
                                                 const std::string& end) const {
  const std::string path = socket_path();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  absl::Cleanup close_fd = [fd] { close(fd); };
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", Path(), " at ", path));
  }
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError(Path() + ": send failed");
    sent += static_cast<size_t>(n);
  }
  std::string answer;
  const absl::Time deadline = absl::Now() + kAnswerTimeout;
  while (!absl::EndsWith(answer, end)) {
    if (absl::StartsWith(answer, "ERROR") ||
        absl::StartsWith(answer, "CLIENT_ERROR") ||
        absl::StartsWith(answer, "SERVER_ERROR")) {
      if (absl::EndsWith(answer, "\r\n")) {
        return absl::InvalidArgumentError(
            absl::StrCat(Path(), ": ", absl::StripSuffix(answer, "\r\n")));
      }
    }
    const absl::Duration left = deadline - absl::Now();
    pollfd p{fd, POLLIN, 0};
    if (left <= absl::ZeroDuration() ||
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <=
            0) {
      return absl::DeadlineExceededError(
          absl::StrCat(Path(), " did not answer within 10s"));
    }
    char buffer[4096];
    ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) {
      return absl::UnavailableError(Path() + " closed the connection");
    }
    answer.append(buffer, static_cast<size_t>(got));
  }
  return answer;
}

absl::Status MemcachedServer::Set(std::string_view key,
                                  std::string_view value) const {
  absl::StatusOr<std::string> answer =
      Ask(absl::StrCat("set ", std::string(key), " 0 0 ", value.size(), "\r\n",
                       std::string(value), "\r\n"),
          "\r\n");
  if (!answer.ok()) return answer.status();
  if (*answer != "STORED\r\n") {
    return absl::InternalError(
        absl::StrCat(Path(), ": set answered ", *answer));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemcachedServer::Get(std::string_view key) const {
  absl::StatusOr<std::string> answer =
      Ask(absl::StrCat("get ", std::string(key), "\r\n"), "END\r\n");
  if (!answer.ok()) return answer.status();
  // "VALUE key flags bytes\r\n<data>\r\nEND\r\n", or "END\r\n"
  if (*answer == "END\r\n") {
    return absl::NotFoundError(
        absl::StrCat("no key '", std::string(key), "' in ", Path()));
  }
  size_t header_end = answer->find("\r\n");
  absl::string_view header = absl::string_view(*answer).substr(0, header_end);
  size_t bytes;
  size_t space = header.rfind(' ');
  if (space == absl::string_view::npos ||
      !absl::SimpleAtoi(header.substr(space + 1), &bytes) ||
      header_end + 2 + bytes > answer->size()) {
    return absl::InternalError(
        absl::StrCat(Path(), ": get answered ", *answer));
  }
  return answer->substr(header_end + 2, bytes);
}

absl::Status MemcachedServer::Flush() const {
  absl::StatusOr<std::string> answer = Ask("flush_all\r\n", "\r\n");
  return answer.ok() ? absl::OkStatus() : answer.status();
}

std::string MemcachedServer::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

std::string MemcachedServer::socket_path() const {
  std::string folder = dir();
  return folder.empty() ? "" : folder + "/memcached.sock";
}

void MemcachedTest::SetUp() {
  absl::StatusOr<MemcachedServer*> server =
      MemcachedServer::Shared(ServerOptions());
  if (servers_internal::IsNotInstalled(server.status())) {
    GTEST_SKIP() << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  memcached_ = *server;
  ASSERT_TRUE(memcached_->Flush().ok());
}

void MemcachedTest::TearDown() {
  if (memcached_ != nullptr) {
    EXPECT_TRUE(memcached_->Flush().ok());
  }
}

}  // namespace lifecycle_testing
