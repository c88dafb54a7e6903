#include "lifecycle/context.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lifecycle {
namespace {

// Bounds every wait of the test: a hang, not a delay.
constexpr absl::Duration kWait = absl::Seconds(30);

TEST(ContextTest, BackgroundIsNeverCancelled) {
  Context background = Context::Background();
  EXPECT_FALSE(background.IsCancelled());
  EXPECT_TRUE(background.Cause().ok());
  EXPECT_EQ(background.Deadline(), absl::InfiniteFuture());
}

TEST(ContextTest, CancelWithCause) {
  CancellableContext scope;
  Context ctx = scope.context();
  EXPECT_FALSE(ctx.IsCancelled());
  scope.Cancel(absl::UnavailableError("gone"));
  EXPECT_TRUE(ctx.IsCancelled());
  EXPECT_TRUE(ctx.Done().IsClosed());
  EXPECT_EQ(ctx.Cause(), absl::UnavailableError("gone"));
}

TEST(ContextTest, FirstCauseWins) {
  CancellableContext scope;
  scope.Cancel(absl::AbortedError("first"));
  scope.Cancel(absl::InternalError("second"));
  EXPECT_EQ(scope.context().Cause(), absl::AbortedError("first"));
}

TEST(ContextTest, OkCauseBecomesCancelled) {
  CancellableContext scope;
  scope.Cancel(absl::OkStatus());
  EXPECT_TRUE(absl::IsCancelled(scope.context().Cause()));
}

TEST(ContextTest, ParentCancelsChildrenWithItsCause) {
  CancellableContext parent;
  CancellableContext child(parent.context());
  CancellableContext grandchild(child.context());
  parent.Cancel(absl::DataLossError("root cause"));
  EXPECT_EQ(grandchild.context().Cause(), absl::DataLossError("root cause"));
}

TEST(ContextTest, ChildDoesNotCancelParent) {
  CancellableContext parent;
  CancellableContext child(parent.context());
  child.Cancel(absl::CancelledError("child only"));
  EXPECT_TRUE(child.context().IsCancelled());
  EXPECT_FALSE(parent.context().IsCancelled());
}

TEST(ContextTest, ChildOfCancelledParentStartsCancelled) {
  CancellableContext parent;
  parent.Cancel(absl::AbortedError("early"));
  CancellableContext child(parent.context());
  EXPECT_EQ(child.context().Cause(), absl::AbortedError("early"));
}

TEST(ContextTest, DestroyingTheScopeCancels) {
  std::optional<Context> ctx;
  {
    CancellableContext scope;
    ctx = scope.context();
  }
  EXPECT_TRUE(ctx->IsCancelled());
}

TEST(ContextTest, DeadlineCancelsWithDeadlineExceeded) {
  CancellableContext scope(Context::Background(),
                           absl::Now() + absl::Milliseconds(5));
  ASSERT_TRUE(scope.context().Done().WaitFor(kWait));
  EXPECT_TRUE(absl::IsDeadlineExceeded(scope.context().Cause()));
}

TEST(ContextTest, DeadlinesAddedLaterAndEarlierAllFire) {
  // The timer thread must wake for a deadline added while it waits for a
  // later one, or for none at all.
  CancellableContext far(Context::Background(), absl::Now() + absl::Hours(1));
  CancellableContext first(Context::Background(),
                           absl::Now() + absl::Milliseconds(5));
  // Bounded, so that the bug this test is about fails it instead of hanging.
  ASSERT_TRUE(first.context().Done().WaitFor(absl::Seconds(30)));
  CancellableContext second(Context::Background(),
                            absl::Now() + absl::Milliseconds(5));
  ASSERT_TRUE(second.context().Done().WaitFor(absl::Seconds(30)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(second.context().Cause()));
  EXPECT_FALSE(far.context().IsCancelled());
}

TEST(ContextTest, PastDeadlineIsCancelledAtOnce) {
  CancellableContext scope(Context::Background(), absl::InfinitePast());
  EXPECT_TRUE(absl::IsDeadlineExceeded(scope.context().Cause()));
}

TEST(ContextTest, ChildInheritsEarlierDeadline) {
  absl::Time soon = absl::Now() + absl::Hours(1);
  CancellableContext parent(Context::Background(), soon);
  CancellableContext child(parent.context(), soon + absl::Hours(1));
  EXPECT_EQ(child.context().Deadline(), soon);
}

TEST(ContextTest, StoppedErrorIsRecognisable) {
  EXPECT_TRUE(IsStopped(StoppedError()));
  EXPECT_TRUE(absl::IsCancelled(StoppedError()));
  EXPECT_FALSE(IsStopped(absl::CancelledError("service stopped")));
  EXPECT_FALSE(IsStopped(absl::OkStatus()));
  CancellableContext parent;
  CancellableContext child(parent.context());
  parent.Cancel(StoppedError());
  EXPECT_TRUE(IsStopped(child.context().Cause()));
}

TEST(ContextTest, ManyShortLivedChildrenDoNotAccumulate) {
  CancellableContext parent;
  for (int i = 0; i < 1000; ++i) CancellableContext child(parent.context());
  // Children are kept apart from the parent's Done() callbacks: the first
  // callback registered after them still gets the first id.
  EXPECT_EQ(parent.context().Done().OnClose([] {}), 1u);
}

TEST(ContextTest, CancelFromAnotherThreadWakesWaiter) {
  CancellableContext scope;
  std::thread canceller([&] { scope.Cancel(StoppedError()); });
  ASSERT_TRUE(scope.context().Done().WaitFor(kWait));
  canceller.join();
  EXPECT_TRUE(IsStopped(scope.context().Cause()));
}

// Issue 13, item 6: cancelling a 100,000-deep chain used to recurse once per
// level and overflow the stack.
TEST(ContextTest, CancelsAVeryDeepChainWithoutRecursion) {
  constexpr int kDepth = 100000;
  std::vector<std::unique_ptr<CancellableContext>> chain;
  chain.reserve(kDepth);
  chain.push_back(std::make_unique<CancellableContext>());
  for (int i = 1; i < kDepth; ++i) {
    chain.push_back(
        std::make_unique<CancellableContext>(chain.back()->context()));
  }
  Context deepest = chain.back()->context();
  chain.front()->Cancel(absl::UnavailableError("root gone"));
  EXPECT_TRUE(deepest.IsCancelled());
  EXPECT_EQ(deepest.Cause(), absl::UnavailableError("root gone"));
  // Tearing down in either order is linear and recursion-free too.
  chain.clear();
}

// Item 18: a cancelled context used to stay in the deadline timer until its
// deadline passed.
TEST(ContextTest, CancelledContextLeavesTheDeadlineTimer) {
  size_t before = PendingDeadlines();
  {
    std::vector<std::unique_ptr<CancellableContext>> contexts;
    for (int i = 0; i < 1000; ++i) {
      contexts.push_back(std::make_unique<CancellableContext>(
          Context::Background(), absl::Now() + absl::Hours(1)));
    }
    EXPECT_EQ(PendingDeadlines(), before + 1000);
    for (int i = 0; i < 500; ++i) contexts[i]->Cancel(StoppedError());
    EXPECT_EQ(PendingDeadlines(), before + 500);
    // Copies of the cancelled contexts may live on: they no longer count.
  }
  EXPECT_EQ(PendingDeadlines(), before);
}

TEST(ContextTest, ChildOfACancelledParentIsCancelledAtOnce) {
  CancellableContext parent;
  parent.Cancel(absl::AbortedError("early"));
  CancellableContext child(parent.context());
  EXPECT_TRUE(child.context().IsCancelled());
  EXPECT_EQ(child.context().Cause(), absl::AbortedError("early"));
}

}  // namespace
}  // namespace lifecycle
