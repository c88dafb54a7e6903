// The tests a user of the library writes for a client like this one.
#include "examples/client.h"

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/attributes.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/clock.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/testing/conformance.h"
#include "lifecycle/testing/hang_watchdog.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/leftover_threads.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/stress.h"
#include "lifecycle/testing/virtual_time.h"
#include "lifecycle/testing/wait.h"

namespace examples {
namespace {

using lifecycle::ServiceState;
using lifecycle_testing::HasFailed;
using lifecycle_testing::HasRestarted;
using lifecycle_testing::HasState;
using lifecycle_testing::IsDegraded;
using lifecycle_testing::IsStarted;
using lifecycle_testing::StartStopHarness;
using lifecycle_testing::WaitOrTimeout;
using lifecycle_testing::WaitSnapshotOrTimeout;
using ::testing::AllOf;
using ::testing::Not;

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() {
    config_.queues = {"default", "bulk"};
    config_.database = &database_;
  }
  SimulatedDatabase database_;
  ClientConfig config_;
};

TEST_F(ClientTest, StartsEveryComponent) {
  Client client(config_);
  StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
  lifecycle::ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.Flatten().size(), 9u);
  for (const auto* node : s.Flatten()) {
    EXPECT_EQ(node->state, ServiceState::kStarted) << node->path;
  }
  ASSERT_NE(s.Find("client/producer/bulk"), nullptr);
}

TEST_F(ClientTest, ElectsALeader) {
  Client client(config_);
  client.elector().test_signals().elected.Init();
  StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_TRUE(WaitOrTimeout(client.elector().test_signals().elected));
  EXPECT_TRUE(client.elector().IsLeader());
}

// --- Time: hours of the client in milliseconds ------------------------------
// The production intervals, unshortened: each test body runs in virtual time
// (lifecycle/testing/virtual_time.h), which jumps to the next deadline
// whenever every thread in it is blocked. The body just waits.

class ClientTimeTest : public ClientTest {
 protected:
  StartStopHarness::Options InVirtualTime() {
    StartStopHarness::Options options;
    options.context = time_.context();
    return options;
  }
  lifecycle_testing::VirtualTime time_;
};

TEST_F(ClientTimeTest, TheCleanerRunsThreeTimesInThreeHours) {
  Maintenance maintenance(config_);  // every hour, as in production
  StartStopHarness harness({&maintenance}, InVirtualTime());
  ASSERT_TRUE(time_.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    lifecycle::SleepFor(absl::Hours(3) - absl::Seconds(1));  // virtual time
    EXPECT_EQ(maintenance.cleaner().ticks(), 2);
    lifecycle::SleepFor(absl::Seconds(1));  // the third hour is up
    EXPECT_EQ(maintenance.cleaner().ticks(), 3);
    EXPECT_EQ(maintenance.rescuer().ticks(), 3);
  }));
}

TEST_F(ClientTimeTest, ReconnectsBackOffDoublingUpToThirtySeconds) {
  Notifier notifier(config_);
  Notifier::TestSignals& signals = notifier.test_signals();
  signals.reconnect_scheduled.Init();
  signals.connected.Init();
  StartStopHarness harness({&notifier}, InVirtualTime());
  ASSERT_TRUE(time_.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    ASSERT_TRUE(WaitOrTimeout(signals.connected));

    // The database goes away: the notifier retries at once, then backs off.
    database_.SetAvailable(false);
    database_.DropConnections();
    ASSERT_EQ(WaitOrTimeout(signals.reconnect_scheduled), 1);
    std::vector<absl::Duration> waits;
    absl::Time last = lifecycle::Now();
    for (int attempt = 2; attempt <= 8; ++attempt) {
      ASSERT_EQ(WaitOrTimeout(signals.reconnect_scheduled, absl::Minutes(1)),
                attempt);
      waits.push_back(lifecycle::Now() - last);
      last = lifecycle::Now();
    }
    EXPECT_THAT(waits, ::testing::ElementsAre(
                           absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                           absl::Seconds(8), absl::Seconds(16),
                           absl::Seconds(30), absl::Seconds(30)));
    EXPECT_THAT(notifier, IsDegraded());

    // It comes back: the next attempt, 30s later, connects; healthy again.
    database_.SetAvailable(true);
    ASSERT_TRUE(WaitOrTimeout(signals.connected, absl::Minutes(1)));
    EXPECT_EQ(lifecycle::Now() - last, absl::Seconds(30));
    EXPECT_THAT(notifier, Not(IsDegraded()));
    lifecycle::ServiceSnapshot s = notifier.Snapshot();
    EXPECT_EQ(s.error_count, 8);
    EXPECT_EQ(s.last_error.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(s.last_error_at, last);  // in virtual time, as every timestamp
  }));
}

TEST_F(ClientTimeTest, AMinuteOfTheWholeClient) {
  Client client(config_);
  client.elector().test_signals().elected.Init();
  StartStopHarness harness({&client}, InVirtualTime());
  ASSERT_TRUE(time_.Run([&] {
    ASSERT_TRUE(harness.StartAll());
    lifecycle::SleepFor(absl::Minutes(1));  // the minute under test, virtual
    EXPECT_TRUE(WaitOrTimeout(client.elector().test_signals().elected));
    for (const auto& producer : client.producer().producers()) {
      EXPECT_EQ(producer->ticks(), 60) << producer->Path();  // every second
    }
    EXPECT_EQ(client.maintenance().cleaner().ticks(), 0);  // hourly
    EXPECT_THAT(client, IsStarted());
  }));
}

// The README's example, verbatim but for the test name: keeps it compiling.
TEST(ReadmeTest, NotifierReconnects) {
  examples::SimulatedDatabase db;
  examples::ClientConfig config;
  config.database = &db;
  examples::Client client(config);
  auto& signals = client.notifier().test_signals();
  signals.reconnect_scheduled.Init();

  lifecycle_testing::StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());  // fails naming the path that did not start

  db.SetAvailable(false);  // the database goes away...
  db.DropConnections();
  EXPECT_EQ(lifecycle_testing::WaitOrTimeout(signals.reconnect_scheduled), 1);
  EXPECT_THAT(client.notifier(), lifecycle_testing::IsDegraded());
}  // the harness stops everything, bounded, and reports what would not stop

TEST_F(ClientTest, FailingLeafIsNamedByItsFullPath) {
  config_.faults.fail = {"client/producer/bulk"};
  Client client(config_);
  StartStopHarness harness({&client});
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(harness.StartAll()),
      "Failed: client/producer/bulk (UNAVAILABLE: service "
      "'client/producer/bulk' failed to start: injected failure at "
      "client/producer/bulk)");
  EXPECT_THAT(client, HasState(ServiceState::kFailed));
  EXPECT_EQ(lifecycle::FailedServicePath(client.Snapshot().status),
            "client/producer/bulk");
}

TEST_F(ClientTest, HangingLeafIsReportedAsPending) {
  config_.faults.hang = {"client/maintenance/rescuer"};
  Client client(config_);
  // Long enough for every other part to start first (about 90ms of simulated
  // start-up, slower under sanitizers), so the report blames the rescuer.
  StartStopHarness::Options options;
  options.start_timeout =
      absl::Seconds(1) * lifecycle_testing::SanitizerTimeoutFactor();
  StartStopHarness harness({&client}, options);
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StartAll()),
                          "client/maintenance/rescuer (starting for ");
}

TEST_F(ClientTest, RestartsAfterAFailedStart) {
  database_.SetAvailable(true);
  config_.faults.fail = {"client/elector"};
  Client client(config_);
  ASSERT_TRUE(client.Start(lifecycle::Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(client.Stopped()));
  EXPECT_THAT(client, HasState(ServiceState::kFailed));
  config_.faults.fail.clear();  // the client reads its config on each start
  StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_EQ(client.Snapshot().failure_count, 1);
}

TEST_F(ClientTest, LeavesNoThreadsBehind) {
  lifecycle_testing::LeftoverThreadCheck check;
  {
    Client client(config_);
    StartStopHarness harness({&client});
    ASSERT_TRUE(harness.StartAll());
  }
  EXPECT_TRUE(check.NoNewThreads());
}

TEST_F(ClientTest, SurvivesStartStopStress) {
  Client client(config_);
  lifecycle_testing::StressOptions options;
  options.threads = 4;
  options.cycles = 10;
  EXPECT_TRUE(lifecycle_testing::StressStartStop(client, options));
}

// --- A test that hangs ---------------------------------------------------------

// This suite's main is //testing:hang_watchdog_main, so a test that hangs is
// reported before Bazel kills the binary. This one hangs on purpose, in a
// child process: it waits for a reply nobody sends. README.md ("When a test
// hangs") shows the report it gives.
ABSL_ATTRIBUTE_NOINLINE std::string AwaitReply(
    std::future<std::string>& reply) {
  std::string answer = reply.get();  // not a tail call: a frame of its own
  return "reply: " + answer;
}

TEST_F(ClientTest, AHungTestIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child has the watchdog
  EXPECT_EXIT(
      {
        Client client(config_);
        StartStopHarness harness({&client});
        if (!harness.StartAll()) std::_Exit(3);
        lifecycle_testing::SetTestBudget(absl::Seconds(1));
        std::promise<std::string> nobody_answers;
        std::future<std::string> reply = nobody_answers.get_future();
        AwaitReply(reply);
      },
      ::testing::ExitedWithCode(lifecycle_testing::kHangExitCode),
      ::testing::AllOf(
          ::testing::HasSubstr("ClientTest.AHungTestIsReported"),
          ::testing::ContainsRegex("client/notifier +started"),
          ::testing::HasSubstr(lifecycle::kThreadSanitizer
                                   ? "not captured in ThreadSanitizer builds"
                                   : "AwaitReply"),
          ::testing::HasSubstr("(worker of client/notifier)")));
}

// --- A part that dies once the client runs, under each policy ---------------

class ClientSupervisionTest : public ClientTest {
 protected:
  ClientSupervisionTest() {
    config_.crashes = &crashes_;
    config_.restart_policy.backoff = absl::Milliseconds(1);
  }
  // Crashes the leaf at `path` once it is running.
  void Crash(const std::string& path) { ASSERT_TRUE(crashes_.Crash(path)); }
  Crashes crashes_;
};

// Fail fast: a dead producer takes the client down, naming the producer.
TEST_F(ClientSupervisionTest, AProducerDeathFailsTheClient) {
  Client client(config_);
  StartStopHarness harness({&client});
  harness.ExpectFailure("client/producer/bulk");
  ASSERT_TRUE(harness.StartAll());
  lifecycle::Signal client_stopped = client.Stopped();
  Crash("client/producer/bulk");
  ASSERT_TRUE(WaitOrTimeout(client_stopped, {&client}));
  EXPECT_THAT(client, HasFailed(::testing::Property(
                          &absl::Status::message,
                          "service 'client/producer/bulk' failed while "
                          "running: crashed (injected)")));
  lifecycle::ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.Find("client/notifier")->state, ServiceState::kStopped);
  EXPECT_EQ(s.Find("client/producer/default")->state, ServiceState::kStopped);
}

// Degrade: dead maintenance leaves the client running, degraded.
TEST_F(ClientSupervisionTest, AMaintenanceDeathDegradesTheClient) {
  Client client(config_);
  StartStopHarness harness({&client});
  harness.ExpectFailure("client/maintenance/cleaner");
  ASSERT_TRUE(harness.StartAll());
  Crash("client/maintenance/cleaner");
  ASSERT_TRUE(WaitSnapshotOrTimeout(client, IsDegraded()));
  lifecycle::ServiceSnapshot s = client.Snapshot();
  EXPECT_THAT(s.last_error.message(),
              ::testing::HasSubstr("service 'client/maintenance/cleaner' "
                                   "failed while running"));
  EXPECT_EQ(s.Find("client/maintenance")->state, ServiceState::kFailed);
  EXPECT_EQ(s.Find("client/maintenance/rescuer")->state,
            ServiceState::kStopped);  // stopped by its failing group
  EXPECT_EQ(s.Find("client/producer/default")->state, ServiceState::kStarted);
}

// Restart: a dead notifier comes back; the client never noticed.
TEST_F(ClientSupervisionTest, ANotifierDeathRestartsIt) {
  Client client(config_);
  StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
  Crash("client/notifier");
  // Restarted once and started again; the death is examined: not reported.
  ASSERT_TRUE(WaitSnapshotOrTimeout(client.notifier(),
                                    AllOf(HasRestarted(1), IsStarted())));
  EXPECT_THAT(client, IsStarted());
  EXPECT_THAT(client, Not(IsDegraded()));
}

// Restart, within limits: the fourth death within a minute fails the client.
TEST_F(ClientSupervisionTest, ANotifierThatKeepsDyingFailsTheClient) {
  Client client(config_);
  StartStopHarness harness({&client});
  harness.ExpectFailure("client/notifier");
  ASSERT_TRUE(harness.StartAll());
  lifecycle::Signal client_stopped = client.Stopped();
  for (int restarts = 1; restarts <= 3; ++restarts) {
    Crash("client/notifier");
    ASSERT_TRUE(WaitSnapshotOrTimeout(
        client.notifier(), AllOf(HasRestarted(restarts), IsStarted())));
  }
  Crash("client/notifier");
  ASSERT_TRUE(WaitOrTimeout(client_stopped, {&client}));
  EXPECT_THAT(client, HasFailed(::testing::Property(
                          &absl::Status::message,
                          ::testing::HasSubstr("(restarted 3 times within 1m; "
                                               "the limit is 3)"))));
}

// The contract, checked on the whole client and on one subservice.
SimulatedDatabase conformance_database;
Crashes conformance_crashes;
ClientConfig ConformanceConfig() {
  ClientConfig config;
  config.database = &conformance_database;
  config.crashes = &conformance_crashes;
  return config;
}
const ClientConfig conformance_config = ConformanceConfig();

using lifecycle_testing::ServiceConformanceTest;
INSTANTIATE_TEST_SUITE_P(
    Example, ServiceConformanceTest,
    ::testing::Values(
        lifecycle_testing::ServiceFactory{
            "Client",
            [] { return std::make_unique<Client>(conformance_config); },
            // A dead producer fails the client (fail fast).
            [](lifecycle::Service&) {
              conformance_crashes.Crash("client/producer/default");
            }},
        lifecycle_testing::ServiceFactory{
            "Notifier",
            [] { return std::make_unique<Notifier>(conformance_config); },
            [](lifecycle::Service&) {
              conformance_crashes.Crash("notifier");
            }}),
    lifecycle_testing::ServiceFactoryName);

}  // namespace
}  // namespace examples
