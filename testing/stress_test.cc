#include "lifecycle/testing/stress.h"

#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/fake_service.h"

namespace lifecycle_testing {
namespace {

using ::testing::HasSubstr;

TEST(StressStartStopTest, FakeKeepsTheContract) {
  FakeService fake("stressed");
  EXPECT_TRUE(StressStartStop(fake));
  EXPECT_GE(fake.runs(), 1);
}

TEST(StressStartStopTest, AllowedStartErrors) {
  FakeService fake("refuser");
  fake.FailStartWith(absl::UnavailableError("busy"));
  StressOptions options;
  options.threads = 4;
  options.cycles = 10;
  options.allowed_start_error = [](const absl::Status& s) {
    return absl::IsUnavailable(s);
  };
  EXPECT_TRUE(StressStartStop(fake, options));
}

TEST(StressStartStopTest, FailureNamesTheSeed) {
  FakeService fake("refuser");
  fake.FailStartWith(absl::UnavailableError("busy"));
  StressOptions options;
  options.threads = 2;
  options.cycles = 3;
  options.seed = 42;
  ::testing::AssertionResult result = StressStartStop(fake, options);
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(),
              HasSubstr("stress (seed 42, 2 threads x 3 cycles)"));
  EXPECT_THAT(result.message(), HasSubstr("unexpected start error"));
  EXPECT_THAT(result.message(), HasSubstr("refuser"));
}

TEST(StressStartStopTest, HangingStopIsReportedWithTheSnapshot) {
  FakeService fake("hang");
  fake.BlockStopUntilReleased();
  StressOptions options;
  options.threads = 1;
  options.cycles = 2;
  options.wait_timeout = absl::Milliseconds(20);
  ::testing::AssertionResult result = StressStartStop(fake, options);
  EXPECT_FALSE(result);
  EXPECT_THAT(result.message(), HasSubstr("service 'hang' did not stop"));
  EXPECT_THAT(result.message(), HasSubstr("hang  stopping"));
  fake.ReleaseStop();
}

TEST(StressStartStopTest, RejectsNonsenseSizes) {
  FakeService fake("x");
  StressOptions options;
  options.threads = 0;
  EXPECT_THAT(StressStartStop(fake, options).message(),
              HasSubstr("threads and cycles must be positive"));
}

}  // namespace
}  // namespace lifecycle_testing
