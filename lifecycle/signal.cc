#include "lifecycle/signal.h"

#include <atomic>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace lifecycle {
namespace signal_internal {

struct State {
  absl::Mutex mu;
  // Written under `mu`; read without it on the fast paths.
  std::atomic<bool> closed{false};
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  std::vector<std::pair<uint64_t, absl::AnyInvocable<void() &&>>> callbacks
      ABSL_GUARDED_BY(mu);

  bool IsClosedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return closed.load(std::memory_order_relaxed);
  }
};

}  // namespace signal_internal

namespace {

bool IsClosedCondition(signal_internal::State* state)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // absl::Condition evaluates this with `state->mu` held.
  return state->closed.load(std::memory_order_relaxed);
}

}  // namespace

Signal::Signal() : state_(std::make_shared<signal_internal::State>()) {}

Signal Signal::Closed() {
  Signal signal;
  signal.Close();
  return signal;
}

void Signal::Close() const {
  std::vector<std::pair<uint64_t, absl::AnyInvocable<void() &&>>> callbacks;
  {
    absl::MutexLock lock(&state_->mu);
    if (state_->IsClosedLocked()) return;
    state_->closed.store(true, std::memory_order_release);
    callbacks.swap(state_->callbacks);
  }
  // Outside the lock, so that a callback may use this signal again.
  for (auto& [id, callback] : callbacks) std::move(callback)();
}

bool Signal::IsClosed() const {
  return state_->closed.load(std::memory_order_acquire);
}

void Signal::Wait() const {
  if (IsClosed()) return;
  state_->mu.LockWhen(absl::Condition(&IsClosedCondition, state_.get()));
  state_->mu.Unlock();
}

bool Signal::WaitFor(absl::Duration timeout) const {
  if (timeout == absl::InfiniteDuration()) {
    Wait();
    return true;
  }
  return WaitUntil(absl::Now() + timeout);
}

bool Signal::WaitUntil(absl::Time deadline) const {
  if (IsClosed()) return true;
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
  absl::MutexLock lock(&state_->mu);
  auto& callbacks = state_->callbacks;
  for (auto it = callbacks.begin(); it != callbacks.end(); ++it) {
    if (it->first == id) {
      callbacks.erase(it);
      return true;
    }
  }
  return false;
}

bool WaitForAll(absl::Span<const Signal> signals, absl::Time deadline) {
  for (const Signal& signal : signals) {
    if (!signal.WaitUntil(deadline)) return false;
  }
  return true;
}

std::optional<size_t> WaitForAny(absl::Span<const Signal> signals,
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

}  // namespace lifecycle
