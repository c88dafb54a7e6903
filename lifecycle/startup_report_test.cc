#include "lifecycle/startup_report.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/health.h"
#include "nlohmann/json.hpp"

namespace lifecycle {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

ServiceSnapshot Span(std::string path, absl::Duration began,
                     absl::Duration took,
                     std::vector<std::string> depends_on = {}) {
  ServiceSnapshot s;
  s.path = path;
  s.name = path.substr(path.rfind('/') + 1);
  s.state = ServiceState::kStarted;
  s.start_began = kT0 + began;
  s.startup_completed = true;
  s.startup_duration = took;
  s.depends_on = std::move(depends_on);
  return s;
}

// client takes 30ms of its own, then starts notifier and elector at once, and
// producer once elector has started; producer's two queues start at once.
ServiceSnapshot Client() {
  ServiceSnapshot client =
      Span("client", absl::ZeroDuration(), absl::Milliseconds(91));
  client.children.push_back(
      Span("client/notifier", absl::Milliseconds(30), absl::Milliseconds(25)));
  client.children.push_back(
      Span("client/elector", absl::Milliseconds(30), absl::Milliseconds(30)));
  ServiceSnapshot producer = Span("client/producer", absl::Milliseconds(60),
                                  absl::Milliseconds(31), {"elector"});
  producer.children.push_back(Span("client/producer/default",
                                   absl::Milliseconds(61),
                                   absl::Milliseconds(20)));
  producer.children.push_back(Span(
      "client/producer/bulk", absl::Milliseconds(61), absl::Milliseconds(29)));
  client.children.push_back(std::move(producer));
  ServiceSnapshot never;  // never started: left out of everything
  never.path = never.name = "client/never";
  client.children.push_back(never);
  return client;
}

TEST(CriticalPathTest, GoesIntoTheLastChildAndBackThroughWhatItWaitedFor) {
  EXPECT_THAT(CriticalPath(Client()),
              ElementsAre(Field(&StartupHop::path, "client"),
                          Field(&StartupHop::path, "client/elector"),
                          Field(&StartupHop::path, "client/producer"),
                          Field(&StartupHop::path, "client/producer/bulk")));
  EXPECT_EQ(CriticalPathText(Client()),
            "client 91ms: client @0 +91ms → client/elector @30ms +30ms → "
            "client/producer @60ms +31ms → client/producer/bulk @61ms +29ms");
}

// Dependencies that form a cycle (a hand-made snapshot, or one read back from
// JSON): the path shows what it can, the root's own start-up at least, and
// the text names the cycle.
TEST(CriticalPathTest, ACycleOfDependenciesIsShownAndNamed) {
  ServiceSnapshot root =
      Span("app", absl::ZeroDuration(), absl::Milliseconds(50));
  root.children.push_back(
      Span("app/a", absl::Milliseconds(10), absl::Milliseconds(20), {"b"}));
  root.children.push_back(
      Span("app/b", absl::Milliseconds(10), absl::Milliseconds(30), {"a"}));
  std::vector<StartupHop> hops = CriticalPath(root);
  ASSERT_FALSE(hops.empty());
  EXPECT_EQ(hops.front().path, "app");
  EXPECT_THAT(
      CriticalPathText(root),
      HasSubstr("(the dependencies form a cycle: app/a -> app/b -> app/a"));
}

TEST(CriticalPathTest, NothingForAServiceThatNeverStarted) {
  ServiceSnapshot idle;
  idle.path = idle.name = "idle";
  EXPECT_TRUE(CriticalPath(idle).empty());
  EXPECT_EQ(CriticalPathText(idle), "idle: no completed start-up");
  EXPECT_EQ(SlowestStarts(idle), "");
}

TEST(CriticalPathTest, AStartThatTookNoTimeIsACompletedStartUp) {
  // As every start in virtual time that waits for nothing.
  ServiceSnapshot client =
      Span("client", absl::ZeroDuration(), absl::ZeroDuration());
  client.children.push_back(
      Span("client/db", absl::ZeroDuration(), absl::ZeroDuration()));
  EXPECT_EQ(CriticalPathText(client),
            "client 0: client @0 +0 → client/db @0 +0");
  nlohmann::json trace = nlohmann::json::parse(ToTraceEventJson({client}));
  int slices = 0;
  for (const auto& event : trace["traceEvents"]) slices += event["ph"] == "X";
  EXPECT_EQ(slices, 2);
  EXPECT_THAT(ToStartupSvg({client}),
              ::testing::Not(HasSubstr("no completed start-up")));
  // Begun but not completed: still nothing.
  client.startup_completed = false;
  EXPECT_EQ(CriticalPathText(client), "client: no completed start-up");
}

TEST(StartupReportsTest, NamesThatAreNotUtf8AreReplacedNotCopied) {
  ServiceSnapshot client =
      Span("client", absl::ZeroDuration(), absl::Milliseconds(3));
  client.children.push_back(Span("client/caf\xe9", absl::ZeroDuration(),
                                 absl::Milliseconds(2)));  // Latin-1
  client.children.push_back(Span("client/\xf0\x9f\x9a\x80",
                                 absl::ZeroDuration(),
                                 absl::Milliseconds(1)));  // valid: a rocket
  const std::string json = ToTraceEventJson({client});
  nlohmann::json trace = nlohmann::json::parse(json);  // throws if invalid
  std::vector<std::string> names;
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "X") names.push_back(event["name"]);
  }
  EXPECT_THAT(names, ElementsAre("client", "client/caf\xef\xbf\xbd",
                                 "client/\xf0\x9f\x9a\x80"));
  const std::string svg = ToStartupSvg({client});
  EXPECT_THAT(svg, HasSubstr(">client/caf\xef\xbf\xbd<"));
  EXPECT_THAT(svg, HasSubstr(">client/\xf0\x9f\x9a\x80<"));
  EXPECT_EQ(svg.find("\xe9"), std::string::npos);
}

TEST(SlowestStartsTest, TheSlowestLeavesFirst) {
  EXPECT_EQ(SlowestStarts(Client(), 3),
            "Slowest starts: client/elector 30ms, client/producer/bulk 29ms, "
            "client/notifier 25ms");
}

TEST(TraceEventJsonTest, OneTrackAndOneSlicePerStartedService) {
  nlohmann::json trace = nlohmann::json::parse(ToTraceEventJson({Client()}));
  std::vector<std::string> slices;
  int tracks = 0;
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "X") {
      slices.push_back(event["name"]);
      if (event["name"] == "client/producer") {
        EXPECT_EQ(event["ts"], 60000.0);
        EXPECT_EQ(event["dur"], 31000.0);
        EXPECT_EQ(event["args"]["depends_on"], nlohmann::json({"elector"}));
      }
    }
    if (event["name"] == "thread_name") ++tracks;
  }
  EXPECT_THAT(slices, ElementsAre("client", "client/notifier", "client/elector",
                                  "client/producer", "client/producer/default",
                                  "client/producer/bulk"));
  EXPECT_EQ(tracks, 6);
  EXPECT_EQ(trace["displayTimeUnit"], "ms");
}

TEST(StartupSvgTest, ABarPerServiceTheCriticalOnesInRed) {
  std::string svg = ToStartupSvg({Client()});
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  size_t bars = 0, red = 0;
  for (size_t at = svg.find("<rect x="); at != std::string::npos;
       at = svg.find("<rect x=", at + 1)) {
    ++bars;
  }
  for (size_t at = svg.find("#d0342c"); at != std::string::npos;
       at = svg.find("#d0342c", at + 1)) {
    ++red;
  }
  EXPECT_EQ(bars, 6u);
  EXPECT_EQ(red, 4u);  // the critical path's four services
  EXPECT_THAT(svg, ::testing::Not(HasSubstr("<script")));
  EXPECT_THAT(svg, ::testing::EndsWith("</svg>\n"));
}

// A flake report shows the waterfall of a start that failed: the service that
// failed is drawn in grey to when it failed, and a waterfall with no span at
// all has ticks of 0, not of an infinite span.
TEST(StartupSvgTest, AFailedStartIsAGreyBarToWhenItFailed) {
  ServiceSnapshot db = Span("db", absl::ZeroDuration(), absl::Milliseconds(4));
  ServiceSnapshot cache;
  cache.path = cache.name = "cache";
  cache.state = ServiceState::kFailed;
  cache.start_began = kT0 + absl::Milliseconds(1);
  cache.last_failure_at = kT0 + absl::Milliseconds(9);
  std::string svg = ToStartupSvg({db, cache});
  EXPECT_THAT(svg, HasSubstr("fill=\"#8a8f98\"><title>cache: began @1ms, "
                             "failed after 8ms</title>"));
  EXPECT_THAT(svg, HasSubstr("failed starts in grey"));
  EXPECT_THAT(svg, HasSubstr(">9ms</text>"));  // the last tick: the whole

  ServiceSnapshot never;
  never.path = never.name = "never";
  std::string empty = ToStartupSvg({never});
  EXPECT_THAT(empty, HasSubstr("no completed start-up"));
  EXPECT_THAT(empty, ::testing::Not(HasSubstr("inf")));
  EXPECT_THAT(empty, ::testing::Not(HasSubstr("<rect x=")));
}

}  // namespace
}  // namespace lifecycle
