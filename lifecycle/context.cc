#include "lifecycle/context.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/cord.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace lifecycle {
namespace context_internal {

struct State {
  Signal done;
  absl::Time deadline = absl::InfiniteFuture();
  absl::Mutex mu;
  absl::Status cause ABSL_GUARDED_BY(mu);

  // The parent's done signal and our callback on it, removed when we go away.
  std::optional<Signal> parent_done;
  uint64_t parent_callback = 0;

  ~State() {
    if (parent_done) parent_done->CancelOnClose(parent_callback);
  }

  void Cancel(absl::Status why) {
    {
      absl::MutexLock lock(&mu);
      if (!cause.ok()) return;
      cause =
          why.ok() ? absl::CancelledError("context cancelled") : std::move(why);
    }
    done.Close();
  }
};

namespace {

// Closes contexts whose deadline passed: one thread for the whole process.
class DeadlineTimer {
 public:
  static DeadlineTimer& Get() {
    static DeadlineTimer* timer = new DeadlineTimer();  // never destroyed
    return *timer;
  }

  void Add(absl::Time deadline, std::weak_ptr<State> state) {
    absl::MutexLock lock(&mu_);
    pending_.emplace(deadline, std::move(state));
    changed_.Signal();  // the new deadline may be the earliest
    if (!thread_started_) {
      thread_started_ = true;
      std::thread([this] { Loop(); }).detach();  // lives as long as the process
    }
  }

 private:
  void Loop() {
#ifdef __linux__
    pthread_setname_np(pthread_self(), "lifecycle-timer");
#endif
    absl::MutexLock lock(&mu_);
    while (true) {
      absl::Time next =
          pending_.empty() ? absl::InfiniteFuture() : pending_.begin()->first;
      if (next > absl::Now()) {
        changed_.WaitWithDeadline(&mu_, next);
        continue;
      }
      std::weak_ptr<State> weak = std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      if (auto state = weak.lock()) {
        mu_.Unlock();
        state->Cancel(absl::DeadlineExceededError("context deadline exceeded"));
        state.reset();
        mu_.Lock();
      }
    }
  }

  absl::Mutex mu_;
  absl::CondVar changed_;
  bool thread_started_ ABSL_GUARDED_BY(mu_) = false;
  std::multimap<absl::Time, std::weak_ptr<State>> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace
}  // namespace context_internal

using context_internal::State;

Context Context::Background() {
  static const Context* background = new Context(std::make_shared<State>());
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
  State& state = *context_.state_;
  state.deadline = std::min(deadline, parent.Deadline());
  std::weak_ptr<State> weak = context_.state_;
  state.parent_done = parent.Done();
  std::weak_ptr<State> weak_parent = parent.state_;
  state.parent_callback = parent.Done().OnClose([weak, weak_parent] {
    auto child = weak.lock();
    auto up = weak_parent.lock();
    if (child && up) child->Cancel(Context(up).Cause());
  });
  if (state.deadline != absl::InfiniteFuture()) {
    if (state.deadline <= absl::Now()) {
      state.Cancel(absl::DeadlineExceededError("context deadline exceeded"));
    } else {
      context_internal::DeadlineTimer::Get().Add(state.deadline, weak);
    }
  }
}

CancellableContext::~CancellableContext() {
  context_.state_->Cancel(absl::CancelledError("context scope ended"));
}

void CancellableContext::Cancel(absl::Status cause) {
  context_.state_->Cancel(std::move(cause));
}

namespace {
constexpr char kStoppedPayloadUrl[] = "lifecycle/service-stopped";
}  // namespace

absl::Status StoppedError() {
  absl::Status status = absl::CancelledError("service stopped");
  status.SetPayload(kStoppedPayloadUrl, absl::Cord("1"));
  return status;
}

bool IsStopped(const absl::Status& status) {
  return absl::IsCancelled(status) &&
         status.GetPayload(kStoppedPayloadUrl).has_value();
}

}  // namespace lifecycle
