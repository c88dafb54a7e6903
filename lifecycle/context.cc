#include "lifecycle/context.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"

namespace lifecycle {
namespace context_internal {

struct State;
void Cancel(std::shared_ptr<State> root, absl::Status why);

namespace {

// Closes contexts whose deadline passed: one thread for the whole process,
// started with the first deadline. An entry leaves the timer when its context
// is cancelled or destroyed, so abandoned deadlines cost nothing.
class DeadlineTimer {
 public:
  static DeadlineTimer& Get() {
    static DeadlineTimer* timer = new DeadlineTimer();  // never destroyed
    return *timer;
  }

  // Arms `state`'s deadline. Fails (and arms nothing) when the timer thread
  // cannot be started; a later call tries again.
  absl::Status Add(const std::shared_ptr<State>& state);
  // Disarms `state`'s deadline, if armed.
  void Remove(State* state);

  pid_t ThreadId() const { return tid_.load(std::memory_order_acquire); }
  size_t Pending() {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }

  using Entries = std::multimap<absl::Time, std::weak_ptr<State>>;

 private:
  void Loop();

  absl::Mutex mu_;
  absl::CondVar changed_;
  bool thread_started_ ABSL_GUARDED_BY(mu_) = false;
  Entries pending_ ABSL_GUARDED_BY(mu_);
  std::atomic<pid_t> tid_{0};
};

}  // namespace

struct State {
  Signal done;
  absl::Time deadline = absl::InfiniteFuture();
  // False only for the background context, which is never cancelled and so
  // keeps no list of children.
  bool cancellable = true;
  absl::Mutex mu;
  absl::Status cause ABSL_GUARDED_BY(mu);
  // Children to cancel with this context; removal when a child goes is O(1).
  absl::flat_hash_map<State*, std::weak_ptr<State>> children
      ABSL_GUARDED_BY(mu);
  // The parent, to leave its list when this context goes.
  std::weak_ptr<State> parent;
  // This context's entry in the deadline timer; guarded by the timer's mutex.
  std::optional<DeadlineTimer::Entries::iterator> timer_entry;
  // The time this context's services live in; null for the system clock.
  // Under virtual time the deadline is a timer of that time, not of
  // DeadlineTimer: `virtual_timer` is its id (0 for none).
  std::shared_ptr<clock_internal::TimeSource> time;
  std::atomic<uint64_t> virtual_timer{0};

  // Disarms the deadline, wherever it is armed.
  void DisarmDeadline() {
    if (deadline == absl::InfiniteFuture()) return;
    if (time == nullptr) {
      DeadlineTimer::Get().Remove(this);
    } else if (uint64_t id = virtual_timer.exchange(0)) {
      time->CancelTimer(id);
    }
  }

  ~State() {
    if (auto up = parent.lock()) {
      absl::MutexLock lock(&up->mu);
      up->children.erase(this);
    }
    DisarmDeadline();
  }
};

namespace {

absl::Status DeadlineTimer::Add(const std::shared_ptr<State>& state) {
  absl::MutexLock lock(&mu_);
  state->timer_entry = pending_.emplace(state->deadline, state);
  changed_.Signal();  // the new deadline may be the earliest
  if (!thread_started_) {
    try {
      std::thread([this] { Loop(); }).detach();  // lives as long as the process
      thread_started_ = true;
    } catch (const std::system_error& e) {
      pending_.erase(*state->timer_entry);
      state->timer_entry.reset();
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot start the context deadline timer thread: ", e.what()));
    }
  }
  return absl::OkStatus();
}

void DeadlineTimer::Remove(State* state) {
  absl::MutexLock lock(&mu_);
  if (!state->timer_entry) return;
  pending_.erase(*state->timer_entry);
  state->timer_entry.reset();
}

void DeadlineTimer::Loop() {
#ifdef __linux__
  pthread_setname_np(pthread_self(), "lifecycle-timer");
#endif
  // It lives as long as the process: not on the one CPU of a VirtualTime that
  // the thread that made it may be pinned to.
  clock_internal::UseProcessCpus();
  tid_.store(static_cast<pid_t>(syscall(SYS_gettid)),
             std::memory_order_release);
  absl::MutexLock lock(&mu_);
  while (true) {
    absl::Time next =
        pending_.empty() ? absl::InfiniteFuture() : pending_.begin()->first;
    if (next > absl::Now()) {
      changed_.WaitWithDeadline(&mu_, next);
      continue;
    }
    std::shared_ptr<State> state = pending_.begin()->second.lock();
    pending_.erase(pending_.begin());
    if (state == nullptr) continue;
    state->timer_entry.reset();
    // Outside the lock: cancelling runs callbacks, and dropping the last
    // reference destroys the state, which calls Remove().
    mu_.Unlock();
    Cancel(std::move(state),
           absl::DeadlineExceededError("context deadline exceeded"));
    mu_.Lock();
  }
}

}  // namespace

void Cancel(std::shared_ptr<State> root, absl::Status why) {
  if (why.ok()) why = absl::CancelledError("context cancelled");
  // Iterative, so a chain of any depth is cancelled without recursion; each
  // context's own callbacks run as it is cancelled, parents before children.
  // Most contexts have no children: no allocation for those.
  absl::InlinedVector<std::shared_ptr<State>, 1> pending;
  pending.push_back(std::move(root));
  while (!pending.empty()) {
    std::shared_ptr<State> state = std::move(pending.back());
    pending.pop_back();
    {
      absl::MutexLock lock(&state->mu);
      if (!state->cause.ok()) continue;
      state->cause = why;
      for (auto& [raw, weak] : state->children) {
        if (auto child = weak.lock()) pending.push_back(std::move(child));
      }
      state->children.clear();
    }
    state->DisarmDeadline();
    state->done.Close();
  }
}

}  // namespace context_internal

using context_internal::State;

Context Context::Background() {
  static const Context* background = [] {
    auto state = std::make_shared<State>();
    state->cancellable = false;
    return new Context(std::move(state));
  }();
  return *background;
}

Signal Context::Done() const { return state_->done; }

bool Context::IsCancelled() const { return state_->done.IsClosed(); }

absl::Status Context::Cause() const {
  absl::MutexLock lock(&state_->mu);
  return state_->cause;
}

absl::Time Context::Deadline() const { return state_->deadline; }

CancellableContext::CancellableContext(const Context& parent,
                                       absl::Time deadline)
    : context_(std::make_shared<State>()) {
  const std::shared_ptr<State>& state = context_.state_;
  state->time = parent.state_->time;
  state->deadline = std::min(deadline, parent.Deadline());
  absl::Status cancel_now;
  if (parent.state_->cancellable) {
    State& up = *parent.state_;
    absl::MutexLock lock(&up.mu);
    if (up.cause.ok()) {
      up.children.emplace(state.get(), state);
      state->parent = parent.state_;
    } else {
      cancel_now = up.cause;
    }
  }
  if (cancel_now.ok() && state->deadline != absl::InfiniteFuture()) {
    if (state->deadline <= clock_internal::NowIn(state->time.get())) {
      cancel_now = absl::DeadlineExceededError("context deadline exceeded");
    } else if (state->time != nullptr) {
      std::weak_ptr<State> weak = state;
      state->virtual_timer = state->time->AddTimer(
          state->deadline,
          [weak] {
            if (auto expired = weak.lock()) {
              expired->virtual_timer = 0;
              context_internal::Cancel(
                  std::move(expired),
                  absl::DeadlineExceededError("context deadline exceeded"));
            }
          },
          "context deadline");
    } else if (absl::Status armed =
                   context_internal::DeadlineTimer::Get().Add(state);
               !armed.ok()) {
      // Never a deadline that silently does not fire.
      cancel_now = armed;
    }
  }
  if (!cancel_now.ok()) context_internal::Cancel(state, std::move(cancel_now));
}

CancellableContext::~CancellableContext() {
  // Most often cancelled already (a service's run, by its stop): then there
  // is nothing to do, and no status to make.
  if (context_.IsCancelled()) return;
  context_internal::Cancel(context_.state_,
                           absl::CancelledError("context scope ended"));
}

void CancellableContext::Cancel(absl::Status cause) {
  context_internal::Cancel(context_.state_, std::move(cause));
}

namespace context_internal {

std::unique_ptr<CancellableContext> NewContextInTime(
    std::shared_ptr<clock_internal::TimeSource> time) {
  auto scope = std::make_unique<CancellableContext>();
  scope->context_.state_->time = std::move(time);
  return scope;
}

clock_internal::TimeSource* TimeSourceOf(const Context& ctx) {
  return ctx.state_->time.get();
}

std::unique_ptr<CancellableContext> NewContextInTimeOf(const Context& ctx) {
  return NewContextInTime(ctx.state_->time);
}

}  // namespace context_internal

size_t PendingDeadlines() {
  return context_internal::DeadlineTimer::Get().Pending();
}

pid_t DeadlineTimerThreadId() {
  return context_internal::DeadlineTimer::Get().ThreadId();
}

namespace {
constexpr char kStoppedPayloadUrl[] = "lifecycle/service-stopped";
}  // namespace

absl::Status StoppedError() {
  // Made once: a copy of a status only adds a reference, so a stop allocates
  // nothing for its cause.
  static const absl::Status* const stopped = [] {
    auto* status = new absl::Status(absl::CancelledError("service stopped"));
    status->SetPayload(kStoppedPayloadUrl, absl::Cord("1"));
    return status;
  }();
  return *stopped;
}

bool IsStopped(const absl::Status& status) {
  return absl::IsCancelled(status) &&
         status.GetPayload(kStoppedPayloadUrl).has_value();
}

}  // namespace lifecycle
