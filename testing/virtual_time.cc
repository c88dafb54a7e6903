#include "lifecycle/testing/virtual_time.h"

#include <sched.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lifecycle/clock.h"
#include "lifecycle/strings_internal.h"
#include "lifecycle/thread.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle_testing {
namespace virtual_time_internal {

// Keeps a thread on one CPU for its scope. Pins of one thread nest (two
// `VirtualTime`s whose lifetimes overlap): when the last goes, the thread gets
// back the CPUs it had before the first. Does nothing for a negative CPU, or
// where the thread cannot be pinned.
class CpuPin {
 public:
  explicit CpuPin(int cpu) : tid_(static_cast<pid_t>(syscall(SYS_gettid))) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return;
    absl::MutexLock lock(&mu_);
    Pinned& pinned = pinned_threads_[tid_];
    if (pinned.depth == 0 &&
        sched_getaffinity(tid_, sizeof(pinned.saved), &pinned.saved) != 0) {
      pinned_threads_.erase(tid_);
      return;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(tid_, sizeof(one), &one);
    ++pinned.depth;
    counted_ = true;
  }
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;
  // From any thread of the process: the pinned thread is named by its id.
  ~CpuPin() {
    if (!counted_) return;
    absl::MutexLock lock(&mu_);
    auto it = pinned_threads_.find(tid_);
    if (it == pinned_threads_.end() || --it->second.depth > 0) return;
    sched_setaffinity(tid_, sizeof(it->second.saved), &it->second.saved);
    pinned_threads_.erase(it);
  }

 private:
  struct Pinned {
    int depth = 0;
    cpu_set_t saved;  // the CPUs before the first pin
  };
  static absl::Mutex mu_;
  static std::map<pid_t, Pinned>& pinned_threads_ ABSL_GUARDED_BY(mu_);

  const pid_t tid_;
  bool counted_ = false;
};

absl::Mutex CpuPin::mu_(absl::kConstInit);
std::map<pid_t, CpuPin::Pinned>& CpuPin::pinned_threads_ =
    *new std::map<pid_t, CpuPin::Pinned>;

// The time source behind a `VirtualTime`. Counts the threads living in it that
// are not blocked in one of its waits (`running_`); the test advances time
// only when that count is zero.
class Clock final : public lifecycle::clock_internal::TimeSource {
 public:
  Clock(absl::Time start, absl::Duration idle_timeout)
      : start_(start), idle_timeout_(idle_timeout), now_(start) {}

  // The CPU the threads of this time run on; negative: wherever they like.
  int cpu() const { return cpu_.load(std::memory_order_relaxed); }
  void set_cpu(int cpu) { cpu_.store(cpu, std::memory_order_relaxed); }

  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  bool Wait(const lifecycle::Signal& signal, absl::Time deadline) override;
  uint64_t AddTimer(absl::Time at, absl::AnyInvocable<void() &&> fire,
                    std::string label) override;
  void CancelTimer(uint64_t id) override;

  void ThreadCreating() override {
    absl::MutexLock lock(&mu_);
    ++running_;
    ++creating_;
  }
  void ThreadNotCreated() override {
    absl::MutexLock lock(&mu_);
    --running_;
    --creating_;
  }
  void ThreadBegins(std::string label) override;
  void ThreadEnds() override;
  void EnterOutsideWait(int64_t thread) override;
  void LeaveOutsideWait(int64_t thread) override;
  void WakeOutsideWait(int64_t thread) override;

  // What its `VirtualTime` was made with, for whoever moves it.
  absl::Duration idle_timeout() const { return idle_timeout_; }
  int64_t max_deadlines() const { return max_deadlines_.load(); }
  void set_max_deadlines(int64_t max) { max_deadlines_.store(max); }
  absl::Duration Elapsed() const {
    absl::MutexLock lock(&mu_);
    return now_ - start_;
  }
  // The context its End() cancels (the `VirtualTime`'s own), while it lives.
  void set_scope(lifecycle::CancellableContext* scope) {
    absl::MutexLock lock(&mu_);
    scope_ = scope;
  }

  // Waits until every thread in this time is blocked, but for `except` of
  // them (the caller's own thread, when it lives in this time).
  bool AwaitIdle(absl::Duration timeout, int except = 0);
  // The earliest pending deadline, if any.
  std::optional<absl::Time> NextDeadline() const;
  // Fires the earliest timer due at or before `limit`, moving now to it;
  // false if there is none. Call when idle.
  bool FireNext(absl::Time limit);
  void MoveTo(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = std::max(now_, t);
  }
  // Ends this time: its context is cancelled with `why`, every deadline has
  // passed, those pending fire now (in order) and later waits with a deadline
  // do not block.
  void End(absl::Status why);
  bool ended() const {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  // Waits, at most `timeout`, until no thread lives in this time.
  bool AwaitNoThreads(absl::Duration timeout);
  std::string LabelOfCurrentThread() const;
  // One line per thread, then (if `stacks`) the stack of each.
  std::string Describe(bool stacks) const;

 private:
  std::atomic<int> cpu_{-1};
  // A thread blocked in Wait(): woken by its signal or by its deadline.
  struct Sleeper {
    absl::CondVar cv;
    bool woken = false;
    bool blocked = false;  // counted out of running_
  };
  // Deadlines fire in time order; ties in the order of the waiting thread's
  // label (its service path), then of registration.
  using Key = std::tuple<absl::Time, std::string, uint64_t>;
  struct Timer {
    uint64_t id = 0;
    Sleeper* sleeper = nullptr;          // a Wait()'s deadline, or
    absl::AnyInvocable<void() &&> fire;  // a timer's callback
  };
  struct Thread {
    std::string label;
    bool blocked = false;
    absl::Time until;      // while blocked
    bool outside = false;  // blocked in an outside wait
    bool wake_pending = false;
  };

  void WakeLocked(Sleeper& sleeper) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (sleeper.woken) return;
    sleeper.woken = true;
    // Counted back in by the waker, before it goes on: between a wake and the
    // woken thread running, the clock never looks idle.
    if (sleeper.blocked) ++running_;
    sleeper.cv.Signal();
  }
  uint64_t AddTimerLocked(absl::Time at, std::string label, Timer timer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct IdleQuery {
    Clock* clock;
    int except;
  };
  static bool IsIdle(IdleQuery* query) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return query->clock->running_ <= query->except;
  }
  static bool HasNoThreads(Clock* clock) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return clock->threads_.empty() && clock->creating_ == 0;
  }

  // "+1h30m": how far `t` is from where this time began.
  std::string Since(absl::Time t) const {
    return absl::StrCat("+",
                        lifecycle::strings_internal::DurationText(t - start_));
  }

  const absl::Time start_;
  const absl::Duration idle_timeout_;
  std::atomic<int64_t> max_deadlines_{1000000};
  mutable absl::Mutex mu_;
  lifecycle::CancellableContext* scope_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int creating_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<Key, Timer> timers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Key> keys_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, Thread> threads_ ABSL_GUARDED_BY(mu_);
};

namespace {
// The calling thread's entry in the clock it lives in.
thread_local pid_t current_tid = 0;
// The calling thread on its clock's CPU, while it lives in that time.
thread_local std::unique_ptr<CpuPin> current_pin;
}  // namespace

void Clock::ThreadBegins(std::string label) {
  current_tid = static_cast<pid_t>(syscall(SYS_gettid));
  current_pin = std::make_unique<CpuPin>(cpu());
  absl::MutexLock lock(&mu_);
  --creating_;
  threads_[current_tid].label = std::move(label);
}

std::string Clock::LabelOfCurrentThread() const {
  absl::MutexLock lock(&mu_);
  auto it = threads_.find(current_tid);
  return it == threads_.end() ? "" : it->second.label;
}

void Clock::ThreadEnds() {
  current_pin.reset();
  absl::MutexLock lock(&mu_);
  threads_.erase(current_tid);
  --running_;
}

void Clock::EnterOutsideWait(int64_t thread) {
  absl::MutexLock lock(&mu_);
  auto it = threads_.find(static_cast<pid_t>(thread));
  if (it == threads_.end()) return;
  Thread& t = it->second;
  if (std::exchange(t.wake_pending, false) || t.blocked) return;
  t.blocked = t.outside = true;
  t.until = absl::InfiniteFuture();
  --running_;
}

void Clock::LeaveOutsideWait(int64_t thread) {
  absl::MutexLock lock(&mu_);
  auto it = threads_.find(static_cast<pid_t>(thread));
  if (it == threads_.end() || !it->second.outside) return;
  it->second.blocked = it->second.outside = false;
  ++running_;
}

void Clock::WakeOutsideWait(int64_t thread) {
  absl::MutexLock lock(&mu_);
  auto it = threads_.find(static_cast<pid_t>(thread));
  if (it == threads_.end()) return;
  if (!it->second.outside) {
    it->second.wake_pending = true;
    return;
  }
  it->second.blocked = it->second.outside = false;
  ++running_;
}

uint64_t Clock::AddTimerLocked(absl::Time at, std::string label, Timer timer) {
  uint64_t id = next_id_++;
  timer.id = id;
  Key key(at, std::move(label), id);
  keys_.emplace(id, key);
  timers_.emplace(std::move(key), std::move(timer));
  return id;
}

uint64_t Clock::AddTimer(absl::Time at, absl::AnyInvocable<void() &&> fire,
                         std::string label) {
  {
    absl::MutexLock lock(&mu_);
    if (!ended_) {
      Timer timer;
      timer.fire = std::move(fire);
      return AddTimerLocked(at, std::move(label), std::move(timer));
    }
  }
  std::move(fire)();  // every deadline of an ended time has passed
  return 0;
}

void Clock::CancelTimer(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(id);
  if (it == keys_.end()) return;  // fired already
  timers_.erase(it->second);
  keys_.erase(it);
}

bool Clock::Wait(const lifecycle::Signal& signal, absl::Time deadline) {
  Sleeper sleeper;
  uint64_t callback = signal.OnClose([this, &sleeper] {
    absl::MutexLock lock(&mu_);
    WakeLocked(sleeper);
  });
  {
    absl::MutexLock lock(&mu_);
    // A wait without a deadline blocks whatever the time.
    if (!sleeper.woken &&
        (deadline == absl::InfiniteFuture() || deadline > now_) &&
        (!ended_ || deadline == absl::InfiniteFuture())) {
      Thread& self = threads_[current_tid];
      uint64_t timer = 0;
      if (deadline != absl::InfiniteFuture()) {
        Timer t;
        t.sleeper = &sleeper;
        timer = AddTimerLocked(deadline, self.label, std::move(t));
      }
      sleeper.blocked = true;
      self.blocked = true;
      self.until = deadline;
      --running_;
      while (!sleeper.woken) sleeper.cv.Wait(&mu_);
      self.blocked = false;
      if (auto it = keys_.find(timer); it != keys_.end()) {
        timers_.erase(it->second);
        keys_.erase(it);
      }
    }
  }
  // Outside mu_: it waits for the callback if it is running now.
  signal.CancelOnClose(callback);
  return signal.IsClosed();
}

bool Clock::AwaitIdle(absl::Duration timeout, int except) {
  IdleQuery query{this, except};
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&IsIdle, &query), timeout);
}

std::optional<absl::Time> Clock::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  if (timers_.empty()) return std::nullopt;
  return std::get<0>(timers_.begin()->first);
}

bool Clock::FireNext(absl::Time limit) {
  absl::AnyInvocable<void() &&> fire;
  {
    absl::MutexLock lock(&mu_);
    if (timers_.empty() || std::get<0>(timers_.begin()->first) > limit) {
      return false;
    }
    auto node = timers_.extract(timers_.begin());
    keys_.erase(node.mapped().id);
    now_ = std::max(now_, std::get<0>(node.key()));
    if (node.mapped().sleeper != nullptr) {
      WakeLocked(*node.mapped().sleeper);
      return true;
    }
    fire = std::move(node.mapped().fire);
  }
  // Outside mu_: a context deadline cancels the context, whose callbacks wake
  // the threads waiting on it.
  std::move(fire)();
  return true;
}

void Clock::End(absl::Status why) {
  lifecycle::CancellableContext* scope;
  {
    absl::MutexLock lock(&mu_);
    scope = std::exchange(scope_, nullptr);
  }
  if (scope != nullptr) scope->Cancel(std::move(why));
  std::vector<absl::AnyInvocable<void() &&>> fire;
  {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    for (auto& [key, timer] : timers_) {
      if (timer.sleeper != nullptr) {
        WakeLocked(*timer.sleeper);
      } else {
        fire.push_back(std::move(timer.fire));
      }
    }
    timers_.clear();
    keys_.clear();
  }
  for (auto& f : fire) std::move(f)();
}

bool Clock::AwaitNoThreads(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&HasNoThreads, this), timeout);
}

std::string Clock::Describe(bool stacks) const {
  std::vector<pid_t> tids;
  std::string out;
  {
    absl::MutexLock lock(&mu_);
    absl::StrAppend(&out, threads_.size(), " thread",
                    threads_.size() == 1 ? "" : "s", " in virtual time (now ",
                    Since(now_), ")", threads_.empty() ? "" : ":", "\n");
    for (const auto& [tid, thread] : threads_) {
      tids.push_back(tid);
      absl::StrAppend(&out, "  ", thread.label, " (thread ", tid, "): ");
      if (!thread.blocked) {
        absl::StrAppend(&out,
                        "busy (running, or blocked outside this library's "
                        "waits)\n");
      } else if (thread.outside) {
        absl::StrAppend(&out, "waiting outside virtual time (a program)\n");
      } else if (thread.until == absl::InfiniteFuture()) {
        absl::StrAppend(&out, "blocked, no deadline\n");
      } else {
        absl::StrAppend(&out, "blocked until ", Since(thread.until), "\n");
      }
    }
    if (creating_ > 0) {
      absl::StrAppend(&out, "  and ", creating_,
                      " being created (counted busy)\n");
    }
  }
  if (stacks) {
    for (pid_t tid : tids) absl::StrAppend(&out, lifecycle::ThreadStack(tid));
  }
  return out;
}

// --- Moving time: shared by VirtualTime and RunInTimeOf() --------------------

namespace {

::testing::AssertionResult WaitIdle(Clock& clock) {
  if (lifecycle::clock_internal::CurrentTimeSource() == &clock) {
    return ::testing::AssertionFailure()
           << "VirtualTime: advanced from a thread that lives in it ("
           << clock.LabelOfCurrentThread()
           << "): it would wait for itself. Advance from the test's thread.";
  }
  if (clock.AwaitIdle(clock.idle_timeout())) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "VirtualTime: threads still busy after "
         << lifecycle::strings_internal::DurationText(clock.idle_timeout())
         << " of real time, so virtual time cannot move (virtual time +"
         << lifecycle::strings_internal::DurationText(clock.Elapsed())
         << "). A thread blocked outside this library's waits (a std::mutex, "
            "I/O, a sleep) counts as busy.\n"
         << clock.Describe(/*stacks=*/true);
}

::testing::AssertionResult TooManyDeadlines(const Clock& clock) {
  return ::testing::AssertionFailure()
         << "VirtualTime: fired " << clock.max_deadlines()
         << " deadlines in one advance and more are due (virtual time +"
         << lifecycle::strings_internal::DurationText(clock.Elapsed())
         << "): a periodic service this fast over this long would not end "
            "in a test's time. Advance by less.\n"
         << clock.Describe(/*stacks=*/false);
}

::testing::AssertionResult Deadlock(const Clock& clock, const char* doing) {
  return ::testing::AssertionFailure()
         << "VirtualTime: deadlock: every thread in virtual time is blocked "
            "with no deadline pending, so nothing can happen (virtual time +"
         << lifecycle::strings_internal::DurationText(clock.Elapsed())
         << ") while " << doing << "\n"
         << clock.Describe(/*stacks=*/true);
}

// Runs `body` on a thread in `clock`'s time (made from `ctx`), moving the
// time whenever every thread in it is blocked, until `body` returns (see
// VirtualTime::Run). On a failure, ends the time with `why`. An exception
// `body` throws is thrown again here, on the caller's thread.
::testing::AssertionResult Drive(Clock& clock, const lifecycle::Context& ctx,
                                 const char* label, const char* doing,
                                 absl::AnyInvocable<void() &&> body) {
  std::exception_ptr thrown;
  lifecycle::Thread thread(ctx, label,
                           [&thrown, body = std::move(body)]() mutable {
                             try {
                               std::move(body)();
                             } catch (...) {
                               thrown = std::current_exception();
                             }
                           });
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  for (int64_t fired = 0;; ++fired) {
    if (auto idle = WaitIdle(clock); !idle) {
      result = idle;
      break;
    }
    if (thread.Done().IsClosed()) break;
    if (fired == clock.max_deadlines()) {
      result = TooManyDeadlines(clock);
      break;
    }
    std::optional<absl::Time> next = clock.NextDeadline();
    if (!next) {
      result = Deadlock(clock, doing);
      break;
    }
    clock.FireNext(*next);
  }
  if (!result) {
    // Ended as its destruction ends it: the services started with its context
    // are asked to stop, and every wait with a deadline returns from now on,
    // so the body can finish.
    clock.End(absl::CancelledError(
        absl::StrCat("VirtualTime: failed while ", doing)));
    if (!thread.Done().WaitFor(clock.idle_timeout())) {
      std::fprintf(
          stderr,
          "%s\nVirtualTime: the thread '%s' is still blocked %s "
          "after the time ended, in a wait without a deadline: it "
          "cannot be ended, so the process stops here.\n%s",
          std::string(result.message()).c_str(), label,
          lifecycle::strings_internal::DurationText(clock.idle_timeout())
              .c_str(),
          clock.Describe(/*stacks=*/true).c_str());
      std::fflush(stderr);
      std::abort();
    }
  }
  thread.Join();
  if (thrown) std::rethrow_exception(thrown);
  return result;
}

}  // namespace

::testing::AssertionResult RunInTimeOf(const lifecycle::Context& ctx,
                                       const char* label, const char* doing,
                                       absl::AnyInvocable<void() &&> body) {
  lifecycle::clock_internal::TimeSource* time =
      lifecycle::context_internal::TimeSourceOf(ctx);
  auto* clock = dynamic_cast<Clock*>(time);
  if (clock == nullptr || clock->ended() ||
      lifecycle::clock_internal::CurrentTimeSource() == time) {
    std::move(body)();
    return ::testing::AssertionSuccess();
  }
  return Drive(*clock, ctx, label, doing, std::move(body));
}

}  // namespace virtual_time_internal

using virtual_time_internal::Clock;

VirtualTime::VirtualTime(absl::Duration idle_timeout)
    : clock_(std::make_shared<Clock>(kStart, idle_timeout)),
      scope_(lifecycle::context_internal::NewContextInTime(clock_)) {
  clock_->set_scope(scope_.get());
  clock_->set_cpu(sched_getcpu());
  test_thread_pin_ =
      std::make_unique<virtual_time_internal::CpuPin>(clock_->cpu());
}

void VirtualTime::UseAllCpus() {
  clock_->set_cpu(-1);
  test_thread_pin_.reset();
}

int64_t VirtualTime::max_deadlines_per_advance() const {
  return clock_->max_deadlines();
}

void VirtualTime::set_max_deadlines_per_advance(int64_t max) {
  clock_->set_max_deadlines(max);
}

VirtualTime::~VirtualTime() {
  clock_->End(absl::CancelledError("VirtualTime destroyed"));
  test_thread_pin_.reset();
  if (clock_->AwaitNoThreads(clock_->idle_timeout())) return;
  ADD_FAILURE() << "VirtualTime destroyed while threads still live in it, "
                   "after cancelling its context and ending its time, "
                   "and waiting "
                << lifecycle::strings_internal::DurationText(
                       clock_->idle_timeout())
                << " for them: stop their services before it goes (they "
                   "wait on something else than their context).\n"
                << clock_->Describe(/*stacks=*/true);
}

const lifecycle::Context& VirtualTime::context() const {
  return scope_->context();
}

absl::Time VirtualTime::Now() const { return clock_->Now(); }

std::string VirtualTime::DescribeThreads() const {
  return clock_->Describe(/*stacks=*/false);
}

::testing::AssertionResult VirtualTime::WaitUntilIdle() {
  if (lifecycle::clock_internal::CurrentTimeSource() != clock_.get()) {
    return virtual_time_internal::WaitIdle(*clock_);
  }
  // From a thread in this time (the body of Run()): every other thread.
  if (clock_->AwaitIdle(clock_->idle_timeout(), /*except=*/1)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "VirtualTime: other threads still busy after "
         << lifecycle::strings_internal::DurationText(clock_->idle_timeout())
         << " of real time, waited for by " << clock_->LabelOfCurrentThread()
         << " (virtual time +"
         << lifecycle::strings_internal::DurationText(Elapsed())
         << "). A thread blocked outside this library's waits (a std::mutex, "
            "I/O, a sleep) counts as busy.\n"
         << clock_->Describe(/*stacks=*/true);
}

::testing::AssertionResult VirtualTime::AdvanceTo(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    return ::testing::AssertionFailure()
           << "VirtualTime: cannot advance to the infinite future (an "
              "infinite or overflowing duration, or InfiniteFuture()): a "
              "periodic service would never let it end, and waits without a "
              "deadline would end unsignalled. Advance by a finite duration, "
              "or use AdvanceUntil(signal, limit). (virtual time +"
           << lifecycle::strings_internal::DurationText(Elapsed()) << ")";
  }
  for (int64_t fired = 0;; ++fired) {
    if (auto idle = virtual_time_internal::WaitIdle(*clock_); !idle) {
      return idle;
    }
    if (fired == clock_->max_deadlines()) {
      return virtual_time_internal::TooManyDeadlines(*clock_);
    }
    if (!clock_->FireNext(deadline)) break;
  }
  clock_->MoveTo(deadline);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult VirtualTime::AdvanceBy(absl::Duration duration) {
  return AdvanceTo(Now() + std::max(duration, absl::ZeroDuration()));
}

::testing::AssertionResult VirtualTime::AdvanceToNextDeadline() {
  if (auto idle = virtual_time_internal::WaitIdle(*clock_); !idle) return idle;
  std::optional<absl::Time> next = clock_->NextDeadline();
  if (!next) {
    return virtual_time_internal::Deadlock(*clock_,
                                           "advancing to the next deadline");
  }
  return AdvanceTo(*next);
}

::testing::AssertionResult VirtualTime::AdvanceUntil(
    const lifecycle::Signal& signal, absl::Duration limit) {
  const absl::Time end = Now() + std::max(limit, absl::ZeroDuration());
  for (int64_t fired = 0;; ++fired) {
    if (auto idle = virtual_time_internal::WaitIdle(*clock_); !idle) {
      return idle;
    }
    if (signal.IsClosed()) return ::testing::AssertionSuccess();
    if (fired == clock_->max_deadlines()) {
      return virtual_time_internal::TooManyDeadlines(*clock_);
    }
    std::optional<absl::Time> next = clock_->NextDeadline();
    if (!next) {
      return virtual_time_internal::Deadlock(*clock_,
                                             "advancing until a signal closes");
    }
    if (*next > end) {
      clock_->MoveTo(end);
      return ::testing::AssertionFailure()
             << "VirtualTime: signal not closed after advancing "
             << lifecycle::strings_internal::DurationText(limit)
             << " of virtual time (now +"
             << lifecycle::strings_internal::DurationText(Elapsed())
             << "; next deadline +"
             << lifecycle::strings_internal::DurationText(*next - kStart)
             << ")\n"
             << clock_->Describe(/*stacks=*/false);
    }
    clock_->FireNext(*next);
  }
}

::testing::AssertionResult VirtualTime::Run(
    absl::AnyInvocable<void() &&> body) {
  if (lifecycle::clock_internal::CurrentTimeSource() == clock_.get()) {
    return ::testing::AssertionFailure()
           << "VirtualTime::Run: called from a thread that lives in this time ("
           << clock_->LabelOfCurrentThread()
           << "): it would wait for itself. Call it from the test's thread.";
  }
  return virtual_time_internal::Drive(*clock_, context(), "test body",
                                      "running the test body", std::move(body));
}

}  // namespace lifecycle_testing
