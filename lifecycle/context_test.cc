#include "lifecycle/context.h"

#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lifecycle {
namespace {

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
  scope.context().Done().Wait();
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
  scope.context().Done().Wait();
  canceller.join();
  EXPECT_TRUE(IsStopped(scope.context().Cause()));
}

}  // namespace
}  // namespace lifecycle
