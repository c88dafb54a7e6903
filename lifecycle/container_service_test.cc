// Containers as services, against the engine itself: podman and the image
// tools/test_images.sh builds (tools/setup.sh --containers). Without them,
// the tests skip saying so (and .ci/run fails on such a skip).

#include "lifecycle/container_service.h"

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <postgresql/libpq-fe.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/context.h"
#include "lifecycle/health.h"
#include "lifecycle/process_service.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/hang_watchdog.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle {
namespace {

using ::lifecycle_testing::ShortTempDir;
using ::lifecycle_testing::WaitOrTimeout;
using ::lifecycle_testing::WaitTimeout;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;

constexpr char kImage[] = "localhost/lifecycle-test/servers:1";

// How long a container may take to be ready or to stop: the engine's own
// work, on a loaded machine, is more than a wait for a signal in this process.
absl::Duration ContainerWait() {
  return std::max(WaitTimeout(), absl::Seconds(30));
}

MATCHER_P2(StatusIs, code, message, "") {
  *result_listener << "which is " << arg;
  return arg.code() == code &&
         ::testing::Matches(message)(std::string(arg.message()));
}

// Runs the engine with `args`; its output, and whether it exited 0.
std::pair<std::string, bool> Engine(std::vector<std::string> args) {
  ContainerEngine engine = ContainerEngine::FromEnvironment();
  std::string command = engine.executable;
  for (const std::string& a : engine.global_args)
    absl::StrAppend(&command, " ", a);
  for (const std::string& a : args) absl::StrAppend(&command, " '", a, "'");
  absl::StrAppend(&command, " 2>&1");
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {"popen failed", false};
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, got);
  }
  int status = pclose(pipe);
  return {output, WIFEXITED(status) && WEXITSTATUS(status) == 0};
}

bool ContainerExists(const std::string& name) {
  return Engine({"container", "exists", name}).second;
}

// Skips the test when the engine or the image is missing, naming the fix.
#define SKIP_WITHOUT_ENGINE_AND_IMAGE()                                   \
  do {                                                                    \
    if (system("command -v podman >/dev/null 2>&1") != 0) {               \
      GTEST_SKIP() << "podman is not installed (Debian package podman): " \
                      "bash tools/setup.sh --containers";                 \
    }                                                                     \
    if (!Engine({"image", "exists", kImage}).second) {                    \
      GTEST_SKIP() << "the image " << kImage                              \
                   << " is not built (tools/setup.sh --containers)";      \
    }                                                                     \
  } while (0)

std::string Detail(const ServiceSnapshot& s, const std::string& key) {
  for (const auto& [k, v] : s.details) {
    if (k == key) return v;
  }
  return "";
}

// Sends `request` to 127.0.0.1:`port`; the first answer.
std::string Ask(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) > 0) {
    char buffer[512];
    ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got > 0) answer.assign(buffer, static_cast<size_t>(got));
  }
  close(fd);
  return answer;
}

ContainerOptions Redis() {
  ContainerOptions o;
  o.image = kImage;
  o.command = {"redis-server", "--supervised", "systemd",          "--save", "",
               "--appendonly", "no",           "--protected-mode", "no"};
  o.ports = {6379};
  o.ready_when = {Readiness::Notification()};
  o.start_timeout = ContainerWait();
  o.stop_grace = ContainerWait();
  return o;
}

TEST(ContainerServiceTest,
     RedisIsReadyByItsOwnNotificationAndAnswersOnItsPort) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  // Its socket, in a folder of this machine mounted into the container.
  const std::string sockets = ShortTempDir();
  ContainerOptions o = Redis();
  o.mounts = {{sockets, "/sockets"}};
  o.command.insert(o.command.end(), {"--unixsocket", "/sockets/redis.sock",
                                     "--unixsocketperm", "777"});
  o.ready_when.push_back(Readiness::UnixSocket(sockets + "/redis.sock"));
  ContainerService redis("redis", o);
  ASSERT_TRUE(redis.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(redis.Started(), {&redis}, ContainerWait()));
  const int port = redis.MappedPort(6379);
  ASSERT_GT(port, 0);
  EXPECT_EQ(redis.MappedPort(6380), 0);
  EXPECT_EQ(Ask(port, "PING\r\n"), "+PONG\r\n");
  ServiceSnapshot s = redis.Snapshot();
  EXPECT_EQ(Detail(s, "image"), kImage);
  EXPECT_EQ(Detail(s, "container"), redis.container_name());
  EXPECT_EQ(Detail(s, "ports"), absl::StrCat("6379->127.0.0.1:", port));
  EXPECT_TRUE(ContainerExists(redis.container_name()));
  EXPECT_THAT(Engine({"inspect", "--format",
                      "{{index .Config.Labels \"lifecycle.service\"}}",
                      redis.container_name()})
                  .first,
              HasSubstr("redis"));
  ASSERT_TRUE(redis.StopFor(ContainerWait()).ok());
  EXPECT_FALSE(ContainerExists(redis.container_name()));
  // Its output is the program's log, as for any program.
  EXPECT_THAT(redis.LastOutputLines(50),
              Contains(HasSubstr("Ready to accept connections")));

  // Started again: the same name and port, a new container.
  ASSERT_TRUE(redis.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(redis.Started(), {&redis}, ContainerWait()));
  EXPECT_EQ(redis.MappedPort(6379), port);
  EXPECT_EQ(Ask(port, "PING\r\n"), "+PONG\r\n");
  ASSERT_TRUE(redis.StopFor(ContainerWait()).ok());
  EXPECT_FALSE(ContainerExists(redis.container_name()));
}

// container_service.h's example, as it reads there (tools/check_examples.py).
TEST(ContainerServiceTest, TheHeaderExampleRuns) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  const Context ctx = Context::Background();
  // clang-format off
  lifecycle::ContainerOptions redis;
  redis.image = "localhost/lifecycle-test/servers:1";
  redis.command = {"redis-server", "--supervised", "systemd", "--save", "",
                   "--protected-mode", "no"};
  redis.ports = {6379};  // published on 127.0.0.1, on a free host port
  redis.ready_when = {lifecycle::Readiness::Notification()};
  lifecycle::ContainerService server("redis", redis);
  absl::Status s = server.Start(ctx);
  server.Started().Wait();              // the server said READY=1
  int port = server.MappedPort(6379);   // connect to 127.0.0.1:port
  // clang-format on
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Ask(port, "PING\r\n"), "+PONG\r\n");
  EXPECT_TRUE(server.StopFor(ContainerWait()).ok());
}

TEST(ContainerServiceTest,
     PostgresIsReadyByItsOwnNotificationAndAnswersAQuery) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  ContainerOptions o;
  o.image = kImage;
  o.user = "postgres";
  // The image's cluster (tools/test_images.sh), on the container's network.
  o.command = {"postgres",           "-D", "/var/lib/lifecycle/pg",       "-c",
               "listen_addresses=*", "-c", "unix_socket_directories=/tmp"};
  o.ports = {5432};
  o.ready_when = {Readiness::Notification()};
  o.start_timeout = ContainerWait();
  o.stop_grace = ContainerWait();
  ContainerService postgres("postgres", o);
  ASSERT_TRUE(postgres.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(postgres.Started(), {&postgres}, ContainerWait()));
  std::string uri = absl::StrCat(
      "postgresql://postgres@127.0.0.1:", postgres.MappedPort(5432),
      "/postgres?connect_timeout=10");
  PGconn* connection = PQconnectdb(uri.c_str());
  ASSERT_EQ(PQstatus(connection), CONNECTION_OK) << PQerrorMessage(connection);
  PGresult* result = PQexec(connection, "SELECT 20 + 22");
  ASSERT_EQ(PQresultStatus(result), PGRES_TUPLES_OK)
      << PQerrorMessage(connection);
  EXPECT_STREQ(PQgetvalue(result, 0, 0), "42");
  PQclear(result);
  PQfinish(connection);
  ASSERT_TRUE(postgres.StopFor(ContainerWait()).ok());
  EXPECT_FALSE(ContainerExists(postgres.container_name()));
}

TEST(ContainerServiceTest, EveryReadinessRuleWorksAgainstAContainer) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  const std::string www = ShortTempDir();
  std::ofstream(www + "/index.html") << "hello from the host";
  ContainerOptions o;
  o.image = kImage;
  o.mounts = {{www, "/www", /*read_only=*/true}};
  o.command = {"sh", "-c",
               "echo serving; exec busybox httpd -f -p 8080 -h /www"};
  o.ports = {8080};
  o.health_command = {"busybox",   "wget",
                      "-q",        "-O",
                      "/dev/null", "http://127.0.0.1:8080/index.html"};
  o.ready_when_healthy = true;
  bool probed = false;
  o.ready_when = {
      Readiness::TcpPort(8080),
      Readiness::HttpGet(8080, "/index.html"),
      Readiness::OutputLine("^serving$"),
      Readiness::CommandSucceeds({"test", "-f", "/www/index.html"}),
      Readiness::Probe("the test's own check",
                       [&probed] { return probed = true; }),
  };
  o.start_timeout = ContainerWait();
  o.stop_grace = absl::Seconds(2);
  ContainerService web("web", o);
  ASSERT_TRUE(web.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(web.Started(), {&web}, ContainerWait()));
  EXPECT_TRUE(probed);
  EXPECT_THAT(Ask(web.MappedPort(8080), "GET /index.html HTTP/1.0\r\n\r\n"),
              HasSubstr("200 OK"));
  // httpd ignores nothing, but busybox sh as pid 1 ignores SIGTERM: the stop
  // grace ends it, and the container is removed all the same.
  absl::Status stopped = web.StopFor(ContainerWait());
  EXPECT_FALSE(ContainerExists(web.container_name())) << stopped;
}

TEST(ContainerServiceTest, BadInputFailsTheStartNamingTheContainer) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  {
    ContainerOptions o = Redis();
    o.image = "localhost/lifecycle-test/no-such-image:1";
    ContainerService missing("missing", o);
    ASSERT_TRUE(missing.Start(Context::Background()).ok());
    ASSERT_TRUE(WaitOrTimeout(missing.Stopped(), {&missing}, ContainerWait()));
    EXPECT_THAT(missing.Snapshot().status,
                StatusIs(absl::StatusCode::kNotFound,
                         AllOf(HasSubstr("no-such-image"),
                               HasSubstr("nothing is pulled unless"))));
  }
  {
    ContainerOptions o = Redis();
    o.ready_when = {Readiness::TcpPort(7000)};
    ContainerService unpublished("unpublished", o);
    EXPECT_THAT(unpublished.Start(Context::Background()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("container port 7000"),
                               HasSubstr("not published"),
                               HasSubstr(unpublished.container_name()))));
    o.ready_when = {Readiness::ListensOnTcp()};
    ContainerService listens("listens", o);
    EXPECT_THAT(listens.Start(Context::Background()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("does not apply to a container")));
    o = Redis();
    o.image = "";
    ContainerService no_image("no_image", o);
    EXPECT_THAT(
        no_image.Start(Context::Background()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no image")));
  }
  {
    ContainerOptions o = Redis();
    o.command = {"sh", "-c", "echo fatal: bad config >&2; exit 3"};
    ContainerService exits("exits", o);
    ASSERT_TRUE(exits.Start(Context::Background()).ok());
    ASSERT_TRUE(WaitOrTimeout(exits.Stopped(), {&exits}, ContainerWait()));
    EXPECT_THAT(
        exits.Snapshot().status,
        StatusIs(absl::StatusCode::kUnavailable,
                 AllOf(HasSubstr("exited with status 3 before it was "
                                 "ready"),
                       HasSubstr("fatal: bad config"), HasSubstr(kImage))));
    EXPECT_FALSE(ContainerExists(exits.container_name()));
  }
  {
    ContainerService first("first", Redis());
    ASSERT_TRUE(first.Start(Context::Background()).ok());
    ASSERT_TRUE(WaitOrTimeout(first.Started(), {&first}, ContainerWait()));
    ContainerOptions o = Redis();
    o.container_name = first.container_name();
    ContainerService second("second", o);
    ASSERT_TRUE(second.Start(Context::Background()).ok());
    ASSERT_TRUE(WaitOrTimeout(second.Stopped(), {&second}, ContainerWait()));
    EXPECT_THAT(second.Snapshot().status,
                StatusIs(absl::StatusCode::kUnavailable,
                         AllOf(HasSubstr("the name is taken"),
                               HasSubstr(first.container_name()))));
    // The second's removal after its failed run must not take the first's.
    EXPECT_TRUE(ContainerExists(first.container_name()))
        << "a failed start removed another service's container";
    EXPECT_EQ(Ask(first.MappedPort(6379), "PING\r\n"), "+PONG\r\n");
    ASSERT_TRUE(first.StopFor(ContainerWait()).ok());
  }
  {
    ContainerOptions o = Redis();
    o.engine.executable = "no-such-container-engine";
    ContainerService no_engine("no_engine", o);
    EXPECT_THAT(no_engine.Start(Context::Background()),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("no-such-container-engine"),
                               HasSubstr("is not installed (Debian package"))));
  }
  {
    // An engine that never answers `run`: bounded by the start timeout.
    const std::string dir = ShortTempDir();
    const std::string hangs = dir + "/hanging-engine";
    std::ofstream(hangs) << "#!/bin/sh\n"
                            "for a in \"$@\"; do\n"
                            "  [ \"$a\" = run ] && exec sleep 600\n"
                            "done\n"
                            "exit 0\n";
    chmod(hangs.c_str(), 0755);
    ContainerOptions o = Redis();
    o.engine.executable = hangs;
    o.start_timeout = absl::Milliseconds(300);
    o.stop_grace = absl::Milliseconds(100);
    ContainerService hanging("hanging", o);
    ASSERT_TRUE(hanging.Start(Context::Background()).ok());
    ASSERT_TRUE(WaitOrTimeout(hanging.Stopped(), {&hanging}, ContainerWait()));
    EXPECT_THAT(hanging.Snapshot().status,
                StatusIs(absl::StatusCode::kDeadlineExceeded,
                         HasSubstr("is not ready after 300ms")));
  }
}

TEST(ContainerServiceTest, ContainersOnANetworkReachOneAnotherByName) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  ContainerNetwork network("net");
  ASSERT_TRUE(network.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(network.Started(), {&network}, ContainerWait()));
  EXPECT_TRUE(Engine({"network", "exists", network.network_name()}).second);
  ContainerOptions db = Redis();
  db.network = network.network_name();
  db.network_aliases = {"db"};
  ContainerService redis("redis", db);
  ASSERT_TRUE(redis.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(redis.Started(), {&redis}, ContainerWait()));
  ContainerOptions app;
  app.image = kImage;
  app.network = network.network_name();
  app.command = {"sleep", "600"};
  // Ready once, from inside, the database answers by its name.
  app.ready_when = {Readiness::CommandSucceeds(
      {"sh", "-c", "redis-cli -h db ping | grep -q PONG"})};
  app.start_timeout = ContainerWait();
  app.stop_grace = absl::Milliseconds(200);  // sleep ignores SIGTERM as pid 1
  ContainerService client("app", app);
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(client.Started(), {&client}, ContainerWait()));
  client.StopFor(ContainerWait()).IgnoreError();  // killed after its grace
  ASSERT_TRUE(redis.StopFor(ContainerWait()).ok());
  ASSERT_TRUE(network.StopFor(ContainerWait()).ok());
  EXPECT_FALSE(Engine({"network", "exists", network.network_name()}).second);
  EXPECT_FALSE(ContainerExists(client.container_name()));
}

constexpr char kSweepChild[] = "LIFECYCLE_CONTAINER_SWEEP_CHILD";

// Run by the test below, in a process of its own (the sweep runs once per
// process): its first start sweeps.
TEST(ContainerSweepChild, StartsOneContainer) {
  if (std::getenv(kSweepChild) == nullptr) {
    GTEST_SKIP() << "run by the test below only";
  }
  ContainerService redis("redis", Redis());
  ASSERT_TRUE(redis.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(redis.Started(), {&redis}, ContainerWait()));
  ASSERT_TRUE(redis.StopFor(ContainerWait()).ok());
}

TEST(ContainerServiceTest, TheFirstStartRemovesWhatDeadTestsLeft) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  // Left by a test that no longer runs (no process has pid 0), and by one
  // that does (this one): only the first goes.
  const std::string suffix = absl::StrCat(getpid());
  const std::string dead = "lifecycle.owner=0:1";
  const std::string alive =
      absl::StrCat("lifecycle.owner=", getpid(), ":", "not-its-start-time");
  ASSERT_TRUE(Engine({"create", "--label", dead, "--name",
                      "lc-left-dead-" + suffix, kImage, "true"})
                  .second);
  ASSERT_TRUE(
      Engine({"network", "create", "--label", dead, "lc-left-net-" + suffix})
          .second);
  const std::string own = absl::StrCat("lifecycle.owner=", getpid(), ":", [] {
    std::ifstream in("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
    std::string rest = stat.substr(stat.rfind(')') + 2);
    std::istringstream fields(rest);
    std::string field;
    for (int i = 0; i < 20; ++i) {
      fields >> field;
    }
    return field;
  }());
  ASSERT_TRUE(Engine({"create", "--label", own, "--name",
                      "lc-left-alive-" + suffix, kImage, "true"})
                  .second);
  ASSERT_TRUE(Engine({"create", "--label", alive, "--name",
                      "lc-left-reused-" + suffix, kImage, "true"})
                  .second);

  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setenv(kSweepChild, "1", 1);
    execl(self, self, "--gtest_filter=ContainerSweepChild.*", nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  EXPECT_FALSE(ContainerExists("lc-left-dead-" + suffix));
  EXPECT_FALSE(Engine({"network", "exists", "lc-left-net-" + suffix}).second);
  // A pid that runs, but started at another time: another process, gone.
  EXPECT_FALSE(ContainerExists("lc-left-reused-" + suffix));
  // This process runs: its container stays.
  EXPECT_TRUE(ContainerExists("lc-left-alive-" + suffix));
  Engine({"rm", "-f", "lc-left-alive-" + suffix});
}

constexpr char kOrphanDir[] = "LIFECYCLE_CONTAINER_ORPHAN_DIR";
constexpr char kOrphanHangs[] = "LIFECYCLE_CONTAINER_ORPHAN_HANGS";

// Run by the test below, in a child process: a network and three containers
// on it, then it says so and waits to be killed.
TEST(ContainerOrphanChild, StartsThreeContainersAndWaits) {
  const char* dir = std::getenv(kOrphanDir);
  if (dir == nullptr) GTEST_SKIP() << "run by the test below only";
  ContainerNetwork network("net");
  ASSERT_TRUE(network.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(network.Started(), {&network}, ContainerWait()));
  std::vector<std::unique_ptr<ContainerService>> containers;
  for (int i = 0; i < 3; ++i) {
    ContainerOptions o = Redis();
    o.network = network.network_name();
    o.labels = {{"lifecycle.test_round", dir}};
    containers.push_back(
        std::make_unique<ContainerService>(absl::StrCat("redis", i), o));
    ASSERT_TRUE(containers.back()->Start(Context::Background()).ok());
  }
  for (auto& c : containers) {
    ASSERT_TRUE(WaitOrTimeout(c->Started(), {c.get()}, ContainerWait()));
  }
  std::ofstream(absl::StrCat(dir, "/network")) << network.network_name();
  if (std::getenv(kOrphanHangs) != nullptr) {
    // Ended by the hang watchdog (this binary's main) instead of a SIGKILL.
    lifecycle_testing::SetTestBudget(absl::Milliseconds(200));
  }
  std::ofstream(absl::StrCat(dir, "/ready")) << "ready";
  Signal().Wait();  // until killed
}

std::vector<std::string> FilesMatching(const std::string& pattern) {
  std::vector<std::string> files;
  glob_t found;
  if (glob(pattern.c_str(), 0, nullptr, &found) == 0) {
    for (size_t i = 0; i < found.gl_pathc; ++i) {
      files.push_back(found.gl_pathv[i]);
    }
  }
  globfree(&found);
  return files;
}

// How many containers carry the label lifecycle.test_round=`round`.
int ContainersOfRound(const std::string& round) {
  std::string listed =
      Engine({"ps", "-a", "-q", "--filter",
              absl::StrCat("label=lifecycle.test_round=", round)})
          .first;
  int count = 0;
  for (char c : listed) count += c == '\n';
  return count;
}

// A killed test (SIGKILL, every round but the last) or one the hang watchdog
// ends (the last) leaves nothing.
TEST(ContainerServiceTest, ATestKilledWithSigkillLeavesNoContainerBehind) {
  SKIP_WITHOUT_ENGINE_AND_IMAGE();
  int rounds = 3;
  if (const char* r = std::getenv("LIFECYCLE_KILL_ROUNDS")) {
    ASSERT_TRUE(absl::SimpleAtoi(r, &rounds)) << r;
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  // What the killed test started is reparented to this process, so that it
  // can wait until every one of those processes has ended.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  for (int round = 0; round < rounds; ++round) {
    std::string dir = ShortTempDir();
    pid_t child = fork();
    ASSERT_GE(child, 0);
    // The last round is ended by the hang watchdog, which kills the test's
    // child processes but must leave the guards to remove the containers.
    const bool hangs = round == rounds - 1;
    if (child == 0) {
      setenv(kOrphanDir, dir.c_str(), 1);
      if (hangs) setenv(kOrphanHangs, "1", 1);
      execl(self, self, "--gtest_filter=ContainerOrphanChild.*", nullptr);
      _exit(127);
    }
    absl::Time deadline = absl::Now() + 2 * ContainerWait();
    struct stat st;
    while (stat((dir + "/ready").c_str(), &st) != 0 && absl::Now() < deadline &&
           waitpid(child, nullptr, WNOHANG) == 0) {
      Signal().WaitFor(absl::Milliseconds(5));  // another process: no signal
    }
    ASSERT_EQ(stat((dir + "/ready").c_str(), &st), 0)
        << "round " << round << ": the child did not start its containers";
    std::string network_name;
    std::ifstream(dir + "/network") >> network_name;
    ASSERT_EQ(ContainersOfRound(dir), 3) << "round " << round;
    ASSERT_TRUE(Engine({"network", "exists", network_name}).second);

    if (hangs) {
      int status = 0;
      ASSERT_EQ(waitpid(child, &status, 0), child);
      ASSERT_TRUE(WIFEXITED(status) &&
                  WEXITSTATUS(status) == lifecycle_testing::kHangExitCode)
          << "round " << round
          << ": not ended by the hang watchdog: " << status;
    } else {
      kill(child, SIGKILL);
    }
    // Every process of the killed test's tree ends: the engine's clients,
    // their monitors (conmon), the guards and what the guards ran.
    deadline = absl::Now() + 2 * ContainerWait();
    while (true) {
      pid_t reaped = waitpid(-1, nullptr, WNOHANG);
      if (reaped < 0 && errno == ECHILD) break;
      ASSERT_LT(absl::Now(), deadline)
          << "round " << round << ": processes of the killed test still run";
      if (reaped == 0) Signal().WaitFor(absl::Milliseconds(5));
    }
    EXPECT_EQ(ContainersOfRound(dir), 0) << "round " << round;
    // Nor the files of its containers (the id files, the notify sockets).
    EXPECT_THAT(
        FilesMatching(absl::StrCat("/tmp/lifecycle-container-", child, "-*")),
        ::testing::IsEmpty())
        << "round " << round;
    EXPECT_FALSE(Engine({"network", "exists", network_name}).second)
        << "round " << round;
    if (HasFailure()) break;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace lifecycle
