// Real servers as services: Debian's redis-server (ready when it notifies),
// memcached (ready when its socket accepts) and PostgreSQL 15 (initdb once
// per test binary into a template, copied per test; ready when it notifies,
// or when pg_isready says so), each with a round trip over its socket.
//
// A server that is not installed makes its tests skip with "... is not
// installed (Debian package P)"; .ci/run fails on such a skip, since
// tools/setup.sh installs them.

#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/process_service.h"
#include "lifecycle/startup_report.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/virtual_time.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle {
namespace {

using ::lifecycle_testing::IsStarted;
using ::lifecycle_testing::ShortTempDir;
using ::lifecycle_testing::StartStopHarness;
using ::lifecycle_testing::WaitTimeout;
using ::testing::HasSubstr;

constexpr char kPostgresBin[] = "/usr/lib/postgresql/15/bin";

// Skips the test unless `program` is there, naming the Debian package.
#define SKIP_UNLESS_INSTALLED(program, package)                              \
  if (access(program, X_OK) != 0)                                            \
  GTEST_SKIP() << program << " is not installed (Debian package " << package \
               << "; tools/setup.sh installs it)"

// Sends `request` to the Unix socket at `path` and reads the answer until it
// ends with `end` (or WaitTimeout() passes).
std::string AskUnixSocket(const std::string& path, const std::string& request,
                          const std::string& end) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    absl::Time deadline = absl::Now() + WaitTimeout();
    while (!absl::EndsWith(answer, end) && absl::Now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) != 1) continue;
      char buffer[1024];
      ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
      if (got <= 0) break;
      answer.append(buffer, static_cast<size_t>(got));
    }
  }
  close(fd);
  return answer;
}

// The output of a shell command.
std::string Output(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen((command + " 2>&1").c_str(), "r")) {
    char buffer[1024];
    size_t got;
    while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
      out.append(buffer, got);
    }
    pclose(pipe);
  }
  return out;
}

void RemoveTree(const std::string& dir) {
  EXPECT_THAT(Output(absl::StrCat("rm -rf '", dir, "' && echo removed")),
              HasSubstr("removed"));
}

// --- Redis ---------------------------------------------------------------------

ProcessOptions Redis(const std::string& dir) {
  ProcessOptions o;
  o.executable = "/usr/bin/redis-server";
  o.args = {"--port",       "0",       "--unixsocket", dir + "/redis.sock",
            "--supervised", "systemd", "--save",       "",
            "--appendonly", "no",      "--dir",        dir};
  o.ready_when = {Readiness::Notification()};
  o.start_timeout = 2 * WaitTimeout();
  return o;
}

TEST(RealServersTest, RedisIsReadyWhenItSaysSoAndAnswers) {
  SKIP_UNLESS_INSTALLED("/usr/bin/redis-server", "redis-server");
  std::string dir = ShortTempDir();
  ProcessService redis("redis", Redis(dir));
  StartStopHarness harness({&redis});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_THAT(redis, IsStarted());
  std::string socket = dir + "/redis.sock";
  EXPECT_EQ(AskUnixSocket(socket, "PING\r\n", "\r\n"), "+PONG\r\n");
  EXPECT_EQ(AskUnixSocket(socket, "SET greeting hello\r\n", "\r\n"), "+OK\r\n");
  EXPECT_EQ(AskUnixSocket(socket, "GET greeting\r\n", "hello\r\n"),
            "$5\r\nhello\r\n");
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(redis.pid(), 0);
}

// A real server under virtual time: the program runs in real time, and the
// time of the test body moves while it runs. A client that pings Redis every
// 30 s, retrying until it answers, is checked over 90 s of virtual time.
TEST(RealServersTest, ARedisUnderVirtualTimeLetsAThirtySecondRetryRun) {
  SKIP_UNLESS_INSTALLED("/usr/bin/redis-server", "redis-server");
  lifecycle_testing::VirtualTime time;
  std::string dir = ShortTempDir();
  ProcessService redis("redis", Redis(dir));
  std::vector<std::string> answers;  // written by the pinger, read after
  FuncService pinger("pinger", [&](const Context& ctx,
                                   absl::FunctionRef<void()> started) {
    started();
    while (!ctx.Done().WaitFor(absl::Seconds(30))) {
      answers.push_back(AskUnixSocket(dir + "/redis.sock", "PING\r\n", "\r\n"));
    }
    return absl::OkStatus();
  });
  StartStopHarness::Options options;
  options.context = time.context();
  StartStopHarness harness({&redis, &pinger}, options);
  ASSERT_TRUE(time.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    lifecycle::SleepFor(absl::Seconds(90));  // the delay under test
    EXPECT_TRUE(harness.StopAll());
  }));
  EXPECT_EQ(time.Elapsed(), absl::Seconds(90));
  EXPECT_THAT(answers,
              ::testing::ElementsAre("+PONG\r\n", "+PONG\r\n", "+PONG\r\n"));
  EXPECT_EQ(redis.pid(), 0);
}

// process_service.h's example, as it is there (clang-format off: its lines
// are checked one by one by tools/check_examples.py).
// clang-format off
TEST(ProcessServiceExample, Redis) {
  SKIP_UNLESS_INSTALLED("/usr/bin/redis-server", "redis-server");
  std::string socket_path = ShortTempDir() + "/redis.sock";
  lifecycle::Context ctx = lifecycle::Context::Background();
  lifecycle::ProcessOptions redis;
  redis.executable = "redis-server";
  redis.args = {"--port", "0", "--unixsocket", socket_path,
                "--supervised", "systemd", "--save", ""};
  redis.ready_when = {lifecycle::Readiness::Notification()};
  lifecycle::ProcessService server("redis", redis);
  absl::Status s = server.Start(ctx);   // launched; fails if it cannot run
  server.Started().Wait();              // ready: it said READY=1
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(server, IsStarted());
  server.Stop();
}
// clang-format on

// --- memcached -----------------------------------------------------------------

TEST(RealServersTest, MemcachedIsReadyWhenItsSocketAcceptsAndAnswers) {
  SKIP_UNLESS_INSTALLED("/usr/bin/memcached", "memcached");
  std::string socket = ShortTempDir() + "/memcached.sock";
  ProcessOptions o;
  o.executable = "/usr/bin/memcached";
  o.args = {"-s", socket, "-U", "0", "-m", "8"};
  if (geteuid() == 0) o.args.insert(o.args.end(), {"-u", "root"});
  o.ready_when = {Readiness::UnixSocket(socket)};
  o.start_timeout = 2 * WaitTimeout();
  ProcessService memcached("memcached", o);
  StartStopHarness harness({&memcached});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_EQ(AskUnixSocket(socket, "set k 0 0 5\r\nhello\r\n", "\r\n"),
            "STORED\r\n");
  EXPECT_EQ(AskUnixSocket(socket, "get k\r\n", "END\r\n"),
            "VALUE k 0 5\r\nhello\r\nEND\r\n");
  ASSERT_TRUE(harness.StopAll());
}

// --- PostgreSQL ----------------------------------------------------------------

// The user PostgreSQL runs as: "postgres" when this test runs as root (it
// refuses root), else this process's own.
std::string PostgresUser() { return geteuid() == 0 ? "postgres" : ""; }

// A directory PostgreSQL's user owns: in memory when the machine has
// /dev/shm (copying a data directory there takes a tenth of the time it takes
// on a disk).
std::string DirForPostgres() {
  char in_memory[] = "/dev/shm/lifecycle-pg-XXXXXX";
  std::string dir = mkdtemp(in_memory) != nullptr ? in_memory : ShortTempDir();
  if (geteuid() == 0) {
    if (passwd* pw = getpwnam("postgres")) {
      if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        ADD_FAILURE() << "chown " << dir;
      }
    }
  }
  return dir;
}

// PostgreSQL on the data directory `dir`/data, its socket in `dir`.
ProcessOptions PostgresIn(const std::string& dir,
                          std::vector<Readiness> ready_when) {
  ProcessOptions o;
  o.executable = std::string(kPostgresBin) + "/postgres";
  o.args = {"-D", dir + "/data",         "-k", dir,
            "-c", "listen_addresses=",   "-c", "fsync=off",
            "-c", "full_page_writes=off"};
  o.user = PostgresUser();
  o.ready_when = std::move(ready_when);
  o.start_timeout = 3 * WaitTimeout();
  return o;
}

// initdb once per test binary, into a template that each test copies: the
// embedded-PostgreSQL libraries' habit, and what makes a fresh database per
// test cheap. initdb itself runs as a ProcessService that ends by itself.
class PostgresTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (access((std::string(kPostgresBin) + "/initdb").c_str(), X_OK) != 0) {
      return;
    }
    template_dir_ = new std::string(DirForPostgres() + "/template");
    ProcessOptions o;
    o.executable = std::string(kPostgresBin) + "/initdb";
    // 1MB WAL segments instead of 16MB: a smaller template to copy.
    o.args = {
        "-D",        *template_dir_,    "--auth=trust", "--username=postgres",
        "--no-sync", "--encoding=UTF8", "--locale=C",   "--wal-segsize=1"};
    o.user = PostgresUser();
    ProcessService initdb("initdb", o);
    ASSERT_TRUE(initdb.Start(Context::Background()).ok());
    ASSERT_TRUE(initdb.Stopped().WaitFor(absl::Seconds(120)));
    ServiceSnapshot s = initdb.Snapshot();
    ASSERT_EQ(s.state, ServiceState::kStopped) << s.status << "\n"
                                               << s.last_failure;
  }
  static void TearDownTestSuite() {
    if (template_dir_ != nullptr) {
      RemoveTree(template_dir_->substr(0, template_dir_->rfind('/')));
    }
    delete template_dir_;
    template_dir_ = nullptr;
  }

  // Each test's data directory is 28MB, in memory: gone with the test.
  void TearDown() override {
    if (!dir_.empty()) RemoveTree(dir_);
  }

  void SetUp() override {
    SKIP_UNLESS_INSTALLED("/usr/lib/postgresql/15/bin/postgres",
                          "postgresql-15");
    ASSERT_NE(template_dir_, nullptr);
    dir_ = DirForPostgres();
    // cp -a keeps the owner (root may copy for postgres).
    std::string copy = Output(absl::StrCat("cp -a '", *template_dir_, "' '",
                                           dir_, "/data' && echo copied"));
    ASSERT_THAT(copy, HasSubstr("copied"));
  }

  ProcessOptions Postgres(std::vector<Readiness> ready_when) {
    return PostgresIn(dir_, std::move(ready_when));
  }

  std::string Select1() {
    return Output(absl::StrCat("psql -h '", dir_,
                               "' -U postgres -d postgres -Atc 'SELECT 1'"));
  }

  static std::string* template_dir_;
  std::string dir_;
};
std::string* PostgresTest::template_dir_ = nullptr;

TEST_F(PostgresTest, ReadyWhenItNotifiesAndAnswersSelect1) {
  ProcessService postgres("postgres", Postgres({Readiness::Notification()}));
  StartStopHarness harness({&postgres});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_EQ(Select1(), "1\n");
  pid_t postmaster = postgres.pid();
  ASSERT_TRUE(harness.StopAll());
  EXPECT_NE(kill(postmaster, 0), 0) << "the postmaster outlived its stop";
}

TEST_F(PostgresTest, ReadyWhenPgIsreadySaysSo) {
  ProcessService postgres(
      "postgres",
      Postgres({Readiness::CommandSucceeds({"pg_isready", "-q", "-h", dir_})}));
  StartStopHarness harness({&postgres});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_EQ(Select1(), "1\n");
  ASSERT_TRUE(harness.StopAll());
}

// The API starts when its database is ready: a program as a dependency in a
// composite's start-up graph.
TEST_F(PostgresTest, AServiceThatDependsOnItStartsOnceItIsReady) {
  ProcessService postgres("postgres", Postgres({Readiness::Notification()}));
  std::string seen;
  FuncService api(
      "api", [&](const Context& ctx, absl::FunctionRef<void()> started) {
        seen = Select1();  // before started(): the database must answer now
        started();
        ctx.Done().Wait();
        return absl::OkStatus();
      });
  CompositeService app("app");
  app.AddOrDie(postgres);
  app.AddOrDie(api, After(postgres));
  StartStopHarness harness({&app});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_EQ(seen, "1\n");
  // The start-up report has the server, with its time to ready, on the
  // critical path: the API waited for it.
  std::vector<StartupHop> path = CriticalPath(app.Snapshot());
  ASSERT_EQ(path.size(), 3u) << CriticalPathText(app.Snapshot());
  EXPECT_EQ(path[1].path, "app/postgres");
  EXPECT_GT(path[1].took, absl::ZeroDuration());
  EXPECT_EQ(path[2].path, "app/api");
  EXPECT_THAT(ToTraceEventJson({app.Snapshot()}), HasSubstr("app/postgres"));
  ASSERT_TRUE(harness.StopAll());
}

// --- A killed test leaves no PostgreSQL behind, nor its shared memory -------

constexpr char kKilledPostgresDir[] = "LIFECYCLE_KILLED_POSTGRES_DIR";

// Run again by the test below, in a child process: starts PostgreSQL on the
// data directory the parent made, says so, and waits to be killed.
TEST(KilledPostgresChild, StartsAndWaits) {
  const char* dir = std::getenv(kKilledPostgresDir);
  if (dir == nullptr) GTEST_SKIP() << "run by KilledWithSigkill only";
  ProcessService postgres("postgres",
                          PostgresIn(dir, {Readiness::Notification()}));
  ASSERT_TRUE(postgres.Start(Context::Background()).ok());
  ASSERT_TRUE(lifecycle_testing::WaitOrTimeout(postgres.Started(), {&postgres},
                                               3 * WaitTimeout()));
  std::ofstream(absl::StrCat(dir, "/pid")) << postgres.pid();
  Signal().Wait();  // until killed
}

// The shared-memory segments in /dev/shm that process `pid` has mapped: a
// postmaster's own, whatever other servers run beside it (tests run in
// parallel).
std::vector<std::string> SharedMemoryOf(pid_t pid) {
  std::vector<std::string> segments;
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::string line;
  while (std::getline(maps, line)) {
    size_t at = line.find("/dev/shm/PostgreSQL.");
    if (at == std::string::npos) continue;
    std::string path = line.substr(at);
    if (std::find(segments.begin(), segments.end(), path) == segments.end()) {
      segments.push_back(path);
    }
  }
  return segments;
}

TEST_F(PostgresTest, KilledWithSigkillTheTestLeavesNoServerNorSharedMemory) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setenv(kKilledPostgresDir, dir_.c_str(), 1);
    execl(self, self, "--gtest_filter=KilledPostgresChild.*", nullptr);
    _exit(127);
  }
  // Another process: a file says it is ready, no signal can.
  const std::string pid_file = dir_ + "/pid";
  absl::Time deadline = absl::Now() + 4 * WaitTimeout();
  int postmaster = 0;
  while (absl::Now() < deadline &&
         !absl::SimpleAtoi(
             Output(absl::StrCat("cat '", pid_file, "' 2>/dev/null")),
             &postmaster)) {
    Signal().WaitFor(absl::Milliseconds(5));
  }
  ASSERT_GT(postmaster, 0) << "the child did not start PostgreSQL";
  const std::vector<std::string> segments = SharedMemoryOf(postmaster);
  EXPECT_FALSE(segments.empty()) << "PostgreSQL mapped no segment of /dev/shm";
  kill(child, SIGKILL);
  int status;
  waitpid(child, &status, 0);
  // The guard gives the postmaster its SIGTERM, then SIGKILL a second later.
  deadline = absl::Now() + WaitTimeout();
  while (kill(postmaster, 0) == 0 && absl::Now() < deadline) {
    Signal().WaitFor(absl::Milliseconds(5));
  }
  EXPECT_NE(kill(postmaster, 0), 0) << "the postmaster outlived the test";
  for (const std::string& segment : segments) {
    EXPECT_NE(access(segment.c_str(), F_OK), 0)
        << "the killed test left PostgreSQL's shared memory: " << segment;
  }
}

}  // namespace
}  // namespace lifecycle
