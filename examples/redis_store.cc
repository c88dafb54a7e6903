#include "examples/redis_store.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace examples {
namespace {

lifecycle::ProcessOptions RedisOptions(const std::string& dir,
                                       const std::string& socket,
                                       std::string executable) {
  lifecycle::ProcessOptions o;
  o.executable = std::move(executable);
  o.args = {"--port", "0", "--unixsocket", socket, "--supervised", "systemd",
            "--save", "",  "--appendonly", "no",   "--dir",        dir};
  o.ready_when = {lifecycle::Readiness::Notification()};
  o.start_timeout = absl::Seconds(30);
  o.stop_grace = absl::Seconds(10);
  return o;
}

}  // namespace

RedisStore::RedisStore(std::string dir, std::string executable)
    : CompositeService("store"),
      socket_(dir + "/redis.sock"),
      server_("redis", RedisOptions(dir, socket_, std::move(executable))) {
  // A dead server comes back (empty: it keeps nothing on disk).
  AddOrDie(server_, lifecycle::Supervision::Restart(5, absl::Minutes(1))
                        .WithBackoff(absl::Milliseconds(10), absl::Seconds(1)));
}

RedisStore::~RedisStore() { StopForDestruction(); }

absl::Status RedisStore::Set(std::string_view key, std::string_view value) {
  absl::StatusOr<std::string> reply = Command({"SET", key, value});
  if (!reply.ok()) return reply.status();
  if (*reply != "+OK\r\n") {
    return absl::InternalError(absl::StrCat("SET answered ", *reply));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RedisStore::Get(std::string_view key) {
  absl::StatusOr<std::string> reply = Command({"GET", key});
  if (!reply.ok()) return reply.status();
  // "$5\r\nhello\r\n", or "$-1\r\n" for none.
  size_t end = reply->find("\r\n");
  int64_t length = 0;
  if (reply->empty() || (*reply)[0] != '$' ||
      !absl::SimpleAtoi(reply->substr(1, end - 1), &length)) {
    return absl::InternalError(absl::StrCat("GET answered ", *reply));
  }
  if (length < 0) {
    return absl::NotFoundError(absl::StrCat(
        "no value under '", absl::string_view(key.data(), key.size()), "'"));
  }
  return reply->substr(end + 2, static_cast<size_t>(length));
}

absl::StatusOr<std::string> RedisStore::Command(
    const std::vector<std::string_view>& args) {
  // RESP: *N, then each argument as $LENGTH and its bytes.
  std::string request = absl::StrCat("*", args.size(), "\r\n");
  for (std::string_view a : args) {
    absl::StrAppend(&request, "$", a.size(), "\r\n");
    request.append(a.data(), a.size());
    request += "\r\n";
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ResourceExhaustedError("no socket");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_.c_str(), sizeof(address.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
          0 ||
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("redis at ", socket_, " is not up"));
  }
  // One reply: a line, and for a bulk string ($N) N bytes and a line more.
  std::string reply;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto complete = [&reply] {
    size_t end = reply.find("\r\n");
    if (end == std::string::npos) return false;
    int64_t length = 0;
    if (reply[0] != '$' ||
        !absl::SimpleAtoi(reply.substr(1, end - 1), &length) || length < 0) {
      return true;
    }
    return reply.size() >= end + 2 + static_cast<size_t>(length) + 2;
  };
  while (!complete()) {
    pollfd p{fd, POLLIN, 0};
    int ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    char buffer[4096];
    ssize_t got;
    if (ms <= 0 || poll(&p, 1, ms) != 1 ||
        (got = recv(fd, buffer, sizeof(buffer), 0)) <= 0) {
      close(fd);
      return absl::UnavailableError(
          absl::StrCat("redis at ", socket_, " did not answer"));
    }
    reply.append(buffer, static_cast<size_t>(got));
  }
  close(fd);
  return reply;
}

}  // namespace examples
