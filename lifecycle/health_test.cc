#include "lifecycle/health.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/test_services.h"
#include "nlohmann/json.hpp"

namespace lifecycle {
namespace {

// Bounds every wait of the test: a hang, not a delay.
constexpr absl::Duration kWait = absl::Seconds(30);

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

ServiceSnapshot SmallTree() {
  absl::Time t0 = absl::FromUnixSeconds(1795000000);
  ServiceSnapshot root;
  root.name = root.path = "client";
  root.state = ServiceState::kStarted;
  root.since = t0;
  root.taken_at = t0 + absl::Milliseconds(1204);
  root.start_count = 1;
  root.startup_duration = absl::Microseconds(3100);

  ServiceSnapshot notifier;
  notifier.name = "notifier";
  notifier.path = "client/notifier";
  notifier.state = ServiceState::kStarted;
  notifier.since = t0 + absl::Milliseconds(693);
  notifier.taken_at = root.taken_at;
  notifier.degraded = true;
  notifier.error_count = 2;
  notifier.last_error = absl::UnavailableError("connection reset");
  notifier.last_error_at = t0 + absl::Milliseconds(1100);
  notifier.start_count = 2;
  notifier.restart_count = 1;
  notifier.failure_count = 1;
  notifier.last_failure = absl::UnavailableError("lost the database");
  notifier.last_failure_at = t0 + absl::Milliseconds(690);
  notifier.startup_duration = absl::Microseconds(1200);

  ServiceSnapshot producer;
  producer.name = "producer";
  producer.path = "client/producer";
  producer.state = ServiceState::kFailed;
  producer.status = absl::InternalError("boom");
  producer.since = t0 + absl::Milliseconds(2);
  producer.taken_at = root.taken_at;
  producer.start_count = 2;
  producer.failure_count = 2;
  producer.last_failure = producer.status;
  producer.last_failure_at = producer.since;
  producer.startup_duration = absl::Microseconds(400);

  root.children = {notifier, producer};
  return root;
}

TEST(HealthTest, StateNames) {
  EXPECT_EQ(ServiceStateName(ServiceState::kStopped), "stopped");
  EXPECT_EQ(ServiceStateName(ServiceState::kStarting), "starting");
  EXPECT_EQ(ServiceStateName(ServiceState::kStarted), "started");
  EXPECT_EQ(ServiceStateName(ServiceState::kStopping), "stopping");
  EXPECT_EQ(ServiceStateName(ServiceState::kFailed), "failed");
  std::ostringstream os;
  os << ServiceState::kFailed;
  EXPECT_EQ(os.str(), "failed");
}

// The examples in snapshot_format.h's header comment, read from the header itself, so
// that what it shows is what the code prints.
std::string HeaderExample(std::string_view introduced_by) {
#ifdef LIFECYCLE_SOURCE_DIR
  std::string path =
      std::string(LIFECYCLE_SOURCE_DIR) + "/lifecycle/snapshot_format.h";
#else
  std::string path = "lifecycle/snapshot_format.h";  // Bazel: a data dependency
#endif
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::string line, out;
  bool found = false, started = false;
  while (std::getline(in, line)) {
    if (!found) {
      found = line.find(introduced_by) != std::string::npos;
      continue;
    }
    if (line == "//") {
      if (started) break;  // the blank comment line after the block
      started = true;      // the one before it
      continue;
    }
    if (started) out += line.substr(std::min<size_t>(line.size(), 5)) + "\n";
  }
  EXPECT_TRUE(found) << "no line with '" << introduced_by << "' in " << path;
  return out;
}

TEST(HealthTest, TableIsAsTheHeaderShowsIt) {
  std::string table = HeaderExample("health_test.cc checks it:");
  ASSERT_FALSE(table.empty());
  EXPECT_EQ(ToTable(SmallTree()), table);
}

TEST(HealthTest, StreamOperatorPrintsTheTable) {
  std::ostringstream os;
  os << SmallTree();
  EXPECT_EQ(os.str(), ToTable(SmallTree()));
}

TEST(HealthTest, JsonHasTheDocumentedSchema) {
  nlohmann::json j = nlohmann::json::parse(ToJson(SmallTree()));
  EXPECT_EQ(j["path"], "client");
  EXPECT_EQ(j["state"], "started");
  EXPECT_EQ(j["since"], "2026-11-18T11:06:40.000000Z");
  EXPECT_DOUBLE_EQ(j["in_state_seconds"].get<double>(), 1.204);
  EXPECT_TRUE(j["status"].is_null());
  const auto& notifier = j["children"][0];
  EXPECT_EQ(notifier["degraded"], true);
  EXPECT_EQ(notifier["errors"], 2);
  EXPECT_EQ(notifier["last_error"]["code"], "UNAVAILABLE");
  EXPECT_EQ(notifier["last_error"]["message"], "connection reset");
  const auto& producer = j["children"][1];
  EXPECT_EQ(producer["state"], "failed");
  EXPECT_EQ(producer["status"]["code"], "INTERNAL");
  EXPECT_EQ(producer["failures"], 2);
  EXPECT_EQ(producer["last_failure"]["message"], "boom");
  EXPECT_EQ(notifier["restarts"], 1);
  EXPECT_EQ(notifier["last_failure_at"], "2026-11-18T11:06:40.690000Z");
}

TEST(HealthTest, DetailsAreALastColumnAndAJsonObjectOnlyWhenThereAreSome) {
  ServiceSnapshot tree = SmallTree();
  EXPECT_THAT(ToTable(tree), Not(HasSubstr("DETAILS")));
  EXPECT_FALSE(nlohmann::json::parse(ToJson(tree)).contains("details"));
  tree.children[1].details = {{"pid", "4242"}, {"exit", "status 1"}};
  std::string table = ToTable(tree);
  EXPECT_THAT(table, ContainsRegex("LAST ERROR +DETAILS\n"));
  EXPECT_THAT(table, ContainsRegex("INTERNAL: boom +pid=4242 exit=status 1\n"));
  nlohmann::json j = nlohmann::json::parse(ToJson(tree));
  EXPECT_EQ(j["children"][1]["details"],
            nlohmann::json({{"pid", "4242"}, {"exit", "status 1"}}));
  EXPECT_FALSE(j["children"][0].contains("details"));
}

TEST(HealthTest, StateTextGivesTheTimeOfATransition) {
  ServiceSnapshot s = SmallTree();
  EXPECT_EQ(s.StateText(), "started");
  EXPECT_EQ(s.children[0].StateText(), "degraded");
  s.state = ServiceState::kStarting;
  EXPECT_EQ(s.StateText(), "starting for 1.204s");
  s.state = ServiceState::kStopping;
  s.taken_at = s.since + absl::Microseconds(20999);
  EXPECT_EQ(s.StateText(), "stopping for 20ms");
}

TEST(HealthTest, FindAndFlatten) {
  ServiceSnapshot tree = SmallTree();
  EXPECT_EQ(tree.Flatten().size(), 3u);
  ASSERT_NE(tree.Find("client/producer"), nullptr);
  EXPECT_EQ(tree.Find("client/producer")->name, "producer");
  EXPECT_EQ(tree.Find("client/nope"), nullptr);
}

TEST(HealthTest, SeveralRootsShareOneHeader) {
  ServiceSnapshot a = SmallTree();
  ServiceSnapshot b = SmallTree().children[0];
  std::string table = ToTable(std::vector<ServiceSnapshot>{a, b});
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 5);
  nlohmann::json j =
      nlohmann::json::parse(ToJson(std::vector<ServiceSnapshot>{a, b}));
  EXPECT_EQ(j.size(), 2u);
}

// Meant for --config=tsan: snapshots race with starts and stops.
TEST(HealthTest, SnapshotsConcurrentWithStartsAndStops) {
  test_services::TestService service("idle");
  std::atomic<bool> done{false};
  std::atomic<int> snapshots{0};
  Signal reading;
  std::thread reader([&] {
    while (!done) {
      ServiceSnapshot s = service.Snapshot();
      EXPECT_EQ(s.path, "idle");
      EXPECT_LE(s.failure_count, 0);
      EXPECT_FALSE(ToJson(s).empty());
      ++snapshots;
      reading.Close();
    }
  });
  // The cycles begin once the reader is reading, so that they overlap.
  ASSERT_TRUE(reading.WaitFor(kWait));
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(service.Start(Context::Background()).ok());
    EXPECT_TRUE(service.Started().WaitFor(kWait));
    service.Stop();
  }
  done = true;
  reader.join();
  EXPECT_GT(snapshots, 0);
  EXPECT_EQ(service.Snapshot().start_count, 200);
}

// The JSON shown in snapshot_format.h, byte for byte.
TEST(HealthTest, JsonOfASmallTreeIsAsTheHeaderShowsIt) {
  ServiceSnapshot tree = SmallTree();
  tree.children.pop_back();  // client and client/notifier
  std::string json = HeaderExample("also as the test");
  ASSERT_FALSE(json.empty());
  EXPECT_EQ(ToJson(tree, 2) + "\n", json);
}
// --- Issue 13 --------------------------------------------------------------

// Item 5: a message that is not UTF-8 used to make ToJson() throw (and with it
// the harness's failure report).
TEST(HealthTest, JsonOfInvalidUtf8IsWrittenWithReplacements) {
  ServiceSnapshot s = SmallTree();
  s.status = absl::InternalError("bad byte \xFF here");
  s.state = ServiceState::kFailed;
  std::string json;
  ASSERT_NO_THROW(json = ToJson(s));
  EXPECT_THAT(json, HasSubstr("bad byte \xEF\xBF\xBD here"));  // U+FFFD
  EXPECT_NO_THROW(ToJson(std::vector<ServiceSnapshot>{s}, 2));
}

// Item 21: columns used to be padded by bytes, so a path with non-ASCII
// characters pushed its row out of line.
TEST(HealthTest, TableAlignsByCharactersNotBytes) {
  ServiceSnapshot root = SmallTree();
  root.children.clear();
  ServiceSnapshot child = root;
  child.name = "caf\xC3\xA9";  // "café": 4 characters, 5 bytes
  child.path = "client/caf\xC3\xA9";
  root.children.push_back(child);
  std::string table = ToTable(root);
  std::vector<std::string> lines = absl::StrSplit(table, '\n');
  ASSERT_GE(lines.size(), 3u);
  // STATE starts in the same column (counted in characters) on every row.
  auto column_of_state = [](const std::string& line) {
    size_t bytes = line.find("started");
    if (bytes == std::string::npos) bytes = line.find("STATE");
    size_t chars = 0;
    for (size_t i = 0; i < bytes; ++i) {
      chars += (static_cast<unsigned char>(line[i]) & 0xC0) != 0x80;
    }
    return chars;
  };
  EXPECT_EQ(column_of_state(lines[0]), column_of_state(lines[1]));
  EXPECT_EQ(column_of_state(lines[1]), column_of_state(lines[2]));
}
}  // namespace
}  // namespace lifecycle
