// What an idle service and a start/stop cycle cost in heap allocations, and
// that the group functions' success paths allocate nothing per service: the
// floors docs/PERFORMANCE.md reports ("Footprint"), held by a test so that a
// change that adds an allocation to a hot path fails here, not in a later
// benchmark run. This binary counts every `operator new`.

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/service.h"

namespace {
std::atomic<int64_t> allocations{0};
}  // namespace

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace lifecycle {
namespace {

// Allocations made (by any thread) while `body` runs.
template <typename Body>
int64_t AllocationsOf(Body&& body) {
  int64_t before = allocations.load();
  body();
  return allocations.load() - before;
}

std::unique_ptr<FuncService> Idle(int i) {
  // A name short enough for the string's inline buffer.
  return std::make_unique<FuncService>(
      absl::StrCat("s", i),
      [](const Context& ctx, absl::FunctionRef<void()> started) {
        started();
        ctx.Done().Wait();
        return ctx.Cause();
      });
}

// A service that reports errors and details from outside, for the test.
class Reporter : public BaseService {
 public:
  Reporter() : BaseService("reporter") {}
  ~Reporter() override { StopForDestruction(); }
  using BaseService::ReportError;
  using BaseService::SetDetail;

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    started();
    ctx.Done().Wait();
    return ctx.Cause();
  }
};

TEST(FootprintTest, AnIdleServiceIsTwoAllocations) {
  std::unique_ptr<FuncService> service;
  // The object and its lifeline; no signal, no history until needed.
  EXPECT_EQ(AllocationsOf([&] { service = Idle(1); }), 2);
  EXPECT_EQ(AllocationsOf([&] { (void)service->State(); }), 0);
  EXPECT_EQ(service->Snapshot().error_count, 0);
  EXPECT_EQ(service->Snapshot().last_failure_at, absl::InfinitePast());
}

TEST(FootprintTest, AStartStopCycleIsAtMostTwelveAllocations) {
  auto service = Idle(1);
  auto cycle = [&] {
    ASSERT_TRUE(service->Start(Context::Background()).ok());
    service->Started().Wait();
    service->Stop();
  };
  cycle();  // the first run makes its signals; later runs replace them
  constexpr int kCycles = 20;
  int64_t made = AllocationsOf([&] {
    for (int i = 0; i < kCycles; ++i) cycle();
  });
  // 6 on this machine: the run's context (3), two fresh signals, the thread.
  EXPECT_LE(made, 12 * kCycles) << made / kCycles << " per cycle";
}

TEST(FootprintTest, GroupSuccessPathsAllocateNothingPerService) {
  constexpr int kServices = 200;
  std::vector<std::unique_ptr<FuncService>> services;
  std::vector<Service*> pointers;
  for (int i = 0; i < kServices; ++i) {
    services.push_back(Idle(i));
    pointers.push_back(services.back().get());
  }
  ASSERT_TRUE(StartAll(pointers, Context::Background()).ok());
  ASSERT_TRUE(WaitAllStarted(pointers).ok());  // waits: a vector of signals
  // Once all have started, the wait is a look at each.
  EXPECT_EQ(AllocationsOf([&] { ASSERT_TRUE(WaitAllStarted(pointers).ok()); }),
            0);
  // StopAllParallel asks every service to stop before it waits for any: no
  // status, name or message is made for a service that stops. (Built against
  // Debian's shared abseil, a few allocations of abseil's own appear as the
  // workers block and end: far from one per service.)
  EXPECT_LT(AllocationsOf([&] { StopAllParallel(pointers); }), kServices / 20);
  ASSERT_TRUE(StartAll(pointers, Context::Background()).ok());
  ASSERT_TRUE(WaitAllStarted(pointers).ok());
  // The bounded form: one vector of the signals it waits for.
  EXPECT_LT(AllocationsOf([&] {
              ASSERT_TRUE(StopAllParallelFor(pointers, absl::Seconds(30)).ok());
            }),
            kServices / 20);
}

TEST(FootprintTest, HistoryIsMadeByTheFirstErrorAndKept) {
  auto service = std::make_unique<Reporter>();
  EXPECT_EQ(AllocationsOf([&] { service->SetDetail("k", ""); }), 0)
      << "removing a detail that was never set makes nothing";
  service->ReportError(absl::UnavailableError("down"));
  service->SetDetail("port", "6379");
  ServiceSnapshot s = service->Snapshot();
  EXPECT_EQ(s.error_count, 1);
  EXPECT_EQ(s.last_error.message(), "down");
  EXPECT_NE(s.last_error_at, absl::InfinitePast());
  ASSERT_EQ(s.details.size(), 1u);
  EXPECT_EQ(s.details[0].second, "6379");
}

}  // namespace
}  // namespace lifecycle
