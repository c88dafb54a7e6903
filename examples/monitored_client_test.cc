// The "before" in use: what a test of the monitored client can and cannot say.
#include "examples/monitored_client.h"

#include "gtest/gtest.h"

namespace examples {
namespace {

TEST(MonitoredClientTest, WaitsUntilTheMonitorSaysAllHealthy) {
  SimulatedDatabase database;
  ClientConfig config;
  config.database = &database;
  config.queues = {"default", "bulk"};
  ComponentMonitor monitor;
  MonitoredClient client(config, monitor);
  client.Start();
  // The monitor's answer is a yes or no; on a timeout the test has to dig the
  // statuses out itself, and they carry no error, no time, no path.
  ASSERT_TRUE(monitor.WaitAllHealthy(absl::Seconds(10)));
  EXPECT_EQ(monitor.Statuses().size(), 6u);
  client.Stop();
  for (const auto& [name, status] : monitor.Statuses()) {
    EXPECT_EQ(status, ComponentStatus::kStopped) << name;
  }
}

TEST(MonitoredClientTest, AnUnavailableDatabaseShowsOnlyAsUnhealthy) {
  SimulatedDatabase database;
  database.SetAvailable(false);
  ClientConfig config;
  config.database = &database;
  ComponentMonitor monitor;
  MonitoredClient client(config, monitor);
  client.Start();
  EXPECT_FALSE(monitor.WaitAllHealthy(absl::Milliseconds(50)));
  EXPECT_NE(monitor.Statuses().at("notifier"), ComponentStatus::kHealthy);
  client.Stop();
}

}  // namespace
}  // namespace examples
