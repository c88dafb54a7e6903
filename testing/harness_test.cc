#include "lifecycle/testing/harness.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/startup_report.h"
#include "lifecycle/strings_internal.h"
#include "lifecycle/testing/fake_service.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/virtual_time.h"
#include "nlohmann/json.hpp"

namespace lifecycle_testing {
namespace {

using lifecycle::ServiceSnapshot;
using lifecycle::ServiceState;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Short, for tests that expect a timeout; the start timeout leaves room for a
// slow (sanitizer) build to reach the state the test expects to be reported.
StartStopHarness::Options Short() {
  StartStopHarness::Options options;
  options.start_timeout = absl::Milliseconds(250);
  options.stop_timeout = absl::Milliseconds(50);
  return options;
}

// The failures `body` reports, captured.
template <typename Body>
std::vector<std::string> FailuresOf(Body body) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &results);
    body();
  }
  std::vector<std::string> messages;
  for (int i = 0; i < results.size(); ++i) {
    messages.push_back(results.GetTestPartResult(i).message());
  }
  return messages;
}

// client -> {notifier, producer -> {default, bulk}}, all fakes at the leaves.
class Producer : public lifecycle::CompositeService {
 public:
  Producer()
      : CompositeService("producer"), default_("default"), bulk_("bulk") {
    AddChildOrDie(default_);
    AddChildOrDie(bulk_);
  }
  ~Producer() override { Stop(); }
  FakeService default_, bulk_;
};

class Client : public lifecycle::CompositeService {
 public:
  Client() : CompositeService("client"), notifier_("notifier") {
    AddChildOrDie(notifier_);
    AddChildOrDie(producer_);
  }
  ~Client() override { Stop(); }
  FakeService notifier_;
  Producer producer_;
};

TEST(StartStopHarnessTest, StartsAndStopsEverything) {
  Client client;
  {
    StartStopHarness harness({&client});
    ASSERT_TRUE(harness.StartAll());
    EXPECT_THAT(client, IsStarted());
    EXPECT_THAT(client.producer_.bulk_, IsStarted());
  }
  EXPECT_THAT(client, HasState(ServiceState::kStopped));
  EXPECT_THAT(client.producer_.bulk_, HasState(ServiceState::kStopped));
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> files;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") files.push_back(name);
    }
    closedir(d);
  }
  return files;
}

// The files a run of this binary wrote into `dir`, running only `filter`
// (tests of HarnessOutputsChild, which run only when asked).
std::vector<std::string> FilesWrittenBy(const std::string& filter,
                                        const std::string& dir,
                                        const std::string& env = "") {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return {"(no /proc/self/exe)"};
  self[n] = '\0';
  // The child is not the test Bazel runs: none of its result files.
  std::string command = absl::StrCat(
      "env -u TEST_PREMATURE_EXIT_FILE -u XML_OUTPUT_FILE -u GTEST_OUTPUT ",
      env, " LIFECYCLE_HARNESS_OUTPUTS_CHILD=1 LIFECYCLE_OUTPUT_DIR='", dir,
      "' '", self, "' --gtest_filter='", filter, "' >/dev/null 2>&1");
  // Its exit status is the child test's (some fail on purpose); only a child
  // that could not run at all is this helper's failure.
  if (std::system(command.c_str()) == -1) return {"(the child did not run)"};
  return FilesIn(dir);
}

class HarnessOutputsChild : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("LIFECYCLE_HARNESS_OUTPUTS_CHILD") == nullptr) {
      GTEST_SKIP() << "run by HarnessOutputsTest only";
    }
  }
};

TEST_F(HarnessOutputsChild, Passes) {
  FakeService db("db");
  StartStopHarness harness({&db});
  ASSERT_TRUE(harness.StartAll());
}

TEST_F(HarnessOutputsChild, FailsAfterItsStart) {
  FakeService db("db");
  StartStopHarness harness({&db});
  ASSERT_TRUE(harness.StartAll());
  ADD_FAILURE() << "the test's own failure";
}

TEST_F(HarnessOutputsChild, FailsToStartTwice) {
  for (int i = 0; i < 2; ++i) {
    FakeService db("db");
    db.FailStartWith(absl::InternalError("boom"));
    StartStopHarness harness({&db}, Short());
    EXPECT_FALSE(harness.StartAll());
  }
}

TEST(HarnessOutputsTest, APassingTestWritesNothing) {
  std::string dir = ShortTempDir();
  EXPECT_THAT(FilesWrittenBy("HarnessOutputsChild.Passes", dir),
              ::testing::IsEmpty());
}

TEST(HarnessOutputsTest, AFailedTestKeepsItsStartupTimeline) {
  std::string dir = ShortTempDir();
  EXPECT_THAT(FilesWrittenBy("HarnessOutputsChild.FailsAfterItsStart", dir),
              ::testing::UnorderedElementsAre(
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json",
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json.svg"));
}

TEST(HarnessOutputsTest, EachFailedStartHasItsOwnFiles) {
  std::string dir = ShortTempDir();
  EXPECT_THAT(FilesWrittenBy("HarnessOutputsChild.FailsToStartTwice", dir),
              ::testing::UnorderedElementsAre(
                  "HarnessOutputsChild.FailsToStartTwice.snapshot.json",
                  "HarnessOutputsChild.FailsToStartTwice.startup.json",
                  "HarnessOutputsChild.FailsToStartTwice.startup.json.svg",
                  "HarnessOutputsChild.FailsToStartTwice.2.snapshot.json",
                  "HarnessOutputsChild.FailsToStartTwice.2.startup.json",
                  "HarnessOutputsChild.FailsToStartTwice.2.startup.json.svg"));
}

TEST(HarnessOutputsTest, RepeatsAreCounted) {
  std::string dir = ShortTempDir();
  EXPECT_THAT(FilesWrittenBy("HarnessOutputsChild.FailsAfterItsStart", dir,
                             "GTEST_REPEAT=2"),
              ::testing::UnorderedElementsAre(
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json",
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json.svg",
                  "HarnessOutputsChild.FailsAfterItsStart.2.startup.json",
                  "HarnessOutputsChild.FailsAfterItsStart.2.startup.json.svg"));
}

TEST(HarnessOutputsTest, EveryTimelineWhenAsked) {
  std::string dir = ShortTempDir();
  std::vector<std::string> files = FilesWrittenBy("HarnessOutputsChild.Passes",
                                                  dir, "LIFECYCLE_OUTPUTS=all");
  ASSERT_THAT(files,
              ::testing::Contains("HarnessOutputsChild.Passes.startup.json"));
  std::ifstream in(dir + "/HarnessOutputsChild.Passes.startup.json");
  nlohmann::json trace = nlohmann::json::parse(in);
  std::vector<std::string> slices;
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "X") slices.push_back(event["name"]);
  }
  EXPECT_THAT(slices, ::testing::ElementsAre("db"));
}

// Outside Bazel (no TEST_UNDECLARED_OUTPUTS_DIR, no LIFECYCLE_OUTPUT_DIR),
// one folder for the run, under $TMPDIR, never the shared folder itself.
TEST(HarnessOutputsTest, OutsideBazelOneFolderPerRun) {
  std::string dir = ShortTempDir();
  FilesWrittenBy("HarnessOutputsChild.FailsAfterItsStart", "",
                 absl::StrCat("-u TEST_UNDECLARED_OUTPUTS_DIR "
                              "-u LIFECYCLE_SNAPSHOT_DIR TMPDIR='",
                              dir, "'"));
  std::vector<std::string> in_tmp = FilesIn(dir);
  ASSERT_THAT(in_tmp, ::testing::ElementsAre(::testing::StartsWith(
                          "lifecycle-outputs-harness_test-")));
  EXPECT_THAT(FilesIn(dir + "/" + in_tmp[0]),
              ::testing::Contains(
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json"));
}

TEST(HarnessOutputsTest, AnOutputFolderWithMissingParentsIsMadeWhole) {
  std::string dir = ShortTempDir() + "/not/made/yet";
  EXPECT_THAT(FilesWrittenBy("HarnessOutputsChild.FailsAfterItsStart", dir),
              ::testing::Contains(
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json"));
}

// LIFECYCLE_SNAPSHOT_DIR, LIFECYCLE_OUTPUT_DIR's old name, works for one more
// release.
TEST(HarnessOutputsTest, TheDeprecatedVariableStillChoosesTheFolder) {
  std::string dir = ShortTempDir();
  FilesWrittenBy("HarnessOutputsChild.FailsAfterItsStart", "",
                 absl::StrCat("LIFECYCLE_SNAPSHOT_DIR='", dir, "'"));
  EXPECT_THAT(FilesIn(dir),
              ::testing::Contains(
                  "HarnessOutputsChild.FailsAfterItsStart.startup.json"));
}

// The virtual-time start's timeline has the virtual durations.
TEST(HarnessOutputsTest, AVirtualTimeStartHasItsTimeline) {
  VirtualTime time;
  lifecycle::FuncService slow("slow", [](const lifecycle::Context& ctx,
                                         absl::FunctionRef<void()> started) {
    lifecycle::SleepFor(absl::Seconds(2));  // two virtual seconds
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  StartStopHarness::Options options;
  options.context = time.context();
  StartStopHarness harness({&slow}, options);
  ASSERT_TRUE(time.Run([&] { ASSERT_TRUE(harness.StartAll()); }));
  nlohmann::json trace =
      nlohmann::json::parse(lifecycle::ToTraceEventJson({slow.Snapshot()}));
  std::vector<double> durations;
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "X") durations.push_back(event["dur"]);
  }
  EXPECT_THAT(durations, ::testing::ElementsAre(2e6));
}

TEST(StartStopHarnessTest, NamesTheServiceThatFailedToStart) {
  Client client;
  client.producer_.bulk_.FailStartWith(absl::UnavailableError("queue missing"));
  // The failure arrives at once; the default start timeout only bounds it (a
  // short one was too short for a ThreadSanitizer build without Bazel).
  StartStopHarness harness({&client});
  // The README's idiom records exactly one failure, carrying the whole report.
  std::vector<std::string> failures =
      FailuresOf([&] { ASSERT_TRUE(harness.StartAll()); });
  ASSERT_EQ(failures.size(), 1u);
  const std::string& report = failures[0];
  EXPECT_THAT(report, HasSubstr("Value of: harness.StartAll()"));
  EXPECT_THAT(report, HasSubstr("StartStopHarness: UNAVAILABLE: service "
                                "'client/producer/bulk' failed to start: "
                                "queue missing"));
  EXPECT_THAT(report, HasSubstr("Failed: client/producer/bulk (UNAVAILABLE: "
                                "service 'client/producer/bulk' failed to "
                                "start: queue missing)\nPending: none\n"));
  EXPECT_THAT(report, HasSubstr("client/producer/bulk     failed"));
}

// --- A failed start or stop never passes silently -----------------------------

TEST(HarnessResultTest, ADroppedFailedStartFailsTheTestAtItsLine) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));
  StartStopHarness harness({&db});
  ::testing::TestPartResultArray results;
  int line = 0;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &results);
    line = __LINE__ + 1;
    static_cast<void>(harness.StartAll());  // as `harness.StartAll();` does
  }
  ASSERT_EQ(results.size(), 1);
  const ::testing::TestPartResult& failure = results.GetTestPartResult(0);
  EXPECT_EQ(failure.line_number(), line);
  EXPECT_THAT(failure.message(),
              HasSubstr("StartStopHarness: StartAll() failed and nobody "
                        "checked its result (check it: "
                        "ASSERT_TRUE(harness.StartAll())):\n"
                        "StartStopHarness: UNAVAILABLE: service 'db' failed "
                        "to start: no route"));
  EXPECT_THAT(failure.message(), HasSubstr("Failed: db"));  // the whole report
}

TEST(HarnessResultTest, AFailedStartThatWasCheckedIsReportedOnceOrNotAtAll) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));
  StartStopHarness harness({&db});
  // Expected to fail: no failure at all.
  EXPECT_THAT(FailuresOf([&] { EXPECT_FALSE(harness.StartAll()); }),
              ::testing::IsEmpty());
  // Checked as passing: the one failure of the assertion.
  EXPECT_THAT(FailuresOf([&] { EXPECT_TRUE(harness.StartAll()); }),
              ::testing::SizeIs(1));
  // Kept and examined later, through a copy.
  EXPECT_THAT(FailuresOf([&] {
                HarnessResult kept = harness.StartAll();
                HarnessResult copy = kept;
                if (copy) ADD_FAILURE() << "started";
              }),
              ::testing::IsEmpty());
  // Kept and never examined: once, when the last copy goes.
  EXPECT_THAT(FailuresOf([&] {
                HarnessResult kept = harness.StartAll();
                HarnessResult copy = kept;
              }),
              ::testing::ElementsAre(HasSubstr("nobody checked")));
  // The message read counts as examined.
  EXPECT_THAT(FailuresOf([&] {
                std::string m = harness.StartAll().message();
                EXPECT_THAT(m, HasSubstr("no route"));
              }),
              ::testing::IsEmpty());
}

TEST(HarnessResultTest, AssigningOverAnUncheckedFailureReportsIt) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));
  StartStopHarness harness({&db});
  EXPECT_THAT(FailuresOf([&] {
                HarnessResult r = harness.StartAll();
                r = harness.StopAll();  // the failed start is overwritten
                EXPECT_TRUE(r);
              }),
              ::testing::ElementsAre(
                  AllOf(HasSubstr("StartAll() failed and nobody checked"),
                        HasSubstr("no route"))));
  // A copy still holds it: reported when that goes, once.
  EXPECT_THAT(FailuresOf([&] {
                HarnessResult r = harness.StartAll();
                HarnessResult copy = r;
                r = harness.StopAll();
                EXPECT_TRUE(r);
              }),
              ::testing::ElementsAre(HasSubstr("StartAll() failed and nobody "
                                               "checked")));
  // Examined before it is overwritten: nothing to report.
  EXPECT_THAT(FailuresOf([&] {
                HarnessResult r = harness.StartAll();
                EXPECT_FALSE(r);
                r = harness.StopAll();
                EXPECT_TRUE(r);
              }),
              ::testing::IsEmpty());
}

// An invalid byte in a failure makes Bazel's test.xml unreadable: every
// failure text the kit writes is valid UTF-8, the byte replaced by U+FFFD.
TEST(HarnessResultTest, AnErrorWithBytesThatAreNotUtf8IsWrittenAsText) {
  auto valid = [](const std::string& text) {
    return lifecycle::strings_internal::ValidUtf8(text) == text;
  };
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("bad \xff byte"));
  StartStopHarness harness({&db}, Short());
  HarnessResult started = harness.StartAll();
  ASSERT_FALSE(started);
  EXPECT_TRUE(valid(started.message()));
  EXPECT_THAT(started.message(), HasSubstr("bad \xEF\xBF\xBD byte"));
  // The waits and the matchers too.
  lifecycle::Signal never;
  ::testing::AssertionResult waited =
      SignalClosesWithin(never, {&db}, absl::ZeroDuration());
  ASSERT_FALSE(waited);
  EXPECT_TRUE(valid(waited.message()));
  EXPECT_THAT(waited.message(), HasSubstr("bad \xEF\xBF\xBD byte"));
  std::vector<std::string> failures =
      FailuresOf([&] { EXPECT_THAT(db, lifecycle_testing::IsStarted()); });
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_TRUE(valid(failures[0]));
  EXPECT_THAT(failures[0], HasSubstr("bad \xEF\xBF\xBD byte"));
}

TEST(HarnessResultTest, AnExpectedFailureCoversADroppedStart) {
  FakeService db("db");
  db.FailStartWith(absl::UnavailableError("no route"));
  StartStopHarness harness({&db});
  harness.ExpectFailure("db");
  EXPECT_THAT(FailuresOf([&] { static_cast<void>(harness.StartAll()); }),
              ::testing::IsEmpty());
}

TEST(HarnessResultTest, ADroppedFailedStopFailsTheTest) {
  FakeService slow("slow");
  slow.BlockStopUntilReleased();
  StartStopHarness harness({&slow}, Short());
  ASSERT_TRUE(harness.StartAll());
  std::vector<std::string> failures =
      FailuresOf([&] { static_cast<void>(harness.StopAll()); });
  slow.ReleaseStop();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_THAT(failures[0], HasSubstr("StopAll() failed and nobody checked"));
  EXPECT_THAT(failures[0], HasSubstr("did not stop within 50ms"));
}

TEST(HarnessResultTest, APassingResultNeedsNoCheck) {
  FakeService db("db");
  StartStopHarness harness({&db});
  EXPECT_THAT(FailuresOf([&] {
                static_cast<void>(harness.StartAll());
                static_cast<void>(harness.StopAll());
              }),
              ::testing::IsEmpty());
}

TEST(StartStopHarnessTest, StopAllUnderExpectTrueRecordsOneFailure) {
  FakeService slow("slow");
  slow.BlockStopUntilReleased();
  {
    StartStopHarness harness({&slow}, Short());
    ASSERT_TRUE(harness.StartAll());
    std::vector<std::string> failures =
        FailuresOf([&] { EXPECT_TRUE(harness.StopAll()); });
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_THAT(failures[0], HasSubstr("StartStopHarness: DEADLINE_EXCEEDED: "
                                       "1 of 1 services did not stop"));
  }  // stopped already: the destructor adds nothing
  slow.ReleaseStop();
  slow.Stop();
}

TEST(StartStopHarnessTest, NamesThePendingServiceAndHowLong) {
  Client client;
  client.notifier_.NeverSignalStarted();
  StartStopHarness harness({&client}, Short());
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StartAll()),
                          "1 of 1 services not started after");
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StartAll()),
                          "client/notifier (starting for ");
}

TEST(StartStopHarnessTest, NeverStartingServiceFailsInAboutWaitTimeout) {
  // The test that would have hung without the library: it fails with the
  // report after WaitTimeout() instead.
  FakeService stuck("stuck");
  stuck.NeverSignalStarted();
  StartStopHarness harness({&stuck});
  absl::Time began = absl::Now();
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StartAll()),
                          "stuck (starting for ");
  EXPECT_GE(absl::Now() - began, WaitTimeout());
}

TEST(StartStopHarnessTest, ReportsAServiceThatWouldNotStop) {
  FakeService slow("slow");
  slow.BlockStopUntilReleased();
  {
    auto harness = std::make_unique<StartStopHarness>(
        std::vector<lifecycle::Service*>{&slow}, Short());
    ASSERT_TRUE(harness->StartAll());
    EXPECT_NONFATAL_FAILURE(
        harness.reset(),
        "StartStopHarness (stopping on destruction): DEADLINE_EXCEEDED: 1 of 1 "
        "services did not stop within 50ms:\nservice 'slow' did not stop "
        "within");
  }
  slow.ReleaseStop();
  slow.Stop();
}

// Under Bazel into the test's undeclared outputs, and the message says where
// to find them once the test has ended; elsewhere, the path.
TEST(StartStopHarnessTest, WritesTheSnapshotAndSaysWhere) {
  FakeService db("db");
  db.FailStartWith(absl::InternalError("boom"));
  StartStopHarness harness({&db}, Short());
  const std::string file =
      "StartStopHarnessTest.WritesTheSnapshotAndSaysWhere.snapshot.json";
  std::string path = TestOutputPath(file);
  const char* bazel = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TRUE(harness.StartAll()),
      bazel != nullptr && std::getenv("LIFECYCLE_OUTPUT_DIR") == nullptr
          ? "Snapshot (JSON): " + file +
                " in this test's outputs (bazel-testlogs/testing/harness_test"
          : "Snapshot (JSON): " + path);
  std::ifstream in(path);
  std::stringstream json;
  json << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(json.str());
  EXPECT_EQ(j[0]["path"], "db");
  EXPECT_EQ(j[0]["state"], "failed");
}

TEST(StartStopHarnessTest, ReportIsTheTable) {
  FakeService a("a");
  StartStopHarness harness({&a});
  ASSERT_TRUE(harness.StartAll());
  EXPECT_THAT(harness.Report(), ::testing::HasSubstr("a     started"));
}

// Issue 13, item 10: a Start() that blocks (in OnStart) used to make
// StartAll wait for it and then report success.
TEST(StartStopHarnessTest, StartTimeoutBoundsABlockingOnStart) {
  class SlowToStart : public lifecycle::BaseService {
   public:
    SlowToStart() : BaseService("slow") {}
    ~SlowToStart() override { StopForDestruction(); }
    lifecycle::Signal release;

   private:
    absl::Status OnStart(const lifecycle::Context& ctx) override {
      lifecycle::Signal waits[] = {release, ctx.Done()};
      lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
      return absl::OkStatus();
    }
    absl::Status Run(const lifecycle::Context& ctx,
                     absl::FunctionRef<void()> started) override {
      started();
      ctx.Done().Wait();
      return absl::OkStatus();
    }
  };
  SlowToStart slow;
  FakeService next("next");  // not reached within the start timeout
  StartStopHarness::Options options = Short();
  options.start_timeout = absl::Milliseconds(200);
  StartStopHarness harness({&slow, &next}, options);
  ::testing::AssertionResult result = harness.StartAll();
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(),
              ::testing::HasSubstr("Start() did not return within 200ms (a "
                                   "blocking OnStart()?); still in Start(): "
                                   "slow; and not started yet (the start "
                                   "timeout passed before their Start() was "
                                   "called): next"));
  EXPECT_THAT(result.message(), ::testing::HasSubstr("slow (starting"));
  // The harness's stop cancels the start's context, so OnStart returns and
  // the harness ends without a hang. The start goes on to `next` once
  // OnStart returns; the stop waits for that, so `next` is stopped too rather
  // than started after its stop and left running (a clean-clone CI run saw
  // "service 'next' did not stop within 50ms" once in 435 runs).
  EXPECT_TRUE(harness.StopAll());
  lifecycle::ServiceSnapshot after = next.Snapshot();
  EXPECT_EQ(after.start_count, 1);
  EXPECT_EQ(after.state, lifecycle::ServiceState::kStopped);
}

// --- Deaths during the test ------------------------------------------------

// Kills `fake` (a started child of `root`) and waits until `root` has failed.
void KillAndAwaitRootFailure(FakeService& fake, lifecycle::Service& root) {
  lifecycle::Signal root_stopped = root.Stopped();
  fake.FailNow(absl::UnavailableError("connection reset"));
  ASSERT_TRUE(root_stopped.WaitFor(WaitTimeout()));
}

TEST(StartStopHarnessTest, ASilentDeathFailsTheTestOnceNamingThePath) {
  Client client;
  std::vector<std::string> failures = FailuresOf([&] {
    StartStopHarness harness({&client});
    ASSERT_TRUE(harness.StartAll());
    KillAndAwaitRootFailure(client.notifier_, client);
    EXPECT_TRUE(harness.StopAll());
  });  // and the destructor does not report it again
  // One failure, for the innermost service, though client died with it.
  ASSERT_EQ(failures.size(), 1u);
  const std::string& report = failures[0];
  EXPECT_THAT(report, HasSubstr("1 service(s) died during the test (expect "
                                "it with ExpectFailure(path), or check it "
                                "with HasFailed()):\n  client/notifier died "));
  EXPECT_THAT(report, HasSubstr(" after the start (20"));  // when, in UTC
  EXPECT_THAT(report, HasSubstr("UNAVAILABLE: service 'client/notifier' "
                                "failed while running: connection reset\n"));
  EXPECT_THAT(report, Not(HasSubstr("  client died")));
}

TEST(StartStopHarnessTest, ADeathFoundOnDestructionIsReportedAtStartAll) {
  Client client;
  ::testing::TestPartResultArray results;
  int start_line = 0;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &results);
    StartStopHarness harness({&client});
    start_line = __LINE__ + 1;
    ASSERT_TRUE(harness.StartAll());
    KillAndAwaitRootFailure(client.notifier_, client);
  }
  ASSERT_EQ(results.size(), 1);
  const ::testing::TestPartResult& failure = results.GetTestPartResult(0);
  EXPECT_EQ(failure.line_number(), start_line);
  EXPECT_THAT(failure.file_name(), ::testing::EndsWith("harness_test.cc"));
  EXPECT_THAT(failure.message(), ::testing::HasSubstr("client/notifier died "));
}

TEST(StartStopHarnessTest, AnExpectedDeathPasses) {
  Client client;
  StartStopHarness harness({&client});
  harness.ExpectFailure("client/notifier");
  ASSERT_TRUE(harness.StartAll());
  KillAndAwaitRootFailure(client.notifier_, client);
  EXPECT_TRUE(harness.StopAll());
}

TEST(StartStopHarnessTest, ExpectingAComponentCoversItsDescendants) {
  Client client;
  StartStopHarness harness({&client});
  harness.ExpectFailure("client/producer");
  ASSERT_TRUE(harness.StartAll());
  KillAndAwaitRootFailure(client.producer_.bulk_, client);
  EXPECT_TRUE(harness.StopAll());
}

TEST(StartStopHarnessTest, AnExpectedDeathThatDidNotHappenFails) {
  Client client;
  StartStopHarness harness({&client});
  harness.ExpectFailure("client/notifier");
  ASSERT_TRUE(harness.StartAll());
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "Expected a failure of client/notifier during the "
                          "test (ExpectFailure), but none happened");
}

TEST(StartStopHarnessTest, ADeathTheTestCheckedWithAMatcherPasses) {
  Client client;
  StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
  KillAndAwaitRootFailure(client.notifier_, client);
  EXPECT_THAT(client, HasFailed(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(harness.StopAll());
}

TEST(StartStopHarnessTest, AMatcherThatDidNotMatchDoesNotExcuseADeath) {
  Client client;
  StartStopHarness harness({&client});
  ASSERT_TRUE(harness.StartAll());
  KillAndAwaitRootFailure(client.notifier_, client);
  EXPECT_THAT(client, Not(HasFailed(absl::StatusCode::kDataLoss)));
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "client/notifier died ");
}

// A composite that restarts its child: the death is still a death.
class Restarting : public lifecycle::CompositeService {
 public:
  Restarting() : CompositeService("restarting"), child_("child") {
    lifecycle::Supervision policy = lifecycle::Supervision::Restart();
    policy.backoff = absl::ZeroDuration();
    AddChildOrDie(child_, policy);
  }
  ~Restarting() override { StopForDestruction(); }
  FakeService child_;
};

// Kills the child and waits until its parent has restarted it `restarts` times.
void KillAndAwaitRestart(FakeService& child, int restarts) {
  child.FailNow(absl::InternalError("crash"));
  // A predicate, not HasRestarted(): a matcher would examine the death.
  ASSERT_TRUE(WaitSnapshotOrTimeout(child, [&](const ServiceSnapshot& s) {
    return s.restart_count == restarts && s.state == ServiceState::kStarted;
  }));
}

TEST(StartStopHarnessTest, ADeathHealedByARestartIsStillReported) {
  Restarting parent;
  StartStopHarness harness({&parent});
  ASSERT_TRUE(harness.StartAll());
  KillAndAwaitRestart(parent.child_, 1);
  EXPECT_THAT(parent, IsStarted());
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "restarting/child died ");
  // Checked with HasRestarted, it passes.
  ASSERT_TRUE(harness.StartAll());
  KillAndAwaitRestart(parent.child_, 2);
  EXPECT_THAT(parent.child_, HasRestarted(2));
  EXPECT_TRUE(harness.StopAll());
}

TEST(StartStopHarnessTest, ARunThatReturnsUnaskedIsADeath) {
  FakeService fake("fake");
  StartStopHarness harness({&fake});
  ASSERT_TRUE(harness.StartAll());
  fake.FailNow(absl::OkStatus());  // returns OK while nobody asked it to stop
  ASSERT_TRUE(fake.Stopped().WaitFor(WaitTimeout()));
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()), "fake died ");
  ASSERT_TRUE(harness.StartAll());
  fake.FailNow(absl::OkStatus());
  ASSERT_TRUE(fake.Stopped().WaitFor(WaitTimeout()));
  std::vector<std::string> failures =
      FailuresOf([&] { EXPECT_TRUE(harness.StopAll()); });
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_THAT(failures[0], HasSubstr("): its run returned while nobody had "
                                     "asked it to stop"));
}

TEST(StartStopHarnessTest, AnUnaskedReturnHealedByARestartIsReported) {
  Restarting parent;
  StartStopHarness harness({&parent});
  ASSERT_TRUE(harness.StartAll());
  parent.child_.FailNow(absl::OkStatus());
  ASSERT_TRUE(
      WaitSnapshotOrTimeout(parent.child_, [](const ServiceSnapshot& s) {
        return s.restart_count == 1 && s.state == ServiceState::kStarted;
      }));
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "restarting/child died ");
}

// A composite that stays up, degraded, when its child dies.
class Degrading : public lifecycle::CompositeService {
 public:
  Degrading() : CompositeService("degrading"), child_("child") {
    AddChildOrDie(child_, lifecycle::Supervision::Degrade());
  }
  ~Degrading() override { StopForDestruction(); }
  FakeService child_;
};

TEST(StartStopHarnessTest, AnUnaskedReturnADegradeAbsorbedIsReported) {
  Degrading parent;
  StartStopHarness harness({&parent});
  ASSERT_TRUE(harness.StartAll());
  parent.child_.FailNow(absl::OkStatus());
  ASSERT_TRUE(WaitSnapshotOrTimeout(parent, IsDegraded()));
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "degrading/child died ");
}

TEST(StartStopHarnessTest, TwoRootsWithOneNameHaveABaselineEach) {
  FakeService veteran("db"), fresh("db");
  // The veteran failed once before the harness started it.
  ASSERT_TRUE(veteran.Start(lifecycle::Context::Background()).ok());
  veteran.FailNow(absl::InternalError("old"));
  ASSERT_TRUE(veteran.Stopped().WaitFor(WaitTimeout()));
  StartStopHarness harness({&fresh, &veteran});
  ASSERT_TRUE(harness.StartAll());
  fresh.FailNow(absl::InternalError("new"));
  ASSERT_TRUE(fresh.Stopped().WaitFor(WaitTimeout()));
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "INTERNAL: service 'db' failed while running: new");
}

TEST(StartStopHarnessTest, ADeathInVirtualTimeIsTimedInVirtualTime) {
  VirtualTime time;
  FakeService fake("fake");
  StartStopHarness::Options options;
  options.context = time.context();
  StartStopHarness harness({&fake}, options);
  ASSERT_TRUE(harness.StartAll());
  ASSERT_TRUE(time.AdvanceBy(absl::Hours(2)));
  fake.FailNow(absl::InternalError("late"));
  ASSERT_TRUE(fake.Stopped().WaitFor(WaitTimeout()));
  EXPECT_NONFATAL_FAILURE(EXPECT_TRUE(harness.StopAll()),
                          "fake died 2h after the start");
}

TEST(StartStopHarnessTest, AStuckStopNamesThePathThatHoldsItUp) {
  Client client;
  client.producer_.bulk_.BlockStopUntilReleased();
  {
    StartStopHarness harness({&client}, Short());
    ASSERT_TRUE(harness.StartAll());
    EXPECT_NONFATAL_FAILURE(
        EXPECT_TRUE(harness.StopAll()),
        "service 'client' did not stop within 50ms; still stopping: "
        "client/producer/bulk (stopping for ");
  }
  client.producer_.bulk_.ReleaseStop();
  client.Stop();
}

}  // namespace
}  // namespace lifecycle_testing
