// -----------------------------------------------------------------------------
// thread.h
// -----------------------------------------------------------------------------
//
// `lifecycle::Thread`: a thread of your own that lives in a context's time,
// as a service's worker does (clock.h). Under a `VirtualTime`'s context
// (testing/virtual_time.h) its `lifecycle::Now()` reads virtual time and its
// library waits, `lifecycle::SleepFor()` among them, end when the test moves
// time far enough; under any other context it is an ordinary thread. Use it
// for the threads a service or a test starts itself (a pool, a poller), so
// that virtual time sees them: blocked in a library wait, or busy.
//
// Example:
//
//   lifecycle_testing::VirtualTime time;
//   lifecycle::Thread poller(time.context(), "poller", [] {
//     lifecycle::SleepFor(absl::Hours(1));  // an hour of virtual time
//   });
//   ASSERT_TRUE(time.AdvanceBy(absl::Hours(1)));
//   poller.Join();
//
// A plain `std::thread` is not in virtual time: it reads the system clock,
// and virtual time does not see it, so time may move on while it works, as if
// it were blocked. A `Thread` that blocks outside this library's waits (a
// `std::mutex`, I/O) counts as busy, and time waits for it, at most the idle
// timeout, then fails naming it (docs/VIRTUAL_TIME.md).
//
// Thread safety: one owner; `Join()` from the owner's thread. The body runs on
// its own thread.

#ifndef LIFECYCLE_THREAD_H_
#define LIFECYCLE_THREAD_H_

#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "lifecycle/context.h"
#include "lifecycle/signal.h"

namespace lifecycle {

class Thread {
 public:
  // Starts `body` on a new thread that lives in the time of `ctx` until
  // `body` returns. `label` names it in virtual time's reports (a blocked or
  // busy thread, a deadlock). Throws `std::system_error` if no thread can be
  // made, as `std::thread` does. `body` must not throw.
  Thread(const Context& ctx, std::string label,
         absl::AnyInvocable<void() &&> body);
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  // Joins, if `Join()` was not called.
  ~Thread();

  // Waits until `body` has returned, then joins the thread. The wait is a
  // library wait: a thread in virtual time that joins counts as blocked, not
  // busy. A second call does nothing.
  void Join();

  // Closes once `body` has returned.
  Signal Done() const { return done_; }

 private:
  Signal done_;
  std::thread thread_;
};

}  // namespace lifecycle

#endif  // LIFECYCLE_THREAD_H_
