// Model-based randomized test of BaseService: seeded random sequences of
// operations checked against a reference state machine of the contract
// (service.h), then the same operations from several threads at once checked
// against the invariants that hold under any interleaving.
//
// The seed is printed with every failure; to replay one:
//   bazel test //lifecycle:base_service_model_test
//     --test_env=LIFECYCLE_MODEL_SEED=<seed>   (one command line)

#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/snapshot_format.h"

namespace lifecycle {
namespace {

// How the next run behaves; set by the test before each Start.
enum class Behavior { kStarts, kFailsStart, kFailsBeforeStarted };

class ModelService : public BaseService {
 public:
  ModelService() : BaseService("model") {}
  ~ModelService() override { Stop(); }

  void SetBehavior(Behavior b) { behavior_ = b; }
  // Makes the current run (if any) return an error, as a crashing worker.
  void FailNow() {
    absl::MutexLock lock(&mu_);
    fail_.Close();
  }
  using BaseService::ReportError;
  using BaseService::ReportHealthy;

  std::atomic<int> on_start_calls{0};
  std::atomic<int> start_errors{0};
  std::atomic<int> run_errors{0};

 private:
  absl::Status OnStart(const Context&) override {
    ++on_start_calls;
    if (behavior_ == Behavior::kFailsStart) {
      ++start_errors;
      return absl::UnavailableError("model start error");
    }
    absl::MutexLock lock(&mu_);
    fail_ = Signal();  // a fresh one for this run
    return absl::OkStatus();
  }

  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override {
    if (behavior_ == Behavior::kFailsBeforeStarted) {
      ++run_errors;
      return absl::InternalError("model run error before started");
    }
    started();
    Signal fail;
    {
      absl::MutexLock lock(&mu_);
      fail = fail_;
    }
    Signal waits[] = {ctx.Done(), fail};
    WaitAnyUntil(waits, absl::InfiniteFuture());
    if (!ctx.IsCancelled()) {
      ++run_errors;
      return absl::InternalError("model worker died");
    }
    return ctx.Cause();
  }

  std::atomic<Behavior> behavior_{Behavior::kStarts};
  absl::Mutex mu_;
  Signal fail_ ABSL_GUARDED_BY(mu_);
};

uint64_t Seed() {
  uint64_t seed = 0;
  const char* env = std::getenv("LIFECYCLE_MODEL_SEED");
  if (env == nullptr || !absl::SimpleAtoi(env, &seed)) {
    seed = std::random_device()();
  }
  return seed;
}

// The reference model: what the contract says the snapshot must be.
struct Model {
  ServiceState state = ServiceState::kStopped;
  int64_t starts = 0;
  int64_t failures = 0;
  int64_t errors = 0;
  bool degraded = false;
};

constexpr absl::Duration kWait = absl::Seconds(30);  // a hang, not a delay

TEST(BaseServiceModelTest, SequentialOperationsFollowTheModel) {
  const uint64_t seed = Seed();
  SCOPED_TRACE(absl::StrCat("LIFECYCLE_MODEL_SEED=", seed));
  std::mt19937_64 random(seed);
  ModelService service;
  Model model;
  constexpr int kOperations = 3000;
  for (int op = 0; op < kOperations; ++op) {
    SCOPED_TRACE(absl::StrCat("operation #", op));
    bool running = model.state == ServiceState::kStarted;
    switch (random() % 6) {
      case 0: {  // Start with a random behaviour
        Behavior b = static_cast<Behavior>(random() % 3);
        service.SetBehavior(b);
        absl::Status s = service.Start(Context::Background());
        if (running) {
          ASSERT_TRUE(s.ok()) << "Start() on a running service must be OK";
          break;
        }
        ++model.starts;
        model.degraded = false;
        if (b == Behavior::kFailsStart) {
          ASSERT_EQ(s.code(), absl::StatusCode::kUnavailable);
          ASSERT_TRUE(service.Started().IsClosed());
          ASSERT_TRUE(service.Stopped().IsClosed());
          ++model.failures;
          model.state = ServiceState::kFailed;
          break;
        }
        ASSERT_TRUE(s.ok());
        ASSERT_TRUE(service.Started().WaitFor(kWait));
        if (b == Behavior::kFailsBeforeStarted) {
          ++model.failures;
          model.state = ServiceState::kFailed;
          ASSERT_TRUE(service.Stopped().WaitFor(kWait));
        } else {
          model.state = ServiceState::kStarted;
          ASSERT_FALSE(service.Stopped().IsClosed());
        }
        break;
      }
      case 1:  // Stop
      case 2: {
        Signal stopped = service.Stopped();
        service.Stop();
        // Before the first start, Stopped() belongs to the first run and
        // stays open; after any run it is closed once Stop() returns.
        ASSERT_EQ(stopped.IsClosed(), model.starts > 0);
        if (running) model.state = ServiceState::kStopped;
        model.degraded = false;
        break;
      }
      case 3:  // the worker dies
        service.FailNow();
        if (running) {
          ASSERT_TRUE(service.Stopped().WaitFor(kWait));
          model.state = ServiceState::kFailed;
          ++model.failures;
          model.degraded = false;
        }
        break;
      case 4:  // self-reported health
        if (random() % 2 == 0) {
          service.ReportError(absl::UnavailableError("model error"));
          ++model.errors;
          model.degraded = true;
        } else {
          service.ReportHealthy();
          model.degraded = false;
        }
        break;
      case 5:  // waits never block on a service that is not starting
        ASSERT_EQ(service.Started().IsClosed(),
                  model.state != ServiceState::kStopped || model.starts > 0);
        break;
    }
    ServiceSnapshot s = service.Snapshot();
    ASSERT_EQ(s.state, model.state);
    ASSERT_EQ(s.start_count, model.starts);
    ASSERT_EQ(s.failure_count, model.failures);
    ASSERT_EQ(s.error_count, model.errors);
    ASSERT_EQ(s.status.ok(), s.state != ServiceState::kFailed) << s.status;
    ASSERT_EQ(s.last_failure.ok(), model.failures == 0) << s.last_failure;
    if (s.state == ServiceState::kStarted) {
      ASSERT_EQ(s.degraded, model.degraded);
    }
  }
}

TEST(BaseServiceModelTest, ConcurrentOperationsKeepTheInvariants) {
  const uint64_t seed = Seed();
  SCOPED_TRACE(absl::StrCat("LIFECYCLE_MODEL_SEED=", seed));
  ModelService service;
  constexpr int kThreads = 6;
  constexpr int kOperations = 400;  // per thread
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 random(seed + t);
      int64_t last_starts = 0, last_failures = 0;
      for (int op = 0; op < kOperations; ++op) {
        switch (random() % 5) {
          case 0: {
            service.SetBehavior(static_cast<Behavior>(random() % 3));
            absl::Status s = service.Start(Context::Background());
            EXPECT_TRUE(s.ok() || absl::IsUnavailable(s)) << s;
            // Whatever else happens, this wait must end.
            EXPECT_TRUE(service.Started().WaitFor(kWait));
            break;
          }
          case 1:
            service.Stop();
            break;
          case 2:
            EXPECT_TRUE(service.StopFor(kWait).ok());
            break;
          case 3:
            service.FailNow();
            break;
          case 4: {
            ServiceSnapshot s = service.Snapshot();
            EXPECT_GE(s.start_count, last_starts);
            EXPECT_GE(s.failure_count, last_failures);
            EXPECT_LE(s.failure_count, s.start_count);
            EXPECT_EQ(s.status.ok(), s.state != ServiceState::kFailed);
            last_starts = s.start_count;
            last_failures = s.failure_count;
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  service.Stop();
  ServiceSnapshot s = service.Snapshot();
  EXPECT_TRUE(s.state == ServiceState::kStopped ||
              s.state == ServiceState::kFailed)
      << s;
  // Every run that began is accounted for, and every failure has a cause.
  EXPECT_EQ(s.start_count, service.on_start_calls);
  EXPECT_EQ(s.failure_count, service.start_errors + service.run_errors);
  EXPECT_EQ(service.WorkerThreadId(), 0);
}

// A composite that restarts its one child, driven by random starts, stops and
// deaths of the child, against a model of the restart policy: each death is
// followed by a restart until the limit, then the parent fails.
class SupervisingParent : public CompositeService {
 public:
  static constexpr int kMaxRestarts = 3;
  SupervisingParent() : CompositeService("parent") {
    Supervision policy = Supervision::Restart(kMaxRestarts, absl::Hours(1));
    policy.backoff = absl::ZeroDuration();
    AddChildOrDie(child, policy);
  }
  ~SupervisingParent() override { Stop(); }
  ModelService child;
};

TEST(BaseServiceModelTest, RuntimeDeathsAndRestartsFollowTheModel) {
  const uint64_t seed = Seed();
  SCOPED_TRACE(absl::StrCat("LIFECYCLE_MODEL_SEED=", seed));
  std::mt19937_64 random(seed);
  SupervisingParent parent;
  ModelService& child = parent.child;

  ServiceState parent_state = ServiceState::kStopped;
  ServiceState child_state = ServiceState::kStopped;
  int64_t parent_starts = 0, parent_failures = 0;
  int64_t child_starts = 0, child_failures = 0, restarts = 0;
  int restarts_this_run = 0;

  constexpr int kOperations = 600;
  for (int op = 0; op < kOperations; ++op) {
    SCOPED_TRACE(absl::StrCat("operation #", op));
    bool running = parent_state == ServiceState::kStarted;
    switch (random() % 4) {
      case 0:  // start the parent
        ASSERT_TRUE(parent.Start(Context::Background()).ok());
        ASSERT_TRUE(parent.Started().WaitFor(kWait));
        if (!running) {
          ++parent_starts;
          ++child_starts;
          restarts_this_run = 0;
          parent_state = child_state = ServiceState::kStarted;
        }
        break;
      case 1:  // stop the parent
        parent.Stop();
        if (running) parent_state = child_state = ServiceState::kStopped;
        break;
      case 2:
      case 3: {  // the child dies
        if (!running) break;
        int64_t restarts_before = restarts;
        child.FailNow();
        ++child_failures;
        if (restarts_this_run < SupervisingParent::kMaxRestarts) {
          ++restarts;
          ++restarts_this_run;
          ++child_starts;
          ASSERT_TRUE(WaitSnapshotUntil(
              child,
              [&](const ServiceSnapshot& c) {
                return c.restart_count == restarts_before + 1 &&
                       c.state == ServiceState::kStarted;
              },
              absl::Now() + kWait));
        } else {
          ASSERT_TRUE(parent.Stopped().WaitFor(kWait));
          ++parent_failures;
          parent_state = child_state = ServiceState::kFailed;
          ServiceSnapshot p = parent.Snapshot();
          ASSERT_EQ(p.status.message(),
                    absl::StrCat("service 'parent/model' failed while running: "
                                 "model worker died (restarted ",
                                 SupervisingParent::kMaxRestarts,
                                 " times within 1h; the limit is ",
                                 SupervisingParent::kMaxRestarts, ")"));
        }
        break;
      }
    }
    ServiceSnapshot p = parent.Snapshot();
    const ServiceSnapshot* c = p.Find("parent/model");
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(p.state, parent_state) << p;
    ASSERT_EQ(c->state, child_state) << p;
    ASSERT_EQ(p.start_count, parent_starts);
    ASSERT_EQ(p.failure_count, parent_failures);
    ASSERT_EQ(c->start_count, child_starts);
    ASSERT_EQ(c->failure_count, child_failures);
    ASSERT_EQ(c->restart_count, restarts);
    ASSERT_EQ(child.Snapshot().restart_count, restarts);
  }
}

}  // namespace
}  // namespace lifecycle
