#include "lifecycle/signal.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"

namespace lifecycle {
namespace signal_internal {

struct State {
  absl::Mutex mu;
  // Written under `mu`; read without it on the fast paths.
  std::atomic<bool> closed{false};
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  // Sorted by id (ids only grow), so callbacks run in registration order and
  // are found by binary search. A vector, not a map: most signals have one or
  // two callbacks, and every service has two signals.
  std::vector<std::pair<uint64_t, absl::AnyInvocable<void() &&>>> callbacks
      ABSL_GUARDED_BY(mu);
  // Close() runs `callbacks` in order: the ones before `next_to_run` have
  // been taken (they are erased in one go at the end).
  size_t next_to_run ABSL_GUARDED_BY(mu) = 0;
  // While Close() runs the callbacks: the thread running them and the id of
  // the one running now (0 between callbacks).
  std::thread::id closer ABSL_GUARDED_BY(mu);
  uint64_t running_id ABSL_GUARDED_BY(mu) = 0;

  bool IsClosedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return closed.load(std::memory_order_relaxed);
  }
};

}  // namespace signal_internal

namespace {

using signal_internal::State;

bool IsClosedCondition(State* state) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // absl::Condition evaluates this with `state->mu` held.
  return state->closed.load(std::memory_order_relaxed);
}

struct RunningCallback {
  State* state;
  uint64_t id;
};

bool CallbackFinished(RunningCallback* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return c->state->running_id != c->id;
}

}  // namespace

Signal::Signal() : state_(std::make_shared<State>()) {}

Signal Signal::Closed() {
  Signal signal;
  signal.Close();
  return signal;
}

void Signal::Close() const {
  State& s = *state_;
  {
    absl::MutexLock lock(&s.mu);
    if (s.IsClosedLocked()) return;
    s.closed.store(true, std::memory_order_release);
    // Most signals have no callback: done, without taking the mutex again
    // while the waiters just woken need it.
    if (s.callbacks.empty()) return;
    s.closer = std::this_thread::get_id();
  }
  // One callback at a time, outside the lock, so that a callback may use this
  // signal again and CancelOnClose() can still remove the ones not yet run.
  std::string thrown;
  while (true) {
    absl::AnyInvocable<void() &&> callback;
    {
      absl::MutexLock lock(&s.mu);
      s.running_id = 0;  // the previous one has run and been destroyed
      if (s.next_to_run == s.callbacks.size()) {
        s.callbacks.clear();
        s.next_to_run = 0;
        s.closer = std::thread::id();
        break;
      }
      auto& next = s.callbacks[s.next_to_run++];
      s.running_id = next.first;
      callback = std::move(next.second);
    }
    // Every callback runs even if one throws; then the process stops loudly:
    // a callback that throws has left its own work half done, and nothing
    // above Close() (a worker thread, a destructor) could handle it.
    try {
      std::move(callback)();
    } catch (const std::exception& e) {
      if (thrown.empty()) thrown = e.what();
    } catch (...) {
      if (thrown.empty()) thrown = "(not a std::exception)";
    }
  }
  if (!thrown.empty()) {
    std::fprintf(stderr,
                 "lifecycle: FATAL: a Signal::OnClose() callback threw an "
                 "exception: %s. Callbacks must not throw; every other "
                 "callback of the signal has run.\n",
                 thrown.c_str());
    std::fflush(stderr);
    std::abort();
  }
}

bool Signal::IsClosed() const {
  return state_->closed.load(std::memory_order_acquire);
}

void Signal::Wait() const {
  if (IsClosed()) return;
  if (clock_internal::TimeSource* time = clock_internal::CurrentTimeSource()) {
    time->Wait(*this, absl::InfiniteFuture());
    return;
  }
  state_->mu.LockWhen(absl::Condition(&IsClosedCondition, state_.get()));
  state_->mu.Unlock();
}

bool Signal::WaitFor(absl::Duration timeout) const {
  if (timeout == absl::InfiniteDuration()) {
    Wait();
    return true;
  }
  return WaitUntil(lifecycle::Now() + timeout);
}

bool Signal::WaitUntil(absl::Time deadline) const {
  if (IsClosed()) return true;
  if (clock_internal::TimeSource* time = clock_internal::CurrentTimeSource()) {
    return time->Wait(*this, deadline);
  }
  if (deadline == absl::InfiniteFuture()) {
    Wait();
    return true;
  }
  bool closed = state_->mu.LockWhenWithDeadline(
      absl::Condition(&IsClosedCondition, state_.get()), deadline);
  state_->mu.Unlock();
  return closed;
}

uint64_t Signal::OnClose(absl::AnyInvocable<void() &&> callback) const {
  {
    absl::MutexLock lock(&state_->mu);
    if (!state_->IsClosedLocked()) {
      uint64_t id = state_->next_id++;
      state_->callbacks.emplace_back(id, std::move(callback));
      return id;
    }
  }
  std::move(callback)();
  return 0;
}

bool Signal::CancelOnClose(uint64_t id) const {
  if (id == 0) return false;
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  auto it = std::lower_bound(
      s.callbacks.begin(), s.callbacks.end(), id,
      [](const auto& entry, uint64_t key) { return entry.first < key; });
  if (it != s.callbacks.end() && it->first == id &&
      static_cast<size_t>(it - s.callbacks.begin()) >= s.next_to_run) {
    s.callbacks.erase(it);  // not taken by a Close() yet: it never runs
    return true;
  }
  // Running now on another thread: return only once it has finished, so the
  // caller may free what it captured. (From inside the callback itself, or
  // from another callback of the same Close(), waiting would never end.)
  if (s.running_id == id && s.closer != std::this_thread::get_id()) {
    RunningCallback running{&s, id};
    s.mu.Await(absl::Condition(&CallbackFinished, &running));
  }
  return false;
}

bool WaitAllUntil(absl::Span<const Signal> signals, absl::Time deadline) {
  for (const Signal& signal : signals) {
    if (!signal.WaitUntil(deadline)) return false;
  }
  return true;
}

std::optional<size_t> WaitAnyUntil(absl::Span<const Signal> signals,
                                   absl::Time deadline) {
  auto first_closed = [&]() -> std::optional<size_t> {
    for (size_t i = 0; i < signals.size(); ++i) {
      if (signals[i].IsClosed()) return i;
    }
    return std::nullopt;
  };
  if (auto index = first_closed()) return index;

  Signal any;
  std::vector<uint64_t> ids;
  ids.reserve(signals.size());
  for (const Signal& signal : signals) {
    ids.push_back(signal.OnClose([any] { any.Close(); }));
  }
  any.WaitUntil(deadline);
  for (size_t i = 0; i < signals.size(); ++i) signals[i].CancelOnClose(ids[i]);
  return first_closed();
}

namespace signal_internal {
size_t PendingCallbacks(const Signal& signal) {
  absl::MutexLock lock(&signal.state_->mu);
  return signal.state_->callbacks.size() - signal.state_->next_to_run;
}

Signal Unmade() { return Signal(nullptr); }

bool IsUnmade(const Signal& signal) { return signal.state_ == nullptr; }
}  // namespace signal_internal

}  // namespace lifecycle
