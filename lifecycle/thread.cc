#include "lifecycle/thread.h"

#include <system_error>
#include <utility>

#include "lifecycle/clock.h"

namespace lifecycle {

Thread::Thread(const Context& ctx, std::string label,
               absl::AnyInvocable<void() &&> body) {
  clock_internal::TimeSource* time = context_internal::TimeSourceOf(ctx);
  // Counted as running from now on, so that virtual time never sees every
  // thread blocked while this one is on its way.
  if (time != nullptr) time->ThreadCreating();
  try {
    // `ctx` travels with the thread: it keeps its time alive.
    thread_ = std::thread([ctx, time, label = std::move(label),
                           body = std::move(body), done = done_]() mutable {
      static_cast<void>(ctx);  // held, not read
      clock_internal::ScopedThreadTime in_time(time, std::move(label));
      std::move(body)();
      // Still in the time: a joiner in it is woken before this thread leaves,
      // so the time never sees both blocked.
      done.Close();
    });
  } catch (const std::system_error&) {
    if (time != nullptr) time->ThreadNotCreated();
    throw;
  }
}

Thread::~Thread() { Join(); }

void Thread::Join() {
  if (!thread_.joinable()) return;
  done_.Wait();
  thread_.join();
}

}  // namespace lifecycle
