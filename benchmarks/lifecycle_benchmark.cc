// Benchmarks of the library against what a user would otherwise write, all in
// one binary so that ratios are measured side by side. Run with
// tools/bench.sh; results and their reading are in docs/PERFORMANCE.md.

#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "examples/client.h"
#include "lifecycle/base_service.h"
#include "lifecycle/clock.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/service.h"
#include "lifecycle/signal.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/start_graph.h"
#include "lifecycle/testing/virtual_time.h"
#include "lifecycle/testing/wait.h"

// Counts heap allocations, for the footprint benchmarks.
static std::atomic<int64_t> g_allocations{0};
void* operator new(size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

using lifecycle::Context;
using lifecycle::FuncService;
using lifecycle::Service;
using lifecycle::Signal;

int ThreadsAlive() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- 1. Wake latency: a blocked waiter woken by another thread -------------
//
// Each iteration: the waiter blocks, the main thread gives it 200us to be
// asleep in the kernel, then takes the time and wakes it; the waiter takes the
// time when it runs again. The iteration time is the difference.

// One wake of `Event`, in seconds.
template <typename Event>
double OneWake() {
  Event event;
  std::atomic<bool> waiting{false};
  std::chrono::steady_clock::time_point woke;
  std::thread waiter([&] {
    waiting = true;
    event.Wait();
    woke = std::chrono::steady_clock::now();
  });
  while (!waiting) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::microseconds(200));
  auto closed = std::chrono::steady_clock::now();
  event.Close();
  waiter.join();
  return std::chrono::duration<double>(woke - closed).count();
}

template <typename Event>
void WakeLatency(benchmark::State& state) {
  for (auto _ : state) state.SetIterationTime(OneWake<Event>());
}

struct SignalEvent {
  Signal signal;
  void Wait() { signal.Wait(); }
  void Close() { signal.Close(); }
};

struct NotificationEvent {
  absl::Notification n;
  void Wait() { n.WaitForNotification(); }
  void Close() { n.Notify(); }
};

struct CondVarEvent {
  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return closed; });
  }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu);
      closed = true;
    }
    cv.notify_all();
  }
};

// What tests do without a signal to wait on: check, sleep 1 ms, check again.
struct SleepPollEvent {
  std::atomic<bool> closed{false};
  void Wait() {
    while (!closed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void Close() { closed = true; }
};

BENCHMARK_TEMPLATE(WakeLatency, SignalEvent)->UseManualTime()->Iterations(300);
BENCHMARK_TEMPLATE(WakeLatency, NotificationEvent)
    ->UseManualTime()
    ->Iterations(300);
BENCHMARK_TEMPLATE(WakeLatency, CondVarEvent)->UseManualTime()->Iterations(300);
BENCHMARK_TEMPLATE(WakeLatency, SleepPollEvent)
    ->UseManualTime()
    ->Iterations(100);

// ---- 2. WaitAllStarted over n services -----------------------------------
//
// Services whose signals are plain: the cost measured is the wait's, not any
// worker's.

class SignalOnlyService : public Service {
 public:
  absl::Status Start(const Context&) override { return absl::OkStatus(); }
  Signal Started() const override { return started_; }
  void Stop() override { stopped_.Close(); }
  absl::Status StopFor(absl::Duration) override {
    stopped_.Close();
    return absl::OkStatus();
  }
  Signal Stopped() const override { return stopped_; }
  std::string_view Name() const override { return "s"; }
  lifecycle::ServiceState State() const override {
    return started_.IsClosed() ? lifecycle::ServiceState::kStarted
                               : lifecycle::ServiceState::kStarting;
  }
  lifecycle::ServiceSnapshot Snapshot() const override {
    lifecycle::ServiceSnapshot s;
    s.name = s.path = "s";
    s.state = started_.IsClosed() ? lifecycle::ServiceState::kStarted
                                  : lifecycle::ServiceState::kStarting;
    return s;
  }
  Signal started_;
  Signal stopped_;
};

// The floor a wait on n started things can reach: a loop over n flags that
// are all set (acquire loads), and the same over n already-fetched `Signal`s.
// Each rep runs once per iteration, alternating with the real wait, so that
// the machine's drift falls on all three alike; the counters are medians-free
// means over the iterations, and `x_flag_loop` / `x_signal_loop` are the
// ratios of the real wait to each, from the same run.
void WaitAllStartedAlreadyStarted(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<SignalOnlyService> services(n);
  std::vector<Service*> pointers;
  std::vector<Signal> signals;
  std::unique_ptr<std::atomic<bool>[]> flags(new std::atomic<bool>[n]);
  for (size_t i = 0; i < n; ++i) {
    services[i].started_.Close();
    pointers.push_back(&services[i]);
    signals.push_back(services[i].started_);
    flags[i].store(true);
  }
  auto flag_loop = [&] {
    size_t open = 0;
    for (size_t i = 0; i < n; ++i) {
      open += !flags[i].load(std::memory_order_acquire);
    }
    return open;
  };
  auto signal_loop = [&] {
    size_t open = 0;
    for (const Signal& signal : signals) open += !signal.IsClosed();
    return open;
  };
  absl::Duration ours, flag, signal;
  for (auto _ : state) {
    absl::Time t0 = absl::Now();
    benchmark::DoNotOptimize(lifecycle::WaitAllStarted(pointers));
    absl::Time t1 = absl::Now();
    benchmark::DoNotOptimize(flag_loop());
    absl::Time t2 = absl::Now();
    benchmark::DoNotOptimize(signal_loop());
    absl::Time t3 = absl::Now();
    ours += t1 - t0;
    flag += t2 - t1;
    signal += t3 - t2;
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["flag_loop_us"] =
      absl::ToDoubleMicroseconds(flag) / iterations;
  state.counters["signal_loop_us"] =
      absl::ToDoubleMicroseconds(signal) / iterations;
  state.counters["x_flag_loop"] =
      absl::ToDoubleSeconds(ours) / absl::ToDoubleSeconds(flag);
  state.counters["x_signal_loop"] =
      absl::ToDoubleSeconds(ours) / absl::ToDoubleSeconds(signal);
  state.SetComplexityN(state.range(0));
}
BENCHMARK(WaitAllStartedAlreadyStarted)
    ->Arg(1)
    ->Arg(100)
    ->Arg(10000)
    ->Complexity(benchmark::oN);

// Starting: another thread closes the started signals, in order, while the
// wait runs.
void WaitAllStartedWhileStarting(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<SignalOnlyService> services(state.range(0));
    std::vector<Service*> pointers;
    for (auto& s : services) pointers.push_back(&s);
    state.ResumeTiming();
    std::thread starter([&] {
      for (auto& s : services) s.started_.Close();
    });
    benchmark::DoNotOptimize(lifecycle::WaitAllStarted(pointers));
    starter.join();
  }
  state.SetComplexityN(state.range(0));
}
BENCHMARK(WaitAllStartedWhileStarting)
    ->Arg(1)
    ->Arg(100)
    ->Arg(10000)
    ->Complexity(benchmark::oN)
    ->Unit(benchmark::kMicrosecond);

// ---- 3. StartAll + WaitAllStarted + StopAllParallel, real services -------

std::unique_ptr<FuncService> Trivial(int i) {
  return std::make_unique<FuncService>(
      absl::StrCat("svc", i),
      [](const Context& ctx, absl::FunctionRef<void()> started) {
        started();
        ctx.Done().Wait();
        return ctx.Cause();
      });
}

// The floor of a thread per service: n raw threads that each say they have
// started and block until told to stop, then are joined. Returns how long
// it took.
absl::Duration RawThreadFloor(int n) {
  absl::Time began = absl::Now();
  std::vector<std::unique_ptr<absl::Notification>> started;
  absl::Notification stop;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) {
    started.push_back(std::make_unique<absl::Notification>());
    absl::Notification* mine = started.back().get();
    threads.emplace_back([mine, &stop] {
      mine->Notify();
      stop.WaitForNotification();
    });
  }
  for (auto& s : started) s->WaitForNotification();
  stop.Notify();
  for (std::thread& t : threads) t.join();
  return absl::Now() - began;
}

// `n` trivial services, and pointers to them for the group functions.
struct TrivialServices {
  explicit TrivialServices(int n) {
    for (int i = 0; i < n; ++i) {
      services.push_back(Trivial(i));
      pointers.push_back(services.back().get());
    }
  }
  std::vector<std::unique_ptr<FuncService>> services;
  std::vector<Service*> pointers;
};

void StartWaitStop(benchmark::State& state) {
  const int n = state.range(0);
  TrivialServices trivial(n);
  const std::vector<Service*>& pointers = trivial.pointers;
  int base_threads = ThreadsAlive();
  int peak_threads = 0;
  int peak_stop_threads = 0;
  for (auto _ : state) {
    if (!lifecycle::StartAll(pointers, Context::Background()).ok() ||
        !lifecycle::WaitAllStarted(pointers).ok()) {
      state.SkipWithError("start failed");
      break;
    }
    peak_threads = std::max(peak_threads, ThreadsAlive() - base_threads);
    std::atomic<bool> stopping{true};
    std::thread sampler([&] {
      // Samples the live threads while the stop runs. Workers exit meanwhile,
      // so extra threads can only be undercounted, never invented.
      while (stopping) {
        peak_stop_threads = std::max(peak_stop_threads, ThreadsAlive());
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    lifecycle::StopAllParallel(pointers);
    stopping = false;
    sampler.join();
  }
  state.counters["threads_at_start"] = peak_threads;
  // Threads beyond the workers and the sampler while stopping, as sampled
  // every 200us: StopAllParallel requests every stop before waiting, so it
  // needs no helper thread (this should read 0).
  state.counters["stop_helpers"] =
      std::max(0, peak_stop_threads - base_threads - n - 1);
  state.counters["services"] = n;
  state.SetComplexityN(n);
}
BENCHMARK(StartWaitStop)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(10000)
    ->Complexity(benchmark::oN)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

// The same cycle with nothing else running, alternating with the raw-thread
// floor (`RawThreadFloor`) of the same n in the same run: `x_floor` is the
// ratio of the means, ours to the floor's.
void StartWaitStopVsFloor(benchmark::State& state) {
  const int n = state.range(0);
  TrivialServices trivial(n);
  const std::vector<Service*>& pointers = trivial.pointers;
  absl::Duration ours, floor;
  for (auto _ : state) {
    absl::Time began = absl::Now();
    if (!lifecycle::StartAll(pointers, Context::Background()).ok() ||
        !lifecycle::WaitAllStarted(pointers).ok()) {
      state.SkipWithError("start failed");
      break;
    }
    lifecycle::StopAllParallel(pointers);
    ours += absl::Now() - began;
    floor += RawThreadFloor(n);
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["ours_ms"] = absl::ToDoubleMilliseconds(ours) / iterations;
  state.counters["floor_ms"] = absl::ToDoubleMilliseconds(floor) / iterations;
  state.counters["x_floor"] =
      absl::ToDoubleSeconds(ours) / absl::ToDoubleSeconds(floor);
}
BENCHMARK(StartWaitStopVsFloor)
    ->Arg(10)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);

// ---- 4. Stop latency: Stop() of a worker blocked on its context ----------

void StopLatency(benchmark::State& state) {
  auto service = Trivial(0);
  for (auto _ : state) {
    state.PauseTiming();
    (void)service->Start(Context::Background());
    service->Started().Wait();
    state.ResumeTiming();
    service->Stop();
  }
}
BENCHMARK(StopLatency)->Unit(benchmark::kMicrosecond);

// ---- 5. CPU burnt while waiting 1 s --------------------------------------

void CpuWhileWaitingOnSignal(benchmark::State& state) {
  Signal never;
  for (auto _ : state) {
    double before = ThreadCpuSeconds();
    never.WaitFor(absl::Seconds(1));
    state.counters["cpu_us_per_s"] = (ThreadCpuSeconds() - before) * 1e6;
  }
}
BENCHMARK(CpuWhileWaitingOnSignal)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void CpuWhileWaitOrTimeout(benchmark::State& state) {
  Signal never;
  for (auto _ : state) {
    double before = ThreadCpuSeconds();
    // The AssertionResult form: WaitOrTimeout's own wait, without reporting
    // a gtest failure outside a test.
    benchmark::DoNotOptimize(static_cast<bool>(
        lifecycle_testing::SignalClosesWithin(never, {}, absl::Seconds(1))));
    state.counters["cpu_us_per_s"] = (ThreadCpuSeconds() - before) * 1e6;
  }
}
BENCHMARK(CpuWhileWaitOrTimeout)->Iterations(1)->Unit(benchmark::kMillisecond);

// ---- 6. Footprint ----------------------------------------------------------

void BytesPerIdleService(benchmark::State& state) {
  constexpr int kCount = 10000;
  for (auto _ : state) {
    size_t before = mallinfo2().uordblks;
    std::vector<std::unique_ptr<FuncService>> services;
    services.reserve(kCount);
    size_t with_vector = mallinfo2().uordblks;
    for (int i = 0; i < kCount; ++i) services.push_back(Trivial(i));
    size_t after = mallinfo2().uordblks;
    state.counters["heap_bytes_per_service"] =
        static_cast<double>(after - with_vector) / kCount;
    state.counters["sizeof_FuncService"] = sizeof(FuncService);
    benchmark::DoNotOptimize(before);
  }
}
BENCHMARK(BytesPerIdleService)->Iterations(1)->Unit(benchmark::kMillisecond);

void AllocationsPerStartStop(benchmark::State& state) {
  auto service = Trivial(0);
  int64_t allocations = 0;
  for (auto _ : state) {
    int64_t before = g_allocations;
    (void)service->Start(Context::Background());
    service->Started().Wait();
    service->Stop();
    allocations += g_allocations - before;
  }
  state.counters["allocations_per_cycle"] =
      static_cast<double>(allocations) / state.iterations();
}
BENCHMARK(AllocationsPerStartStop)->Unit(benchmark::kMicrosecond);

// ---- 7. Snapshot of a 1,000-service tree ------------------------------------

class Tree : public lifecycle::CompositeService {
 public:
  explicit Tree(int n) : CompositeService("root") {
    for (int i = 0; i < n; ++i) {
      leaves_.push_back(Trivial(i));
      AddChildOrDie(*leaves_.back());
    }
  }
  ~Tree() override { Stop(); }

 private:
  std::vector<std::unique_ptr<FuncService>> leaves_;
};

void SnapshotValue(benchmark::State& state) {
  Tree tree(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(tree.Snapshot());
  state.SetComplexityN(state.range(0));
}
BENCHMARK(SnapshotValue)
    ->RangeMultiplier(10)
    ->Range(100, 10000)
    ->Complexity(benchmark::oN)
    ->Unit(benchmark::kMicrosecond);

void SnapshotTable(benchmark::State& state) {
  Tree tree(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(ToTable(tree.Snapshot()));
}
BENCHMARK(SnapshotTable)->Arg(1000)->Unit(benchmark::kMicrosecond);

void SnapshotJson(benchmark::State& state) {
  Tree tree(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(ToJson(tree.Snapshot()));
}
BENCHMARK(SnapshotJson)->Arg(1000)->Unit(benchmark::kMicrosecond);

// Creating and then destroying N sibling contexts under one parent (issue 13,
// item 19: removal used to scan the parent's list, so this was quadratic). The
// time per sibling should stay flat from 1,000 to 10,000 (and 40,000).
void ContextSiblingsTeardown(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    lifecycle::CancellableContext parent;
    std::vector<std::unique_ptr<lifecycle::CancellableContext>> children;
    children.reserve(n);
    for (int i = 0; i < n; ++i) {
      children.push_back(
          std::make_unique<lifecycle::CancellableContext>(parent.context()));
    }
    children.clear();
  }
  state.counters["ns_per_sibling"] = benchmark::Counter(
      static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                  benchmark::Counter::kInvert);
}
BENCHMARK(ContextSiblingsTeardown)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(40000)
    ->Unit(benchmark::kMillisecond);

}  // namespace

// --- 9. Start-up as a graph ---------------------------------------------------
//
// Four chains of five services, each taking 2ms of simulated start-up (a
// wait before it signals started). "graph": each service starts after the
// one before it in its chain, so the critical path is 5 x 2ms = 10ms.
// "sequential": every service after the one before it in the whole list, as
// a start in order that waits for each would: 20 x 2ms. The counters give
// the start-up in milliseconds and its ratio to the critical path.
void StartGraph(benchmark::State& state) {
  const bool sequential = state.range(0) == 1;
  constexpr int kChains = 4, kLength = 5;
  const absl::Duration kEach = absl::Milliseconds(2);
  double total_ms = 0;
  for (auto _ : state) {
    std::vector<std::unique_ptr<lifecycle::FuncService>> owned;
    std::vector<lifecycle::Service*> services;
    std::vector<lifecycle::Dependency> dependencies;
    for (int c = 0; c < kChains; ++c) {
      for (int i = 0; i < kLength; ++i) {
        owned.push_back(std::make_unique<lifecycle::FuncService>(
            absl::StrCat("c", c, "s", i),
            [kEach](const lifecycle::Context& ctx,
                    absl::FunctionRef<void()> started) {
              if (ctx.Done().WaitFor(kEach)) return ctx.Cause();
              started();
              ctx.Done().Wait();
              return ctx.Cause();
            }));
        services.push_back(owned.back().get());
        const size_t n = services.size();
        if (sequential ? n > 1 : i > 0) {
          dependencies.push_back({services[n - 1], services[n - 2]});
        }
      }
    }
    absl::Time began = absl::Now();
    absl::Status s = lifecycle::StartInDependencyOrder(
        services, dependencies, lifecycle::Context::Background());
    absl::Duration took = absl::Now() - began;
    if (!s.ok()) state.SkipWithError("start failed");
    state.SetIterationTime(absl::ToDoubleSeconds(took));
    total_ms += absl::ToDoubleMilliseconds(took);
    lifecycle::StopInReverseDependencyOrder(services, dependencies);
  }
  const double critical_ms =
      absl::ToDoubleMilliseconds(kEach) * (sequential ? kChains : 1) * kLength;
  state.counters["start_ms"] = total_ms / state.iterations();
  state.counters["vs_critical_path"] =
      total_ms / state.iterations() / critical_ms;
}
BENCHMARK(StartGraph)
    ->ArgName("sequential")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(30)
    ->Unit(benchmark::kMillisecond);

// Declaring a graph through a composite: `n` children and their dependencies,
// one `AddDependency()` call each, timed (adding the children is not).
// "chain": each child after the one before; "fan_out": one child after all
// the others; "fan_in": all after one; "random_dag": each child after up to
// three earlier ones, picked by a fixed seed (about 3n links). Each call costs
// what its cycle check visits from the nearer end, so every shape is linear
// in all (Complexity oN); 10,000 children once took minutes (RELIABILITY.md,
// round 2).
enum class Shape { kChain, kFanOut, kFanIn, kRandomDag };

// `n` children of `group`, each running until stopped.
std::vector<std::unique_ptr<lifecycle::FuncService>> AddChildren(
    lifecycle::CompositeService& group, int n) {
  std::vector<std::unique_ptr<lifecycle::FuncService>> children;
  for (int i = 0; i < n; ++i) {
    children.push_back(std::make_unique<lifecycle::FuncService>(
        absl::StrCat("s", i),
        [](const lifecycle::Context& ctx, absl::FunctionRef<void()> started) {
          started();
          ctx.Done().Wait();
          return ctx.Cause();
        }));
    group.AddChildOrDie(*children.back());
  }
  return children;
}

// The links of `shape` among `children`; false if one was refused.
bool Link(lifecycle::CompositeService& group,
          const std::vector<std::unique_ptr<lifecycle::FuncService>>& children,
          Shape shape) {
  bool ok = true;
  if (shape == Shape::kRandomDag) {
    std::mt19937 random(42);
    for (size_t i = 1; i < children.size(); ++i) {
      std::uniform_int_distribution<size_t> earlier(0, i - 1);
      size_t picked[3] = {earlier(random), earlier(random), earlier(random)};
      for (size_t k = 0; k < 3; ++k) {
        if (std::find(picked, picked + k, picked[k]) != picked + k) continue;
        ok &= group.AddDependency(*children[i], *children[picked[k]]).ok();
      }
    }
    return ok;
  }
  for (size_t i = 1; i < children.size(); ++i) {
    lifecycle::Service& a = *children[i];
    lifecycle::Service& hub = *children[0];
    ok &= (shape == Shape::kChain    ? group.AddDependency(a, *children[i - 1])
           : shape == Shape::kFanOut ? group.AddDependency(hub, a)
                                     : group.AddDependency(a, hub))
              .ok();
  }
  return ok;
}

void DeclareThroughComposite(benchmark::State& state, Shape shape) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    lifecycle::CompositeService group("group");
    auto children = AddChildren(group, n);
    absl::Time began = absl::Now();
    bool ok = Link(group, children, shape);
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - began));
    if (!ok) state.SkipWithError("a dependency was refused");
  }
  state.SetComplexityN(n);
}
void DeclareSizes(benchmark::internal::Benchmark* b) {
  b->RangeMultiplier(10)
      ->Range(100, 10000)
      ->UseManualTime()
      ->Iterations(5)  // each makes n children first, untimed
      ->Complexity(benchmark::oN)
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK_CAPTURE(DeclareThroughComposite, chain, Shape::kChain)
    ->Apply(DeclareSizes);
BENCHMARK_CAPTURE(DeclareThroughComposite, fan_out, Shape::kFanOut)
    ->Apply(DeclareSizes);
BENCHMARK_CAPTURE(DeclareThroughComposite, fan_in, Shape::kFanIn)
    ->Apply(DeclareSizes);
BENCHMARK_CAPTURE(DeclareThroughComposite, random_dag, Shape::kRandomDag)
    ->Apply(DeclareSizes);

// Starting and stopping a 10,000-child chain or fan-out declared through a
// composite: the start-up graph through its composite, end to end.
void StartStopThroughComposite(benchmark::State& state, Shape shape) {
  lifecycle::CompositeService group("group");
  auto children = AddChildren(group, static_cast<int>(state.range(0)));
  if (!Link(group, children, shape)) {
    state.SkipWithError("a dependency was refused");
  }
  for (auto _ : state) {
    if (!group.Start(lifecycle::Context::Background()).ok() ||
        !group.Started().WaitFor(absl::Minutes(5))) {
      state.SkipWithError("start failed");
    }
    group.Stop();
  }
  state.SetComplexityN(state.range(0));
}
void StartStopSizes(benchmark::internal::Benchmark* b) {
  b->Arg(1000)
      ->Arg(10000)
      ->Iterations(3)
      ->Complexity(benchmark::oN)
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK_CAPTURE(StartStopThroughComposite, chain, Shape::kChain)
    ->Apply(StartStopSizes);
BENCHMARK_CAPTURE(StartStopThroughComposite, fan_out, Shape::kFanOut)
    ->Apply(StartStopSizes);
BENCHMARK_CAPTURE(StartStopThroughComposite, random_dag, Shape::kRandomDag)
    ->Apply(StartStopSizes);

// Adding `n` children to a composite and destroying them, never started:
// each add checks its name against its siblings' and each destruction leaves
// its parent's list, both in O(1) (an O(n) scan each once made 10,000
// children cost ~0.6 s).
void ChildrenAddAndDestroy(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    lifecycle::CompositeService group("group");
    auto children = AddChildren(group, n);
    children.clear();
  }
  state.SetComplexityN(n);
}
BENCHMARK(ChildrenAddAndDestroy)
    ->RangeMultiplier(10)
    ->Range(100, 10000)
    ->Complexity(benchmark::oN)
    ->Unit(benchmark::kMillisecond);

// A 10,000-service random DAG declared and started through a composite,
// against `StartAll` + `WaitAllStarted` of as many of the same services, in
// alternation in one run: `x_flat` is the ratio of the means, the graph's
// (declaring included) to the flat start's.
void GraphVsFlatStart(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  TrivialServices flat(n);
  absl::Duration graph, plain;
  for (auto _ : state) {
    {
      lifecycle::CompositeService group("group");
      auto children = AddChildren(group, n);  // untimed
      absl::Time began = absl::Now();
      if (!Link(group, children, Shape::kRandomDag) ||
          !group.Start(lifecycle::Context::Background()).ok() ||
          !group.Started().WaitFor(absl::Minutes(5))) {
        state.SkipWithError("graph start failed");
        break;
      }
      graph += absl::Now() - began;
      group.Stop();
    }
    absl::Time began = absl::Now();
    if (!lifecycle::StartAll(flat.pointers, Context::Background()).ok() ||
        !lifecycle::WaitAllStarted(flat.pointers).ok()) {
      state.SkipWithError("flat start failed");
      break;
    }
    plain += absl::Now() - began;
    lifecycle::StopAllParallel(flat.pointers);
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["graph_ms"] = absl::ToDoubleMilliseconds(graph) / iterations;
  state.counters["flat_ms"] = absl::ToDoubleMilliseconds(plain) / iterations;
  state.counters["x_flat"] =
      absl::ToDoubleSeconds(graph) / absl::ToDoubleSeconds(plain);
}
BENCHMARK(GraphVsFlatStart)
    ->Arg(10000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// A restart storm: `n` children of one composite, each failing right after
// it starts until it has been restarted 3 times (no backoff), then staying
// up. Timed from the composite's start until every child is up for good: 4n
// runs, so linear in n (Complexity oN).
void RestartStorm(benchmark::State& state) {
  constexpr int kRestarts = 3;
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    lifecycle::CompositeService group("group");
    std::atomic<int> settled{0};
    Signal all_settled;
    std::vector<std::unique_ptr<lifecycle::FuncService>> children;
    for (int i = 0; i < n; ++i) {
      children.push_back(std::make_unique<lifecycle::FuncService>(
          absl::StrCat("s", i),
          [runs = 0, &group, &settled, &all_settled, n](
              const Context& ctx, absl::FunctionRef<void()> started) mutable {
            started();
            if (++runs <= kRestarts) {
              // Supervision starts once the composite has started: a child
              // that fails before fails the composite's start.
              group.Started().Wait();
              return absl::UnavailableError("crash");
            }
            if (settled.fetch_add(1) + 1 == n) all_settled.Close();
            ctx.Done().Wait();
            return ctx.Cause();
          }));
      group.AddChildOrDie(*children.back(),
                          lifecycle::Supervision::Restart(kRestarts + 1)
                              .WithBackoff(absl::ZeroDuration()));
    }
    absl::Time began = absl::Now();
    Signal ends[] = {all_settled, group.Stopped()};
    if (!group.Start(Context::Background()).ok() ||
        WaitAnyUntil(ends, absl::Now() + absl::Minutes(5)) != 0u) {
      state.SkipWithError("the storm did not settle");
      group.Stop();
      break;
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - began));
    if (group.Snapshot().state != lifecycle::ServiceState::kStarted) {
      state.SkipWithError("the composite did not stay up");
    }
    group.Stop();
  }
  state.counters["runs"] = (kRestarts + 1) * n;
  state.SetComplexityN(n);
}
BENCHMARK(RestartStorm)
    ->RangeMultiplier(10)
    ->Range(100, 10000)
    ->UseManualTime()
    ->Iterations(3)
    ->Complexity(benchmark::oN)
    ->Unit(benchmark::kMillisecond);

// The demo client (client.h), every part simulating 30ms of start-up: as it
// ships ("graph": the producers after the elector, maintenance after the
// notifier), and with its four parts chained one after another
// ("sequential": notifier, elector, producer, maintenance). Its critical path
// as shipped is client, elector, producer, a queue: 4 x 30ms.
class SequentialClient : public examples::Client {
 public:
  explicit SequentialClient(const examples::ClientConfig& config)
      : Client(config) {
    AddDependencyOrDie(elector(), notifier());
    AddDependencyOrDie(*Find("client/maintenance"), *Find("client/producer"));
  }
  ~SequentialClient() override { StopForDestruction(); }
};

void ClientStart(benchmark::State& state) {
  const bool sequential = state.range(0) == 1;
  examples::SimulatedDatabase database;
  examples::ClientConfig config;
  config.queues = {"default", "bulk"};
  config.database = &database;
  config.simulated_start_time = absl::Milliseconds(30);
  double total_ms = 0;
  for (auto _ : state) {
    std::unique_ptr<examples::Client> client =
        sequential ? std::make_unique<SequentialClient>(config)
                   : std::make_unique<examples::Client>(config);
    absl::Time began = absl::Now();
    if (!client->Start(lifecycle::Context::Background()).ok() ||
        !client->Started().WaitFor(absl::Seconds(10))) {
      state.SkipWithError("the client did not start");
    }
    absl::Duration took = absl::Now() - began;
    state.SetIterationTime(absl::ToDoubleSeconds(took));
    total_ms += absl::ToDoubleMilliseconds(took);
    client->Stop();
  }
  state.counters["start_ms"] = total_ms / state.iterations();
  state.counters["vs_critical_path"] = total_ms / state.iterations() / 120.0;
}
BENCHMARK(ClientStart)
    ->ArgName("sequential")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond);

// ---- 11. Virtual time, and what the one clock costs the real path ---------
//
// One simulated hour of a service that ticks every second (3,600 wakes, each
// a step with the threads quiescent before the next), in real time.

void VirtualHourOfTicks(benchmark::State& state) {
  for (auto _ : state) {
    std::atomic<int> ticks{0};
    FuncService ticker(
        "ticker", [&](const Context& ctx, absl::FunctionRef<void()> started) {
          started();
          while (!ctx.Done().WaitFor(absl::Seconds(1))) ++ticks;
          return absl::OkStatus();
        });
    lifecycle_testing::VirtualTime time;
    auto began = std::chrono::steady_clock::now();
    if (!ticker.Start(time.context()).ok() || !time.AdvanceBy(absl::Hours(1)) ||
        ticks != 3600) {
      state.SkipWithError("the hour did not pass as it should");
    }
    auto took = std::chrono::steady_clock::now() - began;
    state.SetIterationTime(std::chrono::duration<double>(took).count());
    ticker.Stop();
  }
}
BENCHMARK(VirtualHourOfTicks)
    ->UseManualTime()
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond);

// The real clock's path, timed waits, as every service's WaitFor() takes it:
// `Signal::WaitFor()` (which now asks the thread's clock first) against a
// copy of its code before the clock existed (an atomic fast path, then
// `absl::Mutex::LockWhenWithDeadline` with a deadline from `absl::Now()`).
struct TimedSignalEvent {
  Signal signal;
  void Wait() { signal.WaitFor(absl::Hours(1)); }
  void Close() { signal.Close(); }
};

struct PreClockTimedEvent {
  absl::Mutex mu;
  std::atomic<bool> closed{false};
  static bool IsClosed(std::atomic<bool>* c) {
    return c->load(std::memory_order_relaxed);
  }
  void Wait() {
    if (closed.load(std::memory_order_acquire)) return;
    mu.LockWhenWithDeadline(absl::Condition(&IsClosed, &closed),
                            absl::Now() + absl::Hours(1));
    mu.Unlock();
  }
  void Close() {
    absl::MutexLock lock(&mu);
    closed.store(true, std::memory_order_release);
  }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The two side by side, alternating wake by wake so that the machine's drift
// falls on both alike: the counters are the median wake of each and their
// ratio (`clock_vs_pre_clock`; 1 is no cost).
void WakeLatencyClockVsPreClock(benchmark::State& state) {
  std::vector<double> now, before;
  for (auto _ : state) {
    now.push_back(OneWake<TimedSignalEvent>());
    before.push_back(OneWake<PreClockTimedEvent>());
  }
  state.counters["clock_us"] = Median(now) * 1e6;
  state.counters["pre_clock_us"] = Median(before) * 1e6;
  state.counters["clock_vs_pre_clock"] = Median(now) / Median(before);
}
BENCHMARK(WakeLatencyClockVsPreClock)->Iterations(500);

void NowLifecycle(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(lifecycle::Now());
}
BENCHMARK(NowLifecycle);

void NowAbsl(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(absl::Now());
}
BENCHMARK(NowAbsl);

BENCHMARK_MAIN();
