#include "lifecycle/testing/conformance.h"

#include <string_view>
#include <thread>
#include <vector>

#include "lifecycle/snapshot_format.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {

// A binary that links the suite without instantiating it is not an error.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ServiceConformanceTest);

using lifecycle::Context;
using lifecycle::ServiceState;
using lifecycle::Signal;

std::string ServiceFactoryName(
    const ::testing::TestParamInfo<ServiceFactory>& info) {
  return info.param.name;
}

void ServiceConformanceTest::SetUp() {
  service_ = GetParam().make();
  ASSERT_NE(service_, nullptr) << "the factory returned null";
}

void ServiceConformanceTest::TearDown() {
  if (service_ != nullptr) service_->Stop();
}

TEST_P(ServiceConformanceTest, HasAValidName) {
  EXPECT_FALSE(service_->Name().empty());
  EXPECT_EQ(service_->Name().find('/'), std::string_view::npos);
  EXPECT_EQ(service_->Snapshot().name, service_->Name());
}

TEST_P(ServiceConformanceTest, StartClosesStarted) {
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  EXPECT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  EXPECT_EQ(service_->Snapshot().state, ServiceState::kStarted);
}

TEST_P(ServiceConformanceTest, StartedObtainedBeforeStartWorks) {
  Signal started = service_->Started();
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  EXPECT_TRUE(WaitOrTimeout(started, Self()));
}

TEST_P(ServiceConformanceTest, StopWithoutStart) {
  service_->Stop();
  EXPECT_NE(service_->Snapshot().state, ServiceState::kStarted);
}

TEST_P(ServiceConformanceTest, StopReturnsWhenStopped) {
  Signal stopped = service_->Stopped();
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  service_->Stop();
  EXPECT_TRUE(stopped.IsClosed());
  EXPECT_TRUE(service_->Stopped().IsClosed());
  EXPECT_EQ(service_->Snapshot().state, ServiceState::kStopped);
}

TEST_P(ServiceConformanceTest, DoubleStop) {
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  service_->Stop();
  service_->Stop();
  EXPECT_EQ(service_->Snapshot().state, ServiceState::kStopped);
}

TEST_P(ServiceConformanceTest, ConcurrentStops) {
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 4; ++i) {
    stoppers.emplace_back([this] {
      service_->Stop();
      EXPECT_TRUE(service_->Stopped().IsClosed());
    });
  }
  for (auto& t : stoppers) t.join();
}

TEST_P(ServiceConformanceTest, StopWhileStarting) {
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  service_->Stop();
  EXPECT_TRUE(service_->Started().IsClosed());
  EXPECT_TRUE(service_->Stopped().IsClosed());
}

TEST_P(ServiceConformanceTest, StartsAgainAfterStop) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(service_->Start(Context::Background()).ok()) << "run " << i;
    ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
    service_->Stop();
  }
  EXPECT_GE(service_->Snapshot().start_count, 3);
}

TEST_P(ServiceConformanceTest, CancelledContextEndsTheRun) {
  lifecycle::CancellableContext scope;
  ASSERT_TRUE(service_->Start(scope.context()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  scope.Cancel(absl::CancelledError("caller gave up"));
  EXPECT_TRUE(WaitOrTimeout(service_->Stopped(), Self()));
}

TEST_P(ServiceConformanceTest, BoundedStop) {
  // Before any start, and with no time at all: nothing to wait for.
  EXPECT_TRUE(service_->StopFor(absl::ZeroDuration()).ok());
  EXPECT_TRUE(service_->StopFor(-absl::Seconds(1)).ok());
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  absl::Status stopped = service_->StopFor(WaitTimeout());
  EXPECT_TRUE(stopped.ok()) << stopped;
  EXPECT_TRUE(service_->Stopped().IsClosed());
  EXPECT_EQ(service_->Snapshot().state, ServiceState::kStopped);
  EXPECT_TRUE(service_->StopFor(absl::ZeroDuration()).ok());  // twice
}

TEST_P(ServiceConformanceTest, CheckOnlyStopRequestsTheStop) {
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  absl::Status checked = service_->StopFor(absl::ZeroDuration());
  // Stopped at once, or not yet (DEADLINE_EXCEEDED); requested either way.
  if (!checked.ok()) {
    EXPECT_EQ(checked.code(), absl::StatusCode::kDeadlineExceeded) << checked;
  }
  EXPECT_TRUE(WaitOrTimeout(service_->Stopped(), Self()));
  EXPECT_TRUE(service_->StopFor(absl::ZeroDuration()).ok());
}

TEST_P(ServiceConformanceTest, RequestStopReturnsAtOnceAndTheServiceStops) {
  service_->RequestStop();  // before any start: nothing to stop
  service_->RequestStop();
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  service_->RequestStop();
  service_->RequestStop();  // twice
  EXPECT_TRUE(WaitOrTimeout(service_->Stopped(), Self()));
  EXPECT_TRUE(service_->StopFor(absl::ZeroDuration()).ok());
  EXPECT_EQ(service_->State(), ServiceState::kStopped);
}

TEST_P(ServiceConformanceTest, ARunThatEndsOnItsOwnIsObservable) {
  const ServiceFactory& factory = GetParam();
  if (!factory.end_run) GTEST_SKIP() << "the factory has no end_run";
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  ASSERT_TRUE(WaitOrTimeout(service_->Started(), Self()));
  Signal stopped = service_->Stopped();
  factory.end_run(*service_);
  ASSERT_TRUE(WaitOrTimeout(stopped, Self()));
  lifecycle::ServiceSnapshot s = service_->Snapshot();
  // It says how it ended: failed with its error, or stopped.
  EXPECT_TRUE(s.state == ServiceState::kFailed ||
              s.state == ServiceState::kStopped)
      << s;
  if (s.state == ServiceState::kFailed) {
    EXPECT_FALSE(s.status.ok()) << s;
    EXPECT_FALSE(s.last_failure.ok()) << s;
    EXPECT_GE(s.failure_count, 1) << s;
  }
  EXPECT_TRUE(service_->StopFor(absl::ZeroDuration()).ok());
  // And it starts again.
  ASSERT_TRUE(service_->Start(Context::Background()).ok());
  EXPECT_TRUE(WaitOrTimeout(service_->Started(), Self()));
}

}  // namespace lifecycle_testing
