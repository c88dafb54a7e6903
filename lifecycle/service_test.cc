#include "lifecycle/service.h"

#include <dirent.h>

#include <atomic>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/test_services.h"

namespace lifecycle {
namespace {

// Bounds every wait of the test: a hang, not a delay.
constexpr absl::Duration kWait = absl::Seconds(30);

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using test_services::Parent;
using test_services::TestService;
using Leaf = TestService;

std::vector<Service*> Pointers(std::vector<std::unique_ptr<Leaf>>& leaves) {
  std::vector<Service*> out;
  for (auto& leaf : leaves) out.push_back(leaf.get());
  return out;
}

TEST(StartAllTest, StartsAllInOrder) {
  std::vector<std::unique_ptr<Leaf>> leaves;
  for (const char* name : {"a", "b", "c"}) {
    leaves.push_back(std::make_unique<Leaf>(name));
  }
  auto services = Pointers(leaves);
  ASSERT_TRUE(StartAll(services, Context::Background()).ok());
  EXPECT_TRUE(WaitAllStarted(services).ok());
  for (auto& leaf : leaves) {
    EXPECT_EQ(leaf->Snapshot().state, ServiceState::kStarted);
  }
  StopAllParallel(services);
  for (auto& leaf : leaves) {
    EXPECT_EQ(leaf->Snapshot().state, ServiceState::kStopped);
    EXPECT_EQ(leaf->stops(), 1);
  }
}

TEST(StartAllTest, FirstErrorStopsTheStartedAndNamesTheService) {
  std::vector<std::unique_ptr<Leaf>> leaves;
  leaves.push_back(std::make_unique<Leaf>("a"));
  leaves.push_back(std::make_unique<Leaf>("b"));
  leaves.back()->SetStartError(absl::UnavailableError("down"));
  leaves.push_back(std::make_unique<Leaf>("c"));
  absl::Status status = StartAll(Pointers(leaves), Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("service 'b' failed to start: down"));
  EXPECT_EQ(FailedServicePath(status), "b");
  EXPECT_EQ(leaves[0]->Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(leaves[0]->stops(), 1);
  EXPECT_EQ(leaves[2]->Snapshot().start_count, 0);
}

TEST(StartAllTest, ErrorInOneServiceList) {
  Leaf only("only");
  only.SetStartError(absl::InternalError("boom"));
  Service* services[] = {&only};
  absl::Status status = StartAll(services, Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(FailedServicePath(status), "only");
}

TEST(StartAllTest, EmptyListIsOk) {
  EXPECT_TRUE(StartAll({}, Context::Background()).ok());
  EXPECT_TRUE(WaitAllStarted({}).ok());
  StopAllParallel({});
}

TEST(StartAllTest, NullAndDuplicateAreInvalidAndStartNothing) {
  Leaf a("a");
  Service* with_null[] = {&a, nullptr};
  absl::Status status = StartAll(with_null, Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("service #1 in the list is null"));
  Service* twice[] = {&a, &a};
  status = StartAll(twice, Context::Background());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'a' is listed more than once"));
  EXPECT_EQ(a.Snapshot().start_count, 0);
}

TEST(StopAllParallelTest, StopsNeverStartedAndSkipsNull) {
  Leaf never("never"), running("running");
  ASSERT_TRUE(running.Start(Context::Background()).ok());
  ASSERT_TRUE(running.Started().WaitFor(kWait));
  // The null entry is skipped, not the end of the list: the service after it
  // is stopped too.
  Service* services[] = {&never, nullptr, &running};
  StopAllParallel(services);
  EXPECT_EQ(running.Snapshot().state, ServiceState::kStopped);
  EXPECT_EQ(running.stops(), 1);
  EXPECT_EQ(never.Snapshot().start_count, 0);
  EXPECT_EQ(StopAllParallelFor(services, absl::ZeroDuration()),
            absl::OkStatus());
}

// Threads of this process now.
int ThreadsAlive() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir)) n += entry->d_name[0] != '.';
    closedir(dir);
  }
  return n;
}

TEST(StopAllParallelTest, ManyServicesStopInParallelWithoutHelperThreads) {
  // Every stop is held until all have been asked, so the group stop only
  // finishes if the stops overlap; the thread count taken then, with every
  // worker still alive, shows any helper thread it would have made.
  constexpr int kCount = 200;
  std::atomic<int> asked{0};
  std::atomic<int> threads_when_all_asked{0};
  Signal all_asked;
  std::vector<std::unique_ptr<FuncService>> services;
  std::vector<Service*> pointers;
  for (int i = 0; i < kCount; ++i) {
    services.push_back(std::make_unique<FuncService>(
        absl::StrCat("s", i),
        [&](const Context& ctx, absl::FunctionRef<void()> started) {
          started();
          ctx.Done().Wait();
          if (++asked == kCount) {
            threads_when_all_asked = ThreadsAlive();
            all_asked.Close();
          }
          EXPECT_TRUE(all_asked.WaitFor(kWait));
          return absl::OkStatus();
        }));
    pointers.push_back(services.back().get());
  }
  ASSERT_TRUE(StartAll(pointers, Context::Background()).ok());
  ASSERT_TRUE(WaitAllStarted(pointers).ok());
  int threads_before = ThreadsAlive();  // this one and every worker
  StopAllParallel(pointers);
  EXPECT_EQ(asked, kCount);
  EXPECT_LE(threads_when_all_asked, threads_before);
  for (Service* s : pointers) EXPECT_TRUE(s->Stopped().IsClosed());
}

TEST(WaitAllStartedTest, ReleasedByAStartError) {
  Leaf good("good");
  Leaf bad("bad");
  bad.FailRunsWith(absl::DataLossError("corrupt"));
  Service* services[] = {&good, &bad};
  ASSERT_TRUE(StartAll(services, Context::Background()).ok());
  absl::Status status = WaitAllStarted(services);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), "service 'bad' failed to start: corrupt");
  EXPECT_EQ(FailedServicePath(status), "bad");
  StopAllParallel(services);
}

TEST(WaitAllStartedTest, SeveralFailuresAreListed) {
  Leaf one("one"), two("two");
  one.FailRunsWith(absl::DataLossError("corrupt"));
  two.FailRunsWith(absl::InternalError("bug"));
  Service* services[] = {&one, &two};
  ASSERT_TRUE(StartAll(services, Context::Background()).ok());
  absl::Status status = WaitAllStarted(services);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "2 of 2 services did not start: DATA_LOSS: service 'one' failed "
            "to start: corrupt; INTERNAL: service 'two' failed to start: bug");
  EXPECT_EQ(FailedServicePath(status), "one");
}

TEST(WaitAllStartedTest, DeadlineVariantNamesThePending) {
  Leaf quick("quick");
  Leaf slow("slow");
  slow.NeverSignalStarted();
  Leaf idle("idle");
  Service* services[] = {&quick, &slow, &idle};
  ASSERT_TRUE(quick.Start(Context::Background()).ok());
  ASSERT_TRUE(slow.Start(Context::Background()).ok());
  absl::Status status =
      WaitAllStartedUntil(services, absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr("2 of 3 services not started after"));
  EXPECT_THAT(status.message(), HasSubstr("slow (starting for "));
  EXPECT_THAT(status.message(), HasSubstr("idle (stopped)"));
  EXPECT_THAT(PendingServices(services), ElementsAre("slow", "idle"));
  StopAllParallel(services);
}

TEST(WaitAllStartedTest, PastDeadlineOnlyChecks) {
  Leaf a("a");
  ASSERT_TRUE(a.Start(Context::Background()).ok());
  ASSERT_TRUE(a.Started().WaitFor(kWait));
  Service* services[] = {&a};
  EXPECT_TRUE(WaitAllStartedUntil(services, absl::InfinitePast()).ok());
}

// A three-level tree: client -> {notifier, producer -> {default, bulk}}.
struct Tree {
  explicit Tree(absl::Status bulk_error = absl::OkStatus()) {
    bulk.FailRunsWith(std::move(bulk_error));
  }
  Leaf notifier{"notifier"}, default_leaf{"default"}, bulk{"bulk"};
  Parent producer{"producer", {&default_leaf, &bulk}};
  Parent client{"client", {&notifier, &producer}};
};

TEST(CompositeServiceTest, StartsOnlyAfterAllChildren) {
  Tree tree;
  Parent& client = tree.client;
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Started().WaitFor(kWait));
  ServiceSnapshot s = client.Snapshot();
  for (const ServiceSnapshot* node : s.Flatten()) {
    EXPECT_EQ(node->state, ServiceState::kStarted) << node->path;
  }
  client.Stop();
  s = client.Snapshot();
  for (const ServiceSnapshot* node : s.Flatten()) {
    EXPECT_EQ(node->state, ServiceState::kStopped) << node->path;
  }
}

TEST(CompositeServiceTest, LeafFailureIsNamedByItsFullPath) {
  Tree tree(absl::UnavailableError("queue missing"));
  Parent& client = tree.client;
  ASSERT_TRUE(client.Start(Context::Background()).ok());
  ASSERT_TRUE(client.Stopped().WaitFor(kWait));
  ServiceSnapshot s = client.Snapshot();
  EXPECT_EQ(s.state, ServiceState::kFailed);
  EXPECT_EQ(FailedServicePath(s.status), "client/producer/bulk");
  EXPECT_THAT(s.status.message(),
              HasSubstr("service 'client/producer/bulk' failed to start: "
                        "queue missing"));
  ASSERT_NE(s.Find("client/producer/bulk"), nullptr);
  EXPECT_EQ(s.Find("client/producer/bulk")->state, ServiceState::kFailed);
  EXPECT_EQ(s.Find("client/notifier")->state, ServiceState::kStopped);

  Service* services[] = {&client};
  absl::Status waited = WaitAllStarted(services);
  EXPECT_EQ(FailedServicePath(waited), "client/producer/bulk");
}

TEST(CompositeServiceTest, ChildNamesAreValidatedAndUnique) {
  Parent holder("holder");
  Leaf a("a"), a2("a"), bad("x/y");
  EXPECT_TRUE(holder.AddChild(a).ok());
  EXPECT_EQ(holder.AddChild(a2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(holder.AddChild(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(holder.AddChild(holder).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Path(), "holder/a");
}

TEST(CompositeServiceTest,
     ADestroyedChildFreesItsNameAndTheOthersKeepTheirOrder) {
  Parent holder("holder");
  Leaf first("first"), last("last");
  auto middle = std::make_unique<Leaf>("middle");
  ASSERT_TRUE(holder.AddChild(first).ok());
  ASSERT_TRUE(holder.AddChild(*middle).ok());
  ASSERT_TRUE(holder.AddChild(last).ok());
  middle.reset();
  Leaf again("middle");  // the name is free again, and goes last
  ASSERT_TRUE(holder.AddChild(again).ok());
  Leaf twice("last");
  EXPECT_EQ(holder.AddChild(twice).code(), absl::StatusCode::kAlreadyExists);
  std::vector<std::string> order;
  for (const ServiceSnapshot& c : holder.Snapshot().children) {
    order.push_back(c.name);
  }
  EXPECT_THAT(order, ::testing::ElementsAre("first", "last", "middle"));
}

TEST(CompositeServiceTest, ADestroyedChildLeavesTheTree) {
  Parent holder("holder");
  auto child = std::make_unique<Leaf>("short-lived");
  Leaf stays("stays");
  ASSERT_TRUE(holder.AddChild(*child).ok());
  ASSERT_TRUE(holder.AddChild(stays).ok());
  EXPECT_EQ(holder.Snapshot().children.size(), 2u);
  child.reset();
  ServiceSnapshot s = holder.Snapshot();
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "holder/stays");
  // Its name is free again.
  Leaf again("short-lived");
  EXPECT_TRUE(holder.AddChild(again).ok());
}

}  // namespace
}  // namespace lifecycle
