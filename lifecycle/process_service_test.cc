// ProcessService with a program of our own (fake_server.cc) that notifies
// late, never or with an error, prints, listens, serves HTTP, ignores SIGTERM,
// forks, exits and crashes. The real servers are in real_servers_test.cc.

#include "lifecycle/process_service.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/live_services.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/leftover_threads.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/virtual_time.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle {
namespace {

using ::lifecycle_testing::HasFailed;
using ::lifecycle_testing::IsStarted;
using ::lifecycle_testing::ShortTempDir;
using ::lifecycle_testing::WaitOrTimeout;
using ::lifecycle_testing::WaitTimeout;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Property;

// The fake server: $FAKE_SERVER (Bazel), else beside this test's binary.
std::string FakeServer() {
  if (const char* path = std::getenv("FAKE_SERVER")) {
    char resolved[4096];
    if (realpath(path, resolved) != nullptr) return resolved;
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  std::string dir(self);
  return dir.substr(0, dir.rfind('/')) + "/fake_server";
}

ProcessOptions Fake(std::vector<std::string> args,
                    std::vector<Readiness> ready_when = {}) {
  ProcessOptions o;
  o.executable = FakeServer();
  o.args = std::move(args);
  o.ready_when = std::move(ready_when);
  o.start_timeout = WaitTimeout();
  o.stop_grace = WaitTimeout();
  return o;
}

std::string Detail(const ServiceSnapshot& s, const std::string& key) {
  for (const auto& [k, v] : s.details) {
    if (k == key) return v;
  }
  return "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// Whether `pid` has ended (gone, or a zombie nobody reaped yet).
bool Ended(pid_t pid) {
  if (kill(pid, 0) != 0) return true;
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  size_t close_paren = stat.rfind(')');
  return close_paren == std::string::npos ||
         stat.substr(close_paren + 2, 1) == "Z";
}

// Waits until `pid` has ended, for at most WaitTimeout().
bool EndsSoon(pid_t pid) {
  absl::Time deadline = absl::Now() + WaitTimeout();
  while (!Ended(pid)) {
    if (absl::Now() > deadline) return false;
    Signal().WaitFor(absl::Milliseconds(5));  // another process: no signal
  }
  return true;
}

pid_t PidIn(const std::string& file) {
  int pid = 0;
  return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(file)), &pid)
             ? pid
             : 0;
}

// A status with `code` and a message that `message` matches.
MATCHER_P2(StatusIs, code, message, "") {
  *result_listener << "which is " << arg;
  return arg.code() == code &&
         ::testing::Matches(message)(std::string(arg.message()));
}

// A port free a moment ago.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t size = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size);
  close(fd);
  return ntohs(a.sin_port);
}

TEST(ProcessServiceTest, ReadyWhenItNotifiesWithItsStatusAndLog) {
  lifecycle_testing::LeftoverProcessCheck processes;
  ProcessService server("server",
                        Fake({"--print=booting", "--sleep-ms=30",
                              "--notify=STATUS=warming up", "--notify=READY=1"},
                             {Readiness::Notification()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  EXPECT_THAT(server, IsStarted());
  ServiceSnapshot s = server.Snapshot();
  EXPECT_EQ(Detail(s, "pid"), absl::StrCat(server.pid()));
  EXPECT_EQ(Detail(s, "status"), "warming up");
  if (std::getenv("TEST_UNDECLARED_OUTPUTS_DIR") != nullptr &&
      std::getenv("LIFECYCLE_OUTPUT_DIR") == nullptr) {
    // Under Bazel: named where it stays after the test, not in the sandbox.
    EXPECT_EQ(Detail(s, "log"),
              "server.log in this test's outputs (bazel-testlogs/lifecycle/"
              "process_service_test/test.outputs, zipped as outputs.zip)");
  } else {
    EXPECT_EQ(Detail(s, "log"), server.log_path());
  }
  EXPECT_THAT(ToTable(s), HasSubstr("status=warming up"));
  EXPECT_THAT(server.LastOutputLines(), Contains("booting"));
  // The hang report's view (live_services.h) has the pid too.
  bool listed = false;
  for (const ServiceSnapshot& root : SnapshotLiveServices().roots) {
    if (root.name == "server") {
      listed = Detail(root, "pid") == absl::StrCat(server.pid());
    }
  }
  EXPECT_TRUE(listed);
  pid_t pid = server.pid();
  ASSERT_TRUE(server.StopFor(WaitTimeout()).ok());
  EXPECT_EQ(server.Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(Detail(server.Snapshot(), "exit"), "exited with status 0");
  EXPECT_EQ(server.pid(), 0);
  EXPECT_TRUE(Ended(pid));
  EXPECT_THAT(
      ReadFile(server.log_path()),
      AllOf(HasSubstr("=== lifecycle: server runs"), HasSubstr("booting\n")));
  // The program and its guard are both reaped.
  EXPECT_TRUE(processes.NoNewProcesses());
}

TEST(ProcessServiceTest, NotReadyWithinItsStartTimeoutFailsNamingTheRule) {
  ProcessOptions o =
      Fake({"--print=still thinking", "--wait"}, {Readiness::Notification()});
  o.start_timeout = absl::Milliseconds(200);
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Stopped()));
  EXPECT_THAT(
      server,
      HasFailed(AllOf(
          Property(&absl::Status::code, absl::StatusCode::kDeadlineExceeded),
          Property(&absl::Status::message,
                   AllOf(HasSubstr("is not ready after 200ms; still waiting "
                                   "for: READY=1 notification"),
                         HasSubstr("still thinking"))))));
}

TEST(ProcessServiceTest, ANotifiedErrnoFailsTheStart) {
  ProcessService server("server", Fake({"--print=cannot bind", "--sleep-ms=20",
                                        "--notify=ERRNO=98", "--wait"},
                                       {Readiness::Notification()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Stopped()));
  EXPECT_THAT(server, HasFailed(Property(
                          &absl::Status::message,
                          AllOf(HasSubstr("notified ERRNO=98 (Address already "
                                          "in use)"),
                                HasSubstr("cannot bind")))));
}

TEST(ProcessServiceTest, AnExitBeforeReadyFailsWithItsStatusAndLastLines) {
  ProcessService server("server",
                        Fake({"--stderr=fatal: bad config", "--exit=3"},
                             {Readiness::Notification()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Stopped()));
  EXPECT_THAT(server,
              HasFailed(Property(
                  &absl::Status::message,
                  AllOf(HasSubstr("exited with status 3 before it was ready"),
                        HasSubstr("fatal: bad config")))));
  EXPECT_EQ(Detail(server.Snapshot(), "exit"), "exited with status 3");
}

TEST(ProcessServiceTest, ACleanExitBeforeReadySaysItMayHaveDaemonised) {
  ProcessService server("server",
                        Fake({"--exit=0"}, {Readiness::Notification()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Stopped()));
  EXPECT_THAT(server, HasFailed(Property(&absl::Status::message,
                                         HasSubstr("daemonises itself"))));
}

TEST(ProcessServiceTest, BadOptionsFailTheStartNamingTheProgram) {
  struct Case {
    ProcessOptions options;
    absl::StatusCode code;
    std::string message;
  };
  std::string dir = ShortTempDir();
  std::string not_executable = dir + "/plain.txt";
  std::ofstream(not_executable) << "not a program";
  ProcessOptions missing = Fake({});
  missing.executable = "/nonexistent/redis-server";
  ProcessOptions nowhere = Fake({});
  nowhere.executable = "no-such-program-anywhere";
  ProcessOptions plain = Fake({});
  plain.executable = not_executable;
  ProcessOptions user = Fake({});
  user.user = "no-such-user-here";
  ProcessOptions pattern = Fake({}, {Readiness::OutputLine("ready (")});
  ProcessOptions port = Fake({}, {Readiness::TcpPort(70000)});
  ProcessOptions timeout = Fake({});
  timeout.start_timeout = absl::ZeroDuration();
  ProcessOptions grace = Fake({});
  grace.stop_grace = absl::Milliseconds(-1);
  ProcessOptions empty;
  for (const Case& c : std::vector<Case>{
           {missing, absl::StatusCode::kNotFound,
            "'/nonexistent/redis-server' does not exist"},
           {nowhere, absl::StatusCode::kNotFound,
            "'no-such-program-anywhere' is not found in PATH"},
           {plain, absl::StatusCode::kPermissionDenied,
            "is not an executable file"},
           {user, absl::StatusCode::kNotFound,
            "unknown user 'no-such-user-here'"},
           {pattern, absl::StatusCode::kInvalidArgument,
            "the readiness pattern 'ready (' is not a regular expression"},
           {port, absl::StatusCode::kInvalidArgument,
            "readiness port 70000 is not 1-65535"},
           {timeout, absl::StatusCode::kInvalidArgument,
            "start_timeout must be positive"},
           {grace, absl::StatusCode::kInvalidArgument,
            "stop_grace must not be negative"},
           {empty, absl::StatusCode::kInvalidArgument, "no program"},
       }) {
    ProcessService server("server", c.options);
    absl::Status s = server.Start(Context::Background());
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
    EXPECT_THAT(s.message(), HasSubstr("service 'server' failed to start"));
    EXPECT_EQ(server.pid(), 0);
  }
}

TEST(ProcessServiceTest, ReadyWhenALineOfItsOutputMatches) {
  ProcessService server(
      "server", Fake({"--print=loading", "--sleep-ms=20",
                      "--stderr=* Ready to accept connections tcp", "--wait"},
                     {Readiness::OutputLine("Ready to accept connections")}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  EXPECT_THAT(server, IsStarted());
  EXPECT_THAT(
      server.LastOutputLines(2),
      testing::ElementsAre("loading", "* Ready to accept connections tcp"));
  server.Stop();
}

TEST(ProcessServiceTest, KeepsItsLast100OutputLines) {
  std::vector<std::string> args;
  for (int i = 0; i < 150; ++i) args.push_back(absl::StrCat("--print=line", i));
  args.push_back("--print=done");
  ProcessService server("server",
                        Fake(args, {Readiness::OutputLine("^done$")}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  std::vector<std::string> lines = server.LastOutputLines(1000);
  ASSERT_EQ(lines.size(), 100u);
  EXPECT_EQ(lines.front(), "line51");
  EXPECT_EQ(lines.back(), "done");
  EXPECT_EQ(server.LastOutputLines(2),
            (std::vector<std::string>{"line149", "done"}));
  server.Stop();
}

TEST(ProcessServiceTest, ReadyWhenItsUnixSocketAccepts) {
  std::string socket_path = ShortTempDir() + "/s.sock";
  ProcessService server(
      "server", Fake({"--sleep-ms=50",
                      absl::StrCat("--listen-unix=", socket_path), "--wait"},
                     {Readiness::UnixSocket(socket_path)}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  EXPECT_THAT(server, IsStarted());
  server.Stop();
}

TEST(ProcessServiceTest, ReadyWhenItsPortAcceptsAndItsHttpAnswers2xx) {
  int port = FreePort();
  ProcessService server(
      "server",
      Fake({"--sleep-ms=30", absl::StrCat("--listen-tcp=", port), "--http=204",
            "--wait"},
           {Readiness::TcpPort(port), Readiness::HttpGet(port, "/health")}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  EXPECT_THAT(server, IsStarted());
  server.Stop();
}

TEST(ProcessServiceTest, AServerThatBindsPortZeroSaysWhichPortItGot) {
  ProcessService server("server",
                        Fake({"--sleep-ms=20", "--listen-tcp=0", "--http=200"},
                             {Readiness::ListensOnTcp()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  std::vector<int> ports = server.ListeningTcpPorts();
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_EQ(Detail(server.Snapshot(), "tcp"), absl::StrCat(ports[0]));
  // It answers there: another service waits on that port's HTTP.
  ProcessService waiter("waiter",
                        Fake({"--wait"}, {Readiness::HttpGet(ports[0], "/")}));
  ASSERT_TRUE(waiter.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(waiter.Started(), {&waiter}));
  EXPECT_THAT(waiter, IsStarted());
  waiter.Stop();
  server.Stop();
  EXPECT_TRUE(server.ListeningTcpPorts().empty());
}

TEST(ProcessServiceTest, AnHttpErrorIsNotReady) {
  int port = FreePort();
  ProcessOptions o = Fake({absl::StrCat("--listen-tcp=", port), "--http=503"},
                          {Readiness::HttpGet(port, "/health")});
  o.start_timeout = absl::Milliseconds(300);
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Stopped()));
  EXPECT_THAT(server, HasFailed(Property(&absl::Status::message,
                                         HasSubstr(absl::StrCat(
                                             "HTTP GET http://127.0.0.1:", port,
                                             "/health 2xx")))));
}

TEST(ProcessServiceTest, ReadyWhenACommandSucceedsOrAProbeSaysSo) {
  std::string file = ShortTempDir() + "/ready";
  std::atomic<int> probes{0};
  ProcessService server(
      "server",
      Fake(
          {"--sleep-ms=40", absl::StrCat("--pid-file=", file), "--wait"},
          {Readiness::CommandSucceeds({"test", "-s", file}),
           Readiness::Probe("the third look", [&] { return ++probes >= 3; })}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  EXPECT_THAT(server, IsStarted());
  EXPECT_EQ(PidIn(file), server.pid());
  EXPECT_GE(probes.load(), 3);
  server.Stop();
}

TEST(ProcessServiceTest, AProgramThatIgnoresSigtermIsKilledAndSaysSo) {
  ProcessOptions o = Fake({"--ignore-sigterm", "--notify=READY=1", "--wait"},
                          {Readiness::Notification()});
  o.stop_grace = absl::Milliseconds(100);
  ProcessService server("stubborn", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  pid_t pid = server.pid();
  server.Stop();
  EXPECT_TRUE(Ended(pid));
  EXPECT_THAT(server, HasFailed(Property(
                          &absl::Status::message,
                          HasSubstr("did not exit within its stop grace of "
                                    "100ms after SIGTERM; killed with "
                                    "SIGKILL"))));
  EXPECT_EQ(Detail(server.Snapshot(), "exit"),
            "was killed by signal 9 (SIGKILL)");
}

// ProcessOptions::stop_signal: a program that ignores SIGTERM stops at once
// when its stop signal is one it takes (SIGINT), and not one that cannot be
// caught.
TEST(ProcessServiceTest, TheStopSignalIsTheOneGiven) {
  ProcessOptions o = Fake({"--ignore-sigterm", "--notify=READY=1", "--wait"},
                          {Readiness::Notification()});
  o.stop_signal = SIGINT;
  ProcessService server("interruptible", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  server.Stop();
  EXPECT_EQ(Detail(server.Snapshot(), "exit"),
            "was killed by signal 2 (SIGINT)");

  o.stop_signal = SIGKILL;
  ProcessService bad("bad", o);
  EXPECT_THAT(bad.Start(Context::Background()).message(),
              HasSubstr("stop_signal must be a signal a program can catch, "
                        "not 9"));
}

TEST(ProcessServiceTest, StoppingEndsWhatTheProgramForked) {
  std::string file = ShortTempDir() + "/worker";
  ProcessService server(
      "server", Fake({absl::StrCat("--fork-worker=", file), "--wait"},
                     {Readiness::CommandSucceeds({"test", "-s", file})}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  pid_t worker = PidIn(file);
  ASSERT_GT(worker, 0);
  EXPECT_FALSE(Ended(worker));
  server.Stop();
  EXPECT_TRUE(EndsSoon(worker))
      << "worker " << worker << " outlived its server";
}

TEST(ProcessServiceTest, StoppingEndsWhatLeftTheProgramsGroup) {
  std::string file = ShortTempDir() + "/escapee";
  ProcessService server(
      "server", Fake({absl::StrCat("--fork-escapee=", file), "--wait"},
                     {Readiness::CommandSucceeds({"test", "-s", file})}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  pid_t escapee = PidIn(file);
  ASSERT_GT(escapee, 0);
  EXPECT_NE(getpgid(escapee), getpgid(server.pid()));  // it left the group
  server.Stop();
  EXPECT_TRUE(EndsSoon(escapee))
      << "process " << escapee << " left its program's group and outlived it";
}

TEST(ProcessServiceTest, AProgramThatDaemonisesLeavesNothingRunning) {
  std::string file = ShortTempDir() + "/daemon";
  // Forks its daemon, which leaves the group, and exits 0: as a server that
  // daemonises itself does.
  ProcessService server(
      "server", Fake({absl::StrCat("--fork-escapee=", file), "--exit=0"},
                     {Readiness::Notification()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Stopped()));
  EXPECT_THAT(
      server,
      HasFailed(Property(
          &absl::Status::message,
          AllOf(HasSubstr("exited with status 0 before it was ready (a "
                          "program that daemonises itself must run in the "
                          "foreground here); 1 process(es) it had started "
                          "outside its process group were killed")))));
  pid_t daemon = PidIn(file);
  ASSERT_GT(daemon, 0);
  EXPECT_TRUE(EndsSoon(daemon)) << "the daemon " << daemon << " escaped";
}

// Each run crashes 100ms after it said it was ready: well after the composite
// has started, so every crash is a death its supervision handles.
TEST(ProcessServiceTest, ACrashingServerIsRestartedBySupervision) {
  ProcessService server("server",
                        Fake({"--notify=READY=1", "--sleep-ms=100", "--crash"},
                             {Readiness::Notification()}));
  CompositeService app("app");
  app.AddOrDie(server, Supervision::Restart(2, absl::Minutes(1))
                           .WithBackoff(absl::Milliseconds(5)));
  ASSERT_TRUE(app.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(app.Stopped(), {&app}));
  EXPECT_THAT(app, HasFailed(Property(
                       &absl::Status::message,
                       AllOf(HasSubstr("was killed by signal 6 (SIGABRT) "
                                       "while running"),
                             HasSubstr("restarted 2 times within 1m")))));
  EXPECT_EQ(server.Snapshot().restart_count, 2);
}

TEST(ProcessServiceTest, TheEnvironmentAndDirectoryAreTheProgramsOwn) {
  std::string dir = ShortTempDir();
  ProcessOptions o =
      Fake({"--pid-file=here", "--wait"},
           {Readiness::CommandSucceeds({"test", "-s", dir + "/here"})});
  o.working_directory = dir;
  o.env = {{"NOTIFY_SOCKET", "@not-for-it"}};
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  std::string environ_of =
      ReadFile(absl::StrCat("/proc/", server.pid(), "/environ"));
  EXPECT_THAT(environ_of, HasSubstr("NOTIFY_SOCKET=@not-for-it"));
  server.Stop();
}

// --- Round 3: a stop during a probe, long lines, ERRNO after ready -------------

// A stop is bounded by its grace whatever the start is doing. The bound here
// is far below the probes' own limits (10 s for a command, 5 s for an HTTP
// GET), which a stop used to wait out.
constexpr absl::Duration kStopWellBeforeTheProbesLimit = absl::Seconds(3);

TEST(ProcessServiceTest, APortTakenBeforeTheProgramRunsFailsTheStart) {
  int port = FreePort();
  ProcessService first("first",
                       Fake({absl::StrCat("--listen-tcp=", port), "--wait"},
                            {Readiness::TcpPort(port)}));
  ASSERT_TRUE(first.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(first.Started(), {&first}));
  // Told the same port, the second is not "ready" because the first answers.
  ProcessService second("second",
                        Fake({absl::StrCat("--listen-tcp=", port), "--wait"},
                             {Readiness::TcpPort(port)}));
  absl::Status s = second.Start(Context::Background());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr(absl::StrCat("readiness port 127.0.0.1:", port,
                                           " already accepts connections "
                                           "before the program runs; it is "
                                           "held by pid ",
                                           first.pid(), " (fake_server)"))));
  first.Stop();
}

TEST(ProcessServiceTest, AStopDuringACommandProbeDoesNotWaitForTheProbe) {
  std::string dir = ShortTempDir();
  ProcessOptions o =
      Fake({"--wait"},
           {Readiness::CommandSucceeds(
               {"sh", "-c",
                absl::StrCat("echo $$ > ", dir, "/probe; exec sleep 600")})});
  o.start_timeout = absl::Hours(1);
  o.stop_grace = absl::Milliseconds(100);
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  // The probe runs: its command wrote its pid.
  absl::Time deadline = absl::Now() + WaitTimeout();
  while (PidIn(dir + "/probe") <= 0 && absl::Now() < deadline) {
    Signal().WaitFor(absl::Milliseconds(2));  // another process: no signal
  }
  pid_t probe = PidIn(dir + "/probe");
  ASSERT_GT(probe, 0);
  EXPECT_TRUE(server.StopFor(kStopWellBeforeTheProbesLimit).ok());
  EXPECT_TRUE(EndsSoon(probe)) << "the probe's command outlived the stop";
}

TEST(ProcessServiceTest, AStopDuringAnHttpProbeDoesNotWaitForTheProbe) {
  int port = FreePort();
  // Listens, and never answers: the probe waits for an answer.
  ProcessOptions o = Fake({absl::StrCat("--listen-tcp=", port), "--wait"},
                          {Readiness::HttpGet(port, "/health")});
  o.start_timeout = absl::Hours(1);
  o.stop_grace = absl::Milliseconds(100);
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  absl::Time deadline = absl::Now() + WaitTimeout();
  while (server.ListeningTcpPorts().empty() && absl::Now() < deadline) {
    Signal().WaitFor(absl::Milliseconds(2));  // another process: no signal
  }
  ASSERT_FALSE(server.ListeningTcpPorts().empty());
  Signal().WaitFor(absl::Milliseconds(300));  // the delay under test: past
                                              // the probe's longest backoff
  EXPECT_TRUE(server.StopFor(kStopWellBeforeTheProbesLimit).ok());
}

TEST(ProcessServiceTest, ALongLineIsKeptBoundedWithTheRestCounted) {
  constexpr long kBytes = 16 << 20;  // 16 MiB without a newline, then one
  ProcessService server("server", Fake({absl::StrCat("--print-bytes=", kBytes),
                                        "--print=", "--print=ready", "--wait"},
                                       {Readiness::OutputLine("^ready$")}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  std::vector<std::string> lines = server.LastOutputLines(2);
  ASSERT_EQ(lines.size(), 2u);
  // (Only its size and its end are printed on a failure, not 16 MiB.)
  const std::string counted =
      absl::StrCat(" [", kBytes - 65536, " more bytes in the log]");
  EXPECT_LT(lines[0].size(), 65536u + 100u);
  EXPECT_EQ(lines[0].substr(lines[0].size() -
                            std::min(lines[0].size(), counted.size())),
            counted);
  server.Stop();
  struct stat st;
  ASSERT_EQ(stat(server.log_path().c_str(), &st), 0);
  EXPECT_GT(st.st_size, kBytes);  // every byte, with the run's header
}

TEST(ProcessServiceTest, AnErrnoAfterReadyIsRecordedAndTheProgramRunsOn) {
  ProcessService server("server", Fake({"--notify=READY=1", "--sleep-ms=20",
                                        "--notify=ERRNO=5", "--wait"},
                                       {Readiness::Notification()}));
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  ASSERT_TRUE(lifecycle_testing::WaitSnapshotOrTimeout(
      server, [](const ServiceSnapshot& s) { return s.degraded; }));
  ServiceSnapshot snapshot = server.Snapshot();
  EXPECT_EQ(Detail(snapshot, "errno"), "5 (Input/output error)");
  EXPECT_THAT(snapshot.last_error.message(),
              HasSubstr("notified ERRNO=5 (Input/output error) while running"));
  EXPECT_THAT(server, IsStarted());
  EXPECT_GT(server.pid(), 0);
  server.Stop();
  EXPECT_TRUE(server.Snapshot().last_failure.ok());
}

// --- Programs and virtual time ---------------------------------------------------

TEST(ProcessServiceTest, VirtualTimeMovesWhileAProgramRuns) {
  lifecycle_testing::VirtualTime time;
  ProcessService server("server", Fake({"--notify=READY=1", "--wait"},
                                       {Readiness::Notification()}));
  lifecycle_testing::StartStopHarness::Options options;
  options.context = time.context();
  lifecycle_testing::StartStopHarness harness({&server}, options);
  ASSERT_TRUE(time.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    lifecycle::SleepFor(absl::Minutes(30));  // the delay under test
    EXPECT_THAT(server, IsStarted());
    EXPECT_TRUE(harness.StopAll());
  }));
  EXPECT_EQ(time.Elapsed(), absl::Minutes(30));
  EXPECT_EQ(server.pid(), 0);
}

// The CPUs this thread may run on, as /proc shows them.
std::string CpusAllowed(const std::string& status) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, "Cpus_allowed_list:")) {
      return std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return "";
}

TEST(ProcessServiceTest, AProgramStartedInVirtualTimeKeepsTheProcessCpus) {
  const std::string before = CpusAllowed(ReadFile("/proc/thread-self/status"));
  std::string cpus;
  {
    lifecycle_testing::VirtualTime time;
    // The program prints its own CPUs, then waits.
    ProcessOptions o;
    o.executable = "/bin/sh";
    o.args = {"-c", "grep Cpus_allowed_list /proc/self/status; exec sleep 600"};
    o.ready_when = {Readiness::OutputLine("^Cpus_allowed_list")};
    o.start_timeout = WaitTimeout();
    ProcessService shell("shell", o);
    ASSERT_TRUE(shell.Start(time.context()).ok());
    ASSERT_TRUE(WaitOrTimeout(shell.Started(), {&shell}));
    std::vector<std::string> lines = shell.LastOutputLines(1);
    ASSERT_EQ(lines.size(), 1u);
    cpus = CpusAllowed(lines[0] + "\n");
    shell.Stop();
  }
  EXPECT_EQ(cpus, before);
  // The pin of the test thread ended with the time.
  EXPECT_EQ(CpusAllowed(ReadFile("/proc/thread-self/status")), before);
}

// --- Never orphaned -------------------------------------------------------------

TEST(ProcessServiceTest, ANotifySocketPathIsMadeForTheRunAndRemovedAfter) {
  const std::string dir = ShortTempDir();
  const std::string socket_path = dir + "/notify.sock";
  ProcessOptions o =
      Fake({"--notify=READY=1", "--wait"}, {Readiness::Notification()});
  o.notify_socket_path = socket_path;
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  struct stat st;
  ASSERT_EQ(stat(socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  ASSERT_TRUE(server.StopFor(WaitTimeout()).ok());
  EXPECT_NE(stat(socket_path.c_str(), &st), 0) << "the socket file is left";

  o.notify_socket_path = std::string(120, 'x');
  ProcessService too_long("too_long", o);
  EXPECT_THAT(too_long.Start(Context::Background()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("longer than 107 bytes")));
}

TEST(ProcessServiceTest, TheCleanupCommandRunsAfterEachRun) {
  const std::string dir = ShortTempDir();
  ProcessOptions o =
      Fake({"--notify=READY=1", "--wait"}, {Readiness::Notification()});
  o.cleanup_command = {"sh", "-c", absl::StrCat("echo x >> ", dir, "/runs")};
  ProcessService server("server", o);
  ASSERT_TRUE(server.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(server.Started(), {&server}));
  EXPECT_EQ(ReadFile(dir + "/runs"), "") << "ran before the run ended";
  ASSERT_TRUE(server.StopFor(WaitTimeout()).ok());
  EXPECT_EQ(ReadFile(dir + "/runs"), "x\n");

  // A run that fails runs it too; one that fails is the reported error.
  o.args = {"--exit=3"};
  o.cleanup_command = {"sh", "-c", "echo gone wrong; exit 4"};
  ProcessService failing("failing", o);
  ASSERT_TRUE(failing.Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(failing.Stopped(), {&failing}));
  EXPECT_THAT(failing.Snapshot().status,
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("exited with status 3")));
  EXPECT_THAT(failing.Snapshot().last_error,
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("the cleanup command"),
                             HasSubstr("exited with status 4"),
                             HasSubstr("gone wrong"))));

  o.cleanup_command = {"no-such-cleanup-program"};
  ProcessService missing("missing", o);
  EXPECT_THAT(missing.Start(Context::Background()),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("its cleanup_command"),
                             HasSubstr("no-such-cleanup-program"))));
}

constexpr char kOrphanDir[] = "LIFECYCLE_ORPHAN_DIR";

// Run again by the test below, in a child process: starts three servers, each
// with a forked worker, says so, and waits to be killed.
TEST(OrphanChild, StartsThreeServersAndWaits) {
  const char* dir = std::getenv(kOrphanDir);
  if (dir == nullptr) GTEST_SKIP() << "run by NeverOrphaned only";
  std::vector<std::unique_ptr<ProcessService>> servers;
  for (int i = 0; i < 3; ++i) {
    std::string worker = absl::StrCat(dir, "/worker", i);
    ProcessOptions o =
        Fake({absl::StrCat("--pid-file=", dir, "/server", i),
              absl::StrCat("--fork-worker=", worker),
              absl::StrCat("--fork-escapee=", dir, "/escapee", i),
              "--notify=READY=1", "--wait"},
             {Readiness::Notification(),
              Readiness::CommandSucceeds({"test", "-s", worker})});
    // The guard runs it once the killed test's program is gone.
    o.cleanup_command = {"touch", absl::StrCat(dir, "/cleaned", i)};
    servers.push_back(
        std::make_unique<ProcessService>(absl::StrCat("server", i), o));
    ASSERT_TRUE(servers.back()->Start(Context::Background()).ok());
  }
  for (auto& server : servers) {
    ASSERT_TRUE(WaitOrTimeout(server->Started(), {server.get()}));
  }
  std::ofstream(absl::StrCat(dir, "/ready")) << "ready";
  Signal().Wait();  // until killed
}

TEST(ProcessServiceTest, ATestKilledWithSigkillLeavesNoProcessBehind) {
  const int rounds = kAnySanitizer ? 10 : 50;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  for (int round = 0; round < rounds; ++round) {
    std::string dir = ShortTempDir();
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      setenv(kOrphanDir, dir.c_str(), 1);
      execl(self, self, "--gtest_filter=OrphanChild.*", nullptr);
      _exit(127);
    }
    absl::Time deadline = absl::Now() + 2 * WaitTimeout();
    struct stat st;
    while (stat((dir + "/ready").c_str(), &st) != 0 && absl::Now() < deadline &&
           !Ended(child)) {
      Signal().WaitFor(absl::Milliseconds(2));  // another process: no signal
    }
    ASSERT_EQ(stat((dir + "/ready").c_str(), &st), 0)
        << "round " << round << ": the child did not start its servers";
    std::vector<pid_t> pids;
    for (int i = 0; i < 3; ++i) {
      pids.push_back(PidIn(absl::StrCat(dir, "/server", i)));
      pids.push_back(PidIn(absl::StrCat(dir, "/worker", i)));
      pids.push_back(PidIn(absl::StrCat(dir, "/escapee", i)));
    }
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    for (pid_t pid : pids) {
      ASSERT_GT(pid, 0);
      EXPECT_TRUE(EndsSoon(pid)) << "round " << round << ": process " << pid
                                 << " outlived the killed test";
    }
    // Each guard ran its program's cleanup command.
    for (int i = 0; i < 3; ++i) {
      const std::string cleaned = absl::StrCat(dir, "/cleaned", i);
      absl::Time until = absl::Now() + WaitTimeout();
      while (stat(cleaned.c_str(), &st) != 0 && absl::Now() < until) {
        Signal().WaitFor(absl::Milliseconds(2));  // another process: no signal
      }
      EXPECT_EQ(stat(cleaned.c_str(), &st), 0)
          << "round " << round << ": server" << i << "'s cleanup did not run";
    }
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace lifecycle
