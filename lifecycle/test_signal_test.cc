#include "lifecycle/test_signal.h"

#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lifecycle {
namespace {

TEST(TestSignalTest, DoesNothingUntilInitialized) {
  TestSignal<std::string> signal;
  EXPECT_FALSE(signal.IsInitialized());
  signal.Signal("dropped");  // no effect, no block
  auto value = signal.WaitFor(absl::Milliseconds(1));
  EXPECT_EQ(value.status().code(), absl::StatusCode::kFailedPrecondition);
  signal.Init();
  EXPECT_TRUE(signal.RequireEmpty().ok());
}

TEST(TestSignalTest, DeliversValuesInOrder) {
  TestSignal<int> signal;
  signal.Init();
  std::thread producer([&] {
    for (int i = 0; i < 5; ++i) signal.Signal(i);
  });
  for (int i = 0; i < 5; ++i) {
    auto value = signal.WaitFor(absl::InfiniteDuration());
    ASSERT_TRUE(value.ok());
    EXPECT_EQ(*value, i);
  }
  producer.join();
}

TEST(TestSignalTest, OverflowNeverBlocksAndIsReported) {
  TestSignal<int> signal;
  signal.Init(2);
  for (int i = 0; i < 5; ++i) signal.Signal(i);  // returns at once
  auto value = signal.WaitFor(absl::ZeroDuration());
  EXPECT_EQ(value.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(value.status().message().find("3 value(s) dropped with capacity 2"),
            std::string::npos);
  signal.Init(2);  // resets
  EXPECT_TRUE(signal.RequireEmpty().ok());
}

TEST(TestSignalTest, WaitForNPutsNothingBackOnTimeout) {
  TestSignal<int> signal;
  signal.Init();
  signal.Signal(7);
  auto values = signal.WaitForN(2, absl::Milliseconds(1));
  EXPECT_EQ(values.status().code(), absl::StatusCode::kDeadlineExceeded);
  auto value = signal.WaitFor(absl::ZeroDuration());
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 7);
}

// Issue 13, item 21: values dropped while WaitForN waited used to go
// unmentioned in its timeout message.
TEST(TestSignalTest, WaitForNReportsValuesDroppedWhileWaiting) {
  TestSignal<int> signal;
  signal.Init(2);
  std::thread producer([&] {
    for (int i = 0; i < 5; ++i) signal.Signal(i);
  });
  auto values = signal.WaitForN(4, absl::Seconds(30));  // more than fit
  producer.join();
  EXPECT_EQ(values.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(values.status().message()),
              ::testing::HasSubstr("dropped with capacity 2"));
}
}  // namespace
}  // namespace lifecycle
