#include "lifecycle/signal.h"

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lifecycle {
namespace {

// Bounds every wait of the test: a hang, not a delay.
constexpr absl::Duration kWait = absl::Seconds(30);

TEST(SignalTest, StartsOpenAndClosesOnce) {
  Signal signal;
  EXPECT_FALSE(signal.IsClosed());
  signal.Close();
  EXPECT_TRUE(signal.IsClosed());
  signal.Close();  // idempotent
  EXPECT_TRUE(signal.IsClosed());
}

TEST(SignalTest, CopiesShareTheEvent) {
  Signal a;
  Signal b = a;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, Signal());
  b.Close();
  EXPECT_TRUE(a.IsClosed());
}

TEST(SignalTest, ClosedFactory) { EXPECT_TRUE(Signal::Closed().IsClosed()); }

TEST(SignalTest, WaitReturnsOnceClosedFromAnotherThread) {
  Signal signal;
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    signal.Wait();
    woke = true;
  });
  signal.Close();
  waiter.join();
  EXPECT_TRUE(woke);
}

TEST(SignalTest, WaitForTimesOutOnOpenSignal) {
  Signal signal;
  EXPECT_FALSE(signal.WaitFor(absl::Milliseconds(1)));
  EXPECT_FALSE(signal.WaitFor(absl::ZeroDuration()));
  EXPECT_FALSE(signal.WaitFor(-absl::Seconds(1)));
  EXPECT_FALSE(signal.WaitUntil(absl::InfinitePast()));
}

TEST(SignalTest, WaitForOnClosedSignalReturnsTrueEvenWithNoTime) {
  Signal signal = Signal::Closed();
  EXPECT_TRUE(signal.WaitFor(absl::ZeroDuration()));
  EXPECT_TRUE(signal.WaitFor(-absl::Seconds(1)));
  EXPECT_TRUE(signal.WaitFor(absl::InfiniteDuration()));
  EXPECT_TRUE(signal.WaitUntil(absl::InfinitePast()));
}

TEST(SignalTest, InfiniteWaitIsReleasedByClose) {
  Signal signal;
  std::thread closer([&] { signal.Close(); });
  EXPECT_TRUE(signal.WaitFor(absl::InfiniteDuration()));
  closer.join();
}

TEST(SignalTest, OnCloseRunsOnceOnClose) {
  Signal signal;
  int runs = 0;
  uint64_t id = signal.OnClose([&] { ++runs; });
  EXPECT_NE(id, 0u);
  EXPECT_EQ(runs, 0);
  signal.Close();
  signal.Close();
  EXPECT_EQ(runs, 1);
}

TEST(SignalTest, OnCloseOnClosedSignalRunsAtOnce) {
  Signal signal = Signal::Closed();
  int runs = 0;
  EXPECT_EQ(signal.OnClose([&] { ++runs; }), 0u);
  EXPECT_EQ(runs, 1);
}

TEST(SignalTest, CancelOnCloseForgetsTheCallback) {
  Signal signal;
  int runs = 0;
  uint64_t id = signal.OnClose([&] { ++runs; });
  EXPECT_TRUE(signal.CancelOnClose(id));
  EXPECT_FALSE(signal.CancelOnClose(id));
  EXPECT_FALSE(signal.CancelOnClose(0));
  signal.Close();
  EXPECT_EQ(runs, 0);
}

TEST(SignalTest, CallbackMayUseTheSignal) {
  Signal signal;
  bool saw_closed = false;
  signal.OnClose([&] { saw_closed = signal.IsClosed(); });
  signal.Close();
  EXPECT_TRUE(saw_closed);
}

TEST(SignalTest, WaitForAllNeedsEverySignal) {
  std::vector<Signal> signals(3);
  signals[0].Close();
  signals[2].Close();
  EXPECT_FALSE(WaitAllUntil(signals, absl::Now() + absl::Milliseconds(1)));
  signals[1].Close();
  EXPECT_TRUE(WaitAllUntil(signals, absl::InfiniteFuture()));
  EXPECT_TRUE(WaitAllUntil({}, absl::InfinitePast()));
}

TEST(SignalTest, WaitForAnyReturnsTheClosedIndex) {
  std::vector<Signal> signals(3);
  EXPECT_EQ(WaitAnyUntil(signals, absl::Now() + absl::Milliseconds(1)),
            std::nullopt);
  std::thread closer([&] { signals[1].Close(); });
  EXPECT_EQ(WaitAnyUntil(signals, absl::InfiniteFuture()), 1u);
  closer.join();
  EXPECT_EQ(WaitAnyUntil({}, absl::Now()), std::nullopt);
}

TEST(SignalTest, WaitAnyUntilLeavesNoCallbacksBehind) {
  Signal never;
  for (int i = 0; i < 100; ++i) {
    // Both open: the wait registers a callback on each, then times out.
    Signal open;
    Signal signals[] = {never, open};
    EXPECT_EQ(WaitAnyUntil(signals, absl::Now()), std::nullopt);
    // One closed by another thread while (or before) the wait registers.
    Signal other;
    std::thread closer([&] { other.Close(); });
    Signal racing[] = {never, other};
    EXPECT_EQ(WaitAnyUntil(racing, absl::Now() + kWait), 1u);
    closer.join();
  }
  EXPECT_EQ(signal_internal::PendingCallbacks(never), 0u);
}

TEST(SignalTest, ManyWaitersManyClosers) {
  Signal signal;
  std::atomic<int> woke{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      signal.Wait();
      ++woke;
    });
  }
  for (int i = 0; i < 4; ++i) threads.emplace_back([&] { signal.Close(); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(woke, 8);
}

TEST(SignalTest, CloseIsVisibleWithItsWrites) {
  Signal signal;
  int data = 0;
  std::thread writer([&] {
    data = 42;
    signal.Close();
  });
  ASSERT_TRUE(signal.WaitFor(kWait));
  EXPECT_EQ(data, 42);
  writer.join();
}

// Issue 13, item 12: a throwing callback used to abort Close() and skip the
// rest (child-context cancellation among them).
TEST(SignalDeathTest, ThrowingCallbackRunsTheRestThenAbortsLoudly) {
  EXPECT_DEATH(
      {
        Signal signal;
        signal.OnClose([] { throw std::runtime_error("callback blew up"); });
        signal.OnClose([] { std::fprintf(stderr, "second callback ran\n"); });
        signal.Close();
      },
      "second callback ran\n(.|\n)*a Signal::OnClose\\(\\) callback threw an "
      "exception: callback blew up");
}

// Item 13: CancelOnClose() used to return false while the callback was about
// to run, after which the callback used what the caller had freed.
TEST(SignalTest, CancelOnCloseWaitsForACallbackRunningElsewhere) {
  Signal signal;
  Signal entered, release;
  std::atomic<bool> callback_done{false};
  uint64_t id = signal.OnClose([&] {
    entered.Close();
    release.Wait();
    callback_done = true;
  });
  std::thread closer([&] { signal.Close(); });
  ASSERT_TRUE(entered.WaitFor(kWait));  // the callback is running on `closer`
  std::atomic<bool> cancel_returned{false};
  std::thread canceller([&] {
    EXPECT_FALSE(signal.CancelOnClose(id));  // too late to remove it...
    EXPECT_TRUE(callback_done);              // ...so it returns after it ran
    cancel_returned = true;
  });
  EXPECT_FALSE(cancel_returned);
  release.Close();
  canceller.join();
  closer.join();
  EXPECT_TRUE(cancel_returned);
}

TEST(SignalTest, CancelOnCloseRemovesACallbackNotYetRun) {
  Signal signal;
  Signal entered, release;
  bool second_ran = false;
  signal.OnClose([&] {
    entered.Close();
    release.Wait();
  });
  uint64_t second = signal.OnClose([&] { second_ran = true; });
  std::thread closer([&] { signal.Close(); });
  ASSERT_TRUE(entered.WaitFor(
      kWait));  // Close() is in progress, the second callback still queued
  EXPECT_TRUE(signal.CancelOnClose(second));
  release.Close();
  closer.join();
  EXPECT_FALSE(second_ran);
}

TEST(SignalTest, CallbackMayCancelItselfAndUseTheSignal) {
  Signal signal;
  uint64_t id = 0;
  bool ran = false;
  id = signal.OnClose([&] {
    EXPECT_FALSE(signal.CancelOnClose(id));  // no wait for itself
    EXPECT_TRUE(signal.IsClosed());
    signal.OnClose([&] { ran = true; });  // runs at once
  });
  signal.Close();
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace lifecycle
